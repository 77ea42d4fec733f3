"""ml_collections configs of the perturbation mix and of the curriculum, and their readers.

Both are plain ConfigDicts with Python numbers/strings, meant to sit under a training config
(`config.perturb = get_perturb_config()`, `config.curriculum = get_curriculum_config('staged')`) and be
overridden from the command line, e.g. `--config.perturb.mix.swap=0.0`,
`--config.curriculum.schedule=adaptive`. Everything is read as static Python values at trace time.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from syncdpo_jax.perturb import ops

SCHEDULES = ("fixed", "linear", "staged", "adaptive")

# Default mix: the SyncDPO paper reports Replace and Scale as the best trade-off between temporal
# precision and quality, so they carry most of the mass; the rest keeps the negatives diverse.
DEFAULT_MIX = {
    "shift": 0.15,
    "replace": 0.3,
    "scale": 0.3,
    "reverse": 0.05,
    "shuffle": 0.05,
    "swap": 0.05,
    "mute": 0.04,
    "freeze": 0.03,
    "repeat": 0.03,
}

# Per-stage mixes of the staged curriculum: coarse negatives (whole-clip swaps, reversals, large
# shifts) first, then local re-timings, then the subtle rules that need precise sync to tell apart.
STAGE_MIXES = (
    {
        "shift": 0.3,
        "replace": 0.1,
        "scale": 0.1,
        "reverse": 0.2,
        "shuffle": 0.05,
        "swap": 0.25,
        "mute": 0.0,
        "freeze": 0.0,
        "repeat": 0.0,
    },
    {
        "shift": 0.2,
        "replace": 0.25,
        "scale": 0.25,
        "reverse": 0.05,
        "shuffle": 0.1,
        "swap": 0.05,
        "mute": 0.04,
        "freeze": 0.03,
        "repeat": 0.03,
    },
    {
        "shift": 0.15,
        "replace": 0.35,
        "scale": 0.35,
        "reverse": 0.0,
        "shuffle": 0.05,
        "swap": 0.0,
        "mute": 0.04,
        "freeze": 0.03,
        "repeat": 0.03,
    },
)


def get_perturb_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Perturbation mix and per-rule options.

  Fields:
    mix.<name>: sampling probability of each rule in `names()` (normalised; 0 = never compiled).
      Used when the curriculum does not supply per-stage mixes (`curriculum.use_stage_mixes=False`).
    modality.<name>: 'audio' or 'video', the modality that rule distorts.
    pad.shift / pad.scale: edge handling of the shifted-in/stretched-out span: 'auto' (silence for
      audio, held edge frame for video), 'silence' or 'edge'.
    replace_other_prob: probability that Replace takes its segment from another example of the batch
      (rather than from elsewhere in the same clip) when one exists.
    shuffle_segments: number of consecutive segments Shuffle permutes.
    shift.subtle_s / shift.coarse_s / shift.floor: Shift's offset range in seconds (None: the table's)
      and its floor ('coarse' | 'frame'): the curriculum in physical units.
  `arg`: None, or 'replace_scale' for the paper's two best rules only.
  """
  cfg = ml_collections.ConfigDict()
  mix = dict(DEFAULT_MIX)
  if arg == "replace_scale":
    mix = {n: (0.5 if n in ("replace", "scale") else 0.0) for n in ops.names()}
  elif arg is not None:
    raise ValueError(f"unknown perturb config variant {arg!r}; expected None or 'replace_scale'")
  cfg.mix = mix
  cfg.modality = {n: ops.DEFAULT_OPTIONS[n]["modality"] for n in ops.names()}
  cfg.pad = {"shift": "auto", "scale": "auto"}
  # Shift's offsets over strength 0 -> 1 in seconds (None: the MAGNITUDES table's 0.1 -> 1.0 s), and its
  # floor ('coarse': one frame of the coarser modality; 'frame': one frame of the shifted stream).
  cfg.shift = ml_collections.ConfigDict(
      {
          "subtle_s": ml_collections.config_dict.placeholder(float),
          "coarse_s": ml_collections.config_dict.placeholder(float),
          "floor": "coarse",
      }
  )
  cfg.replace_other_prob = ops.DEFAULT_OPTIONS["replace"]["other_prob"]
  cfg.shuffle_segments = ops.DEFAULT_OPTIONS["shuffle"]["num_segments"]
  return cfg


