"""The memory plan's activation estimate side by side with JAX and XLA, per remat policy.

    python benchmarks/memory_plan.py [--models tiny,demo] [--remat full,dots_no_batch,dots,none] [--batch 8]

For one backward pass of `JointDiT` (f32, 'xla' attention) it prints, in MB:
  saved     the plan's estimate of what the forward keeps (train/plan.activation_bytes 'saved')
  jax       the per-layer residuals JAX really keeps (saved_residuals, stacked by the layer scan)
  est       the plan's saved + running-layer working set
  xla       XLA's temp buffer size for the compiled backward (memory_analysis, CPU)
Measured on 2 CPU cores (batch 8): 'full' and 'dots_no_batch' saved == jax exactly, 'dots' and 'none'
within 5%; xla / est = 0.72-0.86 for 'full', 'dots_no_batch', 'dots' (the estimate errs on the safe
side), 1.08-1.21 for 'none'. Each compile takes ~10-60 s on CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import jax
import jax.numpy as jnp
from flax import nnx
from jax._src.ad_checkpoint import saved_residuals  # private in jax 0.10.2; the public twin prints

from syncdpo_jax.model import example_io, get_model_config, get_parallel_config
from syncdpo_jax.model import factory as model_lib
from syncdpo_jax.train.plan import activation_bytes


def model_and_loss(name: str, remat: str, batch: int):
  model_cfg, parallel, io = get_model_config(name), get_parallel_config(name), example_io(name)
  parallel.remat, parallel.attention_impl = remat, "xla"
  if name == "tiny":  # more tokens than the unit-test shapes, so activations dominate
    model_cfg.depth = 2
    io = dataclasses.replace(io, text_dim=0, T_v=8, h=8, w=8, T_a=40)
  cfg = model_lib.resolve(model_cfg, io, parallel)
  gd, params, rest = nnx.split(model_lib.build_abstract(model_cfg, io, parallel), nnx.Param, ...)
  s = cfg
  args = (
      jax.ShapeDtypeStruct((batch, s.T_v, s.h, s.w, cfg.video_channels), jnp.float32),
      jax.ShapeDtypeStruct((batch, s.T_a, cfg.audio_channels), jnp.float32),
      jax.ShapeDtypeStruct((batch,), jnp.float32),
      jax.ShapeDtypeStruct((batch,), jnp.int32),
  )

  def loss(params, video, audio, t, label):
    v, a = nnx.merge(gd, params, rest)(video, audio, t, t, {"label": label})
    return jnp.mean(v**2) + jnp.mean(a**2)

  return cfg, loss, params, args


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--models", default="tiny,demo")
  ap.add_argument("--remat", default="full,dots_no_batch,dots,none")
  ap.add_argument("--batch", type=int, default=8)
  args = ap.parse_args()
  print(
      f"{'model':>5} {'remat':>14} {'saved':>8} {'jax':>8} {'est':>8} {'xla':>8} {'xla/est':>8} "
      f"{'compile s':>9}"
  )
  for name in args.models.split(","):
    for remat in args.remat.split(","):
      cfg, loss, params, shapes = model_and_loss(name, remat, args.batch)
      zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), (params,) + shapes)
      jax_saved = sum(
          math.prod(a.shape) * a.dtype.itemsize
          for a, src in saved_residuals(loss, *zeros)
          if "argument" not in src and a.shape[:1] == (cfg.depth,)
      )
      t0 = time.perf_counter()
      compiled = (
          jax.jit(jax.grad(loss))
          .lower(params, *shapes)
          .compile(
              compiler_options={
                  "xla_backend_optimization_level": 0,
                  "xla_llvm_disable_expensive_passes": True,
              }
          )
      )
      dt = time.perf_counter() - t0
      xla = compiled.memory_analysis().temp_size_in_bytes
      est = activation_bytes(cfg, per_device_batch=args.batch)
      total = est["saved"] + est["layer"]
      print(
          f"{name:>5} {remat:>14} {est['saved'] / 1e6:>8.2f} {jax_saved / 1e6:>8.2f} {total / 1e6:>8.2f} "
          f"{xla / 1e6:>8.2f} {xla / total:>8.2f} {dt:>9.1f}",
          flush=True,
      )


if __name__ == "__main__":
  main()
