"""The SyncDPO reproduction experiment: plan the runs, train them, score them, and test the paper's claims.

Claims of the SyncDPO paper, and how each is read off this experiment:
  1. SyncDPO improves temporal alignment more than continued SFT and more than conventional DPO:
     paired per-clip differences syncdpo - sft_cont and syncdpo - dpo_rank, in-distribution split.
  2. Rule-based negatives cost almost nothing, sampling-and-ranking pairs is expensive: seconds and
     sampler forward passes per preference pair, and their ratio.
  3. Replace and Scale are the best perturbations for the precision/quality trade-off: each
     perturbation alone (only_<rule>) vs continued SFT, ranked by sync gain and quality-proxy cost.
  4. The coarse -> subtle curriculum helps: syncdpo - syncdpo_fixed.
  5. It generalises out of distribution: syncdpo - sft_cont on the OOD split.

Sync metrics: desync (mean |estimated offset|, s, lower is better), event_f1 and av_align (higher is
better). Paired differences use the same eval clips for both runs (per_clip.json of the eval runs;
with several seeds a clip's value is its mean over seeds first); a difference "holds" when its 95%
confidence interval excludes 0 in the claimed direction.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import ml_collections
import numpy as np

from syncdpo_jax import perturb
from syncdpo_jax.eval import stats as stats_lib
from syncdpo_jax.eval import report as report_lib

# metric -> +1 when higher is better, -1 when lower is better.
SYNC_METRICS = {"desync": -1, "event_f1": +1, "av_align": +1}
# Smallest difference that counts (metric units): a paired CI can exclude 0 for differences far below
# what the metric resolves (e.g. 1 ms of estimated offset), and those are not effects.
MIN_EFFECT = {"desync": 0.01, "event_f1": 0.01, "av_align": 0.01}
QUALITY_METRICS = {"v2a": "fd_logmel_proxy", "a2v": "fd_video_proxy", "joint": "fd_logmel_proxy"}


# ----------------------------------------------------------------------------- planning


def ablation_rules(config: ml_collections.ConfigDict) -> list[str]:
  """The perturbations trained alone (config.reproduce.ablation_rules; empty = all), in names() order."""
  chosen = tuple(config.reproduce.ablation_rules) or tuple(perturb.names())
  unknown = sorted(set(chosen) - set(perturb.names()))
  if unknown:
    raise ValueError(
        f"config.reproduce.ablation_rules: unknown perturbations {unknown}; expected names "
        f"from {perturb.names()} (or () for all)."
    )
  return [n for n in perturb.names() if n in chosen]


def post_run_names(config: ml_collections.ConfigDict) -> list[str]:
  """Post-training runs, in training order (each from the same base, at the same number of steps)."""
  return (
      ["sft_cont", "syncdpo", "syncdpo_fixed"] + [f"only_{n}" for n in ablation_rules(config)] + ["dpo_rank"]
  )


def _seeded(name: str, seed: int, seeds) -> str:
  return name if len(seeds) == 1 else f"{name}@s{seed}"


def run_configs(config: ml_collections.ConfigDict, workdir: str) -> dict[str, ml_collections.ConfigDict]:
  """{run name: complete run config} for the base SFT run and every post-training run and seed."""
  r = config.reproduce
  runs = {}

  base = config.copy_and_resolve_references()
  with base.unlocked():  # the CLI locks configs; a run config has no `reproduce` section
    del base.reproduce
  base.mode = "sft"
  base.train.num_steps = int(r.base_steps)
  base.optim.lr = float(r.base_lr)
  base.optim.warmup_steps = 30
  base.optim.schedule = "cosine"
  runs["base"] = base
  base_dir = os.path.join(workdir, "runs", "base")

  for seed in r.seeds:
    for name in post_run_names(config):
      c = base.copy_and_resolve_references()
      c.seed = int(seed)
      c.init_from = base_dir
      c.train.num_steps = int(r.post_steps)
      c.train.log_every = 2
      c.data.batch_size = int(r.post_batch_size)
      c.optim.lr = float(r.post_lr)
      c.optim.schedule = "constant"
      c.optim.warmup_steps = max(1, int(r.post_steps) // 8)
      if name != "sft_cont":
        c.mode = "dpo"
        c.dpo.beta = float(r.dpo_beta)
        n = int(r.post_steps)
        c.curriculum.schedule = "staged"
        c.curriculum.stage_boundaries = (n // 3, 2 * n // 3)
      if name == "syncdpo_fixed":
        c.curriculum.schedule = "fixed"
        c.curriculum.difficulty = float(r.fixed_difficulty)
        c.curriculum.use_stage_mixes = False
      elif name.startswith("only_"):
        rule = name[len("only_") :]
        c.curriculum.use_stage_mixes = False
        c.perturb.mix = {k: (1.0 if k == rule else 0.0) for k in perturb.names()}
      elif name == "dpo_rank":
        c.dpo.pairs = "sample_rank"
        c.dpo.rank.num_candidates = int(r.rank_candidates)
        c.dpo.rank.num_pairs = int(r.rank_pairs)
        c.dpo.rank.mode = str(r.rank_mode)
      runs[_seeded(name, seed, r.seeds)] = c
  return runs


def eval_groups(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
  """Eval calls: [{'name', 'split', 'modes', 'runs'}]; the first split's main group also scores the base."""
  r = config.reproduce
  main = [n for n in post_run_names(config) if n in r.main_runs]
  ablations = [n for n in post_run_names(config) if n not in r.main_runs]
  groups = []
  for i, split in enumerate(r.splits):
    # The base model is context (what post-training started from), scored on the first split only.
    groups.append(
        {
            "name": f"{split}_main",
            "split": split,
            "modes": tuple(r.modes),
            "runs": (["base"] if i == 0 else []) + main,
        }
    )
    if split in r.ablation_splits:
      groups.append(
          {"name": f"{split}_ablations", "split": split, "modes": tuple(r.ablation_modes), "runs": ablations}
      )
  return groups


