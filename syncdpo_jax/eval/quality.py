"""The quality gate: no sync number for clips that are not clips.

A sync metric computed on generated noise is still a number (an onset detector finds onsets in noise,
optical flow finds motion in it). So every generated run x mode first gets a verdict from two anchors
of each quality proxy (Fréchet distances on hand-made features, eval/metrics.py):

  floor  real vs real: the eval clips against as many clips of another split (what "as good as the
         data" scores at this number of clips);
  noise  decoded Gaussian latents vs the real eval clips (what a model that learned nothing scores).

The position of a run on that scale, (fd - floor) / (noise - floor), is 0 at the floor and 1 at the
noise anchor. A generated stream passes when its position is at most `GATE_MAX`; the verdict covers
the streams the mode generates (joint: both; v2a: audio; a2v: video). A run that fails has its sync
metrics reported as "n/a (fails quality gate)".
"""
from __future__ import annotations

from typing import Mapping, Sequence

from syncdpo_jax.eval import metrics

# A quarter of the way from the real-vs-real floor to decoded noise. Measured on the demo (16 clips):
# per-token patchwork video (recognisable colours, no objects) sits at 0.7-0.8 of the way, samples
# with scenes, objects and moving events at < 0.15.
GATE_MAX = 0.25
GENERATED = {"joint": ("video", "audio"), "v2a": ("audio",), "a2v": ("video",)}


def proxies(clips: Sequence[Mapping], real: Sequence[Mapping]) -> dict[str, float]:
  """{'video': fd_video_proxy, 'audio': fd_logmel_proxy} of `clips` against `real` (dicts with
  'frames' uint8 [T, H, W, 3] and 'mel' [T_a, n_mels])."""
  return {"video": metrics.fd_video_proxy([c["frames"] for c in clips], [c["frames"] for c in real]),
          "audio": metrics.fd_logmel_proxy([c["mel"] for c in clips], [c["mel"] for c in real])}


def anchors(real: Sequence[Mapping], other_real: Sequence[Mapping], noise: Sequence[Mapping]
            ) -> dict[str, tuple[float, float]]:
  """{stream: (floor, noise)}: real vs `other_real` (another split) and decoded noise vs real."""
  floor, ceil = proxies(other_real, real), proxies(noise, real)
  return {k: (floor[k], ceil[k]) for k in floor}


def position(fd: float, anchor: tuple[float, float]) -> float:
  """(fd - floor) / (noise - floor): 0 = as near the real data as another real split, 1 = noise.

  NaN when the anchors do not separate (noise not above the floor: too few eval clips for the proxy to
  tell data from noise); `verdict` fails such a run.
  """
  floor, ceil = anchor
  if not ceil > floor:
    return float("nan")
  return float((fd - floor) / (ceil - floor))


def verdict(fds: Mapping[str, float], anchor: Mapping[str, tuple[float, float]], mode: str,
            gate_max: float = GATE_MAX) -> dict:
  """The gate for one run x mode: {'quality_gate': 'pass' | 'fail', 'gate_<stream>': position, ...}."""
  if mode not in GENERATED:
    raise ValueError(f"mode={mode!r}; expected one of {tuple(GENERATED)}")
  out = {f"gate_{s}": position(fds[s], anchor[s]) for s in GENERATED[mode]}
  out["quality_gate"] = "pass" if all(v <= gate_max for v in out.values()) else "fail"  # NaN fails
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


__all__ = ["GATE_MAX", "GENERATED", "proxies", "anchors", "position", "verdict", "mask_failed"]
