"""tfds builders: syncbench_synth through tfds.data_source, av_folder on mp4s written here (good and bad)."""

import os
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import syncdpo_jax.data  # noqa: F401  (registers the builders)
from syncdpo_jax.data import builders, media, synth
from syncdpo_jax.data.config import get_data_config


def test_builders_registered():
  assert tfds.builder_cls("syncbench_synth") is builders.SyncbenchSynth
  assert tfds.builder_cls("av_folder") is builders.AvFolder


def test_syncbench_synth_data_source(tmp_path):
  cfg = get_data_config("test")
  cfg.data_dir = str(tmp_path)
  b = builders.build_dataset(cfg)
  src = tfds.data_source("syncbench_synth/test", data_dir=str(tmp_path))
  assert {k: len(v) for k, v in src.items()} == {"train": 9, "val": 3, "test": 3, "ood": 3}
  ex = src["train"][0]
  assert ex["video"].dtype == np.uint8 and ex["video"].shape == (20, 16, 16, 3)
  assert ex["audio"].dtype == np.float32 and ex["audio"].shape == (32000,)
  assert float(ex["fps"]) == 10.0 and int(ex["sr"]) == 16000
  assert ex["event_times"].dtype == np.float32 and ex["event_times"].shape == ex["event_kinds"].shape
  assert ex["family"].decode() in synth.FAMILIES and ex["caption"] and ex["clip_id"]
  # Stored examples are exactly the generator's output.
  cid = ex["clip_id"].decode()
  split, i, fam = cid.split("_")
  assert split == "train"  # train is split 0 with config seed 0: clip seed == clip index
  ref = synth.generate_clip(fam, int(i), synth.SynthSpec(duration_s=2.0, resolution=16))
  np.testing.assert_array_equal(ex["video"], ref["video"])
  np.testing.assert_array_equal(ex["event_times"], ref["event_times"])
  assert "tensorflow" not in sys.modules  # ArrayRecord written and read without TF
  # Idempotent: the second call reuses the files.
  mtime = os.path.getmtime(b.data_dir)
  assert builders.build_dataset(cfg).data_dir == b.data_dir and os.path.getmtime(b.data_dir) == mtime


def test_plain_tfds_builder_writes_array_record_without_tensorflow(tmp_path):
  """tfds' own entry point, as a tfds user would call it: no file_format argument."""
  b = tfds.builder("syncbench_synth/test", data_dir=str(tmp_path))
  b.download_and_prepare()
  assert b.info.file_format.value == "array_record"
  assert len(tfds.data_source("syncbench_synth/test", data_dir=str(tmp_path))["val"]) == 3
  assert "tensorflow" not in sys.modules


def test_a_folder_built_with_other_settings_is_refused(tmp_path):
  folder = _user_folder(tmp_path)
  cfg = get_data_config("test")
  cfg.name, cfg.data_dir, cfg.manual_dir = "av_folder", str(tmp_path / "ds"), str(folder)
  builders.build_dataset(cfg)
  cfg.fps, cfg.resolution = 12.0, 24
  with pytest.raises(ValueError) as e:
    builders.build_dataset(cfg)
  msg = str(e.value)
  assert "fps: built with 10.0, the config asks for 12.0" in msg and "resolution" in msg, msg
  assert "--config.data.builder_config" in msg
  cfg.builder_config = "test_12fps"  # a new name builds beside it
  assert builders.build_dataset(cfg).info.splits["train"].num_examples == 2


def _user_folder(root):
  """Good clips (one at 48 kHz / 15 fps / 24x20 with a sidecar caption) and bad ones of every kind."""
  d = root / "mp4s"
  d.mkdir()
  spec = synth.SynthSpec(duration_s=2.0, resolution=24)
  c = synth.generate_clip("impact", 1, spec)
  media.write_mp4(str(d / "good_a.mp4"), c["video"], c["fps"], c["audio"], c["sr"])
  (d / "good_a.txt").write_text("a ball bounces\n")
  c2 = synth.generate_clip("rhythm", 2, synth.SynthSpec(duration_s=2.0, fps=15, sr=48000, resolution=24))
  media.write_mp4(str(d / "good_b.mp4"), c2["video"][:, 2:22], 15, c2["audio"], 48000)
  media.write_mp4(str(d / "no_audio.mp4"), c["video"], c["fps"])
  media.write_mp4(str(d / "short.mp4"), c["video"][:5], c["fps"], c["audio"][:8000], c["sr"])
  media.write_mp4(str(d / "silent.mp4"), c["video"], c["fps"], np.zeros_like(c["audio"]), c["sr"])
  # Audio declared at 16 kHz but holding half the samples: mismatched rate.
  media.write_mp4(str(d / "mismatch.mp4"), c["video"], c["fps"], c["audio"][::2], c["sr"])
  data = (d / "good_a.mp4").read_bytes()
  (d / "corrupt.mp4").write_bytes(data[: len(data) // 2])
  (d / "empty.mp4").write_bytes(b"")
  return d


def test_av_folder_keeps_good_and_reports_bad(tmp_path):
  folder = _user_folder(tmp_path)
  cfg = get_data_config("test")
  cfg.name, cfg.builder_config, cfg.data_dir, cfg.manual_dir = (
      "av_folder",
      "test",
      str(tmp_path / "ds"),
      str(folder),
  )
  b = builders.build_dataset(cfg)
  src = tfds.data_source("av_folder/test", data_dir=str(tmp_path / "ds"))["train"]
  kept = {src[i]["clip_id"].decode(): src[i] for i in range(len(src))}
  assert set(kept) == {"good_a", "good_b"}
  a, bb = kept["good_a"], kept["good_b"]
  assert a["caption"].decode() == "a ball bounces" and bb["caption"].decode() == ""
  assert a["video"].shape == (20, 16, 16, 3) and bb["video"].shape == (20, 16, 16, 3)  # 15 -> 10 fps
  assert a["audio"].shape == (32000,) and bb["audio"].shape == (32000,)  # 48 -> 16 kHz
  assert int(bb["sr"]) == 16000 and float(bb["fps"]) == 10.0
  reasons = {s["file"]: s["reason"] for s in builders.skipped_inputs(b)}
  assert set(reasons) == {
      "no_audio.mp4",
      "short.mp4",
      "silent.mp4",
      "mismatch.mp4",
      "corrupt.mp4",
      "empty.mp4",
  }
  assert "no audio track" in reasons["no_audio.mp4"]
  assert "too short" in reasons["short.mp4"]
  assert "silent" in reasons["silent.mp4"]
  assert "disagree" in reasons["mismatch.mp4"]
  assert "corrupt" in reasons["corrupt.mp4"] or "truncated" in reasons["corrupt.mp4"]
  assert "zero-length" in reasons["empty.mp4"]


def test_av_folder_fail_mode_leaves_no_complete_dataset(tmp_path):
  folder = _user_folder(tmp_path)
  cfg = get_data_config("test")
  cfg.name, cfg.on_bad_input = "av_folder", "fail"
  cfg.data_dir, cfg.manual_dir = str(tmp_path / "ds"), str(folder)
  with pytest.raises(media.MediaError, match=r"(corrupt|empty)\.mp4"):
    builders.build_dataset(cfg)
  assert not builders.make_builder(cfg).is_prepared()
  with pytest.raises(Exception):
    tfds.data_source("av_folder/test", data_dir=str(tmp_path / "ds"))
