"""Eval report: one JSON table and its markdown twin, one row per run (checkpoint), one column per metric.

Contract (see the project design doc): ``<out_dir>/report.json`` is ``{run_name: {metric_name: value}}``
with at least ``desync`` (mean |estimate_offset|, s), ``av_align`` and ``event_f1`` per run. A metric given
as ``(mean, ci95)`` is written as ``metric: mean`` plus ``metric_ci95: half-width``; NaN becomes JSON
``null`` (strict JSON has no NaN).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any, Mapping

REQUIRED_METRICS = ("desync", "av_align", "event_f1")
CI_SUFFIX = "_ci95"


def json_safe(x: Any) -> Any:
  """JSON-safe copy of a (nested) value: NaN/inf -> None, numpy scalars -> Python, keys -> str."""
  if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 0) == 0:
    x = x.item()
  if isinstance(x, float) and not math.isfinite(x):
    return None
  if isinstance(x, Mapping):
    return {str(k): json_safe(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [json_safe(v) for v in x]
  return x


def flatten_results(results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
  """{run: {metric: (mean, ci95) | value}} -> {run: {metric: mean, metric_ci95: ci95, ...}} (JSON-safe).

  Missing required metrics (``REQUIRED_METRICS``) are written as None with a warning, so a run without
  ground-truth events still yields a report whose schema holds.
  """
  out: dict[str, dict[str, Any]] = {}
  for run, metrics in results.items():
    if not isinstance(metrics, Mapping):
      raise ValueError(f"results[{run!r}] must be a mapping metric -> value, got {type(metrics).__name__}")
    row: dict[str, Any] = {}
    for name, value in metrics.items():
      if isinstance(value, (tuple, list)):
        if len(value) != 2:
          raise ValueError(
              f"results[{run!r}][{name!r}] must be (mean, ci95) or one value, got " f"{len(value)} items"
          )
        row[name], row[name + CI_SUFFIX] = json_safe(float(value[0])), json_safe(float(value[1]))
      else:
        row[name] = json_safe(value)
    for name in REQUIRED_METRICS:
      if name not in row:
        warnings.warn(
            f"run {run!r} has no {name!r}; writing null. (event_f1 needs ground-truth event "
            "times: pass gt_events to evaluate_clips.)",
            stacklevel=3,
        )
        row[name] = None
    out[str(run)] = row
  return out


def _fmt(x: Any) -> str:
  if x is None:
    return "n/a"
  if isinstance(x, bool):
    return str(x)
  if isinstance(x, int):
    return str(x)
  if isinstance(x, float):
    return f"{x:.4g}"
  if isinstance(x, Mapping):
    return ", ".join(f"{k}: {_fmt(v)}" for k, v in x.items()) or "-"
  return str(x).replace("|", "/")


def to_markdown(table: Mapping[str, Mapping[str, Any]]) -> str:
  """Markdown table of a flattened report: one row per run, one column per metric, 'mean ± ci95'."""
  cols: list[str] = list(REQUIRED_METRICS)
  for row in table.values():
    for k in row:
      if not k.endswith(CI_SUFFIX) and k not in cols:
        cols.append(k)
  lines = ["| run | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
  for run, row in table.items():
    cells = []
    for c in cols:
      cell = _fmt(row.get(c))
      ci = row.get(c + CI_SUFFIX)
      if c + CI_SUFFIX in row:
        cell += " ± " + _fmt(ci)
      cells.append(cell)
    lines.append(f"| {run} | " + " | ".join(cells) + " |")
  note = (
      "\nmean ± half-width of the 95% confidence interval over the eval set (n/a: undefined, e.g. one "
      "clip). desync = mean |estimated audio-video offset| in s (lower is better; both streams "
      "estimated, the field's metric); av_align and event_f1: higher is better; gt_* = the generated "
      "stream against the ground-truth event times (v2a: its audio, a2v: its video; real rows: the "
      "real audio / video; syncdpo_jax/eval/timing.py): gt_abs_offset_s = |GT-anchored offset| "
      "(search range +-0.19 s), gt_median_error_s = median |error| of matched events, gt_hit_40ms = "
      "fraction of events hit within 40 ms; fd_* columns are quality PROXIES on hand-made features, not FAD/FVD. "
      "quality_gate: whether the generated streams are near enough the real data on those proxies "
      "(gate_* = position from the real-vs-real floor, 0, to the data's latent cells shuffled, 1, of the "
      "stream's worst feature group, gate_video_worst; pass at <= 0.25; noise_pos_* = the same from "
      "the floor to decoded noise; "
      "syncdpo_jax/eval/quality.py); a row that fails it reports no sync metric (n/a).\n"
  )
  return "\n".join(lines) + "\n" + note


def _atomic_write(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)  # a reader never sees a half-written report


def write_report(results: Mapping[str, Mapping[str, Any]], out_dir: str) -> dict[str, str]:
  """Writes ``out_dir/report.json`` and ``out_dir/report.md``.

  Args:
    results: {run_name: {metric: (mean, ci95) or value}}, e.g. ``{'sft': evaluate_clips(...)}``.
      Non-numeric values (e.g. the 'skipped' reason counts) are kept in the JSON as they are.
    out_dir: directory (created if needed), typically ``WORKDIR/eval``.
  Returns:
    {'json': path, 'markdown': path}.
  """
  table = flatten_results(results)
  os.makedirs(out_dir, exist_ok=True)
  paths = {"json": os.path.join(out_dir, "report.json"), "markdown": os.path.join(out_dir, "report.md")}
  _atomic_write(paths["json"], json.dumps(table, indent=2, sort_keys=False, allow_nan=False) + "\n")
  _atomic_write(paths["markdown"], to_markdown(table))
  return paths
