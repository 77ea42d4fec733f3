"""Rectified-flow matching: noising, targets, timestep sampling, per-sample errors.

Convention (shared by the whole codebase): x_t = (1 - t) * x0 + t * eps, so t = 0 is the clean, given
signal and t = 1 is pure noise; the flow's velocity is v = eps - x0 (dx_t/dt).

What the NETWORK outputs is a choice (`config.objective.prediction`, `PREDICTIONS`): the velocity itself
('v'), the clean signal ('x', JiT: Li & He 2025, "Back to Basics: Let Denoising Generative Models
Denoise") or the noise ('eps'). `to_velocity` turns any of them into the velocity that the losses, the
samplers and guidance use, so everything downstream of the model speaks velocity:

  'x'       v = (x_t - x0_hat) / max(t, t_eps)       (exact for t >= t_eps; JiT's clamp near t = 0)
  'x_skip'  x0_hat = c_skip(t) x_t + c_out(t) F        (EDM's preconditioning, Karras et al. 2022, on
            v = (x_t - x0_hat) / t                     this path; exact at every t, no clamp)
  'eps'     v = (eps_hat - x_t) / max(1 - t, t_eps)   (x0 = (x_t - t eps) / (1 - t))
  'v'       v = v_hat

'x_skip' (`skip_coefficients`): for data of std sigma_data (1 for latents a codec normalised), c_skip x_t
is the best linear per-element guess of x0 and c_out scales the network's output F to unit variance, so
at low noise the network only adds what the noisy token does not already say; plain 'x' must learn to
pass every value of a token through the model's narrower width (measured on the demo: it did not, and
lost detail even from t = 0.2). Not the default: on the demo what the network fails to remove stays in
the samples as per-pixel noise (README, "Third round").

(`T_EPS` in training, where it bounds the 1 / t^2 weight the x-prediction error gets in velocity
space; `SAMPLE_T_EPS` in sampling, where Euler's step from t to t' then is exactly the DDIM-like
x' = (t'/t) x + (1 - t'/t) x0_hat.)
The training error is measured in velocity space for every parametrization (`velocity_error_target`:
the velocity the IDEAL output implies through the same conversion, so the clamp never biases the
minimiser): for 'x' it is |x0_hat - x0|^2 / max(t, t_eps)^2, JiT's x-prediction with v-loss.
Raw pixel / log-mel tokens wider than the model want 'x': clean data lies near a low-dimensional
manifold, noise does not, and a narrow network cannot carry the full-dimensional noise through.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

T_SAMPLERS = ("uniform", "logit_normal", "shifted")
PREDICTIONS = ("x", "x_skip", "v", "eps")
ERROR_SPACES = ("velocity", "x0", "x0_snr")
T_EPS = 0.05  # JiT's clamp of the 1 / t in the x -> v conversion (and of 1 / (1 - t) for eps)
# Sampling needs no clamp: the solvers never evaluate at t = 0 (sample/ode.py), and a clamp can only
# make a step fall short of the x0 estimate. This one just keeps a given stream's (t = 0) unused
# velocity finite.
SAMPLE_T_EPS = 1e-6


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


def _check_prediction(prediction: str) -> None:
  if prediction not in PREDICTIONS:
    raise ValueError(f"config.objective.prediction={prediction!r}: expected one of {PREDICTIONS}.")


def skip_coefficients(t: jax.Array, sigma_data: float = 1.0) -> tuple[jax.Array, jax.Array, jax.Array]:
  """EDM's preconditioning on x_t = (1 - t) x0 + t eps, written as velocity = a x_t - b F.

  With D = (1 - t)^2 sigma^2 + t^2 (the variance of x_t), c_skip = (1 - t) sigma^2 / D and
  c_out = t sigma / sqrt(D): x0_hat = c_skip x_t + c_out F, and v = (x_t - x0_hat) / t gives
  a = (t - (1 - t) sigma^2) / D and b = sigma / sqrt(D), finite at t = 0 and t = 1.
  t: any shape. Returns (c_skip, a, b), each t's shape.
  """
  t = t.astype(jnp.float32)
  s2 = jnp.float32(sigma_data) ** 2
  d = jnp.square(1.0 - t) * s2 + jnp.square(t)
  return (1.0 - t) * s2 / d, (t - (1.0 - t) * s2) / d, jnp.sqrt(s2) / jnp.sqrt(d)


def to_velocity(
    out: jax.Array,
    x_t: jax.Array,
    t: jax.Array,
    prediction: str,
    t_eps: float = T_EPS,
    sigma_data: float = 1.0,
) -> jax.Array:
  """The velocity implied by a network output `out` (see the module docstring).

  out, x_t: [B, ...]; t: [B] flow time of that stream; sigma_data: the data's std ('x_skip' only).
  Returns [B, ...] in out's dtype.
  """
  _check_prediction(prediction)
  if prediction == "v":
    return out
  tb = broadcast_t(t, x_t)
  if prediction == "x_skip":
    _, a, b = skip_coefficients(tb, sigma_data)
    return (a * x_t - b * out).astype(out.dtype)
  if prediction == "x":
    return (x_t - out) / jnp.maximum(tb, t_eps)
  return (out - x_t) / jnp.maximum(1.0 - tb, t_eps)


def velocity_error_target(
    x0: jax.Array, eps: jax.Array, x_t: jax.Array, t: jax.Array, prediction: str, t_eps: float = T_EPS
) -> jax.Array:
  """The velocity the ideal output (x0, eps or eps - x0) implies through `to_velocity`: the loss target.

  Equals `velocity_target(x0, eps)` wherever the conversion's clamp is inactive (t >= t_eps for 'x',
  t <= 1 - t_eps for 'eps', always for 'v' and 'x_skip').
  """
  _check_prediction(prediction)
  if prediction in ("v", "x_skip"):
    return velocity_target(x0, eps)
  ideal = x0 if prediction == "x" else eps
  return to_velocity(ideal, x_t, t, prediction, t_eps)


def error_weight(t: jax.Array, error_space: str, t_eps: float = T_EPS, snr_cap: float = 5.0) -> jax.Array:
  """Per-sample weight [B] that turns a velocity MSE into the error of `error_space`.

  'velocity': 1 (the flow-matching loss as written). 'x0': max(t, t_eps)^2, i.e. the MSE of the
  implied clean estimate x0_hat = x_t - t v_hat against x0 (exact for t >= t_eps): every noise level
  weighs the same in data space, where the velocity error weighs a low-noise x0 error by 1 / t^2.
  'x0_snr': that x0 error times clip(SNR(t), 1, snr_cap), SNR = (1 - t)^2 / t^2 (Min-SNR's cap, Hang
  et al. 2023, with a floor of 1): the low-noise steps weigh up to snr_cap times the high-noise ones
  instead of the velocity error's ~1 / t^2, and every t >= 0.5 keeps the x0 error's weight of 1.
  snr_cap = 1 is 'x0'.
  """
  if error_space == "velocity":
    return jnp.ones_like(t, jnp.float32)
  t = jnp.maximum(t.astype(jnp.float32), t_eps)
  if error_space == "x0":
    return jnp.square(t)
  if error_space == "x0_snr":
    return jnp.square(t) * jnp.clip(jnp.square((1.0 - t) / t), 1.0, snr_cap)
  raise ValueError(f"config.objective.error_space={error_space!r}: expected one of {ERROR_SPACES}.")


def velocity_model(model_fn, prediction: str, t_eps: float = T_EPS, sigma_data: float = 1.0):
  """Wraps fn(video, audio, t_v, t_a, cond) -> network outputs into the same signature -> velocities.

  Each stream is converted with its own time (a given stream at t = 0 gets a velocity that nothing
  uses). With prediction 'v' the model is returned as is.
  """
  _check_prediction(prediction)
  if prediction == "v":
    return model_fn

  def fn(video, audio, t_v, t_a, cond):
    out_v, out_a = model_fn(video, audio, t_v, t_a, cond)
    return (
        to_velocity(out_v, video, t_v, prediction, t_eps, sigma_data),
        to_velocity(out_a, audio, t_a, prediction, t_eps, sigma_data),
    )

  return fn


def shift_t(t: jax.Array, shift: float) -> jax.Array:
  """Timestep shift (SD3 / Wan): t' = s t / (1 + (s - 1) t); s > 1 spends more time at high noise."""
  return shift * t / (1.0 + (shift - 1.0) * t)


def sample_t(
    key: jax.Array,
    shape: tuple[int, ...],
    *,
    kind: str = "logit_normal",
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
) -> jax.Array:
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
