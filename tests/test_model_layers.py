"""Layer-level tests: banded local attention vs the dense masked reference, RoPE, window checks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syncdpo_jax.model import layers as L


def _qkv(key, B, Tq, Sq, Tk, Sk, H=2, D=8):
  kq, kk, kv = jax.random.split(key, 3)
  return (
      jax.random.normal(kq, (B, Tq, Sq, H, D)),
      jax.random.normal(kk, (B, Tk, Sk, H, D)),
      jax.random.normal(kv, (B, Tk, Sk, H, D)),
  )


def _jit(fn, *rates_window, impl="xla"):
  """One compile per call site instead of dozens of eager dispatches (CPU time is shared)."""
  qr, kr, w = rates_window
  return jax.jit(functools.partial(fn, q_rate=qr, k_rate=kr, window_s=w, impl=impl))


# (Tq, q_rate, Sq, Tk, k_rate, Sk, window): video->audio and audio->video at the demo rates,
# non-integer rate ratios, clips that are not a whole number of blocks, windows spanning blocks.
CASES = [
    (20, 10.0, 4, 50, 25.0, 1, 0.2),
    (50, 25.0, 1, 20, 10.0, 4, 0.2),
    (7, 10.0, 2, 35, 50.0, 1, 0.13),
    (30, 6.0, 3, 125, 25.0, 1, 0.25),
]


@pytest.mark.parametrize("case", CASES)
def test_banded_equals_dense_reference(case):
  Tq, qr, Sq, Tk, kr, Sk, W = case
  q, k, v = _qkv(jax.random.key(0), 2, Tq, Sq, Tk, Sk)
  banded = _jit(L.local_cross_attention, qr, kr, W)(q, k, v)
  dense = _jit(L.local_cross_attention_dense, qr, kr, W)(q, k, v)
  assert banded.shape == q.shape
  np.testing.assert_allclose(banded, dense, atol=1e-5, rtol=0)


def test_banded_equals_dense_with_jax_nn_attention():
  q, k, v = _qkv(jax.random.key(1), 2, 20, 4, 50, 1)
  a = _jit(L.local_cross_attention, 10.0, 25.0, 0.2, impl="dot_product_attention")(q, k, v)
  b = _jit(L.local_cross_attention_dense, 10.0, 25.0, 0.2)(q, k, v)
  np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_banded_gradient_equals_dense():
  q, k, v = _qkv(jax.random.key(2), 1, 20, 2, 50, 1)
  f = lambda fn: jax.jit(jax.grad(lambda q, k, v: jnp.sum(jnp.sin(fn(q, k, v, 10.0, 25.0, 0.2))), (0, 1, 2)))(
      q, k, v
  )
  for ga, gb in zip(f(L.local_cross_attention), f(L.local_cross_attention_dense)):
    np.testing.assert_allclose(ga, gb, atol=1e-5, rtol=0)


def test_window_really_limits_attention():
  # A key frame far outside the window must not influence a query frame; a near one must.
  q, k, v = _qkv(jax.random.key(3), 1, 20, 1, 50, 1)
  f = _jit(L.local_cross_attention, 10.0, 25.0, 0.2)
  out = f(q, k, v)
  v2 = v.at[:, 40].add(10.0)  # audio frame 40 = 1.6 s; video frame 0 is at 0 s
  out2 = f(q, k, v2)
  np.testing.assert_array_equal(out[:, 0], out2[:, 0])
  assert float(jnp.abs(out[:, 16] - out2[:, 16]).max()) > 1e-3  # 1.6 s: inside the window


def test_band_cost_is_linear_in_length():
  # Key entries per query block do not grow with clip length; block count grows linearly.
  p8, p16 = L.band_plan(80, 200, 10.0, 25.0, 0.2), L.band_plan(160, 400, 10.0, 25.0, 0.2)
  assert (p8.bq, p8.bk, p8.n) == (p16.bq, p16.bk, p16.n)
  assert p16.nb == 2 * p8.nb
  assert p8.n * p8.block_s >= 0.2


def test_window_errors_name_the_config_field():
  with pytest.raises(ValueError, match="local_window_s"):
    L.check_local_window(20, 50, 10.0, 25.0, 3.0)  # 3 s window, 2 s clip
  with pytest.raises(ValueError, match="local_window_s"):
    L.check_local_window(20, 50, 10.0, 25.0, 0.01)  # some frames see nothing
  L.check_local_window(20, 50, 10.0, 25.0, 0.2)


def test_rope_is_relative():
  # <R(i) q, R(j) k> depends only on i - j, including fractional (rescaled audio) positions.
  q = jax.random.normal(jax.random.key(4), (1, 1, 1, 16))
  k = jax.random.normal(jax.random.key(5), (1, 1, 1, 16))

  @functools.partial(jax.jit, static_argnums=(0, 1))
  def dot(i, j):
    a = L.apply_rope(q, L.rope_angles(np.array([i]), 16, 10000.0))
    b = L.apply_rope(k, L.rope_angles(np.array([j]), 16, 10000.0))
    return jnp.sum(a * b)

  assert abs(dot(3.0, 1.0) - dot(7.4, 5.4)) < 1e-4
  assert abs(dot(3.0, 1.0) - dot(3.0, 2.0)) > 1e-4


def test_rope_3d_splits_head_dim():
  ang = L.rope_3d_angles(2, 3, 4, 32, 10000.0)
  assert ang.shape == (24, 16)
  # Token (t=1, h=0, w=0) differs from (0, 0, 0) only in the time part (first 6 of 16 freqs).
  d = np.abs(np.asarray(ang[12] - ang[0]))
  assert d[:6].max() > 0 and d[6:].max() == 0


def test_audio_positions_on_video_timeline():
  # Harmony's RoPE index scaling: audio token j sits at j * T_v / T_a.
  np.testing.assert_allclose(L.positions_on_video_timeline(5, 25.0, 10.0), [0, 0.4, 0.8, 1.2, 1.6])
