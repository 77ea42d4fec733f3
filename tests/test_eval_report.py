"""report.json / report.md: schema of the eval contract, CI columns, NaN handling."""
import json
import math

import pytest

from syncdpo_jax.eval import write_report


def test_write_report_json_and_markdown(tmp_path):
    results = {
        "sft": {"desync": (0.12, 0.03), "av_align": (0.41, 0.05), "event_f1": (0.6, float("nan")),
                "num_skipped": 2, "skipped": {"silent_audio": 2}},
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
  anchor = {"video": (1.0, 11.0), "audio": (2.0, 22.0)}
  ok = quality.verdict({"video": 2.0, "audio": 3.0}, anchor, "joint")
  assert ok["quality_gate"] == "pass" and abs(ok["gate_video"] - 0.1) < 1e-9 and abs(ok["gate_audio"] - 0.05) < 1e-9
  # joint needs both streams; v2a judges only the audio it generates, a2v only the video.
  bad_video = {"video": 9.0, "audio": 3.0}
  assert quality.verdict(bad_video, anchor, "joint")["quality_gate"] == "fail"
  assert quality.verdict(bad_video, anchor, "v2a") == {"gate_audio": 0.05, "quality_gate": "pass"}
  assert quality.verdict(bad_video, anchor, "a2v")["quality_gate"] == "fail"
  # Anchors that do not separate (too few clips) cannot pass anyone.
  assert quality.verdict({"video": 0.0}, {"video": (3.0, 3.0)}, "a2v")["quality_gate"] == "fail"
  row = {"desync": 0.3, "desync_ci95": 0.1, "av_align": 0.5, "fd_video_proxy": 9.0, "quality_gate": "fail"}
  masked = quality.mask_failed(row, ("desync", "av_align", "event_f1"))
  assert masked["desync"] is None and masked["desync_ci95"] is None and masked["av_align"] is None
  assert masked["fd_video_proxy"] == 9.0 and "event_f1" not in masked
  assert quality.mask_failed(dict(row, quality_gate="pass"), ("desync",))["desync"] == 0.3
