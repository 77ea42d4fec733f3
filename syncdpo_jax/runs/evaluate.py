"""Evaluation runs: sample from one or more checkpoints and score synchronisation (config.mode='eval').

For each checkpoint and each generation mode in `config.eval.modes`:
  joint  the model generates video and audio for the clip's label;
  v2a    the clip's real video is given, the model generates its audio;
  a2v    the clip's real audio is given, the model generates its video.
The conditional modes isolate timing: the given stream carries the ground-truth event times, so event
F1 is measured against them. Every clip is decoded to pixels and a waveform (codec + Griffin-Lim) and
scored by syncdpo_jax.eval (desync = mean |estimated offset|, AV-Align, event P/R/F1, quality proxies).
A `real` row scores the data itself through the same decode path: the ceiling any model can reach.

Outputs in WORKDIR/eval/: report.json + report.md (rows `<name>/<mode>`), report.png, samples/*.mp4,
per_clip.json ({row: {metric: [value per clip]}}, NaN where a clip was skipped; eval.num_seeds x
eval.num_clips values, seed-major), paired.json (every run after the first minus the first, per row and
sync metric: eval/stats.paired_difference; also a table at the end of report.md), cost.json (seconds
spent sampling and scoring per row), quality.json (the gate's anchors and, per row, every proxy and
video feature group's position).
"""

from __future__ import annotations

import json
import os
import time
import warnings

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from syncdpo_jax import codec as codec_lib  # noqa: E402
from syncdpo_jax import eval as eval_lib  # noqa: E402
from syncdpo_jax import sample as sample_lib  # noqa: E402
from syncdpo_jax.eval import quality  # noqa: E402
from syncdpo_jax.eval import report as report_lib  # noqa: E402
from syncdpo_jax.eval import stats as stats_lib  # noqa: E402
from syncdpo_jax.model import sharding as sharding_lib  # noqa: E402
from syncdpo_jax.train import checkpoint as ckpt_lib  # noqa: E402
from syncdpo_jax.runs import probe as probe_lib  # noqa: E402
from syncdpo_jax.runs.generate import (  # noqa: E402
    abstract_model_on_mesh,
    decode_clips,
    encode_clips,
    generate_in_batches,
    generate_on_mesh,
    load_eval_set,
    make_generate,
    media_clips,
    ruler_codec,
    write_samples,
)
from syncdpo_jax.train import steps  # noqa: E402


def _hit_40ms(r: dict) -> float:
  """0 for a clip with events whose generated stream shows none: missing every event is a score."""
  return 0.0 if r["num_events"] and not np.isfinite(r["hit_rate_40ms"]) else r["hit_rate_40ms"]


# Ground-truth timing of the scored stream (eval/timing.py), per clip: |GT-anchored offset|, the median
# |error| of its matched events, the fraction of events hit within 40 ms.
GT_TIMING = {
    "gt_abs_offset_s": lambda r: abs(r["offset_s"]),
    "gt_median_error_s": lambda r: r["median_abs_error_s"],
    "gt_hit_40ms": _hit_40ms,
}
HEADLINE = (
    "desync",
    "av_align",
    "event_f1",
    "event_timing_error_s",
    *GT_TIMING,
    "fd_logmel_proxy",
    "fd_video_proxy",
    "quality_gate",
    "gate_video",
    "gate_video_worst",
    "gate_audio",
    "noise_pos_video",
    "noise_pos_audio",
)
SYNC_METRICS = ("desync", "av_align", "event_f1", "event_timing_error_s", *GT_TIMING)


def paired_differences(results: dict, runs: list[str]) -> dict:
  """{'<run> - <first run>': {'<mode>[/sampler]': {metric: eval.stats.paired_difference}}}.

  Every checkpoint after the first against the first, row by row (same mode and sampler: the same
  clips and noise), on the sync metrics of rows that both pass the quality gate.
  """
  out = {}
  base = runs[0]
  for run in runs[1:]:
    comp = {}
    for row, res in results.items():
      if not row.startswith(base + "/"):
        continue
      suffix = row[len(base) + 1 :]
      other = results.get(f"{run}/{suffix}")
      if other is None or res.get("quality_gate") != "pass" or other.get("quality_gate") != "pass":
        continue
      comp[suffix] = {
          m: stats_lib.paired_difference(res["per_clip"][m], other["per_clip"][m])
          for m in SYNC_METRICS
          if m in res["per_clip"] and m in other["per_clip"]
      }
    out[f"{run} - {base}"] = comp
  return out


