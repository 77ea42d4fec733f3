"""The sync-sensitivity probe: does the model prefer the aligned pair? Forward passes only, no sampler.

For held-out clips, the *given* stream of a conditional mode (the video in v2a, the audio in a2v) is
offset by delta video frames, its content cropped from the same source clip at a start delta frames
later (no padding, no splice: `shifted_pairs`), while the generated stream's target stays the aligned
window. The model's conditional flow-matching error on that fixed target,

  e(delta) = mean_k || v_hat(x_tk, given_delta) - v_target(tk, eps_k) ||^2,

uses the same K (t, noise) draws for every delta and every checkpoint. A model that learned timing
has its lowest error at delta = 0. Reported per checkpoint and mode:

  delta_loss[d]     mean over clips of e(d) - e(0) (> 0: the shift costs)
  pair_accuracy[|d|] P[e(0) < e(+-d)] over clips and both signs
  argmin_frames     mean |argmin_d e(d)|: the model as its own sync detector (0 = it finds the true
                    alignment)
  control_*         the same for an artefact control: the aligned given stream with its first
                    `CONTROL_FRAMES` frames frozen (a padded edge, no timing change). A model whose
                    error rises about as much here as for a shift learned to spot edits, not timing.

`python launch/main.py --config configs/demo.py:eval ...` writes it as eval/probe.json and
eval/probe.png when config.eval.probe_clips > 0.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from syncdpo_jax.data import builders, pipeline
from syncdpo_jax.objectives import flow
from syncdpo_jax.train import steps

DELTAS = (0, 1, -1, 2, -2, 3, -3, 5, -5)  # video frames (0.1 s each in the demo data)
CONTROL_FRAMES = 3
GIVEN = {"v2a": "video", "a2v": "audio"}


def shifted_pairs(examples: list[dict], data_cfg, deltas=DELTAS) -> dict[str, np.ndarray]:
  """Model inputs for the probe from whole stored clips.

  The aligned window starts at the clip's centre frame minus half a window (as eval's centre crops);
  for a delta, the same window is cut at start + delta (+ = the given stream shows what happens delta
  frames later: it is early). Every input is a real crop of its clip (`pipeline.crop_window`).

  Returns video f32 [D, N, T_v, R, R, 3], audio f32 [D, N, T_a, n_mels] (index 0 of D: delta 0),
  label i32 [N], and control_video / control_audio: the aligned window with its first CONTROL_FRAMES
  video frames (and the audio under them) held at frame CONTROL_FRAMES.
  """
  win = int(round(data_cfg.window_s * data_cfg.fps))
  lo, hi = -min(deltas), max(deltas)
  video, audio, label = [], [], []
  for ex in examples:
    n = ex["video"].shape[0]
    if n < win + hi + lo:
      raise ValueError(
          f"clip {ex.get('clip_id', '?')!r}: {n} frames cannot hold a {win}-frame window "
          f"shifted by {min(deltas)}..{max(deltas)} frames; use longer clips or smaller "
          "data.window_s"
      )
    start = min(max(lo, (n - win) // 2), n - win - hi)
    crops = [pipeline.crop_window(ex, data_cfg, start + d, None) for d in deltas]
    video.append([c["video"] for c in crops])
    audio.append([c["audio"] for c in crops])
    label.append(crops[0]["label"])
  video = np.asarray(video, np.float32).swapaxes(0, 1)
  audio = np.asarray(audio, np.float32).swapaxes(0, 1)
  k = CONTROL_FRAMES
  a_per_v = audio.shape[2] // video.shape[2]
  control_video, control_audio = video[0].copy(), audio[0].copy()
  control_video[:, :k] = video[0][:, k : k + 1]
  control_audio[:, : k * a_per_v] = audio[0][:, k * a_per_v : k * a_per_v + 1]
  return {
      "video": video,
      "audio": audio,
      "label": np.asarray(label, np.int32),
      "control_video": control_video,
      "control_audio": control_audio,
  }


def probe_draws(key: jax.Array, target_shape: tuple[int, ...], num_draws: int, t_kwargs: dict):
  """K (t [K, N], noise [K, *target_shape]) draws, fixed by `key` alone: the same for every delta and
  checkpoint."""
  k_t, k_e = jax.random.split(key)
  t = flow.sample_t(k_t, (num_draws, target_shape[0]), **t_kwargs)
  return t, jax.random.normal(k_e, (num_draws, *target_shape))


def make_errors(apply: Callable, mode: str, prediction: str) -> Callable:
  """Jitted (params, target [N, ...], given [N, ...], label, t [K, N], eps [K, N, ...]) -> e [N].

  `apply(params, video, audio, t_v, t_a, cond)` returns velocities (train/steps.make_apply). The given
  stream enters clean (t = 0), the target stream at x_t; the error is the target stream's velocity MSE
  against flow.velocity_error_target, averaged over the K draws.
  """
  gen_video = mode == "a2v"

  @jax.jit
  def errors(params, target, given, label, t, eps):
    def one(t_k, eps_k):
      x_t = flow.noisy(target, eps_k, t_k)
      zero = jnp.zeros_like(t_k)
      video, audio = (x_t, given) if gen_video else (given, x_t)
      tv, ta = (t_k, zero) if gen_video else (zero, t_k)
      out_v, out_a = apply(params, video, audio, tv, ta, {"label": label})
      pred = out_v if gen_video else out_a
      return flow.per_sample_mse(pred, flow.velocity_error_target(target, eps_k, x_t, t_k, prediction))

    return jax.vmap(one)(t, eps).mean(0)

  return errors


def summarize(e: np.ndarray, e_control: np.ndarray, deltas=DELTAS) -> dict:
  """e [D, N] (delta 0 first), e_control [N] -> the probe's numbers (module docstring)."""
  e, e_control = np.asarray(e, np.float64), np.asarray(e_control, np.float64)
  base = e[0]
  d_loss = {str(d): float(np.mean(e[i] - base)) for i, d in enumerate(deltas)}
  acc = {}
  for m in sorted({abs(d) for d in deltas if d}):
    rows = [i for i, d in enumerate(deltas) if abs(d) == m]
    acc[str(m)] = float(np.mean([base < e[i] for i in rows]))
  # The aligned pair counts as found only when strictly best: an insensitive model (all errors tied)
  # must not read as a perfect sync detector because delta 0 comes first.
  others = [i for i, d in enumerate(deltas) if d]
  runner_up = np.asarray(deltas)[others][np.argmin(e[others], axis=0)]
  best = np.where(base < e[others].min(axis=0), 0, runner_up)
  return {
      "deltas": list(deltas),
      "num_clips": int(e.shape[1]),
      "delta_loss": d_loss,
      "pair_accuracy": acc,
      "argmin_frames": float(np.mean(np.abs(best))),
      "argmin_exact": float(np.mean(best == 0)),
      "control_delta_loss": float(np.mean(e_control - base)),
      "control_accuracy": float(np.mean(base < e_control)),
  }


