"""The samplers proven where the answer is known: the exact flow of a Gaussian mixture.

For x0 ~ sum_k w_k N(mu_k, s_k^2 I) and x_t = (1 - t) x0 + t eps, every conditional is Gaussian, so
the optimal velocity E[eps - x0 | x_t] and the optimal x0 estimate E[x0 | x_t] are closed-form.
Integrating that exact field from N(0, I) at t = 1 must reproduce the mixture: its weights, each
component's mean and spread. The x-prediction path (the field handed to the sampler as E[x0 | x_t],
converted by objectives.flow.velocity_model) must give the same samples as the velocity itself.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syncdpo_jax import sample as S
from syncdpo_jax.objectives import flow

W = jnp.array([0.2, 0.5, 0.3])
MU = jnp.array([[-3.0, 0.0], [2.0, 2.0], [1.5, -2.5]])
SD = jnp.array([0.3, 0.5, 0.4])


def _posterior(x, t):
  """Responsibilities [N, K], E[x0 | x_t, k] and E[eps | x_t, k] [N, K, D] for x [N, D], t scalar."""
  var = (1.0 - t) ** 2 * SD**2 + t**2  # [K] variance of x_t | k
  r = x[:, None, :] - (1.0 - t) * MU[None]  # [N, K, D]
  d = x.shape[-1]
  logp = jnp.log(W) - 0.5 * jnp.sum(r**2, -1) / var - 0.5 * d * jnp.log(var)
  resp = jax.nn.softmax(logp, axis=-1)
  x0 = MU[None] + ((1.0 - t) * SD**2 / var)[None, :, None] * r
  eps = (t / var)[None, :, None] * r
  return resp, x0, eps


def exact_velocity(x, t):
  resp, x0, eps = _posterior(x, t)
  return jnp.sum(resp[..., None] * (eps - x0), axis=1)


def exact_x0(x, t):
  resp, x0, _ = _posterior(x, t)
  return jnp.sum(resp[..., None] * x0, axis=1)


def _as_model(field):
  """The field as a model fn(video, audio, t_v, t_a, cond) (audio unused), for flow.velocity_model."""
  return lambda video, audio, t_v, t_a, cond: (field(video, t_v[0]), audio)


def _check_mixture(x):
  x = np.asarray(x)
  k = np.argmin(((x[:, None] - np.asarray(MU)[None]) ** 2).sum(-1), axis=1)
  weights = np.bincount(k, minlength=3) / len(x)
  np.testing.assert_allclose(weights, np.asarray(W), atol=0.015)
  for j in range(3):
    xs = x[k == j]
    np.testing.assert_allclose(xs.mean(0), np.asarray(MU[j]), atol=0.04)
    np.testing.assert_allclose(xs.std(0), float(SD[j]), rtol=0.06)


@pytest.mark.parametrize("sampler,steps", [("euler", 200), ("heun", 40), ("ab2", 40)])
def test_exact_mixture_field_reproduces_the_mixture(sampler, steps):
  z = jax.random.normal(jax.random.key(0), (20000, 2))
  x = jax.jit(lambda z: S.integrate(sampler, exact_velocity, z, steps))(z)
  _check_mixture(x)


@pytest.mark.parametrize("sampler,steps,shift", [("euler", 200, 1.0), ("heun", 40, 3.0), ("ab2", 40, 3.0)])
def test_x_prediction_path_gives_the_same_samples(sampler, steps, shift):
  # The same exact field, handed over as an x0 predictor and converted the way evaluation does.
  model = flow.velocity_model(_as_model(exact_x0), "x", flow.SAMPLE_T_EPS)
  dummy = jnp.zeros((1,))

  def velocity(x, t):
    tt = jnp.full((x.shape[0],), t)
    return model(x, dummy, tt, tt, None)[0]

  z = jax.random.normal(jax.random.key(1), (20000, 2))
  via_x = jax.jit(lambda z: S.integrate(sampler, velocity, z, steps, shift, final_euler=True))(z)
  via_v = jax.jit(lambda z: S.integrate(sampler, exact_velocity, z, steps, shift, final_euler=True))(z)
  np.testing.assert_allclose(via_x, via_v, atol=2e-3)
  _check_mixture(via_x)


def test_too_few_euler_steps_miss_the_spread():
  # The check is sharp: 4 Euler steps leave the components visibly too wide (a sampler bug of that
  # size would not pass the tests above).
  z = jax.random.normal(jax.random.key(0), (20000, 2))
  with pytest.raises(AssertionError):
    _check_mixture(S.integrate("euler", exact_velocity, z, 4))