def paired_markdown(paired: dict, seeds: int, clips: int) -> str:
  """The paired differences as a markdown table (mean [95% CI], median [bootstrap CI], SD, n)."""
  lines = [
      f"## Paired differences ({seeds} sampler seed(s) x {clips} clips, same noise per pair; rows "
      "where both runs pass the quality gate)",
      "",
      "| comparison | row | metric | mean [95% CI] | median [95% CI] | SD of diff | n |",
      "|---|---|---|---|---|---|---|",
  ]
  for comp, rows in paired.items():
    if not rows:
      lines.append(f"| {comp} | (no row where both pass the gate) | | | | | |")
    for row, metrics in rows.items():
      for m, d in metrics.items():
        lo, hi = d["median_ci95"]
        lines.append(
            f"| {comp} | {row} | {m} | {d['mean']:+.4g} [{d['mean'] - d['ci95']:+.4g}, "
            f"{d['mean'] + d['ci95']:+.4g}] | {d['median']:+.4g} [{lo:+.4g}, {hi:+.4g}] | "
            f"{d['sd']:.4g} | {d['n']} |"
        )
  return "\n".join(lines) + "\n"


def parse_checkpoints(spec: str) -> list[tuple[str, str]]:
  """'sft=workdirs/sft,dpo=workdirs/dpo' (or bare paths, named by their basename) -> [(name, path)]."""
  out = []
  for item in [s.strip() for s in spec.split(",") if s.strip()]:
    name, _, path = item.rpartition("=")
    path = path or item
    out.append((name or os.path.basename(os.path.normpath(path)), path))
  if not out:
    raise ValueError("config.eval.checkpoints is empty: give 'name=workdir,...' of runs to evaluate.")
  return out


def score(clips: list[dict], real: list[dict], gt_events, tol_s: float, event_stream: str = "audio") -> dict:
  """Sync metrics of `clips` (events of `event_stream` vs ground truth) + quality proxies vs `real`."""
  res = eval_lib.evaluate_clips(clips, gt_events, event_tol_s=tol_s, event_stream=event_stream)
  if gt_events is not None:
    timed = [
        eval_lib.audio_timing(c["audio"], c["sr"], g, mel=c.get("mel"), mel_fps=c.get("mel_fps"))
        if event_stream == "audio"
        else eval_lib.video_timing(c["frames"], c["fps"], g)
        for c, g in zip(clips, gt_events)
    ]
    for name, get in GT_TIMING.items():
      values = [float(get(r)) for r in timed]
      res[name] = eval_lib.mean_ci95(values)
      res["per_clip"][name] = values
  res.update(quality.proxies(clips, real))
  return res


