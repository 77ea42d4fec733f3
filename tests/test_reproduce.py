"""The reproduction experiment's plan and statistics (the runs themselves are the experiment, not a test)."""

import os
import sys

import numpy as np
import pytest

from syncdpo_jax import config_lib, perturb
from syncdpo_jax.experiments import reproduce as rp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import reproduce as reproduce_config  # noqa: E402


@pytest.mark.parametrize("variant", ["quick", "full"])
def test_every_run_is_a_valid_config_differing_only_where_the_ablation_says(variant):
  c = reproduce_config.get_config(variant)
  c.lock()  # as launch/reproduce.py's config flag hands it over
  runs = rp.run_configs(c, "/w")
  seeds = tuple(c.reproduce.seeds)
  assert len(runs) == 1 + len(seeds) * len(rp.post_run_names(c))
  for name, rc in runs.items():
    config_lib.validate(rc)
    assert "reproduce" not in rc
    if name != "base":
      assert rc.init_from == os.path.join("/w", "runs", "base")
      assert (
          rc.train.num_steps == c.reproduce.post_steps and rc.data.batch_size == c.reproduce.post_batch_size
      )
  s = rp._seeded
  ref = runs[s("syncdpo", seeds[0], seeds)]
  assert ref.mode == "dpo" and ref.curriculum.schedule == "staged" and ref.curriculum.use_stage_mixes
  assert runs[s("sft_cont", seeds[0], seeds)].mode == "sft"
  fixed = runs[s("syncdpo_fixed", seeds[0], seeds)]
  assert fixed.curriculum.schedule == "fixed" and not fixed.curriculum.use_stage_mixes
  rules = rp.ablation_rules(c)
  assert {"replace", "scale"} <= set(rules) and (variant == "quick" or rules == perturb.names())
  for rule in rules:
    only = runs[s(f"only_{rule}", seeds[0], seeds)]
    assert {k for k, v in dict(only.perturb.mix).items() if v > 0} == {rule}
  rank = runs[s("dpo_rank", seeds[0], seeds)]
  assert rank.dpo.pairs == "sample_rank" and ref.dpo.pairs == "rules"
  # Everything not named by an ablation is shared with SyncDPO (same optimizer, beta, data, seed).
  for other in (fixed, rank):
    for section in ("optim", "data", "objective", "model", "sample"):
      assert other[section].to_dict() == ref[section].to_dict(), section


def test_paired_difference_and_verdicts():
  a = np.array([1.0, 2.0, 3.0, np.nan, 5.0])
  b = np.array([0.5, 1.5, 2.5, 1.0, np.nan])
  mean, ci, n = rp.paired_difference(a, b)
  assert n == 3 and mean == pytest.approx(0.5) and ci == pytest.approx(0.0)
  assert rp.verdict(0.5, 0.1, +1) == "better" and rp.verdict(0.5, 0.1, -1) == "worse"
  assert rp.verdict(0.05, 0.1, +1) == "n.s." and rp.verdict(float("nan"), 0.1, 1) == "n/a"
  assert rp.verdict(0.005, 0.001, +1, min_effect=0.01) == "n.s."  # significant but below resolution
  rows = lambda *v: [{"verdict": x} for x in v]
  assert rp.claim_status(rows("better", "n.s.")) == "holds"
  assert rp.claim_status(rows("worse", "n.s.")).startswith("does not hold")
  assert rp.claim_status(rows("better", "worse")) == "mixed"
  assert rp.claim_status(rows("n.s.")).startswith("not shown")


def test_compare_is_paired_over_clips_and_averages_seeds():
  rng = np.random.default_rng(0)
  base = rng.uniform(0.2, 0.6, 16)
  per_clip = {
      "x@s0/v2a": {"desync": list(base - 0.1), "event_f1": list(base)},
      "x@s1/v2a": {"desync": list(base - 0.1), "event_f1": list(base)},
      "y@s0/v2a": {"desync": list(base), "event_f1": list(base)},
      "y@s1/v2a": {"desync": list(base), "event_f1": list(base)},
  }
  rows = rp.compare(per_clip, "x", "y", ("v2a",), (0, 1))
  by = {r["metric"]: r for r in rows}
  # desync lower by exactly 0.1 on every clip: a paired test sees it although the clips vary a lot.
  assert by["desync"]["diff"] == pytest.approx(-0.1) and by["desync"]["verdict"] == "better"
  assert by["event_f1"]["diff"] == 0.0 and by["event_f1"]["verdict"] == "n.s."  # identical runs
  assert "av_align" not in by  # not recorded: skipped, not invented


def test_claim3_reads_the_ranking_and_refuses_unknown_rules():
  assert rp.claim3_status(["scale", "replace", "shift"]).startswith("holds")
  s = rp.claim3_status(["shift", "replace", "swap", "scale"])
  assert s.startswith("does not hold") and "replace ranks 2, scale ranks 4 of 4" in s
  assert rp.claim3_status(["shift", "replace"]).startswith("not tested")
  c = reproduce_config.get_config("quick")
  c.reproduce.ablation_rules = ("replace", "warp")
  with pytest.raises(ValueError, match="ablation_rules.*'warp'"):
    rp.ablation_rules(c)


def test_run_tasks_respects_dependencies_priority_and_the_worker_limit():
  import concurrent.futures
  import threading
  import time

  lock, state, log = threading.Lock(), {"running": 0, "peak": 0}, []

  def work(name, secs):
    with lock:
      state["running"] += 1
      state["peak"] = max(state["peak"], state["running"])
      log.append(("start", name))
    time.sleep(secs)
    with lock:
      state["running"] -= 1
    return name

  tasks = {
      "base": ((), work, ("base", 0.05)),
      "a": (("base",), work, ("a", 0.2)),
      "b": (("base",), work, ("b", 0.05)),
      "c": (("base",), work, ("c", 0.05)),
      "eval_b": (("b",), work, ("eval_b", 0.01)),
      "eval_all": (("a", "b", "c"), work, ("eval_all", 0.01)),
  }
  finished = []
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    rp.run_tasks(pool, tasks, 2, lambda name, result: finished.append((name, result)))
  starts = [n for kind, n in log if kind == "start"]
  assert state["peak"] == 2 and sorted(starts) == sorted(tasks) and all(n == r for n, r in finished)
  for name, (deps, _, _) in tasks.items():  # every dependency finished before its dependant started
    assert all(finished.index((d, d)) < starts.index(name) for d in deps), name
  # While `a` runs, the second slot takes b, c, then eval_b (ready) before eval_all (waits on a).
  assert starts.index("eval_b") < starts.index("eval_all") and starts[-1] == "eval_all"
  with pytest.raises(ValueError, match="not in the list"):
    rp.run_tasks(pool, {"x": (("missing",), work, ("x", 0))}, 2, lambda *_: None)
