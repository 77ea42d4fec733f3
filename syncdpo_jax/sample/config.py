"""Sampling config: which ODE solver, how many steps, guidance scales, and the generation mode."""

from __future__ import annotations

import ml_collections

SAMPLERS = ("euler", "heun", "ab2")
MODES = ("joint", "v2a", "a2v")


def get_sample_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Defaults for `syncdpo_jax.sample.sample`.

  Fields:
    sampler: 'euler' (1 model evaluation per step), 'heun' (2 per step, second order) or 'ab2'
      (two-step Adams-Bashforth: 1 per step, second order from the last two velocities).
    num_steps: ODE steps from t = 1 (noise) to t = 0 (clean).
    shift: timestep shift s, t' = s t / (1 + (s - 1) t); s > 1 spends more steps near the noise end
      (SD3-style; 1.0 = uniform grid).
    cfg_scale: classifier-free guidance scale w on the conditioning (label -> null label); 1.0 = off
      (needs a model trained with label dropout to be useful).
    sync_cfg: enable SyncCFG (Harmony): video guided against a clean silent-audio pass, audio against a
      clean static-video pass.
    s_v, s_a: SyncCFG scales for video and audio (Harmony: 3 and 2); 1.0 = off for that modality.
    mode: 'joint' (both streams generated), 'v2a' (video given, audio generated), 'a2v' (audio given).
    silence_value: audio latent value of silence, the silent anchor (-1 in normalised log-mel; change it
      for codec latents).
  `arg` is accepted for the big_vision-style `file.py:arg` convention; only 'runlocal' (fewer steps)
  is known.
  """
  c = ml_collections.ConfigDict()
  c.sampler = "euler"
  c.num_steps = 25
  c.shift = 1.0
  c.cfg_scale = 1.0
  c.sync_cfg = True
  c.s_v = 3.0
  c.s_a = 2.0
  c.mode = "joint"
  c.silence_value = -1.0
  if arg:
    for a in arg.split(","):
      if a == "runlocal":
        c.num_steps = 8
      else:
        raise ValueError(f"unknown sample config arg {a!r}; known: 'runlocal'")
  return c


def validate_sample_config(c: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the offending field of the sample config."""
  if c.sampler not in SAMPLERS:
    raise ValueError(f"sample.sampler={c.sampler!r}; expected one of {SAMPLERS}")
  if c.mode not in MODES:
    raise ValueError(f"sample.mode={c.mode!r}; expected one of {MODES}")
  if int(c.num_steps) < 1:
    raise ValueError(f"sample.num_steps={c.num_steps}; expected an integer >= 1")
  if not float(c.shift) > 0:
    raise ValueError(f"sample.shift={c.shift}; expected > 0 (1.0 = no shift)")
  for name in ("cfg_scale", "s_v", "s_a"):
    if not float(c[name]) >= 0:
      raise ValueError(f"sample.{name}={c[name]}; expected >= 0 (1.0 = guidance off)")
