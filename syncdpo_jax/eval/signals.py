"""Per-modality event signals: optical-flow and motion-energy curves of the frames, onset envelopes and
onsets of the waveform and of the log-mel, their events, and the lag between two envelopes."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import scipy.ndimage
import scipy.signal

from syncdpo_jax._librosa import librosa
from syncdpo_jax.eval.clips import SILENCE_PEAK

# Rate (Hz) at which estimate_offset compares the two envelopes: finer than any video frame rate we
# use (<= 60 fps), so the lag resolution is set by interpolation, not by the video grid.
ENVELOPE_RATE = 100.0
# estimate_offset's video signal: camera shake is searched up to this many pixels per frame at a working
# resolution whose longer side is STAB_WORK_SIZE px; slow motion is removed by a running median this long.
STAB_MAX_SHIFT_PX = 2
STAB_WORK_SIZE = 64
MOTION_DETREND_S = 1.0
# AV-Align's reference implementation loads audio with librosa.load's default rate.
AV_ALIGN_SR = 22050


def _gray(frames: np.ndarray) -> list[np.ndarray]:
  return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]


def flow_magnitude(frames: np.ndarray) -> np.ndarray:
  """Mean Farneback optical-flow magnitude per frame, as in AV-Align's reference code.

  Args:
    frames: uint8 [T, H, W, 3] RGB, T >= 2.
  Returns:
    float64 [T]: entry i is the mean flow magnitude between frames i-1 and i; entry 0 repeats the
    flow between frames 0 and 1 (the reference implementation does the same, so peaks keep indices).
  """
  gray = _gray(frames)
  mags = []
  for a, b in zip(gray[:-1], gray[1:]):
    # Parameters of the reference implementation: pyr_scale 0.5, 3 levels, window 15, 3 iterations,
    # poly_n 5, poly_sigma 1.2.
    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    mags.append(float(np.mean(np.hypot(flow[..., 0], flow[..., 1]))))
  return np.asarray([mags[0]] + mags, dtype=np.float64)


def local_maxima(x: np.ndarray) -> np.ndarray:
  """Indices i with x[i-1] < x[i] > x[i+1] (strict, interior only). x: [T] -> int [K]."""
  x = np.asarray(x)
  if x.shape[0] < 3:
    return np.zeros((0,), np.int64)
  mid = x[1:-1]
  return np.nonzero((x[:-2] < mid) & (mid > x[2:]))[0] + 1


def av_align_audio_onsets(audio: np.ndarray, sr: int) -> np.ndarray:
  """Onset times (s) exactly as AV-Align's reference: audio at 22.05 kHz, librosa default onsets."""
  y = np.asarray(audio, np.float32)
  if sr != AV_ALIGN_SR:
    y = librosa.resample(y, orig_sr=sr, target_sr=AV_ALIGN_SR)
  env = librosa.onset.onset_strength(y=y, sr=AV_ALIGN_SR)
  onset_frames = librosa.onset.onset_detect(onset_envelope=env, sr=AV_ALIGN_SR)
  return librosa.frames_to_time(onset_frames, sr=AV_ALIGN_SR)


def detect_audio_events(audio: Any, sr: int, *, hop_s: float = 0.005) -> np.ndarray:
  """Audio event times (s) of a waveform: librosa spectral-flux onsets on a fine hop.

  Used to score generated audio against ground-truth event times (SyncBench-Synth) with
  :func:`event_metrics`. The hop (default 5 ms) and a ~32 ms FFT are finer than AV-Align's defaults so
  the timing error is not dominated by the analysis grid. librosa's centred onset envelope puts the
  onset of an impulsive sound at its true time (checked in the tests to within one hop).

  Args:
    audio: float [N] mono waveform.
    sr: sample rate (Hz).
    hop_s: analysis hop in seconds.
  Returns:
    float64 [K] onset times in seconds, ascending; empty for silence (peak < SILENCE_PEAK) — silence has
    no events, so a silent generation scores recall 0 rather than raising.
  """
  y = np.asarray(audio, np.float32)
  if y.ndim != 1:
    raise ValueError(f"audio must be mono [N], got shape {y.shape}; average the channels first")
  if y.size == 0 or np.max(np.abs(y)) < SILENCE_PEAK:
    return np.zeros((0,), np.float64)
  hop = max(1, int(round(hop_s * sr)))
  n_fft = _pow2_at_least(0.032 * sr)
  env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop, n_fft=n_fft, n_mels=64)
  frames = librosa.onset.onset_detect(onset_envelope=env, sr=sr, hop_length=hop)
  return librosa.frames_to_time(frames, sr=sr, hop_length=hop).astype(np.float64)


