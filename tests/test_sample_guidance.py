"""CFG / SyncCFG passes, anchors, combination formula, batching, and given-stream modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syncdpo_jax import sample as S

B, TV, H, W, CV, TA, CA, NULL = 2, 4, 2, 2, 3, 8, 5, 7


def toy_model(video, audio, t_v, t_a, cond):
  """A nonlinear model in which every input influences both outputs."""
  lab = cond["label"].astype(jnp.float32)
  mv = jnp.mean(video, axis=(1, 2, 3, 4))
  ma = jnp.mean(audio, axis=(1, 2))
  v_v = jnp.tanh(video) + (ma + 0.3 * t_a + 0.1 * lab + 0.2 * t_v)[:, None, None, None, None]
  v_a = jnp.sin(audio) + (mv + 0.3 * t_v + 0.05 * lab - 0.2 * t_a)[:, None, None]
  return v_v, v_a


class Recorder:
  """Wraps a model and records every call's inputs (used eagerly, outside jit)."""

  def __init__(self, fn=toy_model):
    self.fn, self.calls = fn, []

  def __call__(self, *args):
    self.calls.append(args)
    return self.fn(*args)


def inputs(seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  video = jax.random.normal(k1, (B, TV, H, W, CV))
  audio = jax.random.normal(k2, (B, TA, CA))
  return video, audio, {"label": jnp.array([1, 3], jnp.int32)}


@pytest.mark.parametrize("mode", ["joint", "v2a", "a2v"])
def test_synccfg_scale_one_is_plain_conditional(mode):
  video, audio, cond = inputs()
  t = jnp.array([0.7, 0.2])
  v_v, v_a = S.guided_velocity(
      toy_model, video, audio, t, cond, mode=mode, sync_cfg=True, s_v=1.0, s_a=1.0, null_label=NULL
  )
  zero = jnp.zeros((B,))
  ref_v, ref_a = toy_model(video, audio, t if mode != "v2a" else zero, t if mode != "a2v" else zero, cond)
  if mode != "v2a":
    np.testing.assert_allclose(v_v, ref_v, rtol=1e-6, atol=1e-6)
  else:
    assert v_v is None
  if mode != "a2v":
    np.testing.assert_allclose(v_a, ref_a, rtol=1e-6, atol=1e-6)
  else:
    assert v_a is None


def test_joint_synccfg_anchors_and_formula():
  video, audio, cond = inputs(1)
  t = jnp.array([0.6, 0.9])
  rec = Recorder()
  v_v, v_a = S.guided_velocity(
      rec, video, audio, t, cond, mode="joint", sync_cfg=True, s_v=3.0, s_a=2.0, null_label=NULL
  )
  # joint: call 1 = [pos]; call 2 = [video-neg, audio-neg] batched along batch
  assert len(rec.calls) == 2 and rec.calls[0][0].shape[0] == B and rec.calls[1][0].shape[0] == 2 * B
  pos_v, pos_a = toy_model(video, audio, t, t, cond)
  vid2, aud2, tv2, ta2, cond2 = rec.calls[1]
  # video-neg pass: clean silent audio (-1 everywhere, t_a = 0), video and t_v unchanged
  np.testing.assert_array_equal(aud2[:B], -jnp.ones_like(audio))
  np.testing.assert_array_equal(ta2[:B], jnp.zeros(B))
  np.testing.assert_array_equal(vid2[:B], video)
  np.testing.assert_array_equal(tv2[:B], t)
  # audio-neg pass: clean static video = first frame of the conditional x0 estimate, t_v = 0
  x0 = video - t[:, None, None, None, None] * pos_v
  np.testing.assert_allclose(vid2[B:], jnp.broadcast_to(x0[:, :1], video.shape), rtol=1e-6)
  np.testing.assert_array_equal(tv2[B:], jnp.zeros(B))
  np.testing.assert_array_equal(aud2[B:], audio)
  np.testing.assert_array_equal(cond2["label"], jnp.concatenate([cond["label"]] * 2))
  neg_v = toy_model(video, -jnp.ones_like(audio), t, jnp.zeros(B), cond)[0]
  neg_a = toy_model(jnp.broadcast_to(x0[:, :1], video.shape), audio, jnp.zeros(B), t, cond)[1]
  np.testing.assert_allclose(v_v, neg_v + 3.0 * (pos_v - neg_v), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(v_a, neg_a + 2.0 * (pos_a - neg_a), rtol=1e-5, atol=1e-5)


def test_v2a_cfg_plus_synccfg_one_call_with_given_video_anchor():
  video, audio, cond = inputs(2)
  t = jnp.array([0.5, 0.5])
  rec = Recorder()
  v_v, v_a = S.guided_velocity(
      rec, video, audio, t, cond, mode="v2a", cfg_scale=4.0, sync_cfg=True, s_a=2.0, null_label=NULL
  )
  assert v_v is None and len(rec.calls) == 1  # pos, uncond, audio-neg in ONE call
  vid, aud, tv, ta, c = rec.calls[0]
  assert vid.shape[0] == 3 * B
  np.testing.assert_array_equal(tv, jnp.zeros(3 * B))  # the given video is always clean
  np.testing.assert_array_equal(c["label"], jnp.array([1, 3, NULL, NULL, 1, 3]))
  np.testing.assert_array_equal(vid[2 * B :], jnp.broadcast_to(video[:, :1], video.shape))
  zero = jnp.zeros(B)
  pos = toy_model(video, audio, zero, t, cond)[1]
  unc = toy_model(video, audio, zero, t, S.null_cond(cond, NULL))[1]
  neg = toy_model(jnp.broadcast_to(video[:, :1], video.shape), audio, zero, t, cond)[1]
  np.testing.assert_allclose(v_a, pos + 3.0 * (pos - unc) + 1.0 * (pos - neg), rtol=1e-5, atol=1e-5)


def test_cfg_alone_and_null_cond_with_text():
  video, audio, cond = inputs(3)
  cond = dict(cond, text=jnp.ones((B, 3, 4)), text_mask=jnp.ones((B, 3), bool))
  nc = S.null_cond(cond, NULL)
  assert (
      bool(jnp.all(nc["label"] == NULL))
      and not bool(jnp.any(nc["text_mask"]))
      and float(nc["text"].sum()) == 0
  )
  t = jnp.array([0.3, 0.8])
  rec = Recorder(lambda v, a, tv, ta, c: toy_model(v, a, tv, ta, c))
  v_v, _ = S.guided_velocity(
      rec, video, audio, t, cond, mode="a2v", cfg_scale=2.5, sync_cfg=False, null_label=NULL
  )
  assert len(rec.calls) == 1 and rec.calls[0][0].shape[0] == 2 * B
  zero = jnp.zeros(B)
  pos = toy_model(video, audio, t, zero, cond)[0]
  unc = toy_model(video, audio, t, zero, nc)[0]
  np.testing.assert_allclose(v_v, unc + 2.5 * (pos - unc), rtol=1e-5, atol=1e-5)


def test_anchor_helpers():
  video, audio, _ = inputs(4)
  a = S.silent_audio_anchor(audio, -1.0)
  assert a.shape == audio.shape and bool(jnp.all(a == -1.0))
  s = S.static_video_anchor(video)
  assert s.shape == video.shape
  for i in range(TV):
    np.testing.assert_array_equal(s[:, i], video[:, 0])


@pytest.mark.parametrize("mode,sampler", [("v2a", "heun"), ("a2v", "euler")])
def test_given_stream_untouched_and_generated_stream_moves(mode, sampler):
  cfg = S.get_sample_config()
  cfg.mode, cfg.sampler, cfg.num_steps, cfg.cfg_scale = mode, sampler, 3, 2.0
  video, audio, cond = inputs(5)
  v0, a0 = S.initial_streams(
      jax.random.key(9),
      mode,
      video=video if mode == "v2a" else None,
      audio=audio if mode == "a2v" else None,
      video_shape=video.shape,
      audio_shape=audio.shape,
  )
  v1, a1 = S.make_sampler(toy_model, cfg, null_label=NULL)(v0, a0, cond)
  given, gen = ((v0, v1), (a0, a1)) if mode == "v2a" else ((a0, a1), (v0, v1))
  np.testing.assert_array_equal(given[1], given[0])
  assert gen[1].shape == gen[0].shape and float(jnp.max(jnp.abs(gen[1] - gen[0]))) > 0.1
  assert bool(jnp.all(jnp.isfinite(gen[1])))


def test_joint_sampler_matches_manual_euler_loop():
  cfg = S.get_sample_config()
  cfg.num_steps, cfg.shift, cfg.s_v, cfg.s_a = 3, 2.0, 3.0, 2.0
  video, audio, cond = inputs(6)
  out_v, out_a = S.sample(toy_model, video, audio, cond, cfg, null_label=NULL)
  v, a = video, audio
  ts = S.timesteps(3, 2.0)
  for i in range(3):
    gv, ga = S.guided_velocity(
        toy_model, v, a, ts[i], cond, mode="joint", sync_cfg=True, s_v=3.0, s_a=2.0, null_label=NULL
    )
    v, a = v + (ts[i + 1] - ts[i]) * gv, a + (ts[i + 1] - ts[i]) * ga
  np.testing.assert_allclose(out_v, v, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out_a, a, rtol=1e-5, atol=1e-5)


def test_config_errors_name_the_field():
  cfg = S.get_sample_config()
  cfg.mode = "t2v"
  with pytest.raises(ValueError, match="sample.mode"):
    S.validate_sample_config(cfg)
  with pytest.raises(ValueError, match="pass video"):
    S.initial_streams(jax.random.key(0), "v2a", audio_shape=(1, 2, 3))
  assert S.get_sample_config("runlocal").num_steps < S.get_sample_config().num_steps
