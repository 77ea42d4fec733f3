"""What the quality gate sees: its video position for real test clips under known degradations.

  python benchmarks/bench_quality_gate.py [--clips 16] [--data_dir workdirs/tfds]

The gate (syncdpo_jax/eval/quality.py) places a run between the real-vs-real floor (0) and the data's
latent cells shuffled (1); it passes at <= 0.25. This prints the anchors and the position of the same
real clips after per-pixel Gaussian noise of a few grey levels, blurs, 8x8-px blocks and a colour shift,
so a reader knows what a gate number can and cannot tell apart. (Degraded copies of the eval clips
themselves can sit below the floor, which is measured on other clips: a negative position.)
"""
from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import demo  # noqa: E402
from syncdpo_jax import codec as codec_lib  # noqa: E402
from syncdpo_jax.eval import quality  # noqa: E402
from syncdpo_jax.train import evaluate  # noqa: E402


def _noise(levels: float, seed: int = 0):
  rng = np.random.default_rng(seed)
  return lambda f: np.clip(f + rng.normal(0.0, levels, f.shape), 0, 255).astype(np.uint8)


def _blocks(f):
  return np.stack([cv2.resize(cv2.resize(x, (4, 4), interpolation=cv2.INTER_AREA), x.shape[:2][::-1],
                              interpolation=cv2.INTER_NEAREST) for x in f])


DEGRADATIONS = {
    **{f"noise {s:g} grey levels": _noise(s) for s in (0.5, 1, 2, 4, 8)},
    "box blur 3x3": lambda f: np.stack([cv2.blur(x, (3, 3)) for x in f]),
    "box blur 5x5": lambda f: np.stack([cv2.blur(x, (5, 5)) for x in f]),
    "gaussian blur 1 px": lambda f: np.stack([cv2.GaussianBlur(x, (0, 0), 1.0) for x in f]),
    "8x8-px blocks": _blocks,
    "colours +10 levels": lambda f: np.clip(f.astype(np.int32) + 10, 0, 255).astype(np.uint8),
}


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--clips", type=int, default=16)
  ap.add_argument("--data_dir", default="workdirs/tfds")
  args = ap.parse_args()
  c = demo.get_config("eval")
  c.data.data_dir = os.path.abspath(args.data_dir)
  codec = codec_lib.make_codec(c.codec, c.data)
  test = evaluate.load_eval_set(c, args.clips)
  tv, ta = evaluate.encode_clips(codec, test)
  real = evaluate.decode_clips(codec, c.data, tv, ta)
  anchor = evaluate.quality_anchors(c, codec, real, tv, ta)
  print("anchors (fd_video_proxy): " + ", ".join(f"{k} {v:.3f}" for k, v in anchor["video"].items()))
  print(f"{'degradation of the real clips':32s} gate_video")
  for name, fn in DEGRADATIONS.items():
    clips = [dict(r, frames=fn(r["frames"])) for r in real]
    g = quality.verdict(quality.proxies(clips, real), anchor, "a2v")["gate_video"]
    print(f"{name:32s} {g:6.2f}", flush=True)


if __name__ == "__main__":
  main()
