"""DPO vs SFT step cost, the cost of building negatives, and achieved FLOP/s vs a large matmul.

  python benchmarks/bench_train_step.py [--batch 16] [--repeats 5] [--rounds 3]

Everything is measured side by side in one process, interleaved round by round (this machine is shared
and noisy: absolute times drift, ratios taken together hold). Targets (issues #4, #5):
  DPO step / SFT step             <= 2.8x   (FLOP ratio (2*3 + 2*1) / 3 = 2.67x)
  negatives / DPO step            <  2%
  train FLOP/s / matmul FLOP/s    reported (MFU against what this machine really does)
"""

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import demo  # noqa: E402
from syncdpo_jax import perturb  # noqa: E402
from syncdpo_jax.data import pipeline  # noqa: E402
from syncdpo_jax.model import sharding as sharding_lib  # noqa: E402
from syncdpo_jax.perturb import curriculum  # noqa: E402
from syncdpo_jax.train import loop  # noqa: E402


def timeit(fn, repeats):
  """Median wall time of fn() (which must block) over `repeats` calls."""
  ts = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    ts.append(time.perf_counter() - t)
  return float(np.median(ts))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--batch", type=int, default=None, help="default: the demo config's batch size")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--rounds", type=int, default=3)
  args = ap.parse_args()
  mesh = sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])
  setups, cfgs = {}, {}
  for mode in ("sft", "dpo"):
    c = demo.get_config(mode)
    c.init_from = "unused-by-this-benchmark"
    if args.batch:
      c.data.batch_size = args.batch
    cfgs[mode] = c
    setups[mode] = loop.build(c, mesh=mesh)
  c = cfgs["dpo"]
  ds = pipeline.make_dataset(c.data, c.data.split_train, seed=0, train=True)
  nb = next(iter(ds))
  batch = {k: jnp.asarray(nb[k]) for k in ("video", "audio", "label")}
  codec = setups["dpo"].codec

  states = {m: setups[m].state for m in setups}

  def run_step(mode):
    def f():
      states[mode], metrics = setups[mode].step_fn(states[mode], batch)
      jax.block_until_ready(metrics)

    return f

  # The negatives exactly as the DPO step builds them (same shapes, same curriculum-driven mix).
  # A copy: the DPO step donates its state, curriculum included.
  cur = jax.tree.map(jnp.copy, states["dpo"].curriculum)
  mix = perturb.probs_from_config(c.perturb)
  opts = perturb.options_from_config(c.perturb)

  @jax.jit
  def negatives(key, video, audio, cur):
    v, a = codec.encode_video(video), codec.encode_audio(audio)
    p = curriculum.mix_probs(cur, c.curriculum, mix)
    return perturb.make_negatives(key, v, a, curriculum.strength(cur), codec.fps, codec.audio_fps, p, opts)

  neg = lambda: jax.block_until_ready(negatives(jax.random.key(0), batch["video"], batch["audio"], cur))
  n = 2048
  x = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  mm = jax.jit(lambda a: a @ a)
  matmul = lambda: jax.block_until_ready(mm(x))
  with jax.set_mesh(mesh):
    for f in (run_step("sft"), run_step("dpo"), neg, matmul):  # compile + warm up
      f()
      f()
    rows = []
    for _ in range(args.rounds):
      rows.append(
          [
              timeit(run_step("sft"), args.repeats),
              timeit(run_step("dpo"), args.repeats),
              timeit(neg, args.repeats),
              timeit(matmul, args.repeats),
          ]
      )
  sft_t, dpo_t, neg_t, mm_t = np.median(np.asarray(rows), axis=0)
  mm_flops = 2.0 * n**3 / mm_t
  b = c.data.batch_size
  print(
      f"demo config, batch {b}, {jax.devices()[0].platform}, median of {args.rounds} interleaved rounds "
      f"x {args.repeats} calls"
  )
  print(
      f"  SFT step        {sft_t * 1e3:9.1f} ms   {setups['sft'].flops_per_step / sft_t / 1e9:6.1f} GFLOP/s"
  )
  print(
      f"  DPO step        {dpo_t * 1e3:9.1f} ms   {setups['dpo'].flops_per_step / dpo_t / 1e9:6.1f} GFLOP/s"
  )
  print(f"  negatives       {neg_t * 1e3:9.2f} ms")
  print(f"  matmul {n}^2   {mm_t * 1e3:9.1f} ms   {mm_flops / 1e9:6.1f} GFLOP/s")
  print(
      f"DPO / SFT step time:          {dpo_t / sft_t:.2f}x   (target <= 2.8x; FLOP ratio "
      f"{setups['dpo'].flops_per_step / setups['sft'].flops_per_step:.2f}x)"
  )
  print(f"negatives / DPO step:         {100 * neg_t / dpo_t:.2f}%   (target < 2%)")
  print(f"SFT FLOP/s / matmul FLOP/s:   {setups['sft'].flops_per_step / sft_t / mm_flops:.2f}")
  print(f"DPO FLOP/s / matmul FLOP/s:   {setups['dpo'].flops_per_step / dpo_t / mm_flops:.2f}")


if __name__ == "__main__":
  main()