# ----------------------------------------------------------------------------- statistics


def clip_values(per_clip: dict, run: str, mode: str, metric: str, seeds) -> np.ndarray:
  """Per-clip values of `run/mode` averaged over seeds: float [num_clips] (NaN where skipped)."""
  rows = [per_clip[f"{_seeded(run, s, seeds)}/{mode}"][metric] for s in seeds]
  with np.errstate(invalid="ignore"):
    return np.nanmean(np.asarray(rows, np.float64), axis=0) if len(rows) > 1 else np.asarray(rows[0])


def paired_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
  """Mean and 95% CI half-width of a - b over the clips where both are finite; and their count."""
  r = stats_lib.paired_difference(b, a)
  return r["mean"], r["ci95"], r["n"]


def verdict(mean: float, ci: float, sign: int, min_effect: float = 0.0) -> str:
  """'better' / 'worse' when the CI excludes 0 in the metric's good / bad direction and the difference is
  at least `min_effect`; else 'n.s.'."""
  if not np.isfinite(mean) or not np.isfinite(ci):
    return "n/a"
  if abs(mean) < min_effect:
    return "n.s."
  if mean * sign - ci > 0:
    return "better"
  if mean * sign + ci < 0:
    return "worse"
  return "n.s."


def compare(per_clip: dict, run: str, baseline: str, modes, seeds, metrics=SYNC_METRICS) -> list[dict]:
  """Paired comparisons run - baseline for each mode and metric (rows with mean, ci95, n, verdict)."""
  rows = []
  for mode in modes:
    for metric, sign in metrics.items():
      try:
        a = clip_values(per_clip, run, mode, metric, seeds)
        b = clip_values(per_clip, baseline, mode, metric, seeds)
      except KeyError:  # joint generation has no ground-truth events: no event_f1
        continue
      mean, ci, n = paired_difference(a, b)
      rows.append(
          {
              "run": run,
              "baseline": baseline,
              "mode": mode,
              "metric": metric,
              "diff": mean,
              "ci95": ci,
              "n": n,
              "verdict": verdict(mean, ci, sign, MIN_EFFECT[metric]),
          }
      )
  return rows


def claim_status(rows: list[dict]) -> str:
  """A claim tested by several comparisons holds when at least one is significantly better and none is
  significantly worse; it fails when one is worse and none better; otherwise not shown."""
  v = [r["verdict"] for r in rows]
  if "better" in v and "worse" not in v:
    return "holds"
  if "worse" in v and "better" not in v:
    return "does not hold (worse)"
  if "better" in v and "worse" in v:
    return "mixed"
  return "not shown (no significant difference)"


