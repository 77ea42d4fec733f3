"""PNG plots of a run's metrics.jsonl (the TensorBoard curves, for people without TensorBoard)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # headless: CI, pods and notebooks' workers have no display
import matplotlib.pyplot as plt  # noqa: E402

from syncdpo_jax.train.writers import read_jsonl  # noqa: E402

CURVES = ("loss", "reward_accuracy", "reward_margin", "difficulty", "grad_norm")


def plot_metrics(jsonl_path: str, out_dir: str, keys=CURVES) -> list[str]:
  """Writes `curves.png`, one panel per metric present in the log; returns the written paths."""
  if not os.path.exists(jsonl_path):
    return []
  rows = read_jsonl(jsonl_path)
  present = [k for k in keys if any(k in r for r in rows)]
  if not present:
    return []
  os.makedirs(out_dir, exist_ok=True)
  fig, axes = plt.subplots(1, len(present), figsize=(3.6 * len(present), 3.0), squeeze=False)
  for ax, key in zip(axes[0], present):
    pts = [(r["step"], r[key]) for r in rows if key in r]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1.2)
    ax.set_title(key)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  path = os.path.join(out_dir, "curves.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return [path]
