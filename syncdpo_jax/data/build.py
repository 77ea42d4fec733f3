"""Builds SyncBench-Synth (or an av_folder dataset) and prints a summary; optionally writes examples.

    python -m syncdpo_jax.data.build --variant demo --data_dir /tmp/tfds [--examples OUT]

--examples OUT writes, for a few clips per family, `<clip>.mp4` (H.264 + AAC) and `<clip>.png`: the
audio onset-strength curve under the frame-difference (motion energy) curve, ground-truth event times
as vertical lines, so one can see that sound and motion peak together.
"""

from __future__ import annotations

import argparse
import collections
import os
import time

import numpy as np

from syncdpo_jax._librosa import librosa
from syncdpo_jax.data import builders, media
from syncdpo_jax.data.config import get_data_config


def motion_energy(video: np.ndarray) -> np.ndarray:
  """Mean absolute frame difference. video uint8 [T, H, W, 3] -> float [T] (entry 0 is 0).

  Entry k measures the change INTO frame k, so an event shown on frame k peaks at k / fps.
  """
  v = video.astype(np.float32)
  return np.concatenate([[0.0], np.abs(np.diff(v, axis=0)).mean(axis=(1, 2, 3))])


def onset_strength(audio: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
  """librosa onset strength and its frame times (s). -> (env [F], times [F])."""
  env = librosa.onset.onset_strength(y=np.asarray(audio, np.float32), sr=sr, hop_length=hop)
  return env, librosa.times_like(env, sr=sr, hop_length=hop)


def event_hit_rate(clip: dict, hop: int = 160, tol_frames: float = 1.0) -> tuple[float, float]:
  """Fractions of ground-truth events with a detected audio onset / motion-energy peak within
  +-tol_frames video frames. -> (audio_rate, video_rate); nan if the clip has no events."""
  ev = np.asarray(clip["event_times"], np.float64)
  if ev.size == 0:
    return float("nan"), float("nan")
  fps, sr = float(clip["fps"]), int(clip["sr"])
  tol = tol_frames / fps + 1e-6
  env, _ = onset_strength(clip["audio"], sr, hop)
  onsets = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop, units="time")
  me = motion_energy(clip["video"])
  # Motion peaks: local maxima of the frame difference clearly above the clip's median change.
  thr = np.median(me) + 0.25 * (me.max() - np.median(me))
  pk = [
      k
      for k in range(1, len(me))
      if me[k] >= thr and me[k] >= me[k - 1] and (k + 1 == len(me) or me[k] >= me[k + 1])
  ]
  peaks = np.asarray(pk, np.float64) / fps

  def rate(found):
    if found.size == 0:
      return 0.0
    return float(np.mean(np.min(np.abs(ev[:, None] - found[None, :]), axis=1) <= tol))

  return rate(np.asarray(onsets)), rate(peaks)


def plot_alignment(clip: dict, path: str, hop: int = 160) -> None:
  """PNG: onset strength (bottom) under motion energy (top), event times as dashed lines."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fps, sr = float(clip["fps"]), int(clip["sr"])
  me = motion_energy(clip["video"])
  env, times = onset_strength(clip["audio"], sr, hop)
  fig, ax = plt.subplots(2, 1, figsize=(8, 4), sharex=True)
  ax[0].plot(np.arange(len(me)) / fps, me, "o-", color="tab:blue", ms=3)
  ax[0].set_ylabel("frame diff")
  ax[1].plot(times, env, color="tab:orange")
  ax[1].set_ylabel("onset strength")
  ax[1].set_xlabel("time (s)")
  for a in ax:
    for e in clip["event_times"]:
      a.axvline(float(e), color="k", ls="--", lw=0.8, alpha=0.6)
  fam = clip["family"].decode() if isinstance(clip["family"], bytes) else clip["family"]
  ax[0].set_title(f"{fam}: {len(clip['event_times'])} events (dashed)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  plt.close(fig)


def summarize(builder) -> str:
  src = builder.as_data_source()
  lines = [f"{builder.name}/{builder.builder_config.name} at {builder.data_dir}"]
  for split, ds in src.items():
    fam, n_ev = collections.Counter(), []
    for i in range(len(ds)):
      ex = ds[i]
      fam[ex["family"].decode() if isinstance(ex["family"], bytes) else ex["family"]] += 1
      n_ev.append(len(ex["event_times"]))
    n_ev = np.asarray(n_ev) if n_ev else np.zeros(1)
    lines.append(
        f"  {split:6s} {len(ds):5d} clips  families {dict(sorted(fam.items()))}  events/clip "
        f"mean {n_ev.mean():.2f} min {n_ev.min()} max {n_ev.max()}"
    )
  skipped = builders.skipped_inputs(builder)
  if skipped:
    lines.append(
        f"  skipped {len(skipped)} bad files: " + "; ".join(f"{s['file']}: {s['reason']}" for s in skipped)
    )
  return "\n".join(lines)


def write_examples(builder, out_dir: str, per_family: int = 2, split: str = "train") -> list[str]:
  """Writes mp4 + alignment PNG for the first `per_family` clips of each family. -> written paths."""
  os.makedirs(out_dir, exist_ok=True)
  ds = builder.as_data_source(split=split)
  count, written = collections.Counter(), []
  for i in range(len(ds)):
    ex = ds[i]
    fam = ex["family"].decode() if isinstance(ex["family"], bytes) else ex["family"]
    if count[fam] >= per_family:
      continue
    count[fam] += 1
    cid = ex["clip_id"].decode() if isinstance(ex["clip_id"], bytes) else ex["clip_id"]
    mp4, png = os.path.join(out_dir, cid + ".mp4"), os.path.join(out_dir, cid + ".png")
    media.write_mp4(mp4, ex["video"], float(ex["fps"]), ex["audio"], int(ex["sr"]))
    plot_alignment(ex, png)
    written += [mp4, png]
  return written


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--variant", default="demo", help="data config variant: test | demo")
  p.add_argument("--data_dir", required=True, help="tfds data dir to build into")
  p.add_argument("--name", default=None, help="override data.name (syncbench_synth | av_folder)")
  p.add_argument("--manual_dir", default=None, help="av_folder: folder of .mp4 files")
  p.add_argument("--examples", default=None, help="folder for example mp4s and alignment PNGs")
  a = p.parse_args(argv)
  cfg = get_data_config(a.variant)
  cfg.data_dir = a.data_dir
  if a.name:
    cfg.name = a.name
  if a.manual_dir:
    cfg.manual_dir = a.manual_dir
  t0 = time.time()
  builder = builders.build_dataset(cfg)
  print(f"build time {time.time() - t0:.1f} s")
  print(summarize(builder))
  if a.examples:
    for f in write_examples(builder, a.examples):
      print("wrote", f)


if __name__ == "__main__":
  main()
