"""Paired comparisons (eval/stats.py, evaluate.paired_differences): the arithmetic, checked by hand and
by simulation."""

import math

import numpy as np
import pytest
import scipy.stats

from syncdpo_jax.eval import stats
from syncdpo_jax.runs import evaluate


def test_paired_difference_by_hand():
  a = [0.10, 0.20, 0.30, float("nan"), 0.50]
  b = [0.12, 0.19, 0.35, 0.40, 0.52]
  d = np.array([0.02, -0.01, 0.05, 0.02])  # the NaN pair drops out
  r = stats.paired_difference(a, b)
  assert r["n"] == 4
  assert r["mean"] == pytest.approx(d.mean())
  assert r["median"] == pytest.approx(np.median(d))
  assert r["sd"] == pytest.approx(d.std(ddof=1))
  assert r["ci95"] == pytest.approx(scipy.stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2)
  lo, hi = r["median_ci95"]
  assert d.min() - 1e-12 <= lo <= r["median"] <= hi <= d.max() + 1e-12
  assert stats.paired_difference(a, b) == r  # the bootstrap has a fixed seed
  with pytest.raises(ValueError, match="same clips and seeds"):
    stats.paired_difference([1.0, 2.0], [1.0])
  assert math.isnan(stats.paired_difference([1.0], [2.0])["ci95"])


def test_the_ci_covers_the_true_difference_at_its_level_and_pairing_removes_clip_spread():
  # 400 simulated evals of 32 clips: a clip-level spread of 0.1 s shared by both runs, a true effect of
  # -0.02 s and per-sample noise of 0.03 s. The 95% CI covers -0.02 in ~95% of them, and its width is
  # set by the 0.03 * sqrt(2) noise of a difference, not the 0.1 clip spread.
  rng = np.random.default_rng(0)
  covered, widths = 0, []
  for _ in range(400):
    clip = rng.normal(0.2, 0.1, 32)
    a = clip + rng.normal(0, 0.03, 32)
    b = clip - 0.02 + rng.normal(0, 0.03, 32)
    r = stats.paired_difference(a, b)
    covered += abs(r["mean"] + 0.02) <= r["ci95"]
    widths.append(r["ci95"])
  assert 0.92 <= covered / 400 <= 0.98
  want = stats.resolvable_difference(0.03 * math.sqrt(2), 32)
  assert np.mean(widths) == pytest.approx(want, rel=0.1)


def test_pairs_needed_inverts_resolvable_difference():
  n = stats.pairs_needed(0.05, 0.02)
  assert stats.resolvable_difference(0.05, n) <= 0.02 < stats.resolvable_difference(0.05, n - 1)
  # ~ (1.96 * 0.05 / 0.02)^2 = 24 pairs, plus the t quantile's small-n excess.
  assert 24 <= n <= 28


def test_eval_pairs_rows_of_the_same_mode_and_sampler_that_pass_the_gate():
  def row(values, gate="pass"):
    return {"quality_gate": gate, "per_clip": {m: list(values) for m in evaluate.SYNC_METRICS}}

  results = {
      "real": row([0.0, 0.0, 0.0], "real data"),
      "sft/v2a": row([0.10, 0.20, 0.30]),
      "dpo/v2a": row([0.08, 0.17, 0.29]),
      "sft/v2a/synccfg_off": row([0.1, 0.2, 0.3]),
      "dpo/v2a/synccfg_off": row([0.1, 0.2, 0.3], "fail"),
      "sft/a2v": row([0.1, 0.2, 0.3]),  # no dpo/a2v row
  }
  paired = evaluate.paired_differences(results, ["sft", "dpo"])
  assert list(paired) == ["dpo - sft"]
  assert list(paired["dpo - sft"]) == ["v2a"]
  d = paired["dpo - sft"]["v2a"]["gt_median_error_s"]
  assert d["n"] == 3 and d["mean"] == pytest.approx(-0.02)
  md = evaluate.paired_markdown(paired, 1, 3)
  assert "| dpo - sft | v2a | gt_median_error_s | -0.02 [" in md


def test_eval_with_seeds_pairs_the_same_noise_across_checkpoints(tmp_path_factory):
  # Two names for one checkpoint, 2 seeds x 2 clips: every row holds 4 values per metric, and the two
  # "runs" agree value for value (same clips, same noise), which is what makes their differences paired.
  import json
  import os
  import sys

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import test as test_config
  from syncdpo_jax.train import loop

  c = test_config.get_config("sft")
  c.data.data_dir = str(tmp_path_factory.getbasetemp() / "tfds_shared")
  c.train.num_steps = 1
  run = str(tmp_path_factory.mktemp("seeds") / "run")
  loop.train(c, run)
  e = test_config.get_config("eval")
  e.data.data_dir = c.data.data_dir
  e.eval.update(
      num_clips=2, num_seeds=2, modes=("v2a",), probe_clips=0, sync_cfg_both=False, num_samples_to_write=0
  )
  out = str(tmp_path_factory.mktemp("seeds_eval"))
  evaluate.evaluate(e, out, [("a", run), ("b", run)])
  per_clip = json.load(open(os.path.join(out, "eval", "per_clip.json")))
  a, b = per_clip["a/v2a"], per_clip["b/v2a"]
  assert len(a["gt_abs_offset_s"]) == 4 and len(per_clip["real"]["gt_abs_offset_s"]) == 2
  for m in a:
    np.testing.assert_array_equal(np.asarray(a[m], float), np.asarray(b[m], float))
  cost = json.load(open(os.path.join(out, "eval", "cost.json")))
  assert cost["a/v2a"]["samples"] == 4 and cost["a/v2a"]["score_seconds"] > 0
  assert "b - a" in json.load(open(os.path.join(out, "eval", "paired.json")))