def detect_mel_events(mel: Any, frame_rate: float, *, db_floor: float = -80.0) -> np.ndarray:
  """Audio event times (s) of a normalised log-mel: spectral-flux onsets on the mel frames themselves.

  Generated audio is a log-mel; turning it into a waveform (Griffin-Lim) smears onsets over tens of
  ms (on real SyncBench-Synth test clips, onset F1 through Griffin-Lim is ~0.4 against ~0.86 on the
  mel itself), so event metrics of generated audio are measured here, before any vocoder.

  Args:
    mel: float [T_a, n_mels] normalised log-mel in [-1, 1] (x = dB / 40 + 1, see data.features).
    frame_rate: mel frames per second (sr / hop); frame j is centred at j / frame_rate.
  Returns:
    float64 [K] onset times in seconds, ascending; empty for silence (every frame at the floor).
  """
  env = mel_onset_envelope(mel, frame_rate, db_floor=db_floor)
  return np.zeros((0,), np.float64) if env is None else onset_frames(env, frame_rate) / frame_rate


def onset_frames(envelope: np.ndarray, frame_rate: float) -> np.ndarray:
  """librosa's onset picking on an onset envelope sampled at `frame_rate`: float64 [K] frame indices."""
  hop = 512  # any (sr, hop) with sr / hop = frame_rate gives times in seconds
  frames = librosa.onset.onset_detect(
      onset_envelope=envelope, sr=int(round(frame_rate * hop)), hop_length=hop
  )
  return np.asarray(frames, np.float64)


def mel_onset_envelope(mel: Any, frame_rate: float, *, db_floor: float = -80.0) -> np.ndarray | None:
  """Spectral-flux onset strength of a normalised log-mel, one value per mel frame (frame j at
  j / frame_rate); None for a silent or too short mel.

  mel: float [T_a, n_mels] in [-1, 1] (x = dB / 40 + 1, see data.features) -> float [T_a].
  """
  x = np.asarray(mel, np.float32)
  if x.ndim != 2:
    raise ValueError(f"mel must be [T_a, n_mels], got shape {x.shape}")
  db = (np.clip(x, -1.0, 1.0) - 1.0) * (-db_floor / 2.0)  # back to [db_floor, 0] dB, [T_a, n_mels]
  if x.shape[0] < 3 or db.max() <= db_floor + 1e-3:
    return None
  # librosa wants [n_mels, T]; any (sr, hop) with sr / hop = frame_rate gives times in seconds.
  hop = 512
  # center=False: the mel frames are already centred on their times (librosa would pad by
  # n_fft // (2 * hop) more frames, a 2-frame delay here).
  return librosa.onset.onset_strength(S=db.T, sr=int(round(frame_rate * hop)), hop_length=hop, center=False)


def detect_video_events(frames: Any, fps: float, *, rel_height: float = 0.25) -> np.ndarray:
  """Video event times (s): peaks of the detrended, camera-stabilised motion energy.

  The video counterpart of :func:`detect_audio_events`, used to score generated VIDEO (audio->video
  mode) against ground-truth event times. A frame is an event when its detrended energy
  (:func:`motion_event_envelope` at the frame rate) is a local maximum above `rel_height` times the
  clip's largest burst; the time is that of the first frame showing the change (i / fps).

  Returns:
    float64 [K] ascending event times; empty for a static video.
  """
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[0] < 3:
    return np.zeros((0,), np.float64)
  env = motion_event_envelope(frames, fps, rate=fps)
  if env.size == 0 or env.max() <= 0:
    return np.zeros((0,), np.float64)
  peaks, _ = scipy.signal.find_peaks(env, height=rel_height * env.max())
  return (peaks / fps).astype(np.float64)


def _pow2_at_least(x: float) -> int:
  return int(2 ** math.ceil(math.log2(max(x, 2.0))))


def audio_onset_envelope(audio: np.ndarray, sr: int, rate: float = ENVELOPE_RATE) -> np.ndarray:
  """Onset strength (librosa spectral flux) resampled to `rate` Hz.

  Args:
    audio: float [N] mono waveform.
  Returns:
    float64 [floor(N / sr * rate)]: sample k is the onset strength at time k / rate.
  """
  y = np.asarray(audio, np.float32)
  hop = max(1, int(round(sr / rate)))
  n_fft = _pow2_at_least(0.032 * sr)
  env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop, n_fft=n_fft, n_mels=64)
  t_env = np.arange(env.shape[0]) * hop / sr  # centred frames: frame j sits at j * hop / sr
  t_out = np.arange(int(np.floor(y.shape[0] / sr * rate))) / rate
  return np.interp(t_out, t_env, env)


