"""Do the sampled clips spread as the data does? Generated video latents against the real ones, by
solver and number of steps, on a checkpoint.

  python benchmarks/bench_sample_spread.py --workdir workdirs/demo/sft [--samplers euler:25,ab2:50]
      [--modes joint,a2v]

A sampler whose steps are too coarse for the model pulls every clip towards the data's mean: each clip's
colours (what its latents average to) move towards the mean clip's, and the per-feature gate of the eval
sees it as `colour` (README, "The demo's generator", seventh round). Printed per mode and solver:
the standard deviation of every generated video latent and the spread of the clip-mean latents (the
standard deviation over clips of each channel's mean, averaged over channels), beside the same two
numbers of the real eval clips. Same clips, labels and sampler noise as the eval (seed 0, the eval's
keys), so a row here is the eval's row.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import demo  # noqa: E402
from syncdpo_jax import codec as codec_lib  # noqa: E402
from syncdpo_jax import sample as sample_lib  # noqa: E402
from syncdpo_jax.model import sharding as sharding_lib  # noqa: E402
from syncdpo_jax.runs import generate as generate_lib  # noqa: E402
from syncdpo_jax.train import checkpoint as ckpt_lib  # noqa: E402


def latent_spread(video) -> tuple[float, float]:
  """(std of every latent, mean over channels of the std over clips of each clip's channel mean) of
  video latents [N, T, h, w, C]."""
  v = np.asarray(video, np.float64)
  return float(v.std()), float(v.mean(axis=(1, 2, 3)).std(axis=0).mean())


def main() -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--workdir", default="workdirs/demo/sft", help="an SFT (or DPO) run of configs/demo.py")
  ap.add_argument("--data_dir", default="workdirs/tfds")
  ap.add_argument(
      "--samplers", default="euler:25,euler:100,ab2:50", help="solver:steps pairs to compare (sample.sampler)"
  )
  ap.add_argument("--modes", default="joint,a2v", help="generation modes that generate video")
  args = ap.parse_args()
  if not os.path.isdir(args.workdir):
    print(f"bench_sample_spread: no run in {args.workdir}; run `make demo` first (or pass --workdir).")
    return 0
  c = demo.get_config("eval")
  c.data.data_dir = os.path.abspath(args.data_dir)
  mesh = sharding_lib.make_mesh(c.parallel.mesh)
  rules = tuple(c.parallel.logical_axis_rules)
  codec = codec_lib.make_codec(c.codec, c.data)
  data = generate_lib.load_eval_set(c, int(c.eval.num_clips))
  video, audio = generate_lib.encode_clips(codec, data)
  label = jnp.asarray(data["label"], jnp.int32)
  graphdef, params_like, rest = generate_lib.abstract_model_on_mesh(c, mesh)
  params, src = ckpt_lib.restore_params(args.workdir, params_like, c)
  sd, spread = latent_spread(video)
  print(f"{src}: video latents of {len(label)} {c.eval.split} clips")
  print(f"{'':>18}  latent std  clip-mean spread")
  print(f"{'real':>18}  {sd:10.3f}  {spread:16.3f}")
  for spec in args.samplers.split(","):
    c.sample.sampler, steps = spec.split(":")
    c.sample.num_steps = int(steps)
    generate = generate_lib.make_generate(
        graphdef, rest, codec, c.sample, int(c.data.num_classes), c.objective.prediction
    )
    for mode in args.modes.split(","):
      # The eval's key of the mode (runs/evaluate.py).
      key = jax.random.fold_in(jax.random.key(int(c.seed)), list(sample_lib.config.MODES).index(mode))
      gen, _ = generate_lib.generate_in_batches(
          generate, mesh, rules, params, key, video, audio, label, mode, int(c.eval.batch_size)
      )
      sd, spread = latent_spread(gen)
      print(f"{f'{mode}, {spec}':>18}  {sd:10.3f}  {spread:16.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
