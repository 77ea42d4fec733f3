"""report.json / report.md: schema of the eval contract, CI columns, NaN handling."""

import json
import math

import numpy as np

import pytest

from syncdpo_jax.eval import write_report


def test_write_report_json_and_markdown(tmp_path):
  results = {
      "sft": {
          "desync": (0.12, 0.03),
          "av_align": (0.41, 0.05),
          "event_f1": (0.6, float("nan")),
          "num_skipped": 2,
          "skipped": {"silent_audio": 2},
      },
      "syncdpo": {"desync": (0.05, 0.01), "av_align": 0.55, "event_f1": (0.8, 0.04), "fd_logmel_proxy": 3.5},
  }
  paths = write_report(results, str(tmp_path / "eval"))
  with open(paths["json"]) as f:
    table = json.load(f)
  assert set(table) == {"sft", "syncdpo"}
  assert table["sft"]["desync"] == 0.12 and table["sft"]["desync_ci95"] == 0.03
  assert table["sft"]["event_f1_ci95"] is None  # NaN -> null: strict JSON
  assert table["syncdpo"]["av_align"] == 0.55 and "av_align_ci95" not in table["syncdpo"]
  assert table["sft"]["skipped"] == {"silent_audio": 2}
  md = open(paths["markdown"]).read().splitlines()
  header = md[0]
  assert header.startswith("| run | desync | av_align | event_f1 |") and "fd_logmel_proxy" in header
  rows = {line.split("|")[1].strip(): line for line in md[2:4]}
  assert "0.12 ± 0.03" in rows["sft"] and "0.6 ± n/a" in rows["sft"] and "0.05 ± 0.01" in rows["syncdpo"]
  assert len(header.split("|")) == len(rows["sft"].split("|"))


def test_missing_required_metric_is_null_with_warning(tmp_path):
  with pytest.warns(UserWarning, match="event_f1"):
    paths = write_report({"base": {"desync": 0.3, "av_align": (0.2, 0.1)}}, str(tmp_path))
  table = json.load(open(paths["json"]))
  assert table["base"]["event_f1"] is None and not math.isnan(table["base"]["desync"])


def test_bad_value_shape_is_a_clear_error(tmp_path):
  with pytest.raises(ValueError, match="mean, ci95"):
    write_report({"x": {"desync": (1.0, 2.0, 3.0), "av_align": 0.0, "event_f1": 0.0}}, str(tmp_path))


def test_quality_gate_positions_verdicts_and_masking():
  from syncdpo_jax.eval import quality

  video_keys = quality.GATED["video"]
  anchor = {k: {"floor": 1.0, "shuffled": 5.0, "noise": 11.0} for k in video_keys}
  anchor["fd_logmel_proxy"] = {"floor": 2.0, "shuffled": 4.0, "noise": 22.0}

  def fds(audio=2.2, **video):  # every video group at 1.4 (position 0.1) unless given
    out = {k: 1.4 for k in video_keys}
    out.update({f"fd_video_{g}": v for g, v in video.items()}, fd_logmel_proxy=audio)
    return out

  ok = quality.verdict(fds(layout=1.8), anchor, "joint")
  assert ok["quality_gate"] == "pass"
  # The stream's position is its worst group's, named beside it; every group's position is reported.
  np.testing.assert_allclose(
      [
          ok["gate_video"],
          ok["gate_audio"],
          ok["noise_pos_video"],
          ok["noise_pos_audio"],
          ok["gate_video_motion"],
      ],
      [0.2, 0.1, 0.08, 0.01, 0.1],
  )
  assert ok["gate_video_worst"] == "fd_video_layout" and ok["gate_audio_worst"] == "fd_logmel_proxy"
  # One group beyond the gate fails the stream, however near the others are.
  bad_video = fds(grid=3.0)
  assert quality.verdict(bad_video, anchor, "joint")["quality_gate"] == "fail"
  assert quality.verdict(bad_video, anchor, "joint")["gate_video_worst"] == "fd_video_grid"
  # joint needs both streams; v2a judges only the audio it generates, a2v only the video.
  assert quality.verdict(bad_video, anchor, "v2a")["quality_gate"] == "pass"
  assert set(quality.verdict(bad_video, anchor, "v2a")) == {
      "gate_audio",
      "gate_audio_worst",
      "noise_pos_audio",
      "quality_gate",
  }
  assert quality.verdict(bad_video, anchor, "a2v")["quality_gate"] == "fail"
  # Anchors that do not separate (too few clips) cannot pass anyone.
  flat = dict(anchor, fd_video_edges={"floor": 3.0, "shuffled": 3.0, "noise": 3.0})
  v = quality.verdict(fds(), flat, "a2v")
  assert v["quality_gate"] == "fail" and v["gate_video_worst"] == "fd_video_edges"
  row = {"desync": 0.3, "desync_ci95": 0.1, "av_align": 0.5, "fd_video_proxy": 9.0, "quality_gate": "fail"}
  masked = quality.mask_failed(row, ("desync", "av_align", "event_f1"))
  assert masked["desync"] is None and masked["desync_ci95"] is None and masked["av_align"] is None
  assert masked["fd_video_proxy"] == 9.0 and "event_f1" not in masked
  assert quality.mask_failed(dict(row, quality_gate="pass"), ("desync",))["desync"] == 0.3


def test_shuffled_cells_anchor_keeps_the_pieces_and_moves_them():
  import jax
  from syncdpo_jax.eval import quality

  x = jax.random.normal(jax.random.key(0), (3, 4, 2, 2, 5))
  y = np.asarray(quality.shuffle_cells(jax.random.key(1), x))

  def cells(a):
    rows = np.asarray(a).reshape(-1, 5)
    return rows[np.lexsort(rows.T[::-1])]

  np.testing.assert_array_equal(cells(y), cells(x))  # the same cells (each C-vector kept whole) ...
  assert np.mean(np.all(y.reshape(-1, 5) == np.asarray(x).reshape(-1, 5), axis=1)) < 0.2  # ... elsewhere
