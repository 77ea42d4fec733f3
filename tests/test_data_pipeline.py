"""grain pipeline: batch contract, determinism, checkpoint/restore continuation, global batch on a mesh."""

import jax
import numpy as np
import pytest

from syncdpo_jax.data import pipeline
from syncdpo_jax.model import config as model_config
from syncdpo_jax.model import sharding as sharding_lib
from syncdpo_jax.data.config import get_data_config, validate


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
  c = get_data_config("test")
  c.data_dir = str(tmp_path_factory.mktemp("tfds"))
  return c


def _take(it, n):
  return [next(it) for _ in range(n)]


def _equal(a, b):
  return all(np.array_equal(a[k], b[k]) for k in a)


def test_batch_contract(cfg):
  b = next(iter(pipeline.make_dataset(cfg, "train", seed=0, train=True)))
  assert b["video"].shape == (4, 10, 16, 16, 3) and b["video"].dtype == np.float32
  assert b["audio"].shape == (4, 50, 16) and b["audio"].dtype == np.float32
  assert b["label"].shape == (4,) and b["label"].dtype == np.int32
  assert b["events"].shape == (4, 8) and b["event_kinds"].shape == (4, 8)
  assert b["events"].dtype == np.float32 and b["event_kinds"].dtype == np.int32
  assert -1 <= b["video"].min() and b["video"].max() <= 1 and b["video"].std() > 0.05
  assert -1 <= b["audio"].min() and b["audio"].max() <= 1 and b["audio"].max() > -0.5
  valid = b["events"] >= 0
  assert np.all((b["events"][valid] < cfg.window_s)) and np.all(b["event_kinds"][valid] >= 0)
  assert np.all(b["events"][~valid] == -1) and np.all(b["event_kinds"][~valid] == -1)


def test_window_is_the_same_in_both_modalities(cfg):
  # Every in-window event must show as an audio onset (log-mel energy rise) at its time: the crop
  # moved audio and events together.
  b = next(iter(pipeline.make_dataset(cfg, "train", seed=3, train=True)))
  fa = cfg.sr / cfg.hop
  hits, total = 0, 0
  for i in range(b["audio"].shape[0]):
    energy = b["audio"][i].mean(axis=1)
    rise = np.diff(energy, prepend=energy[0])
    for e in b["events"][i][b["events"][i] >= 0]:
      j = int(round(e * fa))
      if j == 0:
        continue  # rise at frame 0 is not observable
      total += 1
      hits += rise[max(0, j - 1) : j + 2].max() > 0.1
  assert total > 0 and hits / total >= 0.8, (hits, total)


def test_same_seed_same_batches_other_seed_differs(cfg):
  a = _take(iter(pipeline.make_dataset(cfg, "train", seed=5, train=True)), 4)
  b = _take(iter(pipeline.make_dataset(cfg, "train", seed=5, train=True)), 4)
  c = _take(iter(pipeline.make_dataset(cfg, "train", seed=6, train=True)), 4)
  assert all(_equal(x, y) for x, y in zip(a, b))
  assert not all(_equal(x, y) for x, y in zip(a, c))


def test_restore_mid_epoch_continues_identically(cfg):
  it = iter(pipeline.make_dataset(cfg, "train", seed=1, train=True))
  _take(it, 3)  # 12 clips: past the 9-clip epoch boundary
  state = it.get_state()
  expected = _take(it, 3)
  it2 = iter(pipeline.make_dataset(cfg, "train", seed=1, train=True))
  it2.set_state(state)
  assert all(_equal(x, y) for x, y in zip(expected, _take(it2, 3)))


def test_eval_is_deterministic_and_complete(cfg):
  a = list(pipeline.make_dataset(cfg, "val", seed=0, train=False))
  b = list(pipeline.make_dataset(cfg, "val", seed=9, train=False))
  assert [x["video"].shape[0] for x in a] == [3]  # 3 val clips, drop_remainder=False
  assert all(_equal(x, y) for x, y in zip(a, b))


