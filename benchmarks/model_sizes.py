"""Parameter counts and FLOPs/example of every model size, built abstractly with `jax.eval_shape`.

    python benchmarks/model_sizes.py [--sizes tiny,demo,1b,5b] [--trace]

Nothing is allocated: the model is built under `nnx.eval_shape` (the 5B model needs ~24 GB as f32).
--trace also traces the forward pass on the config's default latent shapes (slow on CPU for 1b/5b).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
from flax import nnx

from syncdpo_jax.model import factory as model_lib
from syncdpo_jax.model import example_io, flops_per_example, get_model_config, get_parallel_config
from syncdpo_jax.model.flops import train_flops_per_example


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--sizes", default="tiny,demo,1b,5b")
  ap.add_argument("--trace", action="store_true", help="also eval_shape the forward pass")
  args = ap.parse_args()
  print(
      f"{'size':>5} {'params':>15} {'video tok':>9} {'audio tok':>9} {'fwd GFLOP/ex':>13} "
      f"{'train GFLOP/ex':>14} {'build s':>8}"
  )
  for size in args.sizes.split(","):
    model_cfg, io, parallel = get_model_config(size), example_io(size), get_parallel_config(size)
    cfg = model_lib.resolve(model_cfg, io, parallel)
    t0 = time.perf_counter()
    abstract = model_lib.build_abstract(model_cfg, io, parallel)
    n = sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    s = cfg  # the latents the size was designed for
    text_len = s.text_len if cfg.text_dim else 0
    if args.trace:
      video = jax.ShapeDtypeStruct((1, s.T_v, s.h, s.w, cfg.video_channels), jnp.float32)
      audio = jax.ShapeDtypeStruct((1, s.T_a, cfg.audio_channels), jnp.float32)
      t = jax.ShapeDtypeStruct((1,), jnp.float32)
      cond = {"label": jax.ShapeDtypeStruct((1,), jnp.int32)}
      if text_len:
        cond["text"] = jax.ShapeDtypeStruct((1, text_len, cfg.text_dim), jnp.float32)
      out = jax.eval_shape(
          lambda *a: model_lib.build(model_cfg, io, nnx.Rngs(0), parallel)(*a), video, audio, t, t, cond
      )
      assert out[0].shape == video.shape and out[1].shape == audio.shape
    dt = time.perf_counter() - t0
    ph, pw = tuple(cfg.video_patch)
    nv = s.T_v * (s.h // ph) * (s.w // pw)
    na = s.T_a // cfg.audio_patch
    f = flops_per_example(cfg, s.T_v, s.h, s.w, s.T_a, text_len)
    ft = train_flops_per_example(cfg, s.T_v, s.h, s.w, s.T_a, text_len)
    print(f"{size:>5} {n:>15,} {nv:>9} {na:>9} {f / 1e9:>13.2f} {ft / 1e9:>14.2f} {dt:>8.1f}")


if __name__ == "__main__":
  main()
