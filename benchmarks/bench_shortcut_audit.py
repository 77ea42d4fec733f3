"""Shortcut audit of the SyncDPO rules: can the distorted stream ALONE tell a loser from its winner?

  python benchmarks/bench_shortcut_audit.py [--clips 192] [--context_s 0.5] [--data_dir workdirs/tfds]

(`make demo` builds the data first.) For every rule and three curriculum strengths (1 = coarse, 0.5,
0 = subtle), on real training clips of the demo data as latents: each single-stream statistic's
separation (max(AUC, 1 - AUC), 0.5 = chance) and a cross-validated logistic probe on all of them
(syncdpo_jax/perturb/audit.py). A rule that only changes cross-modal timing sits at chance (<= 0.55);
anything above is a cue DPO can learn without looking at the other modality. The control row's
"losers" are as many other real clips: what chance looks like at this number of clips. With
--context_s > 0 (data.context_s) the clips carry that much real content on each side and the rules
read from it (no padding); --context_s 0 audits the rules as they act on the bare window.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import demo  # noqa: E402
from syncdpo_jax import codec as codec_lib  # noqa: E402
from syncdpo_jax import perturb  # noqa: E402
from syncdpo_jax.data import pipeline  # noqa: E402
from syncdpo_jax.perturb import audit  # noqa: E402
from syncdpo_jax.runs import generate as generate_lib  # noqa: E402
from syncdpo_jax.train import pair_sources  # noqa: E402


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--clips", type=int, default=192)
  ap.add_argument("--context_s", type=float, default=None, help="default: the demo DPO config's")
  ap.add_argument("--data_dir", default="workdirs/tfds")
  args = ap.parse_args()
  c = demo.get_config("dpo")
  c.data.data_dir = os.path.abspath(args.data_dir)
  if args.context_s is not None:
    c.data.context_s = args.context_s
  codec = codec_lib.make_codec(c.codec, c.data)
  keys = ("video", "audio") + (pair_sources.CONTEXT_KEYS if c.data.context_s > 0 else ())
  clips = pipeline.first_examples(c.data, c.data.split_train, 2 * args.clips, keys)
  video2, audio2 = generate_lib.encode_clips(codec, clips)
  video, audio = video2[: args.clips], audio2[: args.clips]
  context = None
  if c.data.context_s > 0:
    ctx = {"video": clips["video_context"][: args.clips], "audio": clips["audio_context"][: args.clips]}
    ctx_v, ctx_a = generate_lib.encode_clips(codec, ctx)
    context = {"video": ctx_v, "audio": ctx_a}
  fps_v, fps_a = float(codec.fps), float(codec.audio_fps)
  options = perturb.options_from_config(c.perturb)
  print(
      f"{args.clips} demo training clips, {c.data.context_s:g} s of context; separation = max(AUC, 1 - AUC) "
      "of the distorted stream alone"
  )
  print(
      f"{'rule':10s} {'strength':>8s} {'stream':>6s} {'changed':>7s} {'probe':>6s} {'best statistic':>24s}  "
      + " ".join(f"{s:>12s}" for s in audit.STATISTICS)
  )
  for stream, x in (("video", video2), ("audio", audio2)):
    w, l = audit.stream_statistics(x[: args.clips]), audit.stream_statistics(x[args.clips :])
    sep = [audit.separation(l[:, i], w[:, i]) for i in range(len(audit.STATISTICS))]
    label = f"{audit.STATISTICS[int(np.argmax(sep))]} {max(sep):.2f}"
    print(
        f"{'control':10s} {'-':>8s} {stream:>6s} {1.0:7.2f} {audit.probe_auc(w, l):6.2f} {label:>24s}  "
        + " ".join(f"{v:12.2f}" for v in sep)
    )
  for name in perturb.names():
    for strength in (1.0, 0.5, 0.0):
      r = audit.audit_rule(name, jax.random.key(0), video, audio, strength, fps_v, fps_a, options, context)
      best = max(r["auc"], key=r["auc"].get)
      label = f"{best} {r['auc'][best]:.2f}"
      print(
          f"{name:10s} {strength:8.1f} {r['stream']:>6s} {r['changed']:7.2f} {r['probe_auc']:6.2f} "
          f"{label:>24s}  " + " ".join(f"{r['auc'][s]:12.2f}" for s in audit.STATISTICS),
          flush=True,
      )


if __name__ == "__main__":
  main()
