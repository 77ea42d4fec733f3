"""Conditional sampling (joint T2AV, video->audio, audio->video) with CFG / SyncCFG over an ODE solver."""

from __future__ import annotations

import functools
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections

from syncdpo_jax.sample.config import MODES, validate_sample_config
from syncdpo_jax.sample.guidance import ModelFn, guided_velocity
from syncdpo_jax.sample.ode import integrate


def initial_streams(
    key: jax.Array,
    mode: str,
    *,
    video: jax.Array | None = None,
    audio: jax.Array | None = None,
    video_shape: tuple[int, ...] | None = None,
    audio_shape: tuple[int, ...] | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Starting point of `sample`: N(0, I) noise for generated streams, the given clean stream as is.

  Args:
    key: PRNG key.
    mode: 'joint' | 'v2a' (pass `video`) | 'a2v' (pass `audio`).
    video, audio: the given clean latents ([B, T_v, h, w, C_v] / [B, T_a, C_a]) for that mode.
    video_shape, audio_shape: shapes of generated streams (default: the shape of the array passed).
  Returns:
    (video, audio) float32.
  """
  if mode not in MODES:
    raise ValueError(f"mode={mode!r}; expected one of {MODES} (config field sample.mode)")
  kv, ka = jax.random.split(key)
  if mode == "v2a" and video is None:
    raise ValueError("mode 'v2a' generates audio for a GIVEN video: pass video=[B, T_v, h, w, C_v] latents")
  if mode == "a2v" and audio is None:
    raise ValueError("mode 'a2v' generates video for GIVEN audio: pass audio=[B, T_a, C_a] latents")

  def noise(k, given, shape, name):
    shape = shape if shape is not None else (None if given is None else given.shape)
    if shape is None:
      raise ValueError(
          f"{name} is generated in mode {mode!r}: pass {name}_shape (or a {name} array " "whose shape to use)"
      )
    return jax.random.normal(k, tuple(shape), jnp.float32)

  v = video.astype(jnp.float32) if mode == "v2a" else noise(kv, video, video_shape, "video")
  a = audio.astype(jnp.float32) if mode == "a2v" else noise(ka, audio, audio_shape, "audio")
  return v, a


def sample(
    model_fn: ModelFn,
    video: jax.Array,
    audio: jax.Array,
    cond: Mapping[str, jax.Array],
    config: ml_collections.ConfigDict,
    *,
    null_label: int,
    final_euler: bool = False,
) -> tuple[jax.Array, jax.Array]:
  """Integrates the guided flow from t = 1 to t = 0; pure and jit-able (config, null_label static).

  Args:
    model_fn: fn(video, audio, t_v, t_a, cond) -> (v_video, v_audio).
    video: [B, T_v, h, w, C_v]: noise (joint / a2v) or the given clean video (v2a).
    audio: [B, T_a, C_a]: noise (joint / v2a) or the given clean audio (a2v).
    cond: {'label': int32 [B], ...}.
    config: see `get_sample_config` (sampler, num_steps, shift, cfg_scale, sync_cfg, s_v, s_a, mode,
      silence_value).
    null_label: unconditional class id (the model's num_classes).
    final_euler: model_fn's velocity is undefined at t = 0 (it converts an x0 / eps prediction):
      Heun's last step is Euler (see sample.ode.heun).
  Returns:
    (video, audio) clean latents; the given stream is returned untouched (the same array), it never
    enters the ODE state, and every model pass sees it at t = 0.
  """
  validate_sample_config(config)
  mode = config.mode
  gen_v, gen_a = mode in ("joint", "a2v"), mode in ("joint", "v2a")
  guide = functools.partial(
      guided_velocity,
      model_fn,
      cond=cond,
      mode=mode,
      cfg_scale=float(config.cfg_scale),
      sync_cfg=bool(config.sync_cfg),
      s_v=float(config.s_v),
      s_a=float(config.s_a),
      null_label=int(null_label),
      silence_value=float(config.silence_value),
  )

  def velocity(x, t):
    v_v, v_a = guide(x.get("video", video), x.get("audio", audio), t)
    return {k: v for k, v in (("video", v_v), ("audio", v_a)) if k in x}

  x = {}
  if gen_v:
    x["video"] = video
  if gen_a:
    x["audio"] = audio
  x = integrate(config.sampler, velocity, x, int(config.num_steps), float(config.shift), final_euler)
  return x.get("video", video), x.get("audio", audio)


def make_sampler(
    model_fn: ModelFn, config: ml_collections.ConfigDict, *, null_label: int, final_euler: bool = False
) -> Callable[[jax.Array, jax.Array, Mapping[str, jax.Array]], tuple[jax.Array, jax.Array]]:
  """`jax.jit(sample)` with the model, config and null label closed over: fn(video, audio, cond).

  The model's parameters are closed over too (compiled in as constants); to share one compilation
  across checkpoints, call `sample` inside your own jit with the params as an argument instead.
  """
  validate_sample_config(config)
  return jax.jit(
      functools.partial(sample, model_fn, config=config, null_label=null_label, final_euler=final_euler)
  )
