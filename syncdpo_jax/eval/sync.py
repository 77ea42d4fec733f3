"""Synchronization metrics of one clip, both streams estimated: AV-Align and the audio-video offset."""

from __future__ import annotations

from typing import Any

import numpy as np

from syncdpo_jax.eval.clips import ClipError, check_clip
from syncdpo_jax.eval.signals import (
    ENVELOPE_RATE,
    audio_onset_envelope,
    av_align_audio_onsets,
    flow_magnitude,
    lag_by_xcorr,
    local_maxima,
    motion_event_envelope,
)


def av_align(frames: Any, fps: float, audio: Any, sr: int) -> float:
  """AV-Align (Yariv et al., "Diverse and Aligned Audio-to-Video Generation via Text-to-Video Model
  Adaptation", AAAI 2024, Sec. 4 and their released `av_align.py`).

  Audio peaks A: librosa onsets (audio resampled to 22.05 kHz, librosa defaults). Video peaks V: strict
  local maxima of the per-frame mean Farneback optical-flow magnitude, at times i / fps. An audio peak
  is matched if some video peak lies within ±1 frame (strictly, as in the reference code); with I the
  number of matched audio peaks, AV-Align = I / (|A| + |V| - I) in [0, 1], higher is better.

  Args:
    frames: uint8 [T, H, W, 3] RGB.
    fps: frame rate.
    audio: float [N] mono waveform.
    sr: sample rate.
  Returns:
    The IoU as a float.
  Raises:
    ClipError: bad input (see module docstring), or 'no_peaks' when both peak sets are empty.
  """
  frames, audio = check_clip(frames, fps, audio, sr)
  a_peaks = av_align_audio_onsets(audio, sr)
  v_peaks = local_maxima(flow_magnitude(frames)) / fps
  if a_peaks.size == 0 and v_peaks.size == 0:
    raise ClipError("no_peaks", "no audio onsets and no optical-flow peaks; AV-Align is 0/0")
  hit = np.abs(a_peaks[:, None] - v_peaks[None, :]) < 1.0 / fps  # [|A|, |V|]
  inter = int(np.sum(np.any(hit, axis=1))) if v_peaks.size else 0
  return inter / (a_peaks.size + v_peaks.size - inter)


def estimate_offset(frames: Any, fps: float, audio: Any, sr: int, max_offset: float = 2.0) -> float:
  """Audio-vs-video offset in seconds, POSITIVE = audio LATE (a DeSync-style number, no network).

  DeSync (used by MMAudio / Harmony) is the offset predicted by Synchformer (Iashin et al., ICASSP 2024);
  this is an offline, training-free stand-in in the spirit of classic AV-synchrony cross-correlation
  (Hershey & Movellan, NIPS 1999): each stream becomes an event envelope on a common 100 Hz grid and
  the offset is the lag of the audio envelope that best correlates with the video one
  (:func:`lag_by_xcorr`: standardised, normalised by the full length, sub-sample parabola refinement).

  * audio a(t): librosa onset strength, i.e. spectral flux — the half-wave rectified frame-to-frame
    increase of the log-mel spectrum summed over bands (:func:`audio_onset_envelope`);
  * video v(t): its visual counterpart, the mean absolute frame-to-frame change of the image after
    cancelling the global camera translation, minus its 1 s running median
    (:func:`motion_event_envelope`, :func:`stabilized_motion_energy`). Frame difference is to the image
    what spectral flux is to the spectrum (a first temporal difference), so the two envelopes have the
    same shape around an event.

  Design choices measured on SyncBench-Synth (``benchmarks/bench_offset_estimator.py``: 4 s windows,
  audio shifted by -0.5, -0.2, 0, +0.3 s, 8 seeds per family, with nuisances): the earlier video
  signal, the rectified INCREASE of motion energy, is a second difference — it fires when motion starts
  (a ball released, blocks setting off) rather than at the sounding change, and camera shake swamped
  it; it scored 88 / 56 / 69 % within one frame (impact / speech / rhythm). The stabilised, detrended
  energy scores 100 / 100 / 75 % (91 / 88 / 75 % on 3 s windows: fewer events, weaker evidence). Tried
  and dropped because they scored lower: optical-flow acceleration |flow_t - flow_(t-1)| (alone or
  added), sub-pixel phase-correlation stabilisation, GCC-PHAT whitening (it flattens the amplitude
  pattern and amplifies noise in sparse envelopes), and per-region x per-band correlation.

  Limitation: a strictly periodic event train is ambiguous by its period. SyncBench-Synth's 'rhythm'
  family repeats a one- or two-beat pattern (kick on every beat, backbeat, occasional off-beats), so
  lags one or two beats away correlate almost as well and about a quarter of its shifted clips land a
  pattern period off. No correlation of envelopes can resolve that without events that break the
  period; treat offsets on periodic content as modulo the period.

  If the audio is the video's sound delayed by d seconds, a(t) = v(t - d) and the result is +d.
  Report the mean absolute value over a set as `desync`.

  Args:
    frames: uint8 [T, H, W, 3] RGB.
    fps: frame rate.
    audio: float [N] mono waveform.
    sr: sample rate.
    max_offset: search range in seconds (clipped to the clip duration minus half a second).
  Returns:
    Offset in seconds, within [-max_offset, max_offset].
  Raises:
    ClipError: bad input (see module docstring), 'static_video' or 'no_audio_onsets' when an envelope
    is constant (the correlation is undefined).
  """
  frames, audio = check_clip(frames, fps, audio, sr)
  a = audio_onset_envelope(audio, sr)
  v = motion_event_envelope(frames, fps)
  n = min(a.shape[0], v.shape[0])
  a, v = a[:n], v[:n]
  if np.std(v) <= 1e-12:
    raise ClipError(
        "static_video", "the video never changes (after cancelling camera shake); the " "offset is undefined"
    )
  if np.std(a) <= 1e-12:
    raise ClipError("no_audio_onsets", "the audio has no onsets; the offset is undefined")
  return lag_by_xcorr(a, v, ENVELOPE_RATE, max_offset)
