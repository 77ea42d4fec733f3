"""Metric writers: clu's `MetricWriter` interface, TensorBoard event files without TensorFlow.

clu's `metric_writers` package imports TensorFlow at import time, only to provide its `SummaryWriter`.
TensorFlow is a ~600 MB dependency that nothing else here needs, so when it is absent we register a
tensorboardX-backed `SummaryWriter` under clu's module name *before* clu is imported. All of clu then
works unchanged (`create_default_writer`, `AsyncWriter`, `periodic_actions`), and TensorBoard reads
the event files as usual. With TensorFlow installed, clu's own writer is used.

Import clu through this module (`from syncdpo_jax.train.writers import metric_writers`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

import numpy as np

from syncdpo_jax import _internals

# Before clu is imported (syncdpo_jax/_internals.py says why); the factory is resolved at call time.
_internals.clu_install_summary_writer(lambda logdir: TensorBoardXWriter(logdir))

from clu import metric_writers  # noqa: E402
from clu import periodic_actions  # noqa: E402,F401  (re-exported for the loop)
from clu.metric_writers import interface  # noqa: E402


class TensorBoardXWriter(interface.MetricWriter):
  """clu MetricWriter that writes TensorBoard event files with tensorboardX."""

  def __init__(self, logdir: str):
    from tensorboardX import SummaryWriter as _TBX

    self._writer = _TBX(logdir=logdir, flush_secs=10)

  def write_summaries(self, step: int, values: Mapping[str, Any], metadata=None):
    for key, value in values.items():
      arr = np.asarray(value)
      if arr.ndim == 0:
        self._writer.add_scalar(key, float(arr), global_step=step)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    for key, value in scalars.items():
      self._writer.add_scalar(key, float(value), global_step=step)

  def write_images(self, step: int, images: Mapping[str, Any]):
    for key, value in images.items():
      arr = np.asarray(value)
      self._writer.add_images(key, arr if arr.ndim == 4 else arr[None], global_step=step, dataformats="NHWC")

  def write_videos(self, step: int, videos: Mapping[str, Any]):
    for key, value in videos.items():
      arr = np.asarray(value)
      arr = arr if arr.ndim == 5 else arr[None]
      # tensorboardX wants [N, T, C, H, W]; needs moviepy for GIF encoding, so tolerate its absence.
      try:
        self._writer.add_video(key, np.moveaxis(arr, -1, 2), global_step=step)
      except ImportError:
        pass

  def write_audios(self, step: int, audios: Mapping[str, Any], *, sample_rate: int):
    for key, value in audios.items():
      arr = np.asarray(value, np.float32)
      arr = arr.reshape(arr.shape[0], -1) if arr.ndim == 3 else arr.reshape(1, -1)
      self._writer.add_audio(key, arr[0], global_step=step, sample_rate=sample_rate)

  def write_texts(self, step: int, texts: Mapping[str, str]):
    for key, value in texts.items():
      self._writer.add_text(key, value, global_step=step)

  def write_histograms(
      self, step: int, arrays: Mapping[str, Any], num_buckets: Optional[Mapping[str, int]] = None
  ):
    for key, value in arrays.items():
      self._writer.add_histogram(key, np.asarray(value), global_step=step)

  def write_hparams(self, hparams: Mapping[str, Any]):
    self._writer.add_text("hparams", json.dumps(dict(hparams), default=str, indent=1))

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


class JsonlWriter(interface.MetricWriter):
  """Appends one JSON object per `write_scalars` call: {"step": s, **scalars} (the public log format)."""

  def __init__(self, path: str):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    self._f = open(path, "a", buffering=1)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    row = {"step": int(step)}
    row.update({k: float(v) for k, v in scalars.items()})
    self._f.write(json.dumps(row) + "\n")

  def write_summaries(self, step, values, metadata=None):
    pass

  def write_images(self, step, images):
    pass

  def write_videos(self, step, videos):
    pass

  def write_audios(self, step, audios, *, sample_rate):
    pass

  def write_texts(self, step, texts):
    pass

  def write_histograms(self, step, arrays, num_buckets=None):
    pass

  def write_hparams(self, hparams):
    pass

  def flush(self):
    self._f.flush()

  def close(self):
    self._f.close()


def create_writer(
    workdir: str,
    *,
    jsonl_name: str = "metrics.jsonl",
    tb_subdir: str = "tensorboard",
    just_logging: bool = False,
) -> interface.MetricWriter:
  """TensorBoard (+ console logging) + JSONL, all behind one clu MetricWriter.

  Only process 0 writes files (`just_logging` on the others), as in clu's `create_default_writer`.
  """
  if just_logging:
    return metric_writers.LoggingWriter()
  return metric_writers.MultiWriter(
      [
          TensorBoardXWriter(os.path.join(workdir, tb_subdir)),
          JsonlWriter(os.path.join(workdir, jsonl_name)),
      ]
  )


def read_jsonl(path: str) -> list[dict]:
  """Reads a metrics.jsonl file into a list of dicts (skips a torn last line from a killed run)."""
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return rows
