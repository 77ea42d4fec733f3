"""Flow matching, SFT cross-task synergy and flow-DPO: the formulas, checked by direct recomputation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syncdpo_jax import objectives
from syncdpo_jax.objectives import flow, sft


def test_noisy_endpoints_and_velocity():
  k1, k2 = jax.random.split(jax.random.key(0))
  x0 = jax.random.normal(k1, (3, 4, 5))
  eps = jax.random.normal(k2, (3, 4, 5))
  np.testing.assert_allclose(flow.noisy(x0, eps, jnp.zeros(3)), x0)
  np.testing.assert_allclose(flow.noisy(x0, eps, jnp.ones(3)), eps)
  # d/dt x_t = eps - x0: a finite difference of the path equals the target velocity.
  t, dt = jnp.full((3,), 0.3), 1e-3
  fd = (flow.noisy(x0, eps, t + dt) - flow.noisy(x0, eps, t)) / dt
  np.testing.assert_allclose(fd, flow.velocity_target(x0, eps), atol=1e-3)


def _flow_sample(seed=0, shape=(4, 3, 5)):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return jax.random.normal(k1, shape), jax.random.normal(k2, shape)


@pytest.mark.parametrize("prediction", flow.PREDICTIONS)
def test_exact_outputs_convert_to_the_flow_velocity(prediction):
  # The ideal network output (x0, eps or eps - x0) converts to exactly eps - x0 away from the clamps.
  x0, eps = _flow_sample()
  t = jnp.array([0.05, 0.3, 0.7, 0.95])
  xt = flow.noisy(x0, eps, t)
  c_skip, _, _ = flow.skip_coefficients(flow.broadcast_t(t, xt))
  c_out = flow.broadcast_t(t, xt) / jnp.sqrt(
      (1 - flow.broadcast_t(t, xt)) ** 2 + flow.broadcast_t(t, xt) ** 2
  )
  ideal = {"x": x0, "eps": eps, "v": eps - x0, "x_skip": (x0 - c_skip * xt) / c_out}[prediction]
  v = flow.to_velocity(ideal, xt, t, prediction)
  np.testing.assert_allclose(v, flow.velocity_target(x0, eps), atol=2e-5)
  # (x_skip's ideal F was built by dividing by c_out ~ 0.05: float32 round-off of that size.)
  np.testing.assert_allclose(
      flow.velocity_error_target(x0, eps, xt, t, prediction), v, atol=2e-5 if prediction == "x_skip" else 1e-6
  )
  # One Euler step from t with that velocity lands on x0 (the clean end of the straight path).
  np.testing.assert_allclose(xt - flow.broadcast_t(t, xt) * v, x0, atol=2e-5)


def test_x_prediction_error_is_x0_error_over_t_squared():
  # JiT's x-prediction with v-loss: |v_hat - v|^2 = |x0_hat - x0|^2 / max(t, t_eps)^2, and the clamp
  # (t < t_eps) is applied to target and prediction alike, so the minimiser stays x0_hat = x0.
  x0, eps = _flow_sample(1)
  x0_hat = x0 + 0.1 * jax.random.normal(jax.random.key(9), x0.shape)
  t = jnp.array([0.01, 0.05, 0.4, 0.9])
  xt = flow.noisy(x0, eps, t)
  err = flow.per_sample_mse(
      flow.to_velocity(x0_hat, xt, t, "x"), flow.velocity_error_target(x0, eps, xt, t, "x")
  )
  want = flow.per_sample_mse(x0_hat, x0) / jnp.maximum(t, flow.T_EPS) ** 2
  np.testing.assert_allclose(err, want, rtol=1e-4)
  zero = flow.per_sample_mse(
      flow.to_velocity(x0, xt, t, "x"), flow.velocity_error_target(x0, eps, xt, t, "x")
  )
  np.testing.assert_allclose(zero, 0.0, atol=1e-10)


@pytest.mark.parametrize("sigma", [0.4, 1.0])
def test_skip_is_the_best_linear_denoiser_and_finite_everywhere(sigma):
  # With F = 0, 'x_skip' estimates x0 = c_skip x_t: for data of std sigma that is the least-squares
  # linear estimate, of MSE sigma^2 t^2 / D. At t = 0 and t = 1 the
  # conversion is finite (no clamp): v = (x_t - x0_hat) / t with x0_hat = x_t at t = 0.
  k1, k2 = jax.random.split(jax.random.key(7))
  x0 = sigma * jax.random.normal(k1, (4, 100000))
  eps = jax.random.normal(k2, x0.shape)
  t = jnp.array([0.1, 0.3, 0.6, 0.9])
  xt = flow.noisy(x0, eps, t)
  c_skip, a, b = flow.skip_coefficients(t[:, None], sigma)
  d = (1 - t) ** 2 * sigma**2 + t**2
  mse = lambda c: jnp.mean((c * xt - x0) ** 2, axis=1)
  np.testing.assert_allclose(mse(c_skip), sigma**2 * t**2 / d, rtol=0.03)
  # ... and c_skip is the least-squares coefficient <x_t, x0> / <x_t, x_t> of these draws (its
  # sampling std at 1e5 draws is <= 1.5e-3).
  np.testing.assert_allclose(c_skip[:, 0], jnp.sum(xt * x0, 1) / jnp.sum(xt * xt, 1), rtol=0.03, atol=5e-3)
  # velocity = a x_t - b F is (x_t - x0_hat) / t with x0_hat = c_skip x_t + c_out F, c_out = t sigma / sqrt(D).
  F = jax.random.normal(jax.random.key(8), xt.shape)
  x0_hat = c_skip * xt + (t * sigma / jnp.sqrt(d))[:, None] * F
  np.testing.assert_allclose(
      flow.to_velocity(F, xt, t, "x_skip", sigma_data=sigma), (xt - x0_hat) / t[:, None], rtol=1e-4, atol=1e-4
  )
  for edge in (0.0, 1.0):
    c, a, b = flow.skip_coefficients(jnp.float32(edge), sigma)
    assert all(bool(jnp.isfinite(x)) for x in (c, a, b))
  c0, a0, b0 = flow.skip_coefficients(jnp.float32(0.0), sigma)
  np.testing.assert_allclose([c0, a0, b0], [1.0, -1.0, 1.0], rtol=1e-6)


def test_x0_error_space_is_the_clean_estimate_error():
  # error_space='x0': the velocity MSE weighted by max(t, t_eps)^2 is the MSE of x0_hat = x_t - t v_hat.
  x0, eps = _flow_sample(4)
  t = jnp.array([0.1, 0.3, 0.6, 0.9])
  xt = flow.noisy(x0, eps, t)
  v_hat = flow.velocity_target(x0, eps) + 0.2 * jax.random.normal(jax.random.key(5), x0.shape)
  err_v = flow.per_sample_mse(v_hat, flow.velocity_error_target(x0, eps, xt, t, "v"))
  x0_hat = xt - flow.broadcast_t(t, xt) * v_hat
  np.testing.assert_allclose(err_v * flow.error_weight(t, "x0"), flow.per_sample_mse(x0_hat, x0), rtol=1e-4)
  np.testing.assert_array_equal(flow.error_weight(t, "velocity"), jnp.ones(4))
  with pytest.raises(ValueError, match="error_space"):
    flow.error_weight(t, "eps")
  # 'x0_snr': the x0 error times the SNR (1 - t)^2 / t^2 clipped to [1, snr_cap]; snr_cap = 1 is 'x0'.
  snr = np.square((1 - np.asarray(t)) / np.asarray(t))  # 81, 5.44, 0.44, 0.012
  np.testing.assert_allclose(
      flow.error_weight(t, "x0_snr", snr_cap=5.0),
      np.square(np.asarray(t)) * np.array([5.0, 5.0, 1.0, 1.0]),
      rtol=1e-6,
  )
  np.testing.assert_allclose(
      flow.error_weight(t, "x0_snr", snr_cap=100.0)[:2],
      np.square(np.asarray(t))[:2] * np.array([81.0, snr[1]]),
      rtol=1e-5,
  )
  np.testing.assert_array_equal(flow.error_weight(t, "x0_snr", snr_cap=1.0), flow.error_weight(t, "x0"))


def test_velocity_model_converts_each_stream_with_its_own_time():
  v0, e0 = _flow_sample(2, (2, 3, 2, 2, 4))
  a0, ea = _flow_sample(3, (2, 6, 5))
  t_v, t_a = jnp.array([0.2, 0.8]), jnp.array([0.6, 0.0])  # an audio-given example (t_a = 0)
  xv, xa = flow.noisy(v0, e0, t_v), flow.noisy(a0, ea, t_a)
  net = lambda video, audio, tv, ta, cond: (v0, a0)  # an exact x0 predictor for these inputs
  vv, va = flow.velocity_model(net, "x")(xv, xa, t_v, t_a, None)
  np.testing.assert_allclose(vv, e0 - v0, atol=2e-5)
  np.testing.assert_allclose(va[0], (ea - a0)[0], atol=2e-5)
  assert np.isfinite(np.asarray(va)).all()  # the given stream's (unused) velocity stays finite
  assert flow.velocity_model(net, "v") is net
  with pytest.raises(ValueError, match="objective.prediction"):
    flow.velocity_model(net, "score")


@pytest.mark.parametrize("kind", ["uniform", "logit_normal", "shifted"])
def test_sample_t_in_open_interval(kind):
  t = flow.sample_t(jax.random.key(1), (4096,), kind=kind, shift=3.0 if kind == "shifted" else 1.0)
  assert float(t.min()) > 0.0 and float(t.max()) < 1.0
  if kind == "shifted":  # a shift > 1 moves mass to high noise
    assert float(t.mean()) > 0.6


def test_sample_t_rejects_unknown_kind():
  with pytest.raises(ValueError, match="t_sampling"):
    flow.sample_t(jax.random.key(0), (2,), kind="beta")


def _reference_dpo(err_w, err_l, ref_w, ref_l, beta):
  inside = -0.5 * beta * ((err_w - ref_w) - (err_l - ref_l))
  return np.mean(np.log1p(np.exp(-inside))), np.mean(inside > 0), np.mean(inside)


def test_flow_dpo_loss_matches_formula():
  rng = np.random.default_rng(0)
  err_w, err_l, ref_w, ref_l = (rng.uniform(0.5, 1.5, 16).astype(np.float32) for _ in range(4))
  beta = 3.0
  loss, m = objectives.flow_dpo_loss(err_w, err_l, ref_w, ref_l, beta)
  want_loss, want_acc, want_margin = _reference_dpo(err_w, err_l, ref_w, ref_l, beta)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  np.testing.assert_allclose(m["reward_accuracy"], want_acc)
  np.testing.assert_allclose(m["reward_margin"], want_margin, rtol=1e-5)


def test_flow_dpo_loss_is_log2_when_policy_equals_reference():
  err_w = jnp.asarray([0.3, 0.7, 1.1])
  err_l = jnp.asarray([0.9, 0.2, 0.4])
  loss, m = objectives.flow_dpo_loss(err_w, err_l, err_w, err_l, beta=5000.0)
  np.testing.assert_allclose(loss, math.log(2.0), rtol=1e-6)
  assert float(m["reward_margin"]) == 0.0


def test_flow_dpo_gradient_prefers_winner():
  """d loss / d err_w > 0 and d loss / d err_l < 0: DPO lowers the winner's error, raises the loser's."""
  g_w, g_l = jax.grad(
      lambda w, l: objectives.flow_dpo_loss(w, l, jnp.ones(2), jnp.ones(2), 10.0)[0], argnums=(0, 1)
  )(jnp.ones(2), jnp.ones(2))
  assert np.all(np.asarray(g_w) > 0) and np.all(np.asarray(g_l) < 0)


def test_sft_importance_weights_reproduce_the_synergy_formula():
  """E[loss] over the task draw equals L_joint + lambda_v L_audio-driven + lambda_a L_video-driven.

  With a model whose error does not depend on t, each per-task loss is a known constant, so the
  Monte-Carlo mean of the sampled loss must match the formula.
  """
  b = 4096
  video = jnp.zeros((b, 2, 1, 1, 1))
  audio = jnp.zeros((b, 3, 1))

  def apply_fn(v, a, t_v, t_a, cond):
    # Predicts 0 everywhere: error = E[(eps - x0)^2] = E[eps^2] ~ 1 per element, per stream.
    return jnp.zeros_like(v), jnp.zeros_like(a)

  lam_v, lam_a = 0.1, 0.3
  loss, _ = sft.sft_loss(
      apply_fn,
      jax.random.key(0),
      video,
      audio,
      {},
      task_probs=(0.5, 0.25, 0.25),
      lambda_v=lam_v,
      lambda_a=lam_a,
  )
  # joint: video + audio errors (1 + 1); audio-driven: video only (1); video-driven: audio only (1).
  want = 2.0 + lam_v * 1.0 + lam_a * 1.0
  np.testing.assert_allclose(float(loss), want, rtol=0.05)


def test_sft_given_stream_is_clean_and_has_no_loss():
  seen = {}

  def apply_fn(v, a, t_v, t_a, cond):
    seen.update(t_v=t_v, t_a=t_a)
    return jnp.zeros_like(v), jnp.zeros_like(a)

  sft.sft_loss(
      apply_fn,
      jax.random.key(3),
      jnp.zeros((64, 2, 1, 1, 1)),
      jnp.zeros((64, 3, 1)),
      {},
      task_probs=(0.0, 1.0, 0.0),
      lambda_v=1.0,
      lambda_a=0.0,
  )
  assert np.all(np.asarray(seen["t_a"]) == 0.0) and np.all(np.asarray(seen["t_v"]) > 0.0)


def test_cross_task_dpo_times_and_weights():
  """Cross-task DPO: the given stream is clean (t = 0) and carries no error; joint pairs share one t."""
  from syncdpo_jax.objectives.dpo import pair_times as dpo_task_times
  from syncdpo_jax.objectives.dpo import sample_pair_tasks as dpo_tasks

  t = jnp.linspace(0.1, 0.9, 64)
  assert dpo_tasks(jax.random.key(0), 64, (1.0, 0.0, 0.0)) is None  # joint only: no draw
  tv, ta, wv, wa = dpo_task_times(None, t, 1.0, 2.0)
  assert (tv == t).all() and (ta == t).all() and (wv == 1.0).all() and (wa == 2.0).all()
  tv, ta, wv, wa = dpo_task_times(
      dpo_tasks(jax.random.key(0), 64, (0.0, 0.0, 1.0)), t, 1.0, 2.0
  )  # video-driven
  assert (tv == 0).all() and (ta == t).all() and (wv == 0).all() and (wa == 2.0).all()
  tv, ta, wv, wa = dpo_task_times(dpo_tasks(jax.random.key(1), 64, (1.0, 1.0, 1.0)), t, 1.0, 1.0)
  joint, audio_given, video_given = (tv == ta), (ta == 0), (tv == 0)
  assert joint.any() and audio_given.any() and video_given.any()
  np.testing.assert_array_equal(np.asarray(wv == 0), np.asarray(video_given))
  np.testing.assert_array_equal(np.asarray(wa == 0), np.asarray(audio_given))


@pytest.mark.parametrize("distort", ["given", "rule"])
def test_rule_losers_of_conditional_pairs_distort_the_given_stream(distort):
  """dpo.distort='given': a video-driven pair's loser keeps the real (target) audio and distorts the
  video, an audio-driven pair's the reverse, joint pairs the rule's own stream; 'rule' ignores the task."""
  from configs import test as test_config
  from syncdpo_jax import codec as codec_lib
  from syncdpo_jax.perturb import curriculum as curriculum_lib
  from syncdpo_jax.objectives import dpo as dpo_lib
  from syncdpo_jax.objectives import sft as sft_lib
  from syncdpo_jax.train import pair_sources

  c = test_config.get_config("dpo")
  c.dpo.task_probs, c.dpo.distort = (1.0, 1.0, 1.0), distort
  # Rules with both defaults (shift: audio, reverse: video); strength 1 = coarse, never an identity.
  c.perturb.mix = {"shift": 1.0, "reverse": 1.0}
  codec = codec_lib.make_codec(c.codec, c.data)
  (t_v, h, w, cv), (t_a, ca) = codec.layout.window_shapes(c.data)
  b = 48
  video = jax.random.normal(jax.random.key(0), (b, t_v, h, w, cv))
  audio = jax.random.normal(jax.random.key(1), (b, t_a, ca))
  task = dpo_lib.sample_pair_tasks(jax.random.key(2), b, c.dpo.task_probs)
  cur = curriculum_lib.init(c.curriculum)
  negatives = jax.jit(pair_sources.make_rule_negatives(codec, c))
  vl, al, info = negatives(jax.random.key(3), cur, video, audio, task)
  v_changed = np.asarray(jnp.abs(vl - video).max(axis=(1, 2, 3, 4)) > 0)
  a_changed = np.asarray(jnp.abs(al - audio).max(axis=(1, 2)) > 0)
  task, rule_audio = np.asarray(task), np.asarray(info["modality"]) == 1
  assert np.all(v_changed ^ a_changed)  # every loser differs in exactly one stream
  joint = task == sft_lib.TASK_JOINT
  np.testing.assert_array_equal(a_changed[joint], rule_audio[joint])
  if distort == "given":
    assert np.all(a_changed[task == sft_lib.TASK_AUDIO_DRIVEN])
    assert np.all(v_changed[task == sft_lib.TASK_VIDEO_DRIVEN])
  else:
    np.testing.assert_array_equal(a_changed, rule_audio)
  # Both rules and all three tasks occur, so every branch above was exercised.
  assert len(set(task.tolist())) == 3 and rule_audio.any() and (~rule_audio).any()


def _dpo_pairs(b=4, seed=0):
  """A batch of pairs with their draws (test shapes), and two toy 'models': outputs = a * input."""
  from syncdpo_jax.objectives import dpo as dpo_lib

  k = jax.random.split(jax.random.key(seed), 6)
  vw, aw = jax.random.normal(k[0], (b, 4, 2, 2, 3)), jax.random.normal(k[1], (b, 8, 5))
  vl, al = vw + 0.3 * jax.random.normal(k[2], vw.shape), aw + 0.3 * jax.random.normal(k[3], aw.shape)
  draws = dpo_lib.dpo_draws((k[4], k[5], k[0]), vw, aw, None, {}, 1.0, 2.0)
  pairs = dict(draws, video_w=vw, audio_w=aw, video_l=vl, audio_l=al, label=jnp.zeros((b,), jnp.int32))
  model = lambda a: (lambda v, au, tv, ta, c: (a * v, a * au))
  return pairs, model


def test_flow_dpo_loss_given_is_the_hand_computed_objective_and_its_per_stream_betas():
  from syncdpo_jax.objectives import dpo as dpo_lib

  pairs, model = _dpo_pairs()
  p, n = pairs, 4
  st = lambda w, l: jnp.concatenate([w, l])
  x0_v, x0_a = st(p["video_w"], p["video_l"]), st(p["audio_w"], p["audio_l"])
  t2, ev, ea = st(p["t_v"], p["t_v"]), st(p["eps_v"], p["eps_v"]), st(p["eps_a"], p["eps_a"])
  xt_v, xt_a = flow.noisy(x0_v, ev, t2), flow.noisy(x0_a, ea, t2)
  err = lambda a, bv=1.0, ba=1.0: (  # per stream, [2B] each, with the draws' stream weights 1 and 2
      bv * flow.per_sample_mse(a * xt_v, ev - x0_v),
      ba * 2.0 * flow.per_sample_mse(a * xt_a, ea - x0_a),
  )
  (pv, pa), (rv, ra) = err(0.7), err(0.9)
  pol, ref = pv + pa, rv + ra
  want, _ = objectives.flow_dpo_loss(pol[:n], pol[n:], ref[:n], ref[n:], 50.0)
  got, m = dpo_lib.flow_dpo_loss_given(model(0.7), model(0.9), p, beta=50.0)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  np.testing.assert_allclose(m["drift_w"], (pol[:n] - ref[:n]).mean(), rtol=1e-6)
  # Per-stream betas: margin = -1/2 sum_m beta_m [(e_m(w) - e_ref,m(w)) - (e_m(l) - e_ref,m(l))].
  margin = -0.5 * (
      30.0 * ((pv[:n] - rv[:n]) - (pv[n:] - rv[n:])) + 10.0 * ((pa[:n] - ra[:n]) - (pa[n:] - ra[n:]))
  )
  got, _ = dpo_lib.flow_dpo_loss_given(model(0.7), model(0.9), p, beta=50.0, beta_video=30.0, beta_audio=10.0)
  np.testing.assert_allclose(got, -jax.nn.log_sigmoid(margin).mean(), rtol=1e-5)
  # The hinge adds its penalty only where the winner's error rose above the reference's.
  got_h, m_h = dpo_lib.flow_dpo_loss_given(model(0.7), model(0.9), p, beta=50.0, hinge_weight=0.5)
  np.testing.assert_allclose(got_h - want, 0.5 * jnp.maximum(pol[:n] - ref[:n], 0).mean(), rtol=1e-5)
  assert 0 <= float(m_h["hinge_active"]) <= 1


def test_sdpo_safeguard_scales_only_conflicting_loser_gradients():
  from syncdpo_jax.objectives import dpo as dpo_lib

  g = jnp.asarray([[1.0, 2.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
  gl = jnp.asarray([[2.0, 4.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # aligned, orthogonal, opposed
  np.testing.assert_allclose(dpo_lib.sdpo_scale(g, gl, 0.2), [0.8 / 2.0, 1.0, 1.0], rtol=1e-6)
  # In the loss the safeguard changes the loser's gradient, never the value.
  pairs, model = _dpo_pairs(seed=1)
  plain = lambda a: dpo_lib.flow_dpo_loss_given(model(a), model(0.9), pairs, beta=50.0)[0]
  safe = lambda a: dpo_lib.flow_dpo_loss_given(model(a), model(0.9), pairs, beta=50.0, sdpo_mu=0.0)[0]
  np.testing.assert_allclose(safe(0.7), plain(0.7), rtol=1e-6)
  _, m = dpo_lib.flow_dpo_loss_given(model(0.7), model(0.9), pairs, beta=50.0, sdpo_mu=0.0)
  assert 0.0 < float(m["sdpo_scale"]) < 1.0  # these losers are near copies: some pairs conflict
  # A smaller loser push: the gradient that raises the loser's error (and with it the winner's) shrinks.
  assert abs(float(jax.grad(safe)(0.7))) < abs(float(jax.grad(plain)(0.7)))


def test_dpo_reward_accuracy_per_task():
  from syncdpo_jax.objectives import dpo as dpo_lib

  pairs, model = _dpo_pairs(b=6)
  pairs = dict(pairs, task=jnp.asarray([0, 0, 1, 1, 2, 2], jnp.int32))
  _, m = dpo_lib.flow_dpo_loss_given(model(0.7), model(0.9), pairs, beta=50.0, task_names=("joint", "v2a"))
  m = dpo_lib.finish_metrics(m)
  assert "reward_accuracy_a2v" not in m
  per = [float(m[f"reward_accuracy_{k}"]) for k in ("joint", "v2a")]
  assert all(v in (0.0, 0.5, 1.0) for v in per)  # two pairs each
