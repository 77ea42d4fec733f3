"""What an eval costs per clip on the demo config: sampling, decoding, the field's metrics, the GT ruler.

  python benchmarks/bench_eval_cost.py --workdir workdirs/demo/sft [--clips 32] [--data_dir workdirs/tfds]

For `--clips` test clips and each generation mode it times, in one run and on the same clips: sampling
(config.sample, SyncCFG as configured, compiled first), decoding to frames + Griffin-Lim waveform, the
field's metrics (estimate_offset / AV-Align / event F1: Griffin-Lim audio and optical flow) and the
ground-truth timing metrics (eval/timing.py: the log-mel or the frames, neither Griffin-Lim nor flow).
It prints seconds per clip for each, and their ratio to sampling. Run on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import demo  # noqa: E402
from syncdpo_jax import codec as codec_lib  # noqa: E402
from syncdpo_jax import eval as eval_lib  # noqa: E402
from syncdpo_jax.model import sharding as sharding_lib  # noqa: E402
from syncdpo_jax.train import checkpoint as ckpt_lib  # noqa: E402
from syncdpo_jax.runs import evaluate
from syncdpo_jax.runs import generate as generate_lib  # noqa: E402


def _timed(fn):
  t0 = time.perf_counter()
  out = fn()
  jax.block_until_ready(out) if isinstance(out, (jax.Array, tuple)) else None
  return out, time.perf_counter() - t0


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--workdir", default="workdirs/demo/sft")
  ap.add_argument("--clips", type=int, default=32)
  ap.add_argument("--data_dir", default="workdirs/tfds")
  args = ap.parse_args()
  c = demo.get_config("eval")
  c.data.data_dir = os.path.abspath(args.data_dir)
  codec = codec_lib.make_codec(c.codec, c.data)
  data = generate_lib.load_eval_set(c, args.clips)
  gt = list(data["events"])
  video, audio = generate_lib.encode_clips(codec, data)
  label = jnp.asarray(data["label"], jnp.int32)
  graphdef, params_like, rest = generate_lib.abstract_model_on_mesh(
      c, sharding_lib.make_mesh(c.parallel.mesh)
  )
  params, _ = ckpt_lib.restore_params(os.path.abspath(args.workdir), params_like, c)
  generate = generate_lib.make_generate(
      graphdef, rest, codec, c.sample, int(c.data.num_classes), c.objective.prediction
  )
  bs = int(c.eval.batch_size)
  n = len(label)
  print(
      f"{n} clips, batch {bs}, {c.sample.num_steps} {c.sample.sampler} steps, SyncCFG "
      f"{c.sample.sync_cfg}; seconds per clip (x sampling)"
  )
  print(f"{'mode':6s} {'sample':>8s} {'decode+GL':>14s} {'field metrics':>16s} {'GT timing':>14s}")
  for mode in ("joint", "v2a", "a2v"):
    key = jax.random.key(0)

    def sample():
      outs = [
          generate(params, key, video[i : i + bs], audio[i : i + bs], label[i : i + bs], mode=mode)
          for i in range(0, n, bs)
      ]
      return jnp.concatenate([o[0] for o in outs]), jnp.concatenate([o[1] for o in outs])

    sample()  # compile
    (v, a), t_sample = _timed(sample)
    clips, t_decode = _timed(lambda: generate_lib.decode_clips(codec, c.data, v, a))
    stream = "video" if mode == "a2v" else "audio"
    _, t_field = _timed(
        lambda: eval_lib.evaluate_clips(clips, gt if mode != "joint" else None, event_stream=stream)
    )
    if mode == "joint":
      t_gt = float("nan")  # nothing is given: no ground truth to time against
    else:
      _, t_gt = _timed(
          lambda: [
              eval_lib.audio_timing(None, cl["sr"], g, mel=cl["mel"], mel_fps=cl["mel_fps"])
              if stream == "audio"
              else eval_lib.video_timing(cl["frames"], cl["fps"], g)
              for cl, g in zip(clips, gt)
          ]
      )
    per = [x / n for x in (t_sample, t_decode, t_field, t_gt)]
    print(
        f"{mode:6s} {per[0]:8.3f} " + " ".join(f"{x:7.3f} ({x / per[0]:4.2f}x)" for x in per[1:]), flush=True
    )


if __name__ == "__main__":
  main()
