"""ODE solvers for the rectified flow x_t = (1 - t) x0 + t eps (t = 1 noise -> t = 0 clean).

The velocity field is v(x, t) ~ eps - x0, so dx/dt = v and a step from t to t_next < t is
x <- x + (t_next - t) v. The state `x` is any pytree (e.g. {'video': ..., 'audio': ...}); everything is
pure and jit-able, and loops are `lax.scan` so the compiled program does not grow with num_steps.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

VelocityFn = Callable[[Any, jax.Array], Any]  # (x pytree, t scalar) -> v pytree like x


def shift_time(t: jax.Array, shift: float) -> jax.Array:
  """Timestep shift t' = s t / (1 + (s - 1) t) (SD3, Esser et al. 2024): keeps 0 and 1 fixed and, for
  s > 1, moves intermediate times toward the noise end, where high-resolution samples need more steps."""
  return shift * t / (1.0 + (shift - 1.0) * t)


def timesteps(num_steps: int, shift: float = 1.0) -> jax.Array:
  """Decreasing schedule [num_steps + 1] from exactly 1.0 to exactly 0.0, uniform in t before the shift."""
  return shift_time(jnp.linspace(1.0, 0.0, num_steps + 1, dtype=jnp.float32), shift)


def _axpy(a: jax.Array, v: Any, x: Any) -> Any:
  return jax.tree.map(lambda xi, vi: xi + a.astype(xi.dtype) * vi, x, v)


def euler(velocity_fn: VelocityFn, x: Any, ts: jax.Array) -> Any:
  """Explicit Euler over the schedule `ts` [S + 1] (from 1 to 0): S model evaluations."""

  def step(x, tt):
    t, t_next = tt
    return _axpy(t_next - t, velocity_fn(x, t), x), None

  x, _ = jax.lax.scan(step, x, (ts[:-1], ts[1:]))
  return x


def heun(velocity_fn: VelocityFn, x: Any, ts: jax.Array, final_euler: bool = False) -> Any:
  """Heun's method (explicit trapezoid, 2nd order) over `ts` [S + 1]: 2 S model evaluations.

  The flow's velocity is defined at t = 0 (it is eps - x0, not a score), so for a velocity-predicting
  model the last step needs no Euler fallback. A network that predicts x0 (or eps) does not define it
  there (v = (x_t - x0_hat) / t): `final_euler=True` makes the last step an Euler step (as EDM's
  sampler, Karras et al. 2022), 2 S - 1 evaluations; that step lands on the x0 estimate exactly.
  """

  def step(x, tt):
    t, t_next = tt
    dt = t_next - t
    v0 = velocity_fn(x, t)
    v1 = velocity_fn(_axpy(dt, v0, x), t_next)
    return _axpy(dt, jax.tree.map(lambda a, b: 0.5 * (a + b), v0, v1), x), None

  if not final_euler:
    x, _ = jax.lax.scan(step, x, (ts[:-1], ts[1:]))
    return x
  x, _ = jax.lax.scan(step, x, (ts[:-2], ts[1:-1]))
  return _axpy(ts[-1] - ts[-2], velocity_fn(x, ts[-2]), x)


def ab2(velocity_fn: VelocityFn, x: Any, ts: jax.Array) -> Any:
  """Two-step Adams-Bashforth over `ts` [S + 1]: S model evaluations, as Euler, second order.

  Each step extrapolates the velocity linearly in t from the last two evaluations,
  v_eff = v_i + dt_i / (2 dt_{i-1}) (v_i - v_{i-1}), and takes x <- x + dt_i v_eff; the first step is
  Euler's. The velocity is never evaluated at t = 0 (safe for x- and eps-predicting networks).
  """
  dt = ts[1:] - ts[:-1]  # [S], negative
  dt_prev = jnp.concatenate([dt[:1], dt[:-1]])
  c = jnp.where(jnp.arange(dt.shape[0]) > 0, 0.5 * dt / dt_prev, 0.0)

  def step(carry, inputs):
    x, v_prev = carry
    t, dti, ci = inputs
    v = velocity_fn(x, t)
    v_eff = jax.tree.map(lambda a, b: a + ci.astype(a.dtype) * (a - b), v, v_prev)
    return (_axpy(dti, v_eff, x), v), None

  v0 = jax.tree.map(jnp.zeros_like, x)
  (x, _), _ = jax.lax.scan(step, (x, v0), (ts[:-1], dt, c))
  return x


SOLVERS = {"euler": euler, "heun": heun, "ab2": ab2}
# Model evaluations per step of each solver (cost accounting, e.g. runs/pairs.py).
EVALS_PER_STEP = {"euler": 1, "heun": 2, "ab2": 1}


def integrate(
    sampler: str,
    velocity_fn: VelocityFn,
    x: Any,
    num_steps: int,
    shift: float = 1.0,
    final_euler: bool = False,
) -> Any:
  """Integrates dx/dt = v from t = 1 to t = 0 with `sampler` ('euler' | 'heun' | 'ab2').

  final_euler: the velocity is not defined at t = 0 (an x- or eps-predicting network): Heun's last
  step is then an Euler step (Euler never evaluates at t = 0 anyway).
  """
  if sampler not in SOLVERS:
    raise ValueError(f"sampler={sampler!r}; expected one of {sorted(SOLVERS)} (config field sample.sampler)")
  ts = timesteps(num_steps, shift)
  if sampler == "heun":
    return heun(velocity_fn, x, ts, final_euler)
  return SOLVERS[sampler](velocity_fn, x, ts)
