"""Does the trained denoiser beat the trivial one? x0-hat error by noise level on a checkpoint.

  python benchmarks/bench_denoiser.py --workdir workdirs/demo/sft [--data_dir workdirs/tfds]

For val clips of the demo data, at t in (0.1, ..., 1.0) with fixed noise, it prints the MSE of the
model's one-step clean estimate x0_hat = x_t - t * v_hat (video and audio latents) beside the MSE of
predicting the mean training frame (per position, from 64 training clips), the ratio of the two, and
PASS when the model is better at every t. At t = 1 the input is pure noise: the best a denoiser can do
there is the mean clip of the label, so a model that loses to the mean frame at high t has not learned
the layout its samples start from.
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
from syncdpo_jax.data import pipeline  # noqa: E402
from syncdpo_jax.objectives import flow  # noqa: E402
from syncdpo_jax.model import sharding as sharding_lib  # noqa: E402
from syncdpo_jax.train import checkpoint as ckpt_lib  # noqa: E402
from syncdpo_jax.runs import generate as generate_lib  # noqa: E402
from syncdpo_jax.train import steps  # noqa: E402
from syncdpo_jax import codec as codec_lib  # noqa: E402

TS = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def x0_errors(apply, params, video, audio, label, ts=TS, seed=123) -> np.ndarray:
  """[len(ts), 2] MSE of x0_hat (video, audio) at each t, the same noise for every t."""
  kv, ka = jax.random.split(jax.random.key(seed))
  ev, ea = jax.random.normal(kv, video.shape), jax.random.normal(ka, audio.shape)

  @jax.jit
  def one(params, t):
    tt = jnp.full((video.shape[0],), t)
    xv, xa = flow.noisy(video, ev, tt), flow.noisy(audio, ea, tt)
    vv, va = apply(params, xv, xa, tt, tt, {"label": label})
    return jnp.stack([jnp.mean((xv - t * vv - video) ** 2), jnp.mean((xa - t * va - audio) ** 2)])

  return np.stack([np.asarray(one(params, t)) for t in ts])


def main() -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--workdir", default="workdirs/demo/sft", help="an SFT (or DPO) run of configs/demo.py")
  ap.add_argument("--data_dir", default="workdirs/tfds")
  ap.add_argument("--num_clips", type=int, default=32)
  args = ap.parse_args()
  if not os.path.isdir(args.workdir):
    print(f"bench_denoiser: no run in {args.workdir}; run `make demo` first (or pass --workdir).")
    return 0
  c = demo.get_config("eval")
  c.data.data_dir = os.path.abspath(args.data_dir)
  codec = codec_lib.make_codec(c.codec, c.data)
  graphdef, params_like, rest = generate_lib.abstract_model_on_mesh(
      c, sharding_lib.make_mesh(c.parallel.mesh)
  )
  params, src = ckpt_lib.restore_params(args.workdir, params_like, c)
  apply = steps.make_apply(graphdef, rest, c.objective.prediction)
  val = pipeline.first_examples(c.data, c.data.split_eval, args.num_clips, ("label", "video", "audio"))
  train = pipeline.first_examples(c.data, c.data.split_train, 64, ("video", "audio"))
  video, audio = codec.encode_video(jnp.asarray(val["video"])), codec.encode_audio(jnp.asarray(val["audio"]))
  mean_v = codec.encode_video(jnp.asarray(train["video"])).mean(0)
  mean_a = codec.encode_audio(jnp.asarray(train["audio"])).mean(0)
  base = np.array([float(jnp.mean((video - mean_v) ** 2)), float(jnp.mean((audio - mean_a) ** 2))])
  err = x0_errors(apply, params, video, audio, jnp.asarray(val["label"], jnp.int32))
  print(
      f"x0_hat MSE of {src} on {len(val['label'])} {c.data.split_eval} clips "
      f"(mean training frame: video {base[0]:.4f}, audio {base[1]:.4f})"
  )
  print("   t   video   ratio   audio   ratio")
  for t, (ev, ea) in zip(TS, err):
    print(f"{t:4.1f}  {ev:.4f}  {ev / base[0]:5.2f}   {ea:.4f}  {ea / base[1]:5.2f}")
  worse = [
      f"{stream} at t={t:.1f}"
      for i, t in enumerate(TS)
      for j, stream in enumerate(("video", "audio"))
      if not err[i, j] < base[j]
  ]
  print(
      "PASS: x0_hat beats the mean frame at every t"
      if not worse
      else "FAIL: x0_hat is no better than the mean frame for " + ", ".join(worse)
  )
  ok = not worse
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
