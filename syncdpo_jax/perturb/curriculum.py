"""Coarse -> subtle curriculum over the perturbation strength, carried in the TrainState.

`CurriculumState` is a tiny pytree (scalars only) that lives in the TrainState and is checkpointed with
it. `update` is pure and is called inside the jitted train step with that step's implicit reward
accuracy; `strength(state)` and `mix_probs(state, cfg)` feed `negatives.make_negatives` at the next step.
The config (see `config.get_curriculum_config`) is read as static Python numbers, so every branch on
`cfg.schedule` is resolved at trace time and the state fields are the only traced values.

Schedules (difficulty d in [0, 1], strength = 1 - d):
  fixed     d = cfg.difficulty.
  linear    d ramps start_difficulty -> end_difficulty over ramp_steps steps, then holds.
  staged    stage = number of stage_boundaries reached by the step; d = stage_difficulties[stage].
  adaptive  d += advance_rate while the reward-accuracy EMA >= advance_threshold (the policy already
            separates these negatives: make them harder), d -= backoff_rate while the EMA <
            backoff_threshold (it collapsed: back off), else hold; clipped to [min, max]_difficulty.
For all but 'staged' the stage is derived from d (number of stage_difficulties[1:] reached), so the
per-stage mixes follow the difficulty.
"""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import struct

from syncdpo_jax.perturb import config as config_lib
from syncdpo_jax.perturb import ops


@struct.dataclass
class CurriculumState:
  """step: int32 [] updates so far; difficulty: f32 [] in [0, 1]; stage: int32 []; reward_acc_ema:
  f32 [] running implicit reward accuracy."""

  step: jax.Array
  difficulty: jax.Array
  stage: jax.Array
  reward_acc_ema: jax.Array


def validate(cfg: ml_collections.ConfigDict) -> None:
  """Raises a ValueError naming the curriculum config field that is inconsistent."""
  if cfg.schedule not in config_lib.SCHEDULES:
    raise ValueError(f"curriculum.schedule={cfg.schedule!r}; expected one of {config_lib.SCHEDULES}")
  bounds, diffs = tuple(cfg.stage_boundaries), tuple(cfg.stage_difficulties)
  if len(diffs) != len(bounds) + 1:
    raise ValueError(
        f"curriculum.stage_difficulties has {len(diffs)} entries, expected "
        f"len(stage_boundaries) + 1 = {len(bounds) + 1}"
    )
  if any(b1 <= b0 for b0, b1 in zip(bounds, bounds[1:])):
    raise ValueError(f"curriculum.stage_boundaries must be increasing steps, got {bounds}")
  if any(not 0.0 <= d <= 1.0 for d in diffs):
    raise ValueError(f"curriculum.stage_difficulties must lie in [0, 1], got {diffs}")
  if cfg.use_stage_mixes and len(cfg.stage_mixes) != len(diffs):
    raise ValueError(
        f"curriculum.stage_mixes has {len(cfg.stage_mixes)} mixes, expected one per " f"stage ({len(diffs)})"
    )
  if cfg.schedule == "linear" and cfg.ramp_steps <= 0:
    raise ValueError(f"curriculum.ramp_steps must be > 0 for 'linear', got {cfg.ramp_steps}")
  if cfg.schedule == "adaptive" and not cfg.backoff_threshold < cfg.advance_threshold:
    raise ValueError(
        "curriculum.backoff_threshold must be < advance_threshold, got "
        f"{cfg.backoff_threshold} >= {cfg.advance_threshold}"
    )
  if not 0.0 <= cfg.min_difficulty <= cfg.max_difficulty <= 1.0:
    raise ValueError(
        "curriculum needs 0 <= min_difficulty <= max_difficulty <= 1, got "
        f"{cfg.min_difficulty}, {cfg.max_difficulty}"
    )
  if not 0.0 <= cfg.ema_decay < 1.0:
    raise ValueError(f"curriculum.ema_decay must be in [0, 1), got {cfg.ema_decay}")


def _stage_of_difficulty(d: jax.Array, cfg) -> jax.Array:
  edges = jnp.asarray(tuple(cfg.stage_difficulties)[1:], jnp.float32)
  # Tolerance so that d == a stage difficulty (e.g. a linear ramp ending on it) counts as reached.
  return jnp.sum(d[None] >= edges - 1e-6).astype(jnp.int32)


def _stage_of_step(step: jax.Array, cfg) -> jax.Array:
  bounds = jnp.asarray(tuple(cfg.stage_boundaries), jnp.int32)
  return jnp.sum(step[None] >= bounds).astype(jnp.int32)


