"""Ground-truth timing metrics: a generated stream scored against the event times it should follow.

In video->audio generation the video is given, and on SyncBench-Synth (or any clip whose event times
are known) so is every event's time; likewise the audio in audio->video. Estimating both streams (the
field's desync, AV-Align) adds the estimator's error of the *given* stream to what is measured. Here
only the generated stream is estimated:

  audio_timing(audio, sr, gt_times, mel=, mel_fps=)  onsets of the generated log-mel (no vocoder:
                                                     Griffin-Lim smears onsets) or of the waveform
  video_timing(frames, fps, gt_times)                motion bursts of the generated frames

Each returns, for one clip:
  offset_s            ground-truth-anchored offset: the lag, within +-`max_lag_s`, that best aligns the
                      stream's event envelope with the ground-truth event train (normalised cross-
                      correlation, refined between samples by a parabola). audio: + = audio late;
                      video: + = video early (the audio late relative to it): the sign of
                      `estimate_offset`.
  median_abs_error_s  median over ground-truth events of |detected - true| for the events matched within
                      100 ms (one-to-one, `events.match_events`)
  hit_rate_frame, hit_rate_40ms, hit_rate_100ms   fraction of ground-truth events with a detected event
                      within one stream frame / 40 ms / 100 ms
  precision, recall   at 100 ms (the event-F1 tolerance)
  num_events, num_detected
video_timing also gives frame_accuracy (exact frame) and frame_accuracy_1 (within +-1 frame). A clip
whose stream has no detectable event (silence, a static video) or that has no ground-truth event gets
NaN in every timing field and the reason in `reason`; it never raises.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from syncdpo_jax.eval import clips, events, signals

MATCH_TOL_S = 0.1  # one video frame at 10 fps: the widest error still called a hit
# The GT-anchored offset's search range. It measures the small misalignments SyncDPO is about; a wider
# range aliases: a periodic event train correlates as well at a lag one period away, so a shift of half
# a period cannot be told from its opposite. The range stays under half the demo data's shortest beat
# (the rhythm family's 0.4 s; its OOD split beats every 0.2-0.3 s, where shifts over 0.1 s alias).
MAX_LAG_S = 0.19


def event_train(gt_times: np.ndarray, rate: float, n: int) -> np.ndarray:
  """Unit impulses at `gt_times` on a grid of `n` samples at `rate` Hz, each split linearly between the
  two samples around its time (so a time between samples keeps its sub-sample position)."""
  train = np.zeros((n,), np.float64)
  for t in gt_times:
    x = t * rate
    i = int(math.floor(x))
    frac = x - i
    if 0 <= i < n:
      train[i] += 1.0 - frac
    if 0 <= i + 1 < n:
      train[i + 1] += frac
  return train


def _nan_result(reason: str, keys: tuple[str, ...], **known) -> dict[str, Any]:
  out = {k: float("nan") for k in keys}
  out.update(known, reason=reason)
  return out


_KEYS = (
    "offset_s",
    "median_abs_error_s",
    "hit_rate_frame",
    "hit_rate_40ms",
    "hit_rate_100ms",
    "precision",
    "recall",
)


def _scores(
    detected: np.ndarray,
    gt: np.ndarray,
    envelope: np.ndarray | None,
    rate: float,
    frame_s: float,
    max_lag_s: float,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
  """The shared part of audio_timing / video_timing (offset sign: + = the stream late).

  Returns the fields and the matching (detected index, gt index: int [matched] each; empty when the
  clip cannot be scored)."""
  base = {"num_events": int(gt.size), "num_detected": int(detected.size)}
  none = np.zeros((0,), np.int64)
  if gt.size == 0:
    return _nan_result("no ground-truth events", _KEYS, **base), none, none
  if envelope is None or detected.size == 0 or np.std(envelope) <= 1e-12:
    return _nan_result("no detectable event in the stream", _KEYS, **base), none, none
  train = event_train(gt, rate, envelope.shape[0])
  if np.std(train) <= 1e-12:
    return _nan_result("no ground-truth event inside the clip", _KEYS, **base), none, none
  offset = signals.lag_by_xcorr(envelope, train, rate, max_lag_s)
  rows, cols = events.match_events(detected, gt, MATCH_TOL_S)
  err = np.abs(detected[rows] - gt[cols])
  hit = lambda tol: float(np.sum(err <= tol + 1e-9) / gt.size)
  return (
      dict(
          base,
          offset_s=float(offset),
          median_abs_error_s=float(np.median(err)) if err.size else float("nan"),
          hit_rate_frame=hit(frame_s),
          hit_rate_40ms=hit(0.04),
          hit_rate_100ms=hit(MATCH_TOL_S),
          precision=float(rows.size / detected.size),
          recall=float(rows.size / gt.size),
          reason="",
      ),
      rows,
      cols,
  )


def distinct_events(gt_times: Any, frame_s: float) -> np.ndarray:
  """Sorted event times with the -1 padding dropped and events closer than one stream frame to the
  previous kept one merged: two pads struck together are one onset, and no detector of a stream with
  frames `frame_s` apart can tell them apart."""
  gt = np.sort(np.asarray(gt_times, np.float64).reshape(-1))
  gt = gt[gt >= 0]
  keep = []
  for t in gt:
    if not keep or t - keep[-1] >= frame_s - 1e-9:
      keep.append(t)
  return np.asarray(keep, np.float64)


def half_rise_times(
    mel: np.ndarray,
    onset_frames: np.ndarray,
    frame_rate: float,
    *,
    before: int = 2,
    after: int = 3,
    db_scale: float = 40.0,
) -> np.ndarray:
  """Sub-frame onset times (s): where each onset's frame energy crosses half-way from before to peak.

  A centred analysis window reaches half of a step onset's energy exactly when its centre is at the
  onset, whatever the window's shape (it is symmetric), so the half-rise point of the frame energy
  (linear power summed over the mel bands) times an onset without the lead of a spectral-flux peak,
  which a window that overhangs the onset by half its length shows tens of ms early (~25 ms for the
  demo's 64 ms window), and without the frame grid's quantisation. The rise is searched from `before`
  frames ahead of the picked frame to `after` frames past it.

  mel: normalised log-mel [T_a, n_mels] (x = dB / db_scale + 1); onset_frames: int [K] -> float [K].
  """
  db = (np.clip(np.asarray(mel, np.float64), -1.0, 1.0) - 1.0) * db_scale
  energy = (10.0 ** (db / 10.0)).sum(axis=1)  # [T_a]
  out = []
  for j in np.asarray(onset_frames, np.int64):
    lo, hi = max(int(j) - before, 0), min(int(j) + after + 1, energy.shape[0])
    seg = energy[lo:hi]
    base, k_peak = seg[: max(int(j) - lo, 1)].min(), int(np.argmax(seg))
    half = 0.5 * (base + seg[k_peak])
    t = (lo + k_peak) / frame_rate  # no rise inside the search range: the peak frame
    for k in range(1, k_peak + 1):
      if seg[k - 1] < half <= seg[k]:
        t = (lo + k - 1 + (half - seg[k - 1]) / (seg[k] - seg[k - 1])) / frame_rate
        break
    out.append(t)
  return np.asarray(out, np.float64)


def audio_timing(
    audio: Any,
    sr: int,
    gt_times: Any,
    *,
    mel: Any = None,
    mel_fps: float | None = None,
    max_lag_s: float = MAX_LAG_S,
) -> dict[str, Any]:
  """Generated audio against ground-truth event times (s); see the module docstring for the fields.

  Args:
    audio: float [N] mono waveform at `sr` (used when `mel` is None; may be None when it is given).
    gt_times: float [E] event times in seconds from the start of the clip (-1 entries ignored).
    mel: optional normalised log-mel [T_a, n_mels] (data.features) at `mel_fps` frames/s: scored
      directly, which is how generated audio should be scored.
  """
  if mel is not None:
    if not mel_fps:
      raise ValueError("audio_timing: mel given without mel_fps (mel frames per second)")
    rate, frame_s = float(mel_fps), 1.0 / float(mel_fps)
    env = signals.mel_onset_envelope(mel, rate)  # the envelope detect_mel_events picks onsets on
    detected = (
        np.zeros((0,))
        if env is None
        else half_rise_times(np.asarray(mel), signals.onset_frames(env, rate).astype(np.int64), rate)
    )
  else:
    y = np.asarray(audio, np.float32)
    rate, frame_s = signals.ENVELOPE_RATE, 1.0 / signals.ENVELOPE_RATE
    silent = y.size == 0 or np.max(np.abs(y)) < clips.SILENCE_PEAK
    env = None if silent else signals.audio_onset_envelope(y, int(sr), rate)
    detected = signals.detect_audio_events(y, int(sr))
  return _scores(detected, distinct_events(gt_times, frame_s), env, rate, frame_s, max_lag_s)[0]


def video_timing(frames: Any, fps: float, gt_times: Any, *, max_lag_s: float = MAX_LAG_S) -> dict[str, Any]:
  """Generated frames (uint8 [T, H, W, 3] at `fps`) against ground-truth event times (s).

  Events are the bursts of camera-stabilised motion energy (`signals.detect_video_events`); the offset
  correlates that envelope at the frame rate with the event train. Adds frame_accuracy /
  frame_accuracy_1: the fraction of ground-truth events with a detected event on the same frame /
  within one frame.
  """
  frames = np.asarray(frames)
  fps = float(fps)
  gt = distinct_events(gt_times, 1.0 / fps)
  env = None
  if frames.ndim == 4 and frames.shape[0] >= 3:
    e = signals.motion_event_envelope(frames, fps, rate=fps)
    env = e if e.size and e.max() > 0 else None
  detected = signals.detect_video_events(frames, fps)
  out, rows, cols = _scores(detected, gt, env, fps, 1.0 / fps, max_lag_s)
  if np.isfinite(out["offset_s"]):
    out["offset_s"] = -out["offset_s"]  # + = video early (the audio late relative to it)
    frame_err = np.abs(np.round(detected[rows] * fps) - np.round(gt[cols] * fps))
    out["frame_accuracy"] = float(np.sum(frame_err == 0) / gt.size)
    out["frame_accuracy_1"] = float(np.sum(frame_err <= 1) / gt.size)
  else:
    out["frame_accuracy"] = out["frame_accuracy_1"] = float("nan")
  return out