def perturbation_ranking(per_clip: dict, tables: dict, modes, seeds, rules) -> list[dict]:
  """Each only_<rule> run (rule in `rules`) vs continued SFT: sync gain = mean over modes and sync
  metrics of the paired difference signed so that + is better (desync in s, F1 and AV-Align in [0, 1]:
  comparable units), and the quality-proxy change (+ = further from the real data); sorted by sync gain."""
  out = []
  for rule in rules:
    run = f"only_{rule}"
    gains, quality = [], []
    for mode in modes:
      for metric, sign in SYNC_METRICS.items():
        try:
          a = clip_values(per_clip, run, mode, metric, seeds)
          b = clip_values(per_clip, "sft_cont", mode, metric, seeds)
        except KeyError:
          continue
        mean, _, _ = paired_difference(a, b)
        if np.isfinite(mean):
          gains.append(sign * mean)
      q = QUALITY_METRICS[mode]
      qa = [tables[f"{_seeded(run, s, seeds)}/{mode}"].get(q) for s in seeds]
      qb = [tables[f"{_seeded('sft_cont', s, seeds)}/{mode}"].get(q) for s in seeds]
      if None not in qa and None not in qb:
        quality.append(float(np.mean(qa) - np.mean(qb)))
    out.append(
        {
            "rule": rule,
            "sync_gain": float(np.mean(gains)) if gains else float("nan"),
            "quality_proxy_change": float(np.mean(quality)) if quality else float("nan"),
        }
    )
  return sorted(out, key=lambda d: -d["sync_gain"] if np.isfinite(d["sync_gain"]) else np.inf)


# ----------------------------------------------------------------------------- reporting


def _fmt(x, nd=3) -> str:
  return "n/a" if x is None or not np.isfinite(x) else f"{x:+.{nd}f}"


def claims_markdown(claims: list[dict], cost: dict, ranking: list[dict]) -> str:
  lines = [
      "| claim | comparison | mode | metric | diff (95% CI) | n | verdict |",
      "|---|---|---|---|---|---|---|",
  ]
  for c in claims:
    for r in c["rows"]:
      lines.append(
          f"| {c['id']} | {r['run']} - {r['baseline']} | {r['mode']} | {r['metric']} | "
          f"{_fmt(r['diff'])} ± {_fmt(r['ci95']).lstrip('+')} | {r['n']} | {r['verdict']} |"
      )
  lines.append("")
  lines += [f"- **Claim {c['id']}** ({c['text']}): {c['status']}" for c in claims]
  lines += [
      "",
      "Perturbations alone vs continued SFT (sync gain: mean paired sync difference over modes "
      "and metrics, + = better; quality proxy change: + = further from real data):",
      "",
      "| rank | rule | sync gain | quality proxy change |",
      "|---|---|---|---|",
  ]
  lines += [
      f"| {i + 1} | {d['rule']} | {_fmt(d['sync_gain'], 4)} | {_fmt(d['quality_proxy_change'], 3)} |"
      for i, d in enumerate(ranking)
  ]
  lines += [
      "",
      "Cost of one preference pair:",
      "",
      "| pairs | seconds / pair | sampler forward passes / pair |",
      "|---|---|---|",
  ]
  for k in ("rules", "sample_rank"):
    if k in cost:
      lines.append(
          f"| {k} | {cost[k]['seconds_per_pair']:.3g} | {cost[k]['sampler_forward_passes_per_pair']} |"
      )
  if "ratio_seconds" in cost:
    lines.append(f"\nsampling-and-ranking / rule-based seconds per pair: **{cost['ratio_seconds']:.3g}x**")
  return "\n".join(lines) + "\n"


def claim3_status(order: list[str]) -> str:
  """Claim 3 from the perturbations ranked by sync gain (best first)."""
  if not {"replace", "scale"} <= set(order):
    return "not tested: replace and scale must both be among config.reproduce.ablation_rules"
  of = f"of {len(order)} ({', '.join(order)})"
  if set(order[:2]) == {"replace", "scale"}:
    return f"holds: replace and scale rank first and second {of}"
  return (
      f"does not hold: the top two are {order[0]} and {order[1]}; replace ranks "
      f"{order.index('replace') + 1}, scale ranks {order.index('scale') + 1} {of}"
  )