def probs_from_config(cfg: ml_collections.ConfigDict) -> dict[str, float]:
  """The static mix {name: prob} of a perturb config (validated)."""
  mix = {str(k): float(v) for k, v in dict(cfg.mix).items()}
  for name in mix:
    ops.kind_index(name)
  return mix


def options_from_config(cfg: ml_collections.ConfigDict) -> dict[str, dict[str, Any]]:
  """Per-rule options {name: {option: value}} of a perturb config (validated)."""
  opts: dict[str, dict[str, Any]] = {n: {} for n in ops.names()}
  for name, mod in dict(cfg.modality).items():
    ops.kind_index(name)
    opts[name]["modality"] = str(mod)
  for name, pad in dict(cfg.pad).items():
    if name not in ("shift", "scale"):
      raise ValueError(f"perturb config `pad.{name}`: only shift and scale have a pad option")
    opts[name]["pad"] = str(pad)
  shift = cfg.get("shift")
  if shift is not None:
    opts["shift"].update(subtle_s=shift.subtle_s, coarse_s=shift.coarse_s, floor=str(shift.floor))
  opts["replace"]["other_prob"] = float(cfg.replace_other_prob)
  opts["shuffle"]["num_segments"] = int(cfg.shuffle_segments)
  for name in ops.names():
    ops.resolve_options(name, opts[name])
  return opts


def get_curriculum_config(schedule: str | None = "staged") -> ml_collections.ConfigDict:
  """Curriculum over difficulty (strength = 1 - difficulty) and per-stage perturbation mixes.

  Fields:
    schedule: 'fixed' | 'linear' | 'staged' | 'adaptive'.
    difficulty: fixed: the constant difficulty.
    start_difficulty, end_difficulty, ramp_steps: linear: difficulty ramps start -> end over
      ramp_steps steps, then holds. adaptive: starts at start_difficulty.
    stage_boundaries: staged: steps at which stage k becomes k + 1 (increasing).
    stage_difficulties: staged: difficulty of each stage (len = len(stage_boundaries) + 1). Other
      schedules derive the stage from the difficulty: stage = number of stage_difficulties[1:]
      reached, so their mix also moves coarse -> subtle as difficulty grows.
    use_stage_mixes: if True the per-stage mixes below are sampled (`mix_probs`), else the perturb
      config `mix`.
    stage_mixes: one {name: prob} per stage (len = len(stage_difficulties)).
    ema_decay: decay of the running implicit-reward-accuracy EMA (per step).
    init_reward_accuracy: EMA start (0.5 = chance for DPO pairs).
    advance_threshold, advance_rate: adaptive: when EMA >= threshold, difficulty += rate per step.
    backoff_threshold, backoff_rate: adaptive: when EMA < threshold, difficulty -= rate per step.
    min_difficulty, max_difficulty: adaptive: difficulty is clipped to this range.
  """
  if schedule not in SCHEDULES:
    raise ValueError(f"unknown curriculum schedule {schedule!r}; expected one of {SCHEDULES}")
  cfg = ml_collections.ConfigDict()
  cfg.schedule = schedule
  cfg.difficulty = 0.5
  cfg.start_difficulty = 0.0
  cfg.end_difficulty = 1.0
  cfg.ramp_steps = 1000
  cfg.stage_boundaries = (300, 700)
  cfg.stage_difficulties = (0.0, 0.5, 1.0)
  cfg.use_stage_mixes = True
  cfg.stage_mixes = tuple(dict(m) for m in STAGE_MIXES)
  cfg.ema_decay = 0.95
  cfg.init_reward_accuracy = 0.5
  cfg.advance_threshold = 0.8
  cfg.advance_rate = 0.002
  cfg.backoff_threshold = 0.6
  cfg.backoff_rate = 0.005
  cfg.min_difficulty = 0.0
  cfg.max_difficulty = 1.0
  return cfg
