"""Offset estimator accuracy on SyncBench-Synth: previous vs current `estimate_offset`, side by side.

Each clip is a window of a longer SyncBench-Synth clip; the audio window is cropped `offset` seconds
earlier than the video one, so the audio is late by `offset` (positive = audio late) with no padding or
wrap-around at the edges (those would add fake onsets). Prints, per family, the share of estimates within
one video frame of the injected offset and the mean absolute error, with and without nuisances.

    python benchmarks/bench_offset_estimator.py [--seeds 8] [--duration 4.0]

"previous" is the first version of the estimator (rectified increase of raw frame-difference energy,
no camera compensation), rebuilt here from the library's pieces so the two run on the same clips.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from syncdpo_jax.data.synth import FAMILIES, SynthSpec, generate_clip
from syncdpo_jax.eval import clips, signals, sync

OFFSETS_S = (-0.5, -0.2, 0.0, 0.3)


def shifted_clip(family: str, seed: int, offset: float, duration: float, nuisance: bool):
  """(frames [T, H, W, 3], fps, audio [N], sr) with the audio late by `offset` seconds."""
  margin = max(abs(o) for o in OFFSETS_S) + 0.1
  spec = SynthSpec(duration_s=duration + 2 * margin, nuisance=nuisance)
  c = generate_clip(family, seed, spec)
  fps, sr = c["fps"], c["sr"]
  i0, t = int(round(margin * fps)), int(round(duration * fps))
  j0, n = int(round((margin - offset) * sr)), int(round(duration * sr))
  return c["video"][i0 : i0 + t], fps, c["audio"][j0 : j0 + n], sr


def previous_estimate_offset(frames, fps, audio, sr, max_offset=2.0):
  """The estimator before stabilisation/detrending: rectified increase of raw motion energy."""
  frames, audio = clips.check_clip(frames, fps, audio, sr)
  gray = np.stack(signals._gray(frames)).astype(np.float32)
  energy = np.concatenate([[0.0], np.mean(np.abs(np.diff(gray, axis=0)), axis=(1, 2))])
  onset = np.maximum(np.diff(energy, prepend=0.0), 0.0)
  rate = signals.ENVELOPE_RATE
  t_out = np.arange(int(np.floor(len(frames) / fps * rate))) / rate
  v = np.interp(t_out, np.arange(len(frames)) / fps, onset)
  return signals.lag_by_xcorr(signals.audio_onset_envelope(audio, sr), v, rate, max_offset)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--seeds", type=int, default=8)
  ap.add_argument("--duration", type=float, default=4.0)
  args = ap.parse_args()
  estimators = {"previous": previous_estimate_offset, "current": sync.estimate_offset}
  print(
      f"offsets {OFFSETS_S} s x {args.seeds} seeds per family, {args.duration} s windows, "
      f"SynthSpec defaults otherwise (fps {SynthSpec().fps}: one frame = {1 / SynthSpec().fps:.3f} s)"
  )
  print(
      f"{'nuisance':>8} {'family':>8} | {'previous: <1 frame':>18} {'MAE s':>7} | "
      f"{'current: <1 frame':>17} {'MAE s':>7}"
  )
  seconds = dict.fromkeys(estimators, 0.0)
  for nuisance in (True, False):
    for family in FAMILIES:
      errs = {k: [] for k in estimators}
      for seed in range(args.seeds):
        for off in OFFSETS_S:
          frames, fps, audio, sr = shifted_clip(family, seed, off, args.duration, nuisance)
          for name, fn in estimators.items():
            t0 = time.perf_counter()
            errs[name].append(fn(frames, fps, audio, sr) - off)
            seconds[name] += time.perf_counter() - t0
      cells = []
      for name in estimators:
        e = np.abs(np.asarray(errs[name]))
        cells.append(f"{np.mean(e < 1.0 / fps) * 100:17.0f}% {e.mean():7.3f}")
      print(f"{str(nuisance):>8} {family:>8} | {cells[0]} | {cells[1]}")
  print("total time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))


if __name__ == "__main__":
  main()