def plot_report(table: dict, path: str, metrics=("desync", "av_align", "event_f1")) -> None:
  rows = list(table)
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(rows) + 1.5))
  for ax, m in zip(np.atleast_1d(axes), metrics):
    vals = [table[r].get(m) for r in rows]
    cis = [table[r].get(m + report_lib.CI_SUFFIX) or 0.0 for r in rows]
    ys = np.arange(len(rows))
    ax.barh(ys, [v if v is not None else np.nan for v in vals], xerr=cis, color="tab:blue", alpha=0.7)
    ax.set_yticks(ys, rows, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(m + (" (s, lower is better)" if m == "desync" else " (higher is better)"))
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def quality_anchors(config, data: dict, real: list[dict]) -> dict:
  """The quality gate's anchors (eval/quality.py) for the eval clips `data` (`load_eval_set`) and
  their media `real` (`media_clips`): real vs as many clips of config.data.split_eval (the floor), the
  clips with their latent cells shuffled, and decoded N(0, I) latents, all in `ruler_codec` (the pixel
  codec's p x p-px cells, whatever the model's codec is)."""
  pixels = ruler_codec(config)
  video_lat, audio_lat = encode_clips(pixels, data)
  other_real = media_clips(config, load_eval_set(config, len(real), split=config.data.split_eval))
  k_sv, k_sa, kv, ka = jax.random.split(jax.random.key(int(config.seed) + 1), 4)
  shuffled = decode_clips(
      pixels, config.data, quality.shuffle_cells(k_sv, video_lat), quality.shuffle_cells(k_sa, audio_lat)
  )
  noise = decode_clips(
      pixels, config.data, jax.random.normal(kv, video_lat.shape), jax.random.normal(ka, audio_lat.shape)
  )
  return quality.anchors(real, other_real, shuffled, noise)


def plot_sample_grid(
    rows: dict[str, list[dict]], path: str, title: str, data_cfg, clips=(0, 1), frames: int = 10
) -> None:
  """PNG of what was generated: per run (real first) and clip, `frames` frames and the log-mel.

  rows: {run: decoded clips (decode_clips)}, every run on the same eval clips.
  """
  n_rows = len(rows) * len(clips)
  fig = plt.figure(figsize=(1.0 * frames + 3.5, 1.05 * n_rows + 0.6))
  gs = fig.add_gridspec(n_rows, frames + 4)
  r = 0
  for run, cl in rows.items():
    for ci in clips:
      if ci >= len(cl):
        continue
      clip = cl[ci]
      idx = np.linspace(0, clip["frames"].shape[0] - 1, frames).round().astype(int)
      for j, k in enumerate(idx):
        ax = fig.add_subplot(gs[r, j])
        ax.imshow(clip["frames"][k], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if j == 0:
          ax.set_ylabel(f"{run}\nclip {ci}", fontsize=7)
        if r == 0:
          ax.set_title(f"{k / float(data_cfg.fps):.1f}s", fontsize=7)
      ax = fig.add_subplot(gs[r, frames:])
      ax.imshow(
          np.asarray(clip["mel"]).T,
          origin="lower",
          aspect="auto",
          vmin=-1,
          vmax=1,
          cmap="magma",
          interpolation="nearest",
      )
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title("log-mel", fontsize=7)
      r += 1
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def make_periodic_eval(config, workdir: str, graphdef, rest, mesh):
  """The training loop's eval hook: `fn(state, step)` scores the current params on a few eval clips.

  Same sampler and metrics as an eval run (config.eval: split, modes, event tolerance;
  config.train.eval_clips clips), written to TensorBoard (WORKDIR/tensorboard/eval, tags
  `eval/<mode>/<metric>`) and WORKDIR/eval_metrics.jsonl. Kept apart from metrics.jsonl, whose rows
  are the training steps.
  """
  from syncdpo_jax.train import writers

  ec = config.eval
  codec = codec_lib.make_codec(config.codec, config.data)
  data = load_eval_set(config, int(config.train.eval_clips))
  gt = list(data["events"])
  tol = float(ec.event_tol_ms) / 1000.0
  rules = tuple(config.parallel.logical_axis_rules)
  video_lat, audio_lat = encode_clips(codec, data)
  label = np.asarray(data["label"], np.int32)
  real = media_clips(config, data)
  generate = make_generate(
      graphdef, rest, codec, config.sample, int(config.data.num_classes), config.objective.prediction
  )
  writer = writers.create_writer(
      workdir,
      jsonl_name="eval_metrics.jsonl",
      tb_subdir="tensorboard/eval",
      just_logging=jax.process_index() != 0,
  )

  def periodic_eval(state, step: int) -> dict:
    scalars = {}
    for mode in ec.modes:
      key = jax.random.fold_in(jax.random.key(int(config.seed)), list(sample_lib.config.MODES).index(mode))
      v, a = generate_on_mesh(generate, mesh, rules, state.params, key, video_lat, audio_lat, label, mode)
      res = score(
          decode_clips(codec, config.data, v, a),
          real,
          gt if mode != "joint" else None,
          tol,
          event_stream="video" if mode == "a2v" else "audio",
      )
      for k in ("desync", "av_align", "event_f1"):
        if k in res and np.isfinite(res[k][0]):
          scalars[f"eval/{mode}/{k}"] = res[k][0]
    writer.write_scalars(step, scalars)
    writer.flush()
    print(f"[eval @ {step}] " + " ".join(f"{k}={v:.3f}" for k, v in scalars.items()), flush=True)
    return scalars

  return periodic_eval


def evaluate(config, workdir: str, checkpoints: list[tuple[str, str]] | None = None, *, mesh=None) -> dict:
  """Samples and scores every checkpoint in config.eval.checkpoints; writes WORKDIR/eval/. Returns the table.

  Parameters are restored onto `mesh` (default: config.parallel.mesh, the training run's) with the
  training shardings, and every batch is sampled there (generate_on_mesh).
  """
  mesh = mesh or sharding_lib.make_mesh(config.parallel.mesh)
  rules = tuple(config.parallel.logical_axis_rules)
  ec = config.eval
  checkpoints = checkpoints or parse_checkpoints(ec.checkpoints)
  out_dir = os.path.join(os.path.abspath(workdir), "eval")
  codec = codec_lib.make_codec(config.codec, config.data)
  data = load_eval_set(config, int(ec.num_clips))
  gt = list(data["events"])
  tol = float(ec.event_tol_ms) / 1000.0
  video_lat, audio_lat = encode_clips(codec, data)
  label = jnp.asarray(data["label"], jnp.int32)

  real = media_clips(config, data)
  results = {"real": score(real, real, gt, tol)}
  results["real/video_events"] = score(real, real, gt, tol, event_stream="video")
  write_samples(real, os.path.join(out_dir, "samples", "real"), "real", int(ec.num_samples_to_write))
  anchor = quality_anchors(config, data, real)
  for row in ("real", "real/video_events"):  # the data: the gate's reference, not gated
    results[row].update(quality_gate="real data")
  print(
      "[eval] quality anchors (Fréchet proxies vs the eval clips): "
      + "; ".join(f"{k}: " + ", ".join(f"{n} {v:.3g}" for n, v in a.items()) for k, a in anchor.items()),
      flush=True,
  )
  grids: dict[str, dict[str, list]] = {mode: {"real": real} for mode in ec.modes}

  seeds = int(ec.num_seeds)
  if seeds < 1:
    raise ValueError(f"config.eval.num_seeds={ec.num_seeds} must be >= 1.")
  graphdef, params_like, rest = abstract_model_on_mesh(config, mesh)
  # The configured sampler, and with eval.sync_cfg_both the same one with SyncCFG flipped (same noise):
  # rows '<run>/<mode>' and '<run>/<mode>/synccfg_off' (or '_on').
  samplers = [("", config.sample)]
  if ec.sync_cfg_both:
    flipped = config.sample.copy_and_resolve_references()
    flipped.sync_cfg = not config.sample.sync_cfg
    samplers.append(("/synccfg_on" if flipped.sync_cfg else "/synccfg_off", flipped))
  generators = [
      (
          suffix,
          make_generate(graphdef, rest, codec, sc, int(config.data.num_classes), config.objective.prediction),
      )
      for suffix, sc in samplers
  ]
  probe = None
  if int(ec.probe_clips) > 0:
    probe = probe_lib.Probe(
        config,
        codec,
        steps.make_apply(graphdef, rest, config.objective.prediction),
        modes=[m for m in ec.modes if m in probe_lib.GIVEN],
    )
  for name, path in checkpoints:
    params, src = ckpt_lib.restore_params(path, params_like, config)
    if probe is not None:
      t0 = time.time()
      for run, r in probe(name, params).items():
        print(
            f"[probe] {run}: e(delta) - e(0) "
            + " ".join(f"{d:+d}:{r['delta_loss'][str(d)]:+.3g}" for d in r["deltas"] if d)
            + "; P[aligned best] "
            + " ".join(f"|{m}|:{v:.2f}" for m, v in r["pair_accuracy"].items())
            + f"; argmin |delta| {r['argmin_frames']:.2f} frames; control {r['control_delta_loss']:+.3g} "
            f"({time.time() - t0:.0f}s)",
            flush=True,
        )
    for mode in ec.modes:
      # One key per mode: every sampler of the mode sees the same noise.
      key = jax.random.fold_in(jax.random.key(int(config.seed)), list(sample_lib.config.MODES).index(mode))
      bs = int(ec.batch_size)
      for suffix, generate in generators:
        t0 = time.time()
        gv, ga = [], []
        for s in range(seeds):
          # Seed 0 keeps the key a single-seed eval always used.
          key_s = key if s == 0 else jax.random.fold_in(key, 1_000_003 + s)
          v, a = generate_in_batches(
              generate, mesh, rules, params, key_s, video_lat, audio_lat, label, mode, bs
          )
          gv.append(v)
          ga.append(a)
        jax.block_until_ready((gv, ga))
        t_sampled = time.time()
        clips = decode_clips(codec, config.data, jnp.concatenate(gv), jnp.concatenate(ga))
        # Joint generation invents its own events: only the conditional modes have ground truth, and
        # there the GENERATED stream's events are scored (audio for v2a, video for a2v).
        res = score(
            clips,
            real,
            gt * seeds if mode != "joint" else None,
            tol,
            event_stream="video" if mode == "a2v" else "audio",
        )
        # Sampling (the first call of a mode x sampler includes its compilation) vs decoding + scoring.
        res["sample_seconds"], res["score_seconds"] = t_sampled - t0, time.time() - t_sampled
        res.update(quality.verdict(res, anchor, mode))
        row = f"{name}/{mode}{suffix}"
        results[row] = res
        if not suffix:  # the grids and mp4s show the configured sampler (seed 0)
          grids[mode][name] = clips[: len(real)]
          write_samples(clips, os.path.join(out_dir, "samples", name), mode, int(ec.num_samples_to_write))
        gate = " ".join(
            f"{k}={res[k]:.2f}" + (f" [{res[k + '_worst']}]" if k + "_worst" in res else "")
            for k in ("gate_video", "gate_audio", "noise_pos_video", "noise_pos_audio")
            if k in res
        )
        print(
            f"[eval] {row} ({src}): quality gate {res['quality_gate']} ({gate}) "
            f"desync={res['desync'][0]:.3f}s av_align={res['av_align'][0]:.3f} "
            f"event_f1={res.get('event_f1', (float('nan'),))[0]:.3f} skipped={res['num_skipped']} "
            f"({time.time() - t0:.0f}s)",
            flush=True,
        )

  table = {
      run: {k: v for k, v in r.items() if k in HEADLINE or k in ("num_evaluated", "num_skipped")}
      for run, r in results.items()
  }
  # Per-clip values (same clip order in every row) for paired comparisons between runs.
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "per_clip.json"), "w") as f:
    json.dump({run: r["per_clip"] for run, r in results.items()}, f, allow_nan=True)
  with open(os.path.join(out_dir, "cost.json"), "w") as f:
    json.dump(
        {
            run: {
                "samples": seeds * len(real),
                "sample_seconds": r["sample_seconds"],
                "score_seconds": r["score_seconds"],
            }
            for run, r in results.items()
            if "sample_seconds" in r
        },
        f,
        indent=1,
    )
  # The gate in full: every proxy, and every video feature group's position (the table shows the worst).
  with open(os.path.join(out_dir, "quality.json"), "w") as f:
    gate_keys = ("fd_", "gate_", "noise_pos_", "quality_gate")
    json.dump(
        report_lib.json_safe(
            {
                "anchors": anchor,
                **{
                    run: {k: v for k, v in r.items() if k.startswith(gate_keys)} for run, r in results.items()
                },
            }
        ),
        f,
        indent=1,
    )
  paired = paired_differences(results, [n for n, _ in checkpoints])
  with open(os.path.join(out_dir, "paired.json"), "w") as f:
    json.dump(report_lib.json_safe(paired), f, indent=1)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # joint rows have no event_f1 by design (no ground truth)
    flat = {
        run: quality.mask_failed(row, SYNC_METRICS) for run, row in report_lib.flatten_results(table).items()
    }
    paths = report_lib.write_report(flat, out_dir)
  plot_report(flat, os.path.join(out_dir, "report.png"))
  for mode, rows in grids.items():
    plot_sample_grid(rows, os.path.join(out_dir, f"grid_{mode}.png"), f"{mode} generation", config.data)
  if probe is not None:
    probe.write(out_dir)
  if paired:
    with open(paths["markdown"], "a") as f:
      f.write("\n" + paired_markdown(paired, seeds, len(real)))
  with open(paths["markdown"]) as f:
    print(f.read(), flush=True)
  for run, r in results.items():
    if r.get("skipped"):
      print(f"[eval] {run}: skipped clips {r['skipped']}", flush=True)
  return flat