def stabilized_motion_energy(
    frames: np.ndarray, *, max_shift: int = STAB_MAX_SHIFT_PX, work_size: int = STAB_WORK_SIZE
) -> np.ndarray:
  """Per-frame motion energy after cancelling global camera translation ("visual flux").

  Frames are converted to gray and, if larger, area-downscaled so the longer side is `work_size` px
  (camera shake of a few pixels then becomes <= `max_shift` px, and the cost stays small). For each
  pair (i-1, i) the integer translation (dy, dx) in [-max_shift, max_shift]^2 minimising the MEDIAN
  absolute difference over the interior is taken as the camera motion: the median follows the
  background (most pixels) and ignores the moving objects, where a mean would chase them. Ties prefer
  the smallest shift, so a still camera is never "compensated". The energy is then the MEAN absolute
  difference of the aligned pair, which keeps the objects' motion and appearance changes.

  Args:
    frames: uint8 [T, H, W, 3] RGB, T >= 2.
    max_shift: largest camera shift per frame searched, in working-resolution pixels.
    work_size: longer side of the working resolution.
  Returns:
    float64 [T]: entry i is the energy of the change from frame i-1 to frame i (gray levels 0..255);
    entry 0 repeats entry 1.
  """
  gray = np.stack(_gray(frames)).astype(np.float32)  # [T, H, W]
  t, h, w = gray.shape
  scale = min(1.0, work_size / max(h, w))
  if scale < 1.0:
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    gray = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in gray])
    t, h, w = gray.shape
  m = max(0, min(max_shift, (min(h, w) - 1) // 4))  # keep at least half of each side as interior
  shifts = sorted(
      ((dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)),
      key=lambda d: (d[0] ** 2 + d[1] ** 2, d),
  )
  energy = np.zeros(t, np.float64)
  for i in range(1, t):
    cur = gray[i, m : h - m, m : w - m]
    prev = np.stack([gray[i - 1, m + dy : h - m + dy, m + dx : w - m + dx] for dy, dx in shifts])
    diff = np.abs(prev - cur).reshape(len(shifts), -1)  # [S, pixels]
    med, mean = np.median(diff, axis=1), diff.mean(axis=1)
    best = np.lexsort((np.arange(len(shifts)), mean, med))[0]  # median, then mean, then smallest shift
    energy[i] = mean[best]
  if t > 1:
    energy[0] = energy[1]
  return energy


def motion_event_envelope(
    frames: np.ndarray, fps: float, rate: float = ENVELOPE_RATE, detrend_s: float = MOTION_DETREND_S
) -> np.ndarray:
  """Video event signal for :func:`estimate_offset`, resampled to `rate` Hz.

  :func:`stabilized_motion_energy` minus its running median over `detrend_s` seconds: the running
  median is the slowly varying motion level (a drifting object, a swaying face, sliding blocks), so what
  is left are the short bursts of change that sounding events make (a contact flash and squash, a mouth
  opening, a pad lighting up). Energy i sits at time i / fps, the first frame that shows the change.

  Args:
    frames: uint8 [T, H, W, 3].
  Returns:
    float64 [floor(T / fps * rate)]: sample k is the detrended motion energy at time k / rate (linear
    interpolation between frames).
  """
  energy = stabilized_motion_energy(frames)
  width = max(3, int(round(detrend_s * fps)) | 1)  # odd window, >= 3 frames
  energy = energy - scipy.ndimage.median_filter(energy, size=width, mode="nearest")
  t_frames = np.arange(frames.shape[0]) / fps
  t_out = np.arange(int(np.floor(frames.shape[0] / fps * rate))) / rate
  return np.interp(t_out, t_frames, energy)


def lag_by_xcorr(a: np.ndarray, v: np.ndarray, rate: float, max_offset: float) -> float:
  """Lag (s) of envelope `a` behind envelope `v` maximising their normalised cross-correlation.

  Both are standardised; c(L) = sum_t v(t) a(t + L) / N over L in [-max_offset, max_offset] (clipped to
  the duration minus half a second), with N the full length (not the overlap), which damps spurious
  peaks at large lags where only a few samples overlap. The best integer lag is refined by the vertex
  of the parabola through its neighbours.

  Args:
    a, v: float [N_a], [N_v] envelopes sampled at `rate` Hz (the common prefix is used).
  Returns:
    Lag in seconds, positive when `a` is late, within [-max_offset, max_offset].
  Raises:
    ValueError: an envelope is constant (the correlation is undefined).
  """
  n = min(a.shape[0], v.shape[0])
  a, v = np.asarray(a[:n], np.float64), np.asarray(v[:n], np.float64)
  if np.std(a) <= 1e-12 or np.std(v) <= 1e-12:
    raise ValueError("lag_by_xcorr needs two non-constant envelopes")
  a = (a - a.mean()) / a.std()
  v = (v - v.mean()) / v.std()
  max_lag = max(1, int(np.floor(min(max_offset, n / rate - 0.5) * rate)))
  lags = np.arange(-max_lag, max_lag + 1)
  # full cross-correlation: index (n - 1) + L holds sum_t a[t + L] v[t]
  corr = (np.correlate(a, v, mode="full") / n)[n - 1 + lags]
  k = int(np.argmax(corr))
  frac = 0.0
  if 0 < k < len(lags) - 1:
    y0, y1, y2 = corr[k - 1], corr[k], corr[k + 1]
    denom = y0 - 2.0 * y1 + y2
    if denom < 0:  # a true maximum: vertex of the parabola through the three samples
      frac = float(np.clip(0.5 * (y0 - y2) / denom, -0.5, 0.5))
  return float(np.clip((lags[k] + frac) / rate, -max_offset, max_offset))
