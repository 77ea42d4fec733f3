"""Forward+backward time of the cross-modal local attention vs clip length: banded vs dense mask.

    python benchmarks/bench_local_attention.py [--lengths 2,4,8,16] [--repeats 3]

Measures the video<-audio interaction at the demo rates (video 10 fps x 16 tokens/frame, audio tokens
at 25 Hz, +-0.2 s window, 4 heads of 32) side by side in one run and prints each variant's time per
length and the 16 s / 8 s ratio. Target: banded grows ~linearly (ratio <= 2.3); dense ~4x.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp

from syncdpo_jax.model import layers as L


def bench(fn, q, k, v, repeats: int) -> float:
  loss = lambda q, k, v: jnp.sum(fn(q, k, v) ** 2)
  step = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
  jax.block_until_ready(step(q, k, v))  # compile
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(step(q, k, v))
    best = min(best, time.perf_counter() - t0)
  return best


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--lengths", default="2,4,8,16", help="clip lengths in seconds")
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--batch", type=int, default=2)
  args = ap.parse_args()
  fv, fa, S, H, D, W = 10.0, 25.0, 16, 4, 32, 0.2
  lengths = [float(x) for x in args.lengths.split(",")]
  variants = {"banded": L.local_cross_attention, "dense": L.local_cross_attention_dense}
  times: dict[str, dict[float, float]] = {name: {} for name in variants}
  for sec in lengths:
    Tv, Ta = int(sec * fv), int(sec * fa)
    kq, kk, kv = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(kq, (args.batch, Tv, S, H, D))
    k = jax.random.normal(kk, (args.batch, Ta, 1, H, D))
    v = jax.random.normal(kv, (args.batch, Ta, 1, H, D))
    for name, fn in variants.items():
      f = functools.partial(fn, q_rate=fv, k_rate=fa, window_s=W)
      times[name][sec] = bench(f, q, k, v, args.repeats)
  print(
      f"device: {jax.devices()[0].device_kind}  batch {args.batch}, video {fv:g} fps x {S} tok, "
      f"audio {fa:g} Hz, window +-{W} s, fwd+bwd, best of {args.repeats}"
  )
  print(f"{'clip (s)':>9} " + " ".join(f"{n + ' (ms)':>14}" for n in variants) + f" {'dense/banded':>13}")
  for sec in lengths:
    row = " ".join(f"{times[n][sec] * 1e3:14.2f}" for n in variants)
    print(f"{sec:9g} {row} {times['dense'][sec] / times['banded'][sec]:13.2f}")
  if 8.0 in lengths and 16.0 in lengths:
    for n in variants:
      r = times[n][16.0] / times[n][8.0]
      print(
          f"{n:>7}: 16 s / 8 s = {r:.2f}"
          + (
              "  (target <= 2.3: OK)"
              if n == "banded" and r <= 2.3
              else "  (target <= 2.3: MISSED)"
              if n == "banded"
              else "  (quadratic ~4)"
          )
      )


if __name__ == "__main__":
  main()