def load_probe_clips(config, num_clips: int) -> list[dict]:
  """The first `num_clips` whole stored clips of config.eval.split."""
  source = builders.build_dataset(config.data).as_data_source(split=config.eval.split)
  return [source[i] for i in range(min(num_clips, len(source)))]


class Probe:
  """The probe's inputs, latents and draws, prepared once; called per checkpoint.

  probe = Probe(config, codec, steps.make_apply(graphdef, rest, prediction))
  for name, params in ...: probe(name, params)
  probe.write(out_dir)        # probe.json, probe.png
  """

  def __init__(self, config, codec, apply: Callable, modes=("v2a", "a2v"), num_draws: int = 4):
    pairs = shifted_pairs(load_probe_clips(config, int(config.eval.probe_clips)), config.data)
    self.latents = {
        "video": [codec.encode_video(jnp.asarray(v)) for v in pairs["video"]],
        "audio": [codec.encode_audio(jnp.asarray(a)) for a in pairs["audio"]],
    }
    self.control = {
        "video": codec.encode_video(jnp.asarray(pairs["control_video"])),
        "audio": codec.encode_audio(jnp.asarray(pairs["control_audio"])),
    }
    self.label = jnp.asarray(pairs["label"])
    self.modes, self.results = tuple(modes), {}
    self.draws, self.errors = {}, {}
    for mode in self.modes:
      target = self.latents[_target(mode)][0]
      self.draws[mode] = probe_draws(
          jax.random.key(int(config.seed) + 17), target.shape, num_draws, steps.t_kwargs(config.objective)
      )
      self.errors[mode] = make_errors(apply, mode, config.objective.prediction)

  def __call__(self, name: str, params) -> dict:
    """Probes one checkpoint: {'<name>/<mode>': summary} (also kept for `write`)."""
    out = {}
    for mode in self.modes:
      target, t, eps = self.latents[_target(mode)][0], *self.draws[mode]
      err = lambda given: np.asarray(self.errors[mode](params, target, given, self.label, t, eps))
      e = np.stack([err(g) for g in self.latents[GIVEN[mode]]])
      out[f"{name}/{mode}"] = summarize(e, err(self.control[GIVEN[mode]]))
    self.results.update(out)
    return out

  def write(self, out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "probe.json"), "w") as f:
      json.dump(self.results, f, indent=1)
    plot(self.results, os.path.join(out_dir, "probe.png"))


def _target(mode: str) -> str:
  return "audio" if GIVEN[mode] == "video" else "video"


def plot(results: dict, path: str) -> None:
  """Delta loss against delta (video frames), one line per checkpoint, a panel per mode."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  modes = sorted({k.rsplit("/", 1)[1] for k in results})
  fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 3.5), squeeze=False)
  for ax, mode in zip(axes[0], modes):
    for run, r in results.items():
      if run.endswith("/" + mode):
        d = sorted(r["delta_loss"], key=int)
        ax.plot(
            [int(x) for x in d],
            [r["delta_loss"][x] for x in d],
            marker="o",
            label=f"{run.rsplit('/', 1)[0]} (control {r['control_delta_loss']:+.3g})",
        )
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set(
        title=f"{mode}: e(delta) - e(0), given stream shifted",
        xlabel="delta (video frames)",
        ylabel="flow-matching error change",
    )
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
