"""Figures for people: what each perturbation does to the timing cues of a SyncBench-Synth clip.

    python -m syncdpo_jax.figures --out perturbations.png [--family rhythm --seed 0]

For one clip, the audio onset strength (librosa, on the log-mel) and the video motion energy (mean
absolute frame difference) of the real pair (top row) and of every perturbation at strengths 0, 0.5
and 1. Perturbations act exactly as in training: on pixels in [-1, 1] at fps_v = 10 and on the
normalised log-mel (hop 320 @ 16 kHz, 50 frames / s); the real pair's curves are drawn faintly behind
each panel so the displacement is visible. Side effects (one PNG) and matplotlib: kept out of the pure
`perturb` package, which it only calls.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from syncdpo_jax import perturb  # noqa: E402
from syncdpo_jax._librosa import librosa  # noqa: E402
from syncdpo_jax.data import features, synth  # noqa: E402
from syncdpo_jax.data.build import motion_energy  # noqa: E402
from syncdpo_jax.data.config import get_data_config  # noqa: E402

STRENGTHS = (0.0, 0.5, 1.0)


def onset_strength(logmel: np.ndarray, cfg) -> np.ndarray:
  """librosa onset strength [T_a] of a normalised log-mel [T_a, n_mels]."""
  db = features.denormalize_db(logmel).T  # [n_mels, T_a] in dB
  env = librosa.onset.onset_strength(S=db, sr=cfg.sr, hop_length=cfg.hop, center=False)
  return env[: logmel.shape[0]]


def _norm(x: np.ndarray) -> np.ndarray:
  return x / (x.max() + 1e-8)


def perturbations_figure(out: str, family: str = "rhythm", seed: int = 0, duration_s: float = 4.0) -> None:
  cfg = get_data_config("demo")
  clip = synth.generate_clip(
      family,
      seed,
      synth.SynthSpec(duration_s=duration_s, fps=int(cfg.fps), sr=cfg.sr, resolution=cfg.resolution),
  )
  fps_v, fps_a = float(cfg.fps), cfg.sr / cfg.hop
  video = jnp.asarray(clip["video"], jnp.float32) / 127.5 - 1.0
  audio = jnp.asarray(features.log_mel(clip["audio"], cfg))
  other_clip = synth.generate_clip(
      family,
      seed + 1,
      synth.SynthSpec(duration_s=duration_s, fps=int(cfg.fps), sr=cfg.sr, resolution=cfg.resolution),
  )
  other = (
      jnp.asarray(other_clip["video"], jnp.float32) / 127.5 - 1.0,
      jnp.asarray(features.log_mel(other_clip["audio"], cfg)),
  )
  t_v = np.arange(video.shape[0]) / fps_v
  t_a = np.arange(audio.shape[0]) / fps_a
  real_on = _norm(onset_strength(np.asarray(audio), cfg))
  real_mo = _norm(motion_energy(np.asarray(video)))

  names = perturb.names()
  fig, axes = plt.subplots(
      len(names) + 1, len(STRENGTHS), figsize=(13, 1.45 * (len(names) + 1)), sharex=True, sharey=True
  )

  def panel(ax, on, mo, title, faint=True):
    if faint:
      ax.plot(t_a, real_on, color="tab:blue", alpha=0.2, lw=1)
      ax.plot(t_v, real_mo, color="tab:orange", alpha=0.25, lw=1, drawstyle="steps-mid")
    ax.plot(t_a, on, color="tab:blue", lw=1, label="audio onset strength")
    ax.plot(t_v, mo, color="tab:orange", lw=1.2, drawstyle="steps-mid", label="video motion energy")
    for e in clip["event_times"]:
      ax.axvline(e, color="k", alpha=0.12, lw=0.8)
    ax.set_title(title, fontsize=8, loc="left")
    ax.tick_params(labelsize=7)

  for j in range(len(STRENGTHS)):
    panel(axes[0, j], real_on, real_mo, f"real pair ({family}, seed {seed}); grey = true events", faint=False)
  axes[0, 0].legend(fontsize=7, loc="upper right")
  for i, name in enumerate(names, start=1):
    fn = jax.jit(
        lambda k, v, a, s, ov, oa, name=name: perturb.apply(name, k, v, a, s, fps_v, fps_a, other=(ov, oa))
    )
    for j, s in enumerate(STRENGTHS):
      v2, a2, info = fn(jax.random.key(seed), video, audio, jnp.float32(s), *other)
      mag = float(info["magnitude"])
      what = f"x{mag:.2f}" if name == "scale" else f"{mag:.2f} s"
      mod = "video" if int(info["modality"]) == 0 else "audio"
      kind = names[int(info["kind"])]
      extra = f", offset {float(info['offset_s']):+.2f} s" if float(info["offset_s"]) else ""
      panel(
          axes[i, j],
          _norm(onset_strength(np.asarray(a2), cfg)),
          _norm(motion_energy(np.asarray(v2))),
          f"{kind} [{mod}] strength {s:g}: {what}{extra}",
      )
  for ax in axes[-1]:
    ax.set_xlabel("time (s)", fontsize=8)
  fig.suptitle(
      "SyncDPO negatives: normalised audio onset strength (blue) and video motion energy "
      "(orange); faint = the real pair",
      fontsize=10,
  )
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  plt.close(fig)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", default="perturbations.png", help="PNG file to write")
  p.add_argument("--family", default="rhythm", choices=synth.FAMILIES)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--duration_s", type=float, default=4.0)
  a = p.parse_args(argv)
  perturbations_figure(a.out, a.family, a.seed, a.duration_s)
  print(f"wrote {a.out}")


if __name__ == "__main__":
  main()