def analyse(config, per_clip: dict, tables: dict, cost: dict) -> tuple[list[dict], list[dict]]:
  """The five claims as comparison rows + a status each, and the perturbation ranking.

  per_clip / tables: {split: {'<run>/<mode>': ...}} as gathered from the eval groups.
  """
  r = config.reproduce
  seeds, modes, abl_modes = tuple(r.seeds), tuple(r.modes), tuple(r.ablation_modes)
  test = per_clip["test"]
  ranking = perturbation_ranking(test, tables["test"], abl_modes, seeds, ablation_rules(config))
  claims = [
      {
          "id": 1,
          "text": "SyncDPO aligns better than continued SFT and than conventional DPO",
          "rows": (
              compare(test, "syncdpo", "sft_cont", modes, seeds)
              + compare(test, "syncdpo", "dpo_rank", modes, seeds)
          ),
      },
      {"id": 2, "text": "rule-based pairs are cheap, sampling-and-ranking pairs are expensive", "rows": []},
      {"id": 3, "text": "Replace and Scale are the best single perturbations", "rows": []},
      {
          "id": 4,
          "text": "the coarse-to-subtle curriculum helps",
          "rows": compare(test, "syncdpo", "syncdpo_fixed", abl_modes, seeds),
      },
      {
          "id": 5,
          "text": "SyncDPO's gain over SFT holds out of distribution",
          "rows": compare(per_clip["ood"], "syncdpo", "sft_cont", modes, seeds) if "ood" in per_clip else [],
      },
  ]
  for c in claims:
    c["status"] = claim_status(c["rows"])
  if "ratio_seconds" in cost:
    ratio = cost["ratio_seconds"]
    passes = cost["sample_rank"]["sampler_forward_passes_per_pair"]
    claims[1]["status"] = (
        f"holds: {ratio:.0f}x the seconds per pair, {passes} sampler forward passes per " "pair against none"
        if ratio > 10
        else f"not shown: ratio {ratio:.2f}x"
    )
  claims[2]["status"] = claim3_status([d["rule"] for d in ranking])
  return claims, ranking


# ----------------------------------------------------------------------------- driver


