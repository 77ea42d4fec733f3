"""ODE solvers and timestep shift on flows whose exact solution is known."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syncdpo_jax import sample as S


def test_shift_time_fixes_endpoints_and_is_monotone():
  t = jnp.linspace(0.0, 1.0, 11)
  np.testing.assert_allclose(S.shift_time(t, 1.0), t, atol=1e-7)
  ts = S.shift_time(t, 3.0)
  assert float(ts[0]) == 0.0 and float(ts[-1]) == 1.0
  assert bool(jnp.all(jnp.diff(ts) > 0)) and bool(jnp.all(ts[1:-1] > t[1:-1]))  # pushed toward noise
  np.testing.assert_allclose(S.shift_time(jnp.float32(0.5), 3.0), 0.75, rtol=1e-6)
  sched = S.timesteps(4, shift=3.0)
  assert sched.shape == (5,) and float(sched[0]) == 1.0 and float(sched[-1]) == 0.0


@pytest.mark.parametrize("solver", [S.euler, S.heun, S.ab2])
def test_constant_velocity_is_exact(solver):
  # x_t = (1 - t) x0 + t eps has the constant velocity eps - x0: any number of steps lands on x0.
  x0 = {"a": jnp.arange(6.0).reshape(2, 3), "b": -jnp.ones((4,))}
  eps = jax.tree.map(lambda x: jnp.full_like(x, 0.5), x0)
  v = jax.tree.map(lambda e, x: e - x, eps, x0)
  out = jax.jit(lambda x: solver(lambda x, t: v, x, S.timesteps(3, shift=2.0)))(eps)
  jax.tree.map(lambda o, x: np.testing.assert_allclose(o, x, atol=1e-6), out, x0)


def gaussian_velocity(m, s):
  """Optimal flow velocity E[eps - x0 | x_t] for x0 ~ N(m, s^2), eps ~ N(0, 1)."""

  def v(x, t):
    var = (1.0 - t) ** 2 * s**2 + t**2
    r = x - (1.0 - t) * m
    return t / var * r - (m + (1.0 - t) * s**2 / var * r)

  return v


def test_gaussian_flow_endpoint_heun_beats_euler():
  # The probability-flow ODE of a Gaussian maps noise z to exactly m + s z (affine, monotone).
  m, s = 2.0, 0.5
  z = jnp.linspace(-2.5, 2.5, 9)
  exact = m + s * z
  v = gaussian_velocity(m, s)
  errs = {}
  for name in ("euler", "heun"):
    for steps in (8, 32):
      out = S.integrate(name, v, z, steps)
      errs[name, steps] = float(jnp.max(jnp.abs(out - exact)))
  assert errs["heun", 32] < 1e-3 and errs["euler", 32] < 0.06
  assert errs["heun", 8] < 0.05 * errs["euler", 8]  # Heun is more accurate at equal steps
  assert errs["euler", 32] < 0.3 * errs["euler", 8]  # first order: 4x steps -> ~1/4 error
  assert errs["heun", 32] < 0.15 * errs["heun", 8]  # second order: 4x steps -> ~1/16 error


def test_adams_bashforth_is_second_order_at_eulers_cost():
  # One model call a step, as Euler, and second order: far more accurate than Euler at equal calls,
  # and the error falls ~4x (here >= 3x) when the steps double.
  m, s = 2.0, 0.5
  z = jnp.linspace(-2.5, 2.5, 9)
  v = gaussian_velocity(m, s)
  calls = []

  def counted(x, t):
    calls.append(1)  # traced once per scan body: count the bodies, not the steps
    return v(x, t)

  err = {n: float(jnp.max(jnp.abs(S.integrate("ab2", v, z, n) - (m + s * z)))) for n in (8, 16, 32)}
  euler = float(jnp.max(jnp.abs(S.integrate("euler", v, z, 8) - (m + s * z))))
  assert err[8] < 0.25 * euler
  assert err[32] < err[16] / 3 < err[8] / 9
  jax.make_jaxpr(lambda x: S.integrate("ab2", counted, x, 8))(z)
  assert len(calls) == 1  # a single velocity call inside the scanned step


def test_integrate_rejects_unknown_sampler():
  with pytest.raises(ValueError, match="sample.sampler"):
    S.integrate("rk45", lambda x, t: x, jnp.zeros(2), 2)


def test_every_solver_declares_its_model_calls_per_step():
  assert set(S.ode.EVALS_PER_STEP) == set(S.ode.SOLVERS) == set(S.config.SAMPLERS)
