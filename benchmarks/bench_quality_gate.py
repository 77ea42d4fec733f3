"""What the quality gate sees: its video and audio positions for real clips under known degradations.

  python benchmarks/bench_quality_gate.py [--clips 16] [--data_dir workdirs/tfds]

The gate (syncdpo_jax/eval/quality.py) places a run between the real-vs-real floor (0: another split's
clips against the eval clips) and the data's latent cells shuffled (1), per video feature group, and
passes at <= 0.25 in every group. This degrades the floor's clips (so no degradation can profit from
sharing the eval clips' content, and "none" sits at 0 exactly) and prints each degradation's position
per group and the worst: invisible per-pixel noise must pass; blur, blocks, colour shifts, tiles that
disagree (a patch-based generator's patchwork) and per-tile flicker must fail. The same for the
log-mel: noise, blur, 2-frame tiles from other clips, per-tile level offsets.
"""

from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import demo  # noqa: E402
from syncdpo_jax.eval import quality  # noqa: E402
from syncdpo_jax.runs import evaluate
from syncdpo_jax.runs import generate as generate_lib  # noqa: E402


def _noise(levels: float, seed: int = 0):
  rng = np.random.default_rng(seed)
  return lambda f: np.clip(f + rng.normal(0.0, levels, f.shape), 0, 255).astype(np.uint8)


def _blocks(f):
  return np.stack(
      [
          cv2.resize(
              cv2.resize(x, (4, 4), interpolation=cv2.INTER_AREA),
              x.shape[:2][::-1],
              interpolation=cv2.INTER_NEAREST,
          )
          for x in f
      ]
  )


def _tiles(f, tile: int, fill):
  """f [T, H, W, 3] with every tile x tile block of every frame replaced by fill(frame, y, x)."""
  out = f.copy()
  for i in range(f.shape[0]):
    for y in range(0, f.shape[1], tile):
      for x in range(0, f.shape[2], tile):
        out[i, y : y + tile, x : x + tile] = fill(f[i], y, x)[:tile, :tile]
  return out


def _tiles_from(pool, tile: int = 16, seed: int = 1):
  """Each tile from the same place of a random frame of `pool` [N, H, W, 3]: tiles that disagree."""
  rng = np.random.default_rng(seed)
  return lambda f: _tiles(f, tile, lambda fr, y, x: pool[rng.integers(len(pool)), y : y + tile, x : x + tile])


def _tile_offsets(levels: int, tile: int = 16, seed: int = 2):
  """Each tile of each frame shifted by its own random colour offset: seams and flicker."""
  rng = np.random.default_rng(seed)
  return lambda f: _tiles(
      f,
      tile,
      lambda fr, y, x: np.clip(
          fr[y : y + tile, x : x + tile].astype(np.int32) + rng.integers(-levels, levels + 1, 3), 0, 255
      ).astype(np.uint8),
  )


def video_degradations(pool) -> dict:
  return {
      "none": lambda f: f,
      **{f"noise {s:g} grey levels": _noise(s) for s in (1, 2, 4, 8)},
      "box blur 3x3": lambda f: np.stack([cv2.blur(x, (3, 3)) for x in f]),
      "gaussian blur 1 px": lambda f: np.stack([cv2.GaussianBlur(x, (0, 0), 1.0) for x in f]),
      "8x8-px blocks": _blocks,
      "colours +10 levels": lambda f: np.clip(f.astype(np.int32) + 10, 0, 255).astype(np.uint8),
      "16x16 tiles from other frames": _tiles_from(pool),
      "16x16 tiles +-10 levels": _tile_offsets(10),
      "16x16 tiles +-20 levels": _tile_offsets(20),
  }


def audio_degradations(pool, seed: int = 3) -> dict:
  rng = np.random.default_rng(seed)

  def tiles_from(m):
    out = m.copy()
    for i in range(0, m.shape[0], 2):
      out[i : i + 2] = pool[rng.integers(len(pool)), i : i + 2]
    return out

  def blur(m, axis):
    p = np.pad(m, [(1, 1) if a == axis else (0, 0) for a in range(2)], mode="edge")
    n = m.shape[axis]
    return sum(np.take(p, range(k, k + n), axis=axis) for k in range(3)) / 3.0

  # Normalised log-mel: 1 unit = 40 dB.
  return {
      "none": lambda m: m,
      **{
          f"noise {40 * s:g} dB": (lambda s: lambda m: np.clip(m + rng.normal(0, s, m.shape), -1, 1))(s)
          for s in (0.025, 0.05, 0.1)
      },
      "time blur 3 frames": lambda m: blur(m, 0),
      "2-frame tiles from other clips": tiles_from,
      "level +2 dB": lambda m: np.clip(m + 0.05, -1, 1),
  }


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--clips", type=int, default=16)
  ap.add_argument("--data_dir", default="workdirs/tfds")
  args = ap.parse_args()
  c = demo.get_config("eval")
  c.data.data_dir = os.path.abspath(args.data_dir)
  test = generate_lib.load_eval_set(c, args.clips)
  real = generate_lib.media_clips(c, test)
  anchor = evaluate.quality_anchors(c, test, real)
  floor = generate_lib.media_clips(c, generate_lib.load_eval_set(c, args.clips, split=c.data.split_eval))
  groups = [k.removeprefix("fd_video_") for k in quality.GATED["video"]]
  print(
      "video anchors, floor -> shuffled: "
      + ", ".join(
          f"{g} {anchor['fd_video_' + g]['floor']:.3f} -> {anchor['fd_video_' + g]['shuffled']:.3f}"
          for g in groups
      )
  )
  print(f"{'degradation of real clips':32s} {'gate':>6s}  " + " ".join(f"{g:>7s}" for g in groups))
  pool = np.concatenate([r["frames"] for r in real + floor])
  for name, fn in video_degradations(pool).items():
    v = quality.verdict(
        quality.proxies([dict(r, frames=fn(r["frames"])) for r in floor], real), anchor, "a2v"
    )
    print(
        f"{name:32s} {v['gate_video']:6.2f}  " + " ".join(f"{v['gate_video_' + g]:7.2f}" for g in groups),
        flush=True,
    )
  a = anchor["fd_logmel_proxy"]
  print(f"\naudio anchor, floor -> shuffled: {a['floor']:.3f} -> {a['shuffled']:.3f}")
  pool = np.stack([r["mel"] for r in real + floor])
  for name, fn in audio_degradations(pool).items():
    v = quality.verdict(quality.proxies([dict(r, mel=fn(r["mel"])) for r in floor], real), anchor, "v2a")
    print(f"{name:32s} {v['gate_audio']:6.2f}", flush=True)


if __name__ == "__main__":
  main()
