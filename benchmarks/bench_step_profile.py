"""Where a train step's time goes: XLA's per-op times of the demo SFT and DPO steps, by kind of op.

  python benchmarks/bench_step_profile.py [--modes sft,dpo] [--steps 3] [--top 14]

Each step is traced with the JAX profiler (perfetto JSON), the executed XLA ops' durations are summed
per kind (the op name less its instance number: `ynn_fusion` = the CPU runtime's fused matmuls, `dot` =
plain matmuls, `copy` / `transpose_copy_fusion` / `copy_bitcast_fusion` = layout changes,
`*dynamic-update-slice*` / `*dynamic-slice*` = the layer scan writing and reading per-layer values) and
printed per step with their share. Shares, not absolute times, are what to compare (a shared machine).
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from configs import demo  # noqa: E402
from syncdpo_jax.data import pipeline  # noqa: E402
from syncdpo_jax.train import loop, pair_sources  # noqa: E402

# Trace events that are not XLA ops (the runtime's own spans, Python frames).
_NOT_OPS = ("ThunkExecutor", "$", "PjitFunction", "SlinkyThreadPool", "ParseArguments")


def op_times(trace_dir: str) -> collections.Counter:
  """{op kind: total microseconds} of every XLA op in the perfetto trace under `trace_dir`."""
  (path,) = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
  with gzip.open(path) as f:
    trace = json.load(f)
  out = collections.Counter()
  for e in trace["traceEvents"] if isinstance(trace, dict) else trace:
    if e.get("ph") == "X" and "dur" in e and not e["name"].startswith(_NOT_OPS):
      out[re.sub(r"\.\d+$", "", e["name"])] += e["dur"]
  return out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--modes", default="sft,dpo")
  ap.add_argument("--steps", type=int, default=3)
  ap.add_argument("--top", type=int, default=14)
  ap.add_argument("--data_dir", default="workdirs/tfds")
  args = ap.parse_args()
  for mode in args.modes.split(","):
    c = demo.get_config(mode)
    c.data.data_dir = args.data_dir
    if mode == "dpo":
      c.init_from = "unused: build() does not read it"  # the reference is the initial policy here
    setup = loop.build(c)
    keys = setup.pair_source.batch_keys if setup.pair_source is not None else pair_sources.CLIP_KEYS
    b = next(iter(pipeline.make_dataset(c.data, c.data.split_train, seed=0, train=True)))
    batch = jax.device_put({k: jnp.asarray(b[k]) for k in keys}, setup.batch_sharding)
    state = setup.state
    with jax.set_mesh(setup.mesh):
      for _ in range(2):  # compile and warm up
        state, m = setup.step_fn(state, batch)
      jax.block_until_ready(m)
      t0 = time.perf_counter()
      for _ in range(args.steps):
        state, m = setup.step_fn(state, batch)
      jax.block_until_ready(m)
      wall = (time.perf_counter() - t0) / args.steps
      with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
          for _ in range(args.steps):
            state, m = setup.step_fn(state, batch)
          jax.block_until_ready(m)
        ops = op_times(d)
    total = sum(ops.values())
    print(
        f"\n{mode}: {wall * 1e3:.0f} ms/step wall, {total / args.steps / 1e3:.0f} ms/step in XLA ops (both cores' threads)"
    )
    for kind, us in ops.most_common(args.top):
      print(f"  {us / args.steps / 1e3:8.1f} ms/step  {100 * us / total:5.1f}%  {kind}")
    layout = sum(v for k, v in ops.items() if k.startswith(("copy", "transpose")) or "slice" in k)
    matmul = sum(v for k, v in ops.items() if k.startswith(("ynn_fusion", "dot")))
    print(f"  matmuls {100 * matmul / total:.0f}%, layout and scan slicing {100 * layout / total:.0f}%")


if __name__ == "__main__":
  main()
