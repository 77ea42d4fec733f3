"""Set-level scoring of decoded clips: `evaluate_clips` runs every per-clip metric, skips (and counts) the
clips one cannot score, and reports each metric's mean and 95% CI (`mean_ci95`).

The per-clip metrics live by concept: eval/clips.py (input checks, `ClipError`), eval/signals.py
(event signals and onsets), eval/sync.py (AV-Align, offset), eval/events.py (event P/R/F1),
eval/fidelity.py (quality proxies), eval/timing.py (ground-truth timing).
"""

from __future__ import annotations

import collections
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import scipy.stats

from syncdpo_jax.eval.clips import ClipError, check_clip
from syncdpo_jax.eval.events import event_metrics
from syncdpo_jax.eval.signals import detect_audio_events, detect_mel_events, detect_video_events
from syncdpo_jax.eval.sync import av_align, estimate_offset


def mean_ci95(values: Iterable[float]) -> tuple[float, float]:
  """Mean and half-width of its 95% confidence interval (Student t, n - 1 dof).

  NaNs are dropped. Returns (nan, nan) for no values and (mean, nan) for one value.
  """
  v = np.asarray([x for x in values if x is not None and not math.isnan(x)], np.float64)
  if v.size == 0:
    return float("nan"), float("nan")
  if v.size == 1:
    return float(v[0]), float("nan")
  half = scipy.stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size)
  return float(v.mean()), float(half)


ClipLike = Mapping[str, Any] | Callable[[], Mapping[str, Any]]


def evaluate_clips(
    clips: Iterable[ClipLike],
    gt_events: Sequence[Any] | None = None,
    *,
    event_tol_s: float = 0.1,
    max_offset: float = 2.0,
    duration_tol_s: float = 0.1,
    event_stream: str = "audio",
) -> dict[str, Any]:
  """Scores a set of clips; returns per-metric (mean, ci95) and the skipped-clip count with reasons.

  Args:
    clips: each a mapping {'frames': uint8 [T, H, W, 3], 'fps': float, 'audio': float [N], 'sr': int}
      (optionally 'mel': float [T_a, n_mels] normalised log-mel with 'mel_fps': its frame rate; audio
      events are then detected on the mel, see :func:`detect_mel_events`) or a zero-argument callable
      returning one (a lazy loader; any exception it raises counts the clip as skipped with reason
      'unreadable').
    gt_events: optional, one float [E] array of ground-truth event times (s, -1 padded allowed) per clip,
      in the same order; enables the event metrics (audio onsets of each clip vs. its ground truth).
    event_tol_s: event matching tolerance in seconds (configs hold it in ms: pass ms / 1000).
    max_offset: estimate_offset search range (s).
    duration_tol_s: see :func:`check_clip`.
    event_stream: which stream's detected events are scored against `gt_events`: 'audio'
      (:func:`detect_audio_events`; video->audio generation) or 'video' (:func:`detect_video_events`;
      audio->video generation).
  Returns:
    {'desync': (mean |offset| s, ci95), 'offset': (mean signed offset s, ci95), 'av_align': (..),
     and with gt_events 'event_precision', 'event_recall', 'event_f1', 'event_timing_error_s': (..),
     'num_clips': int, 'num_evaluated': int, 'num_skipped': int, 'skipped': {reason: count},
     'per_clip': {metric: [value per clip, NaN where skipped]} (for paired comparisons of two runs
     on the same clips)}.
    A clip with any ClipError is skipped as a whole, so every metric averages the same clips.
  """
  if event_stream not in ("audio", "video"):
    raise ValueError(f"event_stream={event_stream!r}; expected 'audio' or 'video'")
  per_metric: dict[str, list[float]] = collections.defaultdict(list)
  per_clip: list[dict[str, float]] = []
  skipped: collections.Counter[str] = collections.Counter()
  num = 0
  for i, clip in enumerate(clips):
    num += 1
    row: dict[str, float] = {}
    per_clip.append(row)
    try:
      c = clip() if callable(clip) else clip
    except Exception as e:  # noqa: BLE001 — any loader failure is reported, not fatal for the set
      skipped[f"unreadable:{type(e).__name__}"] += 1
      continue
    try:
      frames, audio = check_clip(c["frames"], c["fps"], c["audio"], c["sr"], duration_tol_s=duration_tol_s)
      off = estimate_offset(frames, c["fps"], audio, c["sr"], max_offset=max_offset)
      align = av_align(frames, c["fps"], audio, c["sr"])
    except ClipError as e:
      skipped[e.reason] += 1
      continue
    row.update(desync=abs(off), offset=off, av_align=align)
    if gt_events is not None:
      if i >= len(gt_events):
        raise ValueError(
            f"gt_events has {len(gt_events)} entries but clip {i} needs one; pass one "
            "array per clip, in the same order"
        )
      if event_stream == "video":
        detected = detect_video_events(frames, c["fps"])
      elif c.get("mel") is not None:
        detected = detect_mel_events(c["mel"], c["mel_fps"])
      else:
        detected = detect_audio_events(audio, c["sr"])
      ev = event_metrics(detected, gt_events[i], event_tol_s)
      row.update(
          event_precision=ev["precision"],
          event_recall=ev["recall"],
          event_f1=ev["f1"],
          event_timing_error_s=ev["mean_timing_error_s"],
      )
    for k, v in row.items():
      per_metric[k].append(v)
  out: dict[str, Any] = {k: mean_ci95(v) for k, v in per_metric.items()}
  if not per_metric:  # every clip skipped: still report the contract metrics, as NaN
    names = ["desync", "offset", "av_align"]
    if gt_events is not None:
      names += ["event_precision", "event_recall", "event_f1", "event_timing_error_s"]
    out.update({k: (float("nan"), float("nan")) for k in names})
  n_skipped = int(sum(skipped.values()))
  out.update(
      num_clips=num,
      num_evaluated=num - n_skipped,
      num_skipped=n_skipped,
      skipped=dict(skipped),
      per_clip={k: [r.get(k, float("nan")) for r in per_clip] for k in per_metric},
  )
  return out
