"""Rectified-flow matching: noising, targets, timestep sampling, per-sample errors.

Convention (shared by the whole codebase): x_t = (1 - t) * x0 + t * eps, so t = 0 is the clean, given
signal and t = 1 is pure noise; the model predicts the velocity v = eps - x0 (dx_t/dt).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

T_SAMPLERS = ("uniform", "logit_normal", "shifted")


def broadcast_t(t: jax.Array, x: jax.Array) -> jax.Array:
  """t: [B] -> [B, 1, ..., 1] broadcastable against x: [B, ...]."""
  return t.reshape(t.shape + (1,) * (x.ndim - t.ndim)).astype(x.dtype)


def noisy(x0: jax.Array, eps: jax.Array, t: jax.Array) -> jax.Array:
  """x_t = (1 - t) x0 + t eps.  x0, eps: [B, ...]; t: [B]."""
  tb = broadcast_t(t, x0)
  return (1.0 - tb) * x0 + tb * eps


def velocity_target(x0: jax.Array, eps: jax.Array) -> jax.Array:
  """The flow's velocity dx_t/dt = eps - x0."""
  return eps - x0


def shift_t(t: jax.Array, shift: float) -> jax.Array:
  """Timestep shift (SD3 / Wan): t' = s t / (1 + (s - 1) t); s > 1 spends more time at high noise."""
  return shift * t / (1.0 + (shift - 1.0) * t)


def sample_t(key: jax.Array, shape: tuple[int, ...], *, kind: str = "logit_normal",
             mean: float = 0.0, std: float = 1.0, shift: float = 1.0) -> jax.Array:
  """Training timesteps in (0, 1).

  kind: 'uniform'; 'logit_normal' (SD3: sigmoid of N(mean, std), concentrates on mid t);
  'shifted' (uniform, then `shift_t`). `shift` is applied after any kind when != 1.
  """
  if kind == "uniform":
    t = jax.random.uniform(key, shape)
  elif kind == "logit_normal":
    t = jax.nn.sigmoid(mean + std * jax.random.normal(key, shape))
  elif kind == "shifted":
    t = jax.random.uniform(key, shape)
  else:
    raise ValueError(f"config.objective.t_sampling={kind!r}: expected one of {T_SAMPLERS}.")
  if shift != 1.0:
    t = shift_t(t, shift)
  # Keep t strictly inside (0, 1): t = 0 means "given" to the model (cross-task modes) and must not be
  # drawn by accident for a stream that is being denoised.
  return jnp.clip(t, 1e-4, 1.0 - 1e-4)


def per_sample_mse(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean squared error over all non-batch axes, in f32: [B, ...] -> [B]."""
  d = (pred.astype(jnp.float32) - target.astype(jnp.float32)) ** 2
  return d.reshape(d.shape[0], -1).mean(axis=1)
