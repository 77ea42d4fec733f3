"""The quality gate: no sync number for clips that are not clips.

A sync metric computed on generated noise is still a number (an onset detector finds onsets in noise,
optical flow finds motion in it). So every generated run x mode first gets a verdict from anchors of
each quality proxy (Fréchet distances on hand-made features, eval/metrics.py), all against the real
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
a patchwork of plausible colours already sits near the floor on its scale): a generated stream passes
when it is at most `GATE_MAX` of the way from the floor to the shuffled cells. It covers the
streams the mode generates (joint: both; v2a: audio; a2v: video). A run that fails has no sync
metrics: they are null in report.json and "n/a" in report.md, beside quality_gate = fail.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from syncdpo_jax.eval import metrics

# A quarter of the way from the real-vs-real floor to the data's own cells, shuffled. Measured on the
# demo data (16 test clips, joint generation): per-token patchwork video at 3.3-3.7, one blurry scene
# per clip at 1.7-3.8 (the demo's model: 1.84 sampled without SyncCFG, 3.51 with), held-out (OOD) real
# clips at 2.4 (video) and 0.23 (audio). The audio proxy is the weaker one: per-token flickering audio
# sits at ~0.2.
GATE_MAX = 0.25
GENERATED = {"joint": ("video", "audio"), "v2a": ("audio",), "a2v": ("video",)}


def proxies(clips: Sequence[Mapping], real: Sequence[Mapping]) -> dict[str, float]:
  """{'video': fd_video_proxy, 'audio': fd_logmel_proxy} of `clips` against `real` (dicts with
  'frames' uint8 [T, H, W, 3] and 'mel' [T_a, n_mels])."""
  return {"video": metrics.fd_video_proxy([c["frames"] for c in clips], [c["frames"] for c in real]),
          "audio": metrics.fd_logmel_proxy([c["mel"] for c in clips], [c["mel"] for c in real])}


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


def anchors(real: Sequence[Mapping], other_real: Sequence[Mapping], shuffled: Sequence[Mapping],
            noise: Sequence[Mapping]) -> dict[str, dict[str, float]]:
  """{stream: {'floor', 'shuffled', 'noise'}}: the proxies of another real split, of the
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


def verdict(fds: Mapping[str, float], anchor: Mapping[str, Mapping[str, float]], mode: str,
            gate_max: float = GATE_MAX) -> dict:
  """The gate for one run x mode: {'quality_gate': 'pass' | 'fail', 'gate_<stream>': position on the
  shuffled scale, 'noise_pos_<stream>': position on the noise scale, ...}."""
  if mode not in GENERATED:
    raise ValueError(f"mode={mode!r}; expected one of {tuple(GENERATED)}")
  out = {}
  for s in GENERATED[mode]:
    a = anchor[s]
    out[f"gate_{s}"] = position(fds[s], a["floor"], a["shuffled"])
    out[f"noise_pos_{s}"] = position(fds[s], a["floor"], a["noise"])
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


__all__ = ["GATE_MAX", "GENERATED", "proxies", "shuffle_cells", "anchors", "position", "verdict",
           "mask_failed"]