def _atomic_write(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _train_one(config: ml_collections.ConfigDict, workdir: str) -> float:
  """Worker: one training run (resumes or skips a finished one). Returns its wall time in seconds."""
  from syncdpo_jax.train import loop

  t0 = time.time()
  loop.train(config, workdir)
  return time.time() - t0


def _eval_one(config: ml_collections.ConfigDict, out: str, checkpoints) -> tuple[dict, dict, float]:
  """Worker: one eval group. Returns (report table, per-clip values, wall seconds)."""
  from syncdpo_jax.runs import evaluate

  t0 = time.time()
  table = evaluate.evaluate(config, out, checkpoints=checkpoints)
  with open(os.path.join(out, "eval", "per_clip.json")) as f:
    per_clip = json.load(f)
  return table, per_clip, time.time() - t0


def _pool(workers: int):
  """Worker processes for independent runs: compilation is mostly single-threaded and these models are
  too small to keep 2 cores busy, so two runs side by side finish sooner than one after the other."""
  import concurrent.futures
  import multiprocessing

  return concurrent.futures.ProcessPoolExecutor(
      max_workers=workers, mp_context=multiprocessing.get_context("spawn")
  )


def run_tasks(pool, tasks: dict[str, tuple], workers: int, on_done) -> None:
  """Runs `tasks` ({name: (dependencies, fn, args)}, in priority order) on `pool`.

  A task starts once every task it depends on has finished, at most `workers` at a time; when a slot
  frees, the first ready task in order takes it. on_done(name, fn's result) is called as each finishes;
  a task that raises stops the schedule (the exception propagates once the running tasks finish).
  """
  import concurrent.futures

  pending, running, done = dict(tasks), {}, set()
  while pending or running:
    for name in list(pending):
      deps, fn, args = pending[name]
      if len(running) < workers and set(deps) <= done:
        running[pool.submit(fn, *args)] = name
        del pending[name]
    if not running:
      raise ValueError(f"tasks {sorted(pending)} depend on tasks that are not in the list")
    finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
    for fut in finished:
      name = running.pop(fut)
      on_done(name, fut.result())
      done.add(name)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains every run (resuming finished/partial ones), evaluates, and writes WORKDIR/results.{md,json}."""
  from syncdpo_jax import data as data_lib
  from syncdpo_jax.runs import pairs

  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  # Runs of the same shapes compile the same programs: share them across runs and re-runs.
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(workdir, "jax_cache"))
  t_start = time.time()
  elapsed = lambda: f"[{time.time() - t_start:.0f}s]"
  timings: dict[str, float] = {}
  r = config.reproduce
  seeds = tuple(r.seeds)
  data_lib.build_dataset(config.data)
  runs = run_configs(config, workdir)
  with open(os.path.join(workdir, "runs.json"), "w") as f:
    json.dump({n: json.loads(c.to_json_best_effort()) for n, c in runs.items()}, f, indent=1)
  run_dir = lambda name: os.path.join(workdir, "runs", name)

  # One task list in priority order: the base, the post-training runs (the sampling-and-ranking run first:
  # it samples its pairs before training, the longest), then the eval groups, each started as soon as
  # the runs it scores are done, so they fill the cores the last training runs leave idle.
  post = sorted((n for n in runs if n != "base"), key=lambda n: not n.startswith("dpo_rank"))
  tasks: dict[str, tuple] = {"train/base": ((), _train_one, (runs["base"], run_dir("base")))}
  tasks.update({f"train/{n}": (("train/base",), _train_one, (runs[n], run_dir(n))) for n in post})
  groups = {}
  for g in eval_groups(config):
    ec = runs["base"].copy_and_resolve_references()
    ec.mode = "eval"
    ec.eval.split = g["split"]
    ec.eval.modes = g["modes"]
    names = [
        n if n == "base" else _seeded(n, s, seeds)
        for n in g["runs"]
        for s in (seeds[:1] if n == "base" else seeds)
    ]  # one base for all seeds
    groups[f"eval/{g['name']}"] = g
    tasks[f"eval/{g['name']}"] = (
        tuple(f"train/{n}" for n in names),
        _eval_one,
        (ec, os.path.join(workdir, "eval", g["name"]), [(n, run_dir(n)) for n in names]),
    )
  # SyncDPO's cost per pair needs no trained model: measured while the base trains (on a shared core, so
  # if anything an overestimate, as the sampling-and-ranking cost measured beside another run is).
  tasks["cost/rules"] = (
      (),
      pairs.rule_pair_cost,
      (runs[_seeded("syncdpo", seeds[0], seeds)], int(r.post_batch_size), 20),
  )
  print(
      f"=== {elapsed()} {len(tasks)} tasks ({len(post)} post-training runs from one base, "
      f"{len(groups)} eval groups), {r.workers} at a time",
      flush=True,
  )

  per_clip: dict[str, dict] = {}
  tables: dict[str, dict] = {}
  all_tables: dict[str, dict] = {}
  cost: dict[str, Any] = {}

  def on_done(name: str, result) -> None:
    if name == "cost/rules":
      cost["rules"] = result
      print(f"=== {elapsed()} done {name}", flush=True)
      return
    if name.startswith("train/"):
      timings[name] = result
    else:
      table, pc, timings[name] = result
      split = groups[name]["split"]
      per_clip.setdefault(split, {}).update(pc)
      tables.setdefault(split, {}).update(table)
      all_tables[name[len("eval/") :]] = table
    print(f"=== {elapsed()} done {name} ({timings[name]:.0f}s)", flush=True)

  with _pool(int(r.workers)) as pool:
    run_tasks(pool, tasks, int(r.workers), on_done)
  all_tables = {g["name"]: all_tables[g["name"]] for g in groups.values()}  # report in a fixed order

  rank_cost = os.path.join(run_dir(_seeded("dpo_rank", seeds[0], seeds)), "pairs_cost.json")
  if os.path.exists(rank_cost):
    with open(rank_cost) as f:
      cost["sample_rank"] = json.load(f)
    cost["ratio_seconds"] = cost["sample_rank"]["seconds_per_pair"] / max(
        cost["rules"]["seconds_per_pair"], 1e-12
    )

  claims, ranking = analyse(config, per_clip, tables, cost)
  timings["total"] = time.time() - t_start
  results = {
      "variant": r.variant,
      "seeds": list(seeds),
      "tables": all_tables,
      "claims": claims,
      "perturbation_ranking": ranking,
      "cost": cost,
      "timings_s": timings,
  }
  md = [
      f"# SyncDPO reproduction ({r.variant})",
      "",
      f"Base SFT {r.base_steps} steps; every post-training run {r.post_steps} steps at batch "
      f"{r.post_batch_size} from it; seeds {list(seeds)}; {config.eval.num_clips} eval clips; "
      f"{config.sample.num_steps} sampler steps. Total {timings['total'] / 60:.1f} min.",
      "",
  ]
  for name, table in all_tables.items():
    md += [f"## Eval: {name}", "", report_lib.to_markdown(table)]
  md += ["## Claims", "", claims_markdown(claims, cost, ranking)]
  _atomic_write(
      os.path.join(workdir, "results.json"),
      json.dumps(report_lib.json_safe(results), indent=1, allow_nan=False) + "\n",
  )
  _atomic_write(os.path.join(workdir, "results.md"), "\n".join(md))
  print("\n".join(md), flush=True)
  return results