def _scheduled(
    step: jax.Array, prev_difficulty: jax.Array, ema: jax.Array, cfg
) -> tuple[jax.Array, jax.Array]:
  """(difficulty, stage) at `step` given the previous difficulty and the current EMA."""
  if cfg.schedule == "fixed":
    d = jnp.full((), cfg.difficulty, jnp.float32)
  elif cfg.schedule == "linear":
    frac = jnp.clip(step.astype(jnp.float32) / float(cfg.ramp_steps), 0.0, 1.0)
    d = cfg.start_difficulty + (cfg.end_difficulty - cfg.start_difficulty) * frac
  elif cfg.schedule == "staged":
    stage = _stage_of_step(step, cfg)
    return jnp.asarray(tuple(cfg.stage_difficulties), jnp.float32)[stage], stage
  else:  # adaptive
    delta = jnp.where(
        ema >= cfg.advance_threshold,
        cfg.advance_rate,
        jnp.where(ema < cfg.backoff_threshold, -cfg.backoff_rate, 0.0),
    )
    d = jnp.clip(prev_difficulty + delta, cfg.min_difficulty, cfg.max_difficulty)
  d = jnp.asarray(d, jnp.float32)
  return d, _stage_of_difficulty(d, cfg)


def init(cfg: ml_collections.ConfigDict) -> CurriculumState:
  """State at step 0 (difficulty per the schedule; EMA at cfg.init_reward_accuracy)."""
  validate(cfg)
  step = jnp.zeros((), jnp.int32)
  ema = jnp.full((), cfg.init_reward_accuracy, jnp.float32)
  start = cfg.start_difficulty if cfg.schedule == "adaptive" else 0.0
  d0 = jnp.clip(jnp.full((), start, jnp.float32), cfg.min_difficulty, cfg.max_difficulty)
  if cfg.schedule == "adaptive":
    # Step 0 has no accuracy yet: start exactly at start_difficulty, no adaptive move.
    return CurriculumState(step, d0, _stage_of_difficulty(d0, cfg), ema)
  d, stage = _scheduled(step, d0, ema, cfg)
  return CurriculumState(step, d, stage, ema)


def update(
    state: CurriculumState, cfg: ml_collections.ConfigDict, reward_accuracy: jax.Array | float
) -> CurriculumState:
  """One step of the curriculum; pure and jit-able (cfg static).

  reward_accuracy: f32 [] implicit reward accuracy of the step just taken (fraction of pairs whose
  winner got the larger implicit reward), folded into the EMA before the schedule decides.
  """
  step = state.step + 1
  acc = jnp.asarray(reward_accuracy, jnp.float32)
  ema = cfg.ema_decay * state.reward_acc_ema + (1.0 - cfg.ema_decay) * acc
  d, stage = _scheduled(step, state.difficulty, ema, cfg)
  return CurriculumState(step, d, stage, ema)


def strength(state: CurriculumState) -> jax.Array:
  """Perturbation strength for the next negatives: 1 - difficulty (f32 [])."""
  return 1.0 - state.difficulty


def mix_probs(
    state: CurriculumState, cfg: ml_collections.ConfigDict, default: Mapping[str, float] | None = None
) -> jax.Array:
  """Perturbation probabilities f32 [len(names())] (names() order) for the current stage.

  With `cfg.use_stage_mixes` False, returns the static `default` mix (e.g. the perturb config mix).
  """
  if not cfg.use_stage_mixes:
    if default is None:
      raise ValueError(
          "curriculum.use_stage_mixes is False: pass the perturb config mix as "
          "`default` (config.probs_from_config(config.perturb))"
      )
    mixes = [default]
  else:
    mixes = list(cfg.stage_mixes)
  table = np.zeros((len(mixes), len(ops.names())), np.float32)
  for s, mix in enumerate(mixes):
    for name, p in dict(mix).items():
      table[s, ops.kind_index(name)] = float(p)
    if not table[s].sum() > 0:
      raise ValueError(f"curriculum stage {s} mix {dict(mix)} has no positive probability")
  table /= table.sum(axis=1, keepdims=True)
  return jnp.asarray(table)[jnp.clip(state.stage, 0, len(mixes) - 1)]


def log_metrics(state: CurriculumState) -> dict[str, jax.Array]:
  """Scalars to log each step (metrics.jsonl requires `difficulty` for DPO runs)."""
  return {
      "difficulty": state.difficulty,
      "stage": state.stage,
      "strength": strength(state),
      "reward_acc_ema": state.reward_acc_ema,
  }
