"""Time to quality of the demo's generator: train variants for equal wall time, compare what they make.

  python benchmarks/bench_time_to_quality.py --seconds 250 --variants G,I,J [--data_dir workdirs/tfds]
  python benchmarks/bench_time_to_quality.py --steps 1000 --variants J,L,M,N   # equal steps instead
  python benchmarks/bench_time_to_quality.py --steps 1000 --variants P,U,W --grid_dir /tmp/grids
  python benchmarks/bench_time_to_quality.py --steps 1000 --variants J,W2,Y,Z,X0,X0E,X03,X0S   # the fourth round
  python benchmarks/bench_time_to_quality.py --steps 1000 --variants X0,X0B32,X0B16,X0B8,X0B16H64   # the fifth round

(`make demo` builds the data first; each variant takes its seconds plus ~1.5 min to compile and score.)

Each variant is `configs/demo.py:sft` with a few overrides (VARIANTS; the README's "The demo's
generator" table), trained from scratch on the same data order until `--seconds` of step time have
passed (compilation excluded), or `--steps` steps. It prints, per variant: steps done, the x0-hat MSE at
t = 0.1 / 0.5 / 0.9 / 1.0 on 16 validation clips against the mean training frame
(benchmarks/bench_denoiser.py); `rec0.2`, the quality gate's video position of the 16 test clips noised to
t = 0.2 and denoised back (10 Euler steps, the real audio given): what the model does to a clip it
almost sees; and the gate's positions of joint generation on the 16 test clips
(syncdpo_jax/eval/quality.py), sampled without and with SyncCFG; the x0-hat errors also as fractions
of the mean frame's (standardised latents have other units). With --grid_dir each variant's frames and
log-mels (real, rec0.2, joint with and without SyncCFG) go to ttq_<variant>.png. One run interleaves
nothing: run it on a quiet machine, the variants one after another.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_denoiser import x0_errors  # noqa: E402
from configs import demo  # noqa: E402
from syncdpo_jax.data import pipeline  # noqa: E402
from syncdpo_jax.objectives import flow  # noqa: E402
from syncdpo_jax.eval import quality  # noqa: E402
from syncdpo_jax.runs import evaluate
from syncdpo_jax.runs import generate as generate_lib  # noqa: E402
from syncdpo_jax.train import loop, steps  # noqa: E402

# The README's runs: overrides of J (configs/demo.py:sft before config_lib.demo_generator, the demo's
# model of rounds 1-3; _J undoes the recipe). Each keeps the cosine schedule over the horizon it was run
# with (train.num_steps), stopped by time before its end.
_J = {
    "codec.name": "pixel_mel",  # the sixth round's demo uses the learned codec
    "sample.num_steps": 10,
    "sample.sync_cfg": True,
    "codec.video_norm": (0.0, 1.0),
    "codec.audio_norm": (0.0, 1.0),
    "model.head_mlp_dim": 0,
    "model.zero_init_branches": False,
    "objective.t_shift": 3.0,
    "objective.error_space": "velocity",
    "sample.shift": 1.0,
    "model.video_patch_bottleneck": 0,
    "model.video_head_bottleneck": 0,
}
_OLD = {"model.video_patch": (2, 2), "model.gate_init": 0.0, "train.num_steps": 300}
_LOGIT = {"objective.t_sampling": "logit_normal", "objective.t_shift": 1.0}
_NORM = {"codec.video_norm": (-0.4707, 0.3569), "codec.audio_norm": (-0.4401, 0.3678)}
VARIANTS = {
    "A": dict(_OLD, **_LOGIT),
    "B": dict(_OLD, **_LOGIT, **{"objective.t_logit_mean": 0.8}),
    "G": dict(_OLD, **{"train.num_steps": 250}),
    "H": dict(_OLD, **{"data.batch_size": 8, "optim.lr": 3e-3, "train.num_steps": 500}),
    "I": {"model.gate_init": 0.0, "train.num_steps": 600},
    "J": {"train.num_steps": 600},
    "K": {"model.video_patch": (2, 2), "train.num_steps": 300},
    # Measured at equal steps (--steps 1000; the demo's horizon):
    "L": {"data.batch_size": 8, "train.num_steps": 2000},  # J at half the batch, twice the steps
    "L2": {"data.batch_size": 8, "train.num_steps": 2000, "optim.lr": 2e-3, "train.ema_decay": 0.995},
    "M": {"objective.error_space": "x0"},  # J, errors of the clean estimate
    "N": {"objective.error_space": "x0", "objective.t_shift": 1.0},  # M, uniform times
    "O": {"objective.error_space": "x0", "objective.t_shift": 1.0, "model.gate_init": 0.25},
    # Standardised latents (codec.video_norm / audio_norm, measured on the training split), then EDM's
    # skip on top of x-prediction:
    "P": _NORM,
    "Q": dict(_NORM, **{"objective.prediction": "x_skip"}),
    # A per-token MLP head (model.head_mlp_dim): tokens from more than a model-width subspace.
    "R": {"model.head_mlp_dim": 512},
    "S": dict(_NORM, **{"model.head_mlp_dim": 512}),
    # Open gates with zero-initialised branch outputs (model.zero_init_branches): blocks start as the
    # identity yet learn from step 1.
    "U": dict(_NORM, **{"model.head_mlp_dim": 512, "model.zero_init_branches": True}),
    "V": {"model.zero_init_branches": True},
    # U with the shift towards noise that standardising took away (raw latents' std 0.36 ~ a 2.8x
    # shift), in training and then also in sampling:
    "W": dict(
        _NORM, **{"model.head_mlp_dim": 512, "model.zero_init_branches": True, "objective.t_shift": 8.0}
    ),
    "W2": dict(
        _NORM,
        **{
            "model.head_mlp_dim": 512,
            "model.zero_init_branches": True,
            "objective.t_shift": 8.0,
            "sample.shift": 3.0,
        },
    ),
    "X": dict(
        _NORM,
        **{
            "model.head_mlp_dim": 512,
            "model.zero_init_branches": True,
            "objective.t_shift": 16.0,
            "sample.shift": 3.0,
        },
    ),
    # W2 at twice the demo's horizon (its cosine schedule over 2000 steps): the slope.
    "W3": dict(
        _NORM,
        **{
            "model.head_mlp_dim": 512,
            "model.zero_init_branches": True,
            "objective.t_shift": 8.0,
            "sample.shift": 3.0,
            "train.num_steps": 2000,
        },
    ),
    # Fourth round (the per-group gate), with the latent statistics tools/latent_stats.py measures on
    # 256 training clips: W2 with x_skip (Y), with the head reading the input patch (Z), with the error of
    # the clean estimate (X0 = today's demo, config_lib.demo_generator).
    **{
        name: {
            "codec.video_norm": (-0.4895, 0.3656),
            "codec.audio_norm": (-0.4629, 0.3737),
            "model.head_mlp_dim": 512,
            "model.zero_init_branches": True,
            "objective.t_shift": 8.0,
            "sample.shift": 3.0,
            **extra,
        }
        for name, extra in (
            ("Y", {"objective.prediction": "x_skip"}),
            ("Z", {"model.head_patch_skip": True}),
            ("X0", {"objective.error_space": "x0"}),
            # X0 with EMA weights (0.999) to sample from, with the training shift 3, with the
            # SNR-capped clean-estimate error.
            ("X0E", {"objective.error_space": "x0", "train.ema_decay": 0.999}),
            ("X03", {"objective.error_space": "x0", "objective.t_shift": 3.0}),
            ("X0S", {"objective.error_space": "x0_snr", "objective.snr_cap": 5.0}),
            # Fifth round: X0 with a rank-r video patch embedding (model.video_patch_bottleneck).
            *(
                (f"X0B{r}", {"objective.error_space": "x0", "model.video_patch_bottleneck": r})
                for r in (32, 16, 8)
            ),
            (
                "X0B16H64",
                {
                    "objective.error_space": "x0",
                    "model.video_patch_bottleneck": 16,
                    "model.video_head_bottleneck": 64,
                },
            ),
        )
    },
}


def _set(config, dotted: str, value) -> None:
  node = config
  *parents, leaf = dotted.split(".")
  for p in parents:
    node = node[p]
  node[leaf] = value


def reconstruct(apply_x0, params, video, audio, label, t0: float, num_steps: int = 10, seed: int = 3):
  """The clips noised to t0 and integrated back to t = 0 with Euler, the audio given clean."""
  b = video.shape[0]
  x = flow.noisy(video, jax.random.normal(jax.random.key(seed), video.shape), jnp.full((b,), t0))
  ts = jnp.linspace(t0, 0.0, num_steps + 1)
  for i in range(num_steps):
    v, _ = apply_x0(params, x, audio, jnp.full((b,), ts[i]), jnp.zeros((b,)), {"label": label})
    x = x + (ts[i + 1] - ts[i]) * v
  return x


def run_variant(name: str, seconds: float, data_dir: str, max_steps: int = 0, grid_dir: str = "") -> dict:
  c = demo.get_config("sft")
  c.data.data_dir = data_dir
  for k, v in {**_J, **VARIANTS[name]}.items():
    _set(c, k, v)
  setup = loop.build(c)
  state, mesh = setup.state, setup.mesh
  data = iter(pipeline.make_dataset(c.data, c.data.split_train, seed=0, train=True))
  n, spent = 0, 0.0
  while (n < max_steps) if max_steps else (spent < seconds):
    batch = pipeline.make_global_batch(next(data), setup.batch_sharding)
    t0 = time.perf_counter()
    with jax.set_mesh(mesh):
      state, _ = setup.step_fn(state, {k: batch[k] for k in ("video", "audio", "label")})
      jax.block_until_ready(state.params)
    if n:  # the first step is mostly compilation
      spent += time.perf_counter() - t0
    n += 1
  codec = setup.codec
  val = pipeline.first_examples(c.data, c.data.split_eval, 16, ("label", "video", "audio"))
  train = pipeline.first_examples(c.data, c.data.split_train, 64, ("video",))
  video, audio = generate_lib.encode_clips(codec, val)
  mean_v = codec.encode_video(jnp.asarray(train["video"])).mean(0)
  apply = steps.make_apply(setup.graphdef, setup.rest, c.objective.prediction)
  ts = (0.1, 0.5, 0.9, 1.0)
  err = x0_errors(apply, state.params, video, audio, jnp.asarray(val["label"], jnp.int32), ts=ts)
  out = {"steps": n, "x0_video": err[:, 0].tolist(), "mean_frame": float(jnp.mean((video - mean_v) ** 2))}
  test = generate_lib.load_eval_set(c, 16)
  tv, ta = generate_lib.encode_clips(codec, test)
  real = generate_lib.media_clips(c, test)
  anchor = evaluate.quality_anchors(c, test, real)
  label = jnp.asarray(test["label"], jnp.int32)
  sample_apply = steps.make_apply(setup.graphdef, setup.rest, c.objective.prediction)
  rec = jax.jit(lambda p, v, a, l: reconstruct(sample_apply, p, v, a, l, 0.2))(state.params, tv, ta, label)
  rows = {"real": real, "rec0.2": generate_lib.decode_clips(codec, c.data, rec, ta)}
  out["rec0.2"] = quality.verdict(quality.proxies(rows["rec0.2"], real), anchor, "a2v")["gate_video"]
  for sync_cfg in (False, True):
    sc = c.sample.copy_and_resolve_references()
    sc.sync_cfg = sync_cfg
    gen = generate_lib.make_generate(
        setup.graphdef, setup.rest, codec, sc, int(c.data.num_classes), c.objective.prediction
    )
    v, a = gen(state.params, jax.random.key(7), tv, ta, label, mode="joint")
    clips = generate_lib.decode_clips(codec, c.data, v, a)
    rows["joint synccfg" if sync_cfg else "joint"] = clips
    out["synccfg" if sync_cfg else "plain"] = quality.verdict(quality.proxies(clips, real), anchor, "joint")
  if grid_dir:
    os.makedirs(grid_dir, exist_ok=True)
    evaluate.plot_sample_grid(rows, os.path.join(grid_dir, f"ttq_{name}.png"), f"variant {name}", c.data)
  return out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--seconds", type=float, default=250.0)
  ap.add_argument("--steps", type=int, default=0, help="> 0: train this many steps instead of --seconds")
  ap.add_argument("--variants", default="J", help=f"comma-separated, of {','.join(VARIANTS)}")
  ap.add_argument("--data_dir", default="workdirs/tfds")
  ap.add_argument("--grid_dir", default="", help="write ttq_<variant>.png (real, rec0.2, joint samples) here")
  args = ap.parse_args()
  print(
      f"{'run':4s} {'steps':>6s}  x0-hat video MSE t=0.1/0.5/0.9/1.0 (mean frame)  rec0.2  "
      "gate_video plain / SyncCFG"
  )
  for name in args.variants.split(","):
    r = run_variant(name, args.seconds, os.path.abspath(args.data_dir), args.steps, args.grid_dir)
    # In the codec's latent units; / mean frame makes standardised and raw latents comparable.
    e = (
        " / ".join(f"{x:.3f}" for x in r["x0_video"])
        + " ["
        + " / ".join(f"{x / r['mean_frame']:.2f}" for x in r["x0_video"])
        + " of it]"
    )
    print(
        f"{name:4s} {r['steps']:6d}  {e} ({r['mean_frame']:.3f})  {r['rec0.2']:6.2f}  "
        f"{r['plain']['gate_video']:.2f} / {r['synccfg']['gate_video']:.2f}",
        flush=True,
    )


if __name__ == "__main__":
  main()