def test_short_clip_pad_or_skip(cfg):
  ex = dict(
      video=np.zeros((4, 16, 16, 3), np.uint8),
      audio=np.ones(6400, np.float32) * 0.1,
      fps=10.0,
      sr=16000,
      event_times=np.array([0.2], np.float32),
      event_kinds=np.array([1], np.int32),
      label=2,
      clip_id=b"tiny",
  )
  c = cfg.copy_and_resolve_references()
  out = pipeline.crop_window(ex, c, 0, None)
  assert out["video"].shape == (10, 16, 16, 3) and out["audio"].shape == (50, 16)
  assert out["events"][0] == pytest.approx(0.2) and out["audio"][-5:].max() == -1.0  # padded silence
  c.short_clip = "skip"
  assert pipeline.crop_window(ex, c, 0, None) is None
  c.short_clip = "fail"
  with pytest.raises(ValueError, match="tiny.*shorter than the window"):
    pipeline.crop_window(ex, c, 0, None)


def test_global_batch_on_8_device_mesh(cfg):
  devs = np.array(jax.devices()[:8])
  if devs.size < 8:
    pytest.skip("needs 8 devices (tests/conftest.py sets jax_num_cpu_devices=8)")
  c = cfg.copy_and_resolve_references()
  c.batch_size = 8
  mesh = jax.sharding.Mesh(devs.reshape(4, 2, 1), ("data", "fsdp", "tensor"))
  b = next(iter(pipeline.make_dataset(c, "train", seed=0, train=True)))
  g = pipeline.make_global_batch(b, sharding_lib.batch_sharding(mesh, model_config.DEFAULT_RULES))
  for k, v in b.items():
    assert g[k].shape == v.shape and g[k].dtype == v.dtype
    np.testing.assert_array_equal(np.asarray(g[k]), v)
    assert g[k].sharding.spec[0] == ("data", "fsdp")
    assert len(g[k].addressable_shards) == 8 and g[k].addressable_shards[0].data.shape[0] == 1


def test_context_crops_hold_the_window_in_their_middle(cfg):
  """data.context_s > 0: each example also carries the clip cropped context_s wider on both sides,
  its log-mel computed over the wide crop; video / audio are exactly its middle."""
  c = cfg.copy_and_resolve_references()
  c.context_s = 0.5
  m_v, m_a = 5, 25
  b = next(iter(pipeline.make_dataset(c, "train", seed=0, train=True)))
  assert b["video_context"].shape == (4, 10 + 2 * m_v, 16, 16, 3)
  assert b["audio_context"].shape == (4, 50 + 2 * m_a, 16)
  np.testing.assert_array_equal(b["video"], b["video_context"][:, m_v:-m_v])
  np.testing.assert_array_equal(b["audio"], b["audio_context"][:, m_a:-m_a])
  plain = next(iter(pipeline.make_dataset(cfg, "train", seed=0, train=True)))
  assert "video_context" not in plain and "audio_context" not in plain
  c.context_s = 0.25  # 2.5 video frames: not a whole number
  with pytest.raises(ValueError, match="context_s"):
    validate(c)


def test_training_crops_leave_a_full_context_of_real_frames(cfg):
  """Random training windows start where context_s of the stored clip lies on both sides, so the
  context never holds an edge frame or silence (a 4 s clip whose frame k shows the level k)."""
  c = cfg.copy_and_resolve_references()
  c.context_s = 0.5
  n, fps, sr = 40, 10.0, 16000
  video = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None] * 5, (n, 16, 16, 3)).copy()
  audio = np.random.default_rng(0).standard_normal(n * sr // 10).astype(np.float32) * 0.1
  ex = dict(video=video, audio=audio, fps=fps, sr=sr, label=0, event_times=[], event_kinds=[], clip_id=b"x")
  rng = np.random.default_rng(1)
  starts = set()
  for _ in range(50):
    out = pipeline.crop_window(ex, c, None, rng)
    frame_ids = np.round((out["video_context"][:, 0, 0, 0] + 1.0) * 127.5 / 5).astype(int)
    assert np.all(np.diff(frame_ids) == 1)  # consecutive real frames, none held
    starts.add(frame_ids[0] + 5)
    assert out["audio_context"].min() > -1.0 + 1e-3  # no silence padded in
  assert min(starts) >= 5 and max(starts) <= n - 10 - 5 and len(starts) > 5
