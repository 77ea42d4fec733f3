"""The quality gate: no sync number for clips that are not clips.

A sync metric computed on generated noise is still a number (an onset detector finds onsets in noise,
optical flow finds motion in it). So every generated run x mode first gets a verdict from anchors of
each quality proxy (Fréchet distances on hand-made features, eval/fidelity.py), all against the real
eval clips:

  floor     real vs real: as many clips of another split (what "as good as the data" scores at this
            number of clips);
  shuffled  the real eval clips with their latent cells shuffled (every latent pixel of every frame,
            every audio latent frame moved to a random place of the eval set): the data's own pieces
            without their arrangement, what a model makes that learned each piece's marginal but no
            dependency between pieces (the demo's first generator: a patchwork of per-token blobs);
  noise     decoded Gaussian latents (what a model that learned nothing makes).

A run's position on a scale is (fd - floor) / (anchor - floor): 0 at the floor, 1 at the anchor. The
verdict uses the shuffled anchor, the sharper of the two failures (decoded noise is so far away that
a patchwork of plausible colours already sits near the floor on its scale). The video proxy is judged
per feature group (fidelity.VIDEO_FEATURE_GROUPS: layout, colour, edges, seams on a fixed grid,
flicker), each on its own scale, and the stream's position is the worst group's: one number over all
features let the large colour groups hide a patchwork's seams and flicker, and let invisible per-pixel
noise fail a real clip. A generated stream passes when it is at most `GATE_MAX` of the way from the
floor to the shuffled cells. The gate covers the streams the mode generates (joint: both; v2a: audio;
a2v: video). A run that fails has no sync metrics: they are null in report.json and "n/a" in
report.md, beside quality_gate = fail. `python benchmarks/bench_quality_gate.py` prints where known
degradations of real clips fall.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

from syncdpo_jax.eval import fidelity

# A quarter of the way from the real-vs-real floor to the data's own cells, shuffled, in every group.
# Calibrated on degraded copies of 16 real clips of another split (benchmarks/bench_quality_gate.py,
# demo data): per-pixel noise of 2 grey levels 0.02, of 4 levels 0.30; 3x3 box blur 0.49; 8x8-px
# blocks 0.47; colours +10 levels 0.74; 16x16-px tiles taken from other frames 0.89; tiles each off by
# its own +-20 levels in every frame 0.53 (+-10: 0.13, passes). The audio proxy is one group and more
# lenient: log-mel noise of 4 dB 0.05; 2-frame tiles taken from other clips 0.24 (passes).
GATE_MAX = 0.25
GENERATED = {"joint": ("video", "audio"), "v2a": ("audio",), "a2v": ("video",)}
# The row keys (evaluate.score) each stream is judged on.
GATED = {
    "video": tuple(f"fd_video_{g}" for g in fidelity.VIDEO_FEATURE_GROUPS),
    "audio": ("fd_logmel_proxy",),
}


def proxies(clips: Sequence[Mapping], real: Sequence[Mapping]) -> dict[str, float]:
  """The quality proxies of `clips` against `real` (dicts with 'frames' uint8 [T, H, W, 3] and 'mel'
  [T_a, n_mels]), keyed as a report row: 'fd_logmel_proxy', 'fd_video_proxy' (all video features at
  once) and 'fd_video_<group>' per video feature group."""
  v = fidelity.fd_video_proxy([c["frames"] for c in clips], [c["frames"] for c in real])
  out = {
      "fd_logmel_proxy": fidelity.fd_logmel_proxy([c["mel"] for c in clips], [c["mel"] for c in real]),
      "fd_video_proxy": v.pop("all"),
  }
  out.update({f"fd_video_{g}": x for g, x in v.items()})
  return out


def shuffle_cells(key, latents):
  """The latents with every latent cell moved to a random place of the batch.

  latents: video [B, T, h, w, C] (a cell = one latent pixel of one frame, C values) or audio [B, T, C]
  (a cell = one latent frame). Returns the same shape: the data's own pieces, none where it was.
  """
  import jax  # local: the metric functions above stay usable without a device
  import jax.numpy as jnp

  x = jnp.asarray(latents)
  flat = x.reshape(-1, x.shape[-1])
  return flat[jax.random.permutation(key, flat.shape[0])].reshape(x.shape)


def anchors(
    real: Sequence[Mapping],
    other_real: Sequence[Mapping],
    shuffled: Sequence[Mapping],
    noise: Sequence[Mapping],
) -> dict[str, dict[str, float]]:
  """{proxy key: {'floor', 'shuffled', 'noise'}}: the proxies of another real split, of the
  shuffled-cell clips and of decoded noise, each against `real`."""
  floor, shuf, ceil = proxies(other_real, real), proxies(shuffled, real), proxies(noise, real)
  return {k: {"floor": floor[k], "shuffled": shuf[k], "noise": ceil[k]} for k in floor}


def position(fd: float, floor: float, anchor: float) -> float:
  """(fd - floor) / (anchor - floor): 0 = as near the real data as another real split, 1 = the anchor.

  NaN when the anchor is not above the floor (too few eval clips for the proxy to tell them apart);
  `verdict` fails such a run.
  """
  if not anchor > floor:
    return float("nan")
  return float((fd - floor) / (anchor - floor))


def _worst(pos: Mapping[str, float]) -> str:
  """The key of the largest position; NaN (anchors that do not separate) counts as the largest."""
  return max(pos, key=lambda k: math.inf if math.isnan(pos[k]) else pos[k])


def verdict(
    fds: Mapping[str, float], anchor: Mapping[str, Mapping[str, float]], mode: str, gate_max: float = GATE_MAX
) -> dict:
  """The gate for one run x mode.

  fds: the run's proxies (`proxies`, or a report row holding them); anchor: `anchors`.
  Returns {'quality_gate': 'pass' | 'fail', per generated stream s: 'gate_<s>' (its worst key's
  position on the shuffled scale), 'gate_<s>_worst' (that key), 'noise_pos_<s>' (worst position on the
  noise scale), and for video 'gate_video_<group>' per feature group}.
  """
  if mode not in GENERATED:
    raise ValueError(f"mode={mode!r}; expected one of {tuple(GENERATED)}")
  out: dict = {}
  for s in GENERATED[mode]:
    pos = {k: position(fds[k], anchor[k]["floor"], anchor[k]["shuffled"]) for k in GATED[s]}
    if len(pos) > 1:
      out.update({f"gate_{s}_{k.removeprefix(f'fd_{s}_')}": v for k, v in pos.items()})
    worst = _worst(pos)
    out[f"gate_{s}"], out[f"gate_{s}_worst"] = pos[worst], worst
    noise = {k: position(fds[k], anchor[k]["floor"], anchor[k]["noise"]) for k in GATED[s]}
    out[f"noise_pos_{s}"] = noise[_worst(noise)]
  gates = [out[f"gate_{s}"] for s in GENERATED[mode]]
  out["quality_gate"] = "pass" if all(v <= gate_max for v in gates) else "fail"  # NaN fails
  return out


def mask_failed(row: dict, sync_metrics: Sequence[str]) -> dict:
  """A copy of a flattened report row whose sync metrics (and their CIs) are None (JSON null, "n/a" in
  the markdown) when the row's quality gate failed."""
  out = dict(row)
  if row.get("quality_gate") == "fail":
    for m in sync_metrics:
      for k in (m, m + "_ci95"):
        if k in out:
          out[k] = None
  return out


__all__ = [
    "GATE_MAX",
    "GATED",
    "GENERATED",
    "proxies",
    "shuffle_cells",
    "anchors",
    "position",
    "verdict",
    "mask_failed",
]
