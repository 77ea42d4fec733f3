"""Tests of the temporal perturbation rules (syncdpo_jax.perturb.ops / registry)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from syncdpo_jax import perturb
from syncdpo_jax._librosa import librosa
from syncdpo_jax.perturb import curriculum, ops

FPS_V, SR, HOP = 10.0, 16000, 320
FPS_A = SR / HOP  # 50 mel frames / s
WINDOW_S = 2.0
T_V, T_A = int(WINDOW_S * FPS_V), int(WINDOW_S * FPS_A)
MIN_V, MIN_A = 1, 5  # one frame of the coarser modality (video, 0.1 s) in video / audio frames


def click_logmel(times_s, window_s=WINDOW_S, n_mels=32) -> np.ndarray:
  """Normalised log-mel [T_a, n_mels] of a click train (5 ms decaying noise bursts at `times_s`)."""
  rng = np.random.default_rng(0)
  n = int(window_s * SR)
  wav = 1e-4 * rng.standard_normal(n).astype(np.float32)
  burst = rng.standard_normal(80).astype(np.float32) * np.exp(-np.arange(80) / 20.0)
  for t in times_s:
    i = int(round(t * SR))
    wav[i : i + 80] += burst[: n - i]
  mel = librosa.feature.melspectrogram(y=wav, sr=SR, n_fft=512, hop_length=HOP, n_mels=n_mels, center=True)
  db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
  x = np.clip(db - db.max(), -80.0, 0.0) / 40.0 + 1.0
  return x.T[: int(window_s * FPS_A)].astype(np.float32)


def onset_frames(logmel) -> np.ndarray:
  """Frames that are local maxima of the mean log-mel energy and above its mid level."""
  e = np.asarray(logmel, np.float64).mean(axis=1)
  thr = 0.5 * (e.min() + e.max())
  pk = (e[1:-1] > thr) & (e[1:-1] >= e[:-2]) & (e[1:-1] > e[2:])
  return np.nonzero(pk)[0] + 1


def random_clip(seed, t_v=T_V, t_a=T_A, dtype=jnp.float32):
  kv, ka = jax.random.split(jax.random.key(seed))
  return (jax.random.normal(kv, (t_v, 4, 4, 3)).astype(dtype), jax.random.normal(ka, (t_a, 8)).astype(dtype))


def test_registry_is_consistent():
  assert perturb.names() == list(ops.MAGNITUDES) == list(ops.DEFAULT_OPTIONS) == list(ops.BUILDERS)
  assert {"shift", "replace", "scale", "reverse", "shuffle", "swap", "mute", "freeze", "repeat"} <= set(
      perturb.names()
  )
  for name in perturb.names():
    mags = [float(perturb.magnitude(name, s, WINDOW_S)) for s in (0.0, 0.25, 0.5, 1.0)]
    assert mags == sorted(mags), (name, mags)  # stronger = larger
  assert float(perturb.magnitude("shift", 1.0, WINDOW_S)) >= 1.0
  assert float(perturb.magnitude("scale", 1.0, WINDOW_S)) == pytest.approx(2.0)
  assert float(perturb.magnitude("shift", 0.0, WINDOW_S)) == pytest.approx(1 / FPS_V)


@functools.lru_cache(maxsize=None)
def structured_clip(dtype=jnp.float32, delay_s=0.0):
  times = [t + delay_s for t in (0.25, 0.65, 1.05, 1.45, 1.7)]
  audio = click_logmel(times, n_mels=8)
  video = np.zeros((T_V, 4, 4, 3), np.float32) - 1.0
  for t in times:
    video[int(round(t * FPS_V)), 1:3, 1:3] = 1.0
  return jnp.asarray(video, dtype), jnp.asarray(audio, dtype)


@functools.lru_cache(maxsize=None)
def _batched_apply(name):
  """jit(vmap(apply)) over (key, video, audio, strength, other_video, other_audio)."""

  def one(k, v, a, s, ov, oa):
    return perturb.apply(name, k, v, a, s, FPS_V, FPS_A, other=(ov, oa))

  return jax.jit(jax.vmap(one))


@pytest.mark.parametrize("name", perturb.names())
def test_jit_vmap_traced_strength_shapes_dtypes_determinism_and_never_identity(name):
  # Examples 0-5: random clips; 6-8: a structured clip (a click train and a square flashing with
  # each click, mostly static background), where a rule that ignores the content could easily
  # distort only unchanging frames and return the identity. They differ from each other, so that
  # Swap / cross-example Replace (other = previous example) really bring different content.
  dtype = jnp.bfloat16 if name == "scale" else jnp.float32
  clips = [random_clip(i, dtype=dtype) for i in range(6)] + [
      structured_clip(dtype, d) for d in (0.0, 0.1, 0.2)
  ]
  b = len(clips)
  v = jnp.stack([c[0] for c in clips])
  a = jnp.stack([c[1] for c in clips])
  ov, oa = jnp.roll(v, 1, 0), jnp.roll(a, 1, 0)
  strength = jnp.asarray([0.0, 0.0, 0.0, 0.3, 0.7, 1.0, 0.0, 0.0, 0.0])  # traced inside jit
  keys = jax.random.split(jax.random.key(7), b)
  fn = _batched_apply(name)
  v2, a2, info = fn(keys, v, a, strength, ov, oa)
  assert v2.shape == v.shape and v2.dtype == v.dtype
  assert a2.shape == a.shape and a2.dtype == a.dtype
  assert set(info) == set(ops.INFO_SCHEMA)
  for k, dt in ops.INFO_SCHEMA.items():
    assert info[k].shape == (b,) and info[k].dtype == dt, k
  assert np.all(np.asarray(info["kind"]) == perturb.kind_index(name))
  # Determinism: same key, same result.
  v3, a3, info3 = fn(keys, v, a, strength, ov, oa)
  assert np.array_equal(v2, v3) and np.array_equal(a2, a3)
  assert jax.tree.all(jax.tree.map(np.array_equal, info, info3))
  # Never the identity, at strength 0 included; only the configured modality is distorted.
  distorted = np.asarray(jnp.any(v2 != v, axis=(1, 2, 3, 4))) | np.asarray(jnp.any(a2 != a, axis=(1, 2)))
  assert distorted.all(), (name, distorted)
  untouched = v2 if ops.DEFAULT_OPTIONS[name]["modality"] == "audio" else a2
  assert np.array_equal(untouched, v if untouched is v2 else a)


@pytest.mark.parametrize(
    "fps_v,fps_a,clip_s",
    [
        (8.0, 50.0, 1.0),  # non-integer ratio (6.25 audio frames per video frame), short clip
        (30.0, 25.0, 2.0),  # audio latents coarser than video (e.g. a 25 Hz audio VAE)
    ],
)
def test_every_time_map_at_strength_zero_displaces_at_least_one_coarse_frame(fps_v, fps_a, clip_s):
  t_v, t_a = int(round(clip_s * fps_v)), int(round(clip_s * fps_a))
  video, audio = random_clip(0, t_v, t_a)
  coarse_s = 1.0 / min(fps_v, fps_a)

  @jax.jit
  def all_maps(key, video, audio):
    return {
        n: ops.build_maps(n, key, video, audio, 0.0, fps_v, fps_a, has_other=True) for n in perturb.names()
    }

  for seed in range(3):
    maps = all_maps(jax.random.key(seed), video, audio)
    for name, (mv, ma, _) in maps.items():
      for m, fps in ((mv, fps_v), (ma, fps_a)):
        t = np.arange(m.src.shape[0])
        moved = np.abs(np.asarray(m.src) - t)[~np.asarray(m.sil) & ~np.asarray(m.oth)]
        if name == "mute":
          touched = np.asarray(m.sil).sum() / fps
        elif name == "swap":
          touched = np.asarray(m.oth).sum() / fps
        elif name == "replace":
          touched = np.asarray(m.oth).sum() / fps + (moved.max(initial=0) / fps)
        else:
          touched = moved.max(initial=0) / fps
        if m is (mv if ops.DEFAULT_OPTIONS[name]["modality"] == "video" else ma):
          assert touched >= coarse_s - 1e-6, (name, seed, touched)
        else:
          assert touched == 0, name


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_shift_moves_audio_onsets_by_reported_offset(strength):
  times = [0.3, 0.7, 1.1, 1.5]
  audio = jnp.asarray(click_logmel(times))
  video = jnp.zeros((T_V, 2, 2, 3))
  before = onset_frames(audio)
  assert len(before) == len(times)
  for seed in range(4):  # both signs get exercised
    _, a2, info = perturb.apply("shift", jax.random.key(seed), video, audio, strength, FPS_V, FPS_A)
    offset = float(info["offset_s"])
    assert abs(offset) == pytest.approx(float(info["magnitude"]))
    assert abs(offset) >= 1 / FPS_V - 1e-6
    expected = before + offset * FPS_A  # positive offset = audio late
    visible = expected[(expected >= 1) & (expected <= T_A - 2)]
    after = onset_frames(a2)
    assert len(after) == len(visible), (offset, before, after)
    np.testing.assert_allclose(after, visible, atol=1.0)


@pytest.mark.parametrize("strength", [0.0, 0.6, 1.0])
def test_scale_multiplies_inter_onset_intervals_by_the_factor(strength):
  times = np.arange(0.1, 3.95, 0.35)
  audio = jnp.asarray(click_logmel(times, window_s=4.0))
  video = jnp.zeros((int(4 * FPS_V), 2, 2, 3))
  before = onset_frames(audio)
  assert len(before) == len(times)
  seen_factors = set()
  for seed in range(4):
    _, a2, info = perturb.apply("scale", jax.random.key(seed), video, audio, strength, FPS_V, FPS_A)
    a = float(info["magnitude"])
    seen_factors.add(a > 1)
    after = onset_frames(a2)
    ideal = before * a
    ideal = ideal[ideal <= audio.shape[0] - 2]
    assert len(after) == len(ideal) >= 2, (a, before, after)
    # Nearest-frame resampling places each onset within max(a, 1) / 2 frames of a * t, peak
    # picking within one more frame; intervals therefore within max(a, 1) + 1 frames of a * IOI.
    np.testing.assert_allclose(np.diff(after), a * np.diff(before[: len(after)]), atol=max(a, 1.0) + 1.0)
    # And the overall tempo: the first-to-last interval, over many beats, is a times longer.
    span = after[-1] - after[0]
    assert span == pytest.approx(a * (before[len(after) - 1] - before[0]), abs=max(a, 1.0) + 1.0)
  assert seen_factors == {True, False}  # both stretch and compress occur


def test_swap_without_other_falls_back_to_whole_clip_reverse():
  video, audio = random_clip(0)
  _, a2, info = perturb.apply("swap", jax.random.key(0), video, audio, 0.5, FPS_V, FPS_A)
  assert int(info["kind"]) == perturb.kind_index("reverse")
  np.testing.assert_array_equal(a2, audio[::-1])
  # The batched helper with batch size 1 falls back identically (no other example to swap with).
  vl, al, info_b = jax.jit(lambda k, v, a: perturb.make_negatives(k, v, a, 0.0, FPS_V, FPS_A, {"swap": 1.0}))(
      jax.random.key(1), video[None], audio[None]
  )
  assert info_b["kind"].tolist() == [perturb.kind_index("reverse")]
  np.testing.assert_array_equal(al[0], audio[::-1])
  np.testing.assert_array_equal(vl[0], video)
  # With another example the swap is real: the audio is the other example's, untouched.
  other = random_clip(1)
  _, a3, info = perturb.apply("swap", jax.random.key(0), video, audio, 0.5, FPS_V, FPS_A, other=other)
  assert int(info["kind"]) == perturb.kind_index("swap")
  np.testing.assert_array_equal(a3, other[1])


def test_make_negatives_equals_vmapped_sample_apply_with_rolled_batch_and_traced_mix():
  b = 5
  clips = [random_clip(i) for i in range(b)]
  v = jnp.stack([c[0] for c in clips])
  a = jnp.stack([c[1] for c in clips])
  cfg = perturb.get_curriculum_config("staged")
  state = curriculum.init(cfg).replace(stage=jnp.asarray(1, jnp.int32))
  options = {"freeze": {"modality": "audio"}, "mute": {"modality": "video"}}

  @jax.jit
  def both(key, v, a, state):
    probs = curriculum.mix_probs(state, cfg)  # traced [N] probabilities
    s = curriculum.strength(state)
    neg = perturb.make_negatives(key, v, a, s, FPS_V, FPS_A, probs, options)
    keys = jax.random.split(key, b)
    ref = jax.vmap(
        lambda k, v_, a_, ov, oa: perturb.sample_apply(
            k, v_, a_, s, FPS_V, FPS_A, probs, other=(ov, oa), options=options
        )
    )(keys, v, a, jnp.roll(v, 1, 0), jnp.roll(a, 1, 0))
    return neg, ref

  kinds = set()
  for seed in range(4):
    (vl, al, il), (vr, ar, ir) = both(jax.random.key(seed), v, a, state)
    np.testing.assert_array_equal(vl, vr)
    np.testing.assert_array_equal(al, ar)
    for k in ops.INFO_SCHEMA:
      np.testing.assert_array_equal(il[k], ir[k])
    kinds |= set(np.asarray(il["kind"]).tolist())
  assert len(kinds) >= 3  # the mix really samples several rules


def test_static_mix_only_samples_positive_probabilities():
  b = 8
  v = jnp.stack([random_clip(i)[0] for i in range(b)])
  a = jnp.stack([random_clip(i)[1] for i in range(b)])
  probs = {"replace": 0.5, "scale": 0.5, "swap": 0.0}
  strength = jnp.linspace(0.0, 1.0, b)  # per-example strengths [B]
  fn = jax.jit(lambda k: perturb.make_negatives(k, v, a, strength, FPS_V, FPS_A, probs))
  infos = [fn(jax.random.key(s))[2] for s in range(3)]
  np.testing.assert_allclose(infos[0]["strength"], strength)
  kinds = np.concatenate([np.asarray(i["kind"]) for i in infos])
  assert set(kinds.tolist()) == {perturb.kind_index("replace"), perturb.kind_index("scale")}


@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_replace_from_self_copies_a_segment_displaced_by_the_shift_offset(strength):
  video, audio = random_clip(3)
  for seed in range(6):
    _, a2, info = perturb.apply("replace", jax.random.key(seed), video, audio, strength, FPS_V, FPS_A)
    # Displacement = the Shift offset at this strength (0.1 s / 1 s), shortened only if neither
    # direction fits in the clip (never below one coarse frame).
    want = float(perturb.magnitude("shift", strength, WINDOW_S))
    assert 1 / FPS_V - 1e-6 <= abs(float(info["offset_s"])) <= want + 1e-6
    if strength == 0.0:
      assert abs(float(info["offset_s"])) == pytest.approx(want)
    start, n = int(round(float(info["start_s"]) * FPS_A)), int(round(float(info["duration_s"]) * FPS_A))
    src = start - int(round(float(info["offset_s"]) * FPS_A))
    np.testing.assert_array_equal(a2[start : start + n], audio[src : src + n])
    np.testing.assert_array_equal(a2[:start], audio[:start])


def test_mute_silences_an_onset_with_the_clip_minimum():
  audio = jnp.asarray(click_logmel([0.5, 1.3]))
  video = jnp.zeros((T_V, 2, 2, 3))
  _, a2, info = perturb.apply("mute", jax.random.key(0), video, audio, 0.0, FPS_V, FPS_A)
  start = int(round(float(info["start_s"]) * FPS_A))
  n = int(round(float(info["duration_s"]) * FPS_A))
  assert n == MIN_A
  np.testing.assert_array_equal(a2[start : start + n], jnp.broadcast_to(audio.min(0), (n, 32)))
  assert len(onset_frames(a2)) == 1  # one of the two clicks was dropped


def test_user_errors_are_actionable():
  video, audio = random_clip(0)
  with pytest.raises(ValueError, match="unknown perturbation 'wobble'"):
    perturb.apply("wobble", jax.random.key(0), video, audio, 0.5, FPS_V, FPS_A)
  with pytest.raises(ValueError, match="no option 'speed'"):
    perturb.apply("shift", jax.random.key(0), video, audio, 0.5, FPS_V, FPS_A, options={"speed": 2})
  with pytest.raises(ValueError, match="modality must be 'audio' or 'video'"):
    perturb.apply("shift", jax.random.key(0), video, audio, 0.5, FPS_V, FPS_A, options={"modality": "text"})
  with pytest.raises(ValueError, match="too short"):
    perturb.apply("shift", jax.random.key(0), video[:2], audio[:10], 0.5, FPS_V, FPS_A)
  with pytest.raises(ValueError, match="no positive probability"):
    perturb.make_negatives(jax.random.key(0), video[None], audio[None], 0.5, FPS_V, FPS_A, {"shift": 0.0})
  with pytest.raises(ValueError, match="shape"):
    perturb.make_negatives(jax.random.key(0), video[None], audio[None], 0.5, FPS_V, FPS_A, jnp.ones((3,)))


def test_config_round_trip_drives_options_and_mix():
  cfg = perturb.get_perturb_config()
  assert sum(perturb.probs_from_config(cfg).values()) == pytest.approx(1.0)
  cfg.modality.shift = "video"
  cfg.mix.swap = 0.0
  opts = perturb.options_from_config(cfg)
  probs = perturb.probs_from_config(cfg)
  assert opts["shift"]["modality"] == "video" and probs["swap"] == 0.0
  video, audio = random_clip(0)
  v2, a2, info = perturb.apply(
      "shift", jax.random.key(0), video, audio, 0.0, FPS_V, FPS_A, options=opts["shift"]
  )
  assert int(info["modality"]) == ops.VIDEO
  np.testing.assert_array_equal(a2, audio)
  d = int(round(-float(info["offset_s"]) * FPS_V))  # video late by d frames = audio early
  assert abs(d) == 1
  np.testing.assert_array_equal(v2[max(d, 0) : T_V + min(d, 0)], video[max(-d, 0) : T_V - max(d, 0)])
  only = perturb.probs_from_config(perturb.get_perturb_config("replace_scale"))
  assert {n for n, p in only.items() if p > 0} == {"replace", "scale"}


def test_make_negatives_stays_shard_local_on_a_batch_sharded_mesh():
  """On a mesh with the batch sharded, negatives need no all-gather of the batch (only the
  neighbour exchange of jnp.roll for the other example) and equal the single-device result."""
  devices = jax.devices()[:8]
  if len(devices) < 8:
    pytest.skip("needs 8 devices (tests/conftest.py sets 8 virtual CPU devices)")
  mesh = jax.sharding.Mesh(np.asarray(devices), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sh = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  v = jnp.stack([random_clip(i)[0] for i in range(8)])
  a = jnp.stack([random_clip(i)[1] for i in range(8)])
  probs = {"swap": 0.4, "replace": 0.4, "shift": 0.2}

  def neg(k, v, a):
    return perturb.make_negatives(k, v, a, 0.4, FPS_V, FPS_A, probs)

  fn = jax.jit(neg, out_shardings=(sh, sh, None))
  vs, as_ = jax.device_put(v, sh), jax.device_put(a, sh)
  hlo = fn.lower(jax.random.key(0), vs, as_).compile().as_text()
  assert "all-gather" not in hlo
  vl, al, info = fn(jax.random.key(0), vs, as_)
  vr, ar, ir = jax.jit(neg)(jax.random.key(0), v, a)
  np.testing.assert_array_equal(vl, vr)
  np.testing.assert_array_equal(al, ar)
  np.testing.assert_array_equal(info["kind"], ir["kind"])


def _window_and_context(seed, m_v=5, m_a=25):
  """A clip with context: (window video, window audio, context dict) where window = context middle."""
  cv, ca = random_clip(seed, T_V + 2 * m_v, T_A + 2 * m_a)
  return cv[m_v : m_v + T_V], ca[m_a : m_a + T_A], {"video": cv, "audio": ca}


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_shift_with_context_is_a_real_crop_offset_by_the_reported_amount(strength):
  """With context a shifted stream is the same clip cropped d frames earlier or later: no padding,
  no silence, every frame real; the offset is capped at the context's margin; the other stream is
  the window itself."""
  m_v, m_a = 5, 25  # 0.5 s each side
  for seed in range(6):
    v, a, ctx = _window_and_context(seed, m_v, m_a)
    vl, al, info = perturb.apply("shift", jax.random.key(seed), v, a, strength, FPS_V, FPS_A, context=ctx)
    np.testing.assert_array_equal(vl, v)
    d = int(round(float(info["offset_s"]) * FPS_A))  # + = audio late: out[t] = context[m + t - d]
    assert 1 <= abs(d) <= m_a and abs(d) >= MIN_A
    np.testing.assert_array_equal(al, ctx["audio"][m_a - d : m_a - d + T_A])
  # Video as the distorted stream: the same, with its own margin.
  v, a, ctx = _window_and_context(0, m_v, m_a)
  vl, al, info = perturb.apply(
      "shift", jax.random.key(1), v, a, 1.0, FPS_V, FPS_A, options={"modality": "video"}, context=ctx
  )
  d = int(round(-float(info["offset_s"]) * FPS_V))  # video content later = audio early
  assert abs(d) == m_v  # strength 1 (1 s) capped at the 0.5 s margin
  np.testing.assert_array_equal(vl, ctx["video"][m_v - d : m_v - d + T_V])
  np.testing.assert_array_equal(al, a)


@pytest.mark.parametrize("name", ["replace", "scale", "mute", "freeze"])
def test_rules_with_context_read_only_real_frames_and_keep_the_window_elsewhere(name):
  """Every output frame of a loser built with context is a frame of the context (no silence beyond
  the rules that write it on purpose), and the undistorted stream is the window."""
  v, a, ctx = _window_and_context(3)
  for seed in range(4):
    vl, al, info = perturb.apply(name, jax.random.key(seed), v, a, 1.0, FPS_V, FPS_A, context=ctx)
    mod = "audio" if int(info["modality"]) == 1 else "video"
    out, src, win = (al, ctx["audio"], a) if mod == "audio" else (vl, ctx["video"], v)
    np.testing.assert_array_equal(vl if mod == "audio" else al, v if mod == "audio" else a)
    flat_src = np.asarray(src).reshape(src.shape[0], -1)
    flat_out = np.asarray(out).reshape(out.shape[0], -1)
    is_real = (flat_out[:, None, :] == flat_src[None, :, :]).all(-1).any(-1)  # [T]: a context frame
    if name == "mute":
      floor = np.asarray(win).min(axis=0).reshape(-1)  # the window's own floor, on purpose
      is_real |= (flat_out == floor[None]).all(-1)
    assert is_real.all(), (name, seed)
    assert not np.array_equal(out, win)


def test_make_negatives_with_context_equals_vmapped_sample_apply():
  b = 4
  parts = [_window_and_context(i) for i in range(b)]
  v = jnp.stack([p[0] for p in parts])
  a = jnp.stack([p[1] for p in parts])
  ctx = {k: jnp.stack([p[2][k] for p in parts]) for k in ("video", "audio")}
  probs = {"shift": 1.0, "replace": 1.0, "scale": 1.0, "swap": 1.0}
  key = jax.random.key(5)
  vl, al, il = perturb.make_negatives(key, v, a, 0.7, FPS_V, FPS_A, probs, context=ctx)
  rolled = {k: jnp.roll(x, 1, 0) for k, x in ctx.items()}
  vr, ar, ir = jax.vmap(
      lambda k, v_, a_, cv, ca, ov, oa: perturb.sample_apply(
          k, v_, a_, 0.7, FPS_V, FPS_A, probs, other=(ov, oa), context={"video": cv, "audio": ca}
      )
  )(jax.random.split(key, b), v, a, ctx["video"], ctx["audio"], rolled["video"], rolled["audio"])
  np.testing.assert_array_equal(vl, vr)
  np.testing.assert_array_equal(al, ar)
  for k in ops.INFO_SCHEMA:
    np.testing.assert_array_equal(il[k], ir[k])
  with pytest.raises(ValueError, match="same number of frames on both sides"):
    perturb.apply(
        "shift",
        key,
        v[0],
        a[0],
        0.5,
        FPS_V,
        FPS_A,
        context={"video": ctx["video"][0, 1:], "audio": ctx["audio"][0]},
    )


def test_shift_offsets_in_physical_units_down_to_one_frame_of_the_shifted_stream():
  """perturb shift.subtle_s / coarse_s / floor='frame' (the DPO default, config_lib.timing_negatives):
  strength 1 shifts by coarse_s, strength 0 by one audio frame (20 ms, below a video frame); a shifted
  video stream still moves by at least one of its own frames."""
  opts = {"subtle_s": 0.02, "coarse_s": 0.5, "floor": "frame"}
  v, a, ctx = _window_and_context(0)
  offsets = {}
  for s in (1.0, 0.5, 0.0):
    _, _, info = perturb.apply("shift", jax.random.key(2), v, a, s, FPS_V, FPS_A, options=opts, context=ctx)
    offsets[s] = abs(float(info["offset_s"]))
  assert offsets[1.0] == pytest.approx(0.5) and offsets[0.0] == pytest.approx(1 / FPS_A)
  assert offsets[0.0] < offsets[0.5] < offsets[1.0]
  _, _, info = perturb.apply(
      "shift", jax.random.key(2), v, a, 0.0, FPS_V, FPS_A, options=dict(opts, modality="video"), context=ctx
  )
  assert abs(float(info["offset_s"])) == pytest.approx(1 / FPS_V)
  from configs import demo

  c = demo.get_config("dpo")
  assert perturb.options_from_config(c.perturb)["shift"] == dict(opts, modality="audio", pad="auto")
  for bad in ({"floor": "half"}, {"subtle_s": 0.6, "coarse_s": 0.5}, {"subtle_s": 0.0}):
    with pytest.raises(ValueError, match="shift"):
      perturb.apply("shift", jax.random.key(0), v, a, 0.0, FPS_V, FPS_A, options=bad)
