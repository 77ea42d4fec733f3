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
