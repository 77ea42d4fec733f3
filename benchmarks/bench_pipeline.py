"""Data pipeline throughput on the demo config: build time, then clips/s of the grain train pipeline.

    python benchmarks/bench_pipeline.py [--data_dir DIR] [--batches 20]

Prints plain numbers (no asserts): build time (s, 0 when already built), clips/s of the train pipeline
with num_workers=0, and the log-mel cost per clip next to the whole pipeline's cost per clip, measured in the same run.
"""

import argparse
import os
import tempfile
import time

import numpy as np

from syncdpo_jax.data import builders, features, pipeline
from syncdpo_jax.data.config import get_data_config


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "syncdpo_bench_tfds"))
  p.add_argument("--batches", type=int, default=20)
  a = p.parse_args()
  cfg = get_data_config("demo")
  cfg.data_dir = a.data_dir
  t0 = time.perf_counter()
  b = builders.build_dataset(cfg)
  print(
      f"build_time_s {time.perf_counter() - t0:.2f}  ({sum(s.num_examples for s in b.info.splits.values())} clips)"
  )
  # log-mel first: grain's read threads keep prefetching in the background once an iterator exists.
  audio = np.random.default_rng(0).standard_normal(int(cfg.window_s * cfg.sr)).astype(np.float32) * 0.1
  t0 = time.perf_counter()
  for _ in range(50):
    features.log_mel(audio, cfg)
  per = (time.perf_counter() - t0) / 50
  it = iter(pipeline.make_dataset(cfg, cfg.split_train, seed=0, train=True))
  next(it)  # warm-up: opens the ArrayRecord files
  t0 = time.perf_counter()
  for _ in range(a.batches):
    next(it)
  dt = time.perf_counter() - t0
  print(
      f"train_pipeline_clips_per_s {a.batches * cfg.batch_size / dt:.1f}  (batch {cfg.batch_size}, workers 0)"
  )
  print(
      f"log_mel_ms_per_clip {per * 1e3:.2f}  pipeline_ms_per_clip {dt / (a.batches * cfg.batch_size) * 1e3:.2f}"
  )
  # Shared machines distort all of the above; the load tells how much to trust them.
  print(f"load_average_1min {os.getloadavg()[0]:.2f}  cpus {os.cpu_count()}")


if __name__ == "__main__":
  main()
