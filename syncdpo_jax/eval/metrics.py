"""Synchronization metrics, event scores and quality proxies on decoded clips (NumPy / OpenCV / librosa).

Every metric works on one decoded clip: ``frames`` uint8 ``[T, H, W, 3]`` (RGB) at ``fps`` and a mono float
waveform ``audio`` ``[N]`` at ``sr``. These run on the host after sampling and decoding; nothing here is
jitted.

Bad input raises :class:`ClipError` (a ``ValueError``) whose ``reason`` is one short machine-readable code:

  ``'bad_input'``          wrong dtype / rank / channels, non-positive rate
  ``'too_short'``          the clip (the shorter of video and audio) is under ``MIN_DURATION_S`` = 1 s
  ``'duration_mismatch'``  video and audio durations differ by more than ``duration_tol_s``
  ``'silent_audio'``       the waveform peak is below ``SILENCE_PEAK`` (about -80 dBFS)
  ``'static_video'``       no frame-to-frame change at all (offset undefined)
  ``'no_audio_onsets'``    audio is not silent but has no onset (offset undefined)
  ``'no_peaks'``           neither audio onsets nor video peaks (AV-Align IoU is 0/0)
  ``'unreadable'``         (only from :func:`evaluate_clips`) the clip loader raised

:func:`evaluate_clips` catches these per clip, skips the clip and counts the reasons, so a set-level
report always says how many clips it dropped and why. A generator that often emits silence or frozen video
therefore shows up as a high skip count, not as a better score.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np
import scipy.ndimage
import scipy.optimize
import scipy.signal
import scipy.stats

from syncdpo_jax._librosa import librosa

MIN_DURATION_S = 1.0
# A waveform whose peak is below 1e-4 (-80 dBFS) is treated as silence: that is the floor of the
# normalised log-mel the model sees, so nothing quieter can carry an event.
SILENCE_PEAK = 1e-4
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


class ClipError(ValueError):
    """A clip a metric cannot score. ``reason`` is one of the codes in the module docstring."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"[{reason}] {message}")
        self.reason = reason


# ----------------------------------------------------------------------------------------------------
# Input checks


def check_clip(frames: Any, fps: float, audio: Any, sr: int, *, min_duration_s: float = MIN_DURATION_S,
               duration_tol_s: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Validates a decoded clip and trims both streams to their common duration.

    Args:
      frames: uint8 [T, H, W, 3] RGB frames.
      fps: video frame rate (frames / s).
      audio: float [N] mono waveform, nominally in [-1, 1].
      sr: audio sample rate (Hz).
      min_duration_s: shortest clip accepted.
      duration_tol_s: largest accepted |T / fps - N / sr|; a bigger gap means the two streams do not
        belong to the same time axis.
    Returns:
      (frames uint8 [T', H, W, 3], audio float64 [N']) covering the same span.
    Raises:
      ClipError: see the module docstring for the reasons.
    """
    frames = np.asarray(frames)
    audio = np.asarray(audio)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ClipError("bad_input", f"frames must be uint8 [T, H, W, 3] RGB, got {frames.dtype} "
                        f"{frames.shape}; convert with np.clip((x + 1) * 127.5, 0, 255).astype(np.uint8) "
                        "if they are model outputs in [-1, 1]")
    if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
        raise ClipError("bad_input", f"audio must be a mono float waveform [N], got {audio.dtype} "
                        f"{audio.shape}; average the channels first (audio.mean(axis=channel_axis))")
    if not (fps > 0 and sr > 0):
        raise ClipError("bad_input", f"fps and sr must be positive, got fps={fps}, sr={sr}")
    if not np.all(np.isfinite(audio)):
        raise ClipError("bad_input", "audio contains NaN or inf")
    dur_v, dur_a = frames.shape[0] / fps, audio.shape[0] / sr
    if min(dur_v, dur_a) < min_duration_s:
        raise ClipError("too_short", f"clip is {dur_v:.3f} s of video and {dur_a:.3f} s of audio; at least "
                        f"{min_duration_s} s of both is needed")
    if abs(dur_v - dur_a) > duration_tol_s:
        raise ClipError("duration_mismatch", f"video lasts {dur_v:.3f} s ({frames.shape[0]} frames at "
                        f"{fps} fps) but audio {dur_a:.3f} s ({audio.shape[0]} samples at {sr} Hz); "
                        f"allowed difference is {duration_tol_s} s (duration_tol_s). Check fps / sr.")
    if np.max(np.abs(audio)) < SILENCE_PEAK:
        raise ClipError("silent_audio", f"audio peak {np.max(np.abs(audio)):.2e} is below {SILENCE_PEAK} "
                        "(-80 dBFS); there is nothing to synchronise")
    dur = min(dur_v, dur_a)
    t = min(frames.shape[0], int(round(dur * fps)))
    n = min(audio.shape[0], int(round(dur * sr)))
    return frames[:t], audio[:n].astype(np.float64)


# ----------------------------------------------------------------------------------------------------
# Per-modality event signals


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
    frames = librosa.onset.onset_detect(onset_envelope=envelope, sr=int(round(frame_rate * hop)),
                                        hop_length=hop)
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
    return librosa.onset.onset_strength(S=db.T, sr=int(round(frame_rate * hop)), hop_length=hop,
                                        center=False)


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


def stabilized_motion_energy(frames: np.ndarray, *, max_shift: int = STAB_MAX_SHIFT_PX,
                             work_size: int = STAB_WORK_SIZE) -> np.ndarray:
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
    shifts = sorted(((dy, dx) for dy in range(-m, m + 1) for dx in range(-m, m + 1)),
                    key=lambda d: (d[0] ** 2 + d[1] ** 2, d))
    energy = np.zeros(t, np.float64)
    for i in range(1, t):
        cur = gray[i, m:h - m, m:w - m]
        prev = np.stack([gray[i - 1, m + dy:h - m + dy, m + dx:w - m + dx] for dy, dx in shifts])
        diff = np.abs(prev - cur).reshape(len(shifts), -1)  # [S, pixels]
        med, mean = np.median(diff, axis=1), diff.mean(axis=1)
        best = np.lexsort((np.arange(len(shifts)), mean, med))[0]  # median, then mean, then smallest shift
        energy[i] = mean[best]
    if t > 1:
        energy[0] = energy[1]
    return energy


def motion_event_envelope(frames: np.ndarray, fps: float, rate: float = ENVELOPE_RATE,
                          detrend_s: float = MOTION_DETREND_S) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------------
# Synchronization metrics


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
        raise ClipError("static_video", "the video never changes (after cancelling camera shake); the "
                        "offset is undefined")
    if np.std(a) <= 1e-12:
        raise ClipError("no_audio_onsets", "the audio has no onsets; the offset is undefined")
    return lag_by_xcorr(a, v, ENVELOPE_RATE, max_offset)


# ----------------------------------------------------------------------------------------------------
# Event scores


def match_events(pred: np.ndarray, gt: np.ndarray, tol_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The maximum one-to-one matching of predicted to ground-truth times within `tol_s` that, among
    maximum matchings, minimises the total |error| (Hungarian algorithm).

    Args:
      pred: float [K], gt: float [M] event times (s), both non-empty.
    Returns:
      (pred_index, gt_index), int [matched] each.
    """
    err = np.abs(pred[:, None] - gt[None, :])  # [K, M]
    ok = err <= tol_s + 1e-12  # float slack so a shift of exactly tol_s counts as inside
    # Cost: a feasible pair costs its error (< tol_s); an infeasible one costs more than any set of
    # feasible pairs together, so the assignment first maximises the match count, then minimises error.
    big = (tol_s + 1.0) * (min(pred.size, gt.size) + 1)
    rows, cols = scipy.optimize.linear_sum_assignment(np.where(ok, err, big))
    keep = ok[rows, cols]
    return rows[keep], cols[keep]


def event_metrics(pred_times: Any, gt_times: Any, tol_s: float) -> dict[str, float]:
    """Event precision / recall / F1 and mean timing error with optimal one-to-one matching.

    Follows the onset-evaluation convention of mir_eval (Raffel et al., ISMIR 2014, ``mir_eval.onset``):
    a predicted and a ground-truth event may be matched if |t_pred - t_gt| <= tol_s; each event is used at
    most once, and the matching maximises the number of matches (Hopcroft-Karp in mir_eval; here the
    Hungarian algorithm, which among maximum matchings also minimises the total timing error:
    :func:`match_events`). Negative entries (the -1 padding of ``batch['events']``) are ignored.

    Args:
      pred_times: float [K] predicted event times (s), e.g. from :func:`detect_audio_events`.
      gt_times: float [M] ground-truth times (s), -1 padded allowed.
      tol_s: matching tolerance in seconds (mir_eval default: 0.05).
    Returns:
      dict(precision, recall, f1, mean_timing_error_s, num_matched). precision/recall/f1 are 0 when
      either set is empty (mir_eval's convention; a silent generation with events expected scores 0) and
      1 when both are empty; mean_timing_error_s is NaN when nothing is matched.
    """
    pred = np.asarray(pred_times, np.float64).reshape(-1)
    gt = np.asarray(gt_times, np.float64).reshape(-1)
    pred, gt = pred[pred >= 0], gt[gt >= 0]
    if pred.size == 0 and gt.size == 0:
        return dict(precision=1.0, recall=1.0, f1=1.0, mean_timing_error_s=float("nan"), num_matched=0)
    if pred.size == 0 or gt.size == 0:
        return dict(precision=0.0, recall=0.0, f1=0.0, mean_timing_error_s=float("nan"), num_matched=0)
    rows, cols = match_events(pred, gt, tol_s)
    matched = int(rows.size)
    precision, recall = matched / pred.size, matched / gt.size
    f1 = 0.0 if matched == 0 else 2 * precision * recall / (precision + recall)
    timing = float(np.mean(np.abs(pred[rows] - gt[cols]))) if matched else float("nan")
    return dict(precision=precision, recall=recall, f1=f1, mean_timing_error_s=timing, num_matched=matched)


# ----------------------------------------------------------------------------------------------------
# Quality proxies (NOT FAD / FVD: no pretrained network, only fixed hand-made features)


def frechet_distance(x: Any, y: Any) -> float:
    """Fréchet distance between Gaussian fits of two sample sets (Dowson & Landau 1982; as used by FID,
    Heusel et al., NeurIPS 2017): |mu_x - mu_y|^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2)).

    Tr((S_x S_y)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S_x^(1/2) S_y S_x^(1/2) (same spectrum), which stays exact when a covariance is singular (e.g.
    a histogram bin that is always empty) instead of needing an eps fallback.

    Args:
      x: float [N, D] samples; y: float [M, D] samples, N, M >= 2.
    Returns:
      The distance, >= 0 (round-off below zero, e.g. for identical sets, is clipped to 0).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(x.shape[0], y.shape[0]) < 2:
        raise ValueError(f"frechet_distance needs [N, D] and [M, D] with N, M >= 2, got {x.shape}, {y.shape}")
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    w, q = np.linalg.eigh(s1)
    sqrt_s1 = (q * np.sqrt(np.clip(w, 0.0, None))) @ q.T
    m = sqrt_s1 @ s2 @ sqrt_s1
    tr_covmean = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None))))
    return max(0.0, float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean))


def logmel_frame_features(mel: Any) -> np.ndarray:
    """Per-frame features of :func:`fd_logmel_proxy`: the frame and its absolute change from the
    previous frame (0 for the first). [T, n_mels] -> float64 [T, 2 n_mels].

    The change is what a frame-pooled spectrum cannot see: real audio is mostly steady with sparse
    onsets, generated noise flickers in every frame.
    """
    m = np.asarray(mel, np.float64)
    return np.concatenate([m, np.abs(np.diff(m, axis=0, prepend=m[:1]))], axis=1)


def fd_logmel_proxy(generated: Sequence[Any], real: Sequence[Any]) -> float:
    """PROXY audio quality: Fréchet distance between Gaussian fits of :func:`logmel_frame_features`
    (log-mel frames and their frame-to-frame change) pooled over the frames of two sets.

    Every frame of every clip is one sample (pooling frames keeps the covariance estimable with a
    handful of clips). It compares spectral statistics only; it is not FAD (no VGGish / PANN embedding).

    Args:
      generated, real: sequences of float [T_i, n_mels] normalised log-mels (same n_mels).
    """
    return frechet_distance(np.concatenate([logmel_frame_features(m) for m in generated], 0),
                            np.concatenate([logmel_frame_features(m) for m in real], 0))


# A grey-level step below this (6 of 256 levels) counts as flat in the edge and motion features: the
# per-pixel noise of a couple of grey levels that any generator leaves is invisible and must not read
# as texture or motion (with a threshold of 1 level, sigma = 2 levels of noise on real clips sat
# farther from the data than the shuffled-cell anchor; benchmarks/bench_quality_gate.py).
FLAT_TOL = 6.0 / 256.0
VIDEO_FEATURE_GROUPS = ("layout", "colour", "edges", "grid", "motion")


def video_feature_groups(frames: Any, grid: int = 4, bins: int = 8, flat_tol: float = FLAT_TOL
                         ) -> dict[str, np.ndarray]:
    """Per-frame video features for :func:`fd_video_proxy`, by what they see (VIDEO_FEATURE_GROUPS).

    layout  a grid x grid x 3 thumbnail (area average, in [0, 1]): where the colours are;
    colour  a `bins`-bin histogram per colour channel (fractions);
    edges   `bins`-bin histograms of the grey level's horizontal and vertical pixel differences (first
            bin: flat, below `flat_tol`; then log-spaced to 1): the mix of flat regions, soft ramps and
            edges (blur empties the upper bins, blocks and noise fill others);
    grid    the mean |difference| at each column boundary and at each row boundary: the data's edges
            fall anywhere, the seams of a patch-based generator whose patches disagree always at the
            same columns and rows;
    motion  mean |frame_i - frame_{i-1}| and the fraction of grey levels changing by more than
            `flat_tol` (0 for the first frame): per-patch flicker moves many pixels a little.

    Args:
      frames: uint8 [T, H, W, 3].
    Returns:
      {'layout': [T, 3 grid^2], 'colour': [T, 3 bins], 'edges': [T, 2 bins], 'grid': [T, W + H - 2],
       'motion': [T, 2]}, float64.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    t = frames.shape[0]
    thumbs = np.stack([cv2.resize(f, (grid, grid), interpolation=cv2.INTER_AREA) for f in frames])
    thumbs = thumbs.reshape(t, -1).astype(np.float64) / 255.0
    idx = (frames.astype(np.int64) * bins) // 256  # [T, H, W, 3] bin index
    hist = np.stack([np.stack([np.bincount(idx[i, ..., c].ravel(), minlength=bins) for c in range(3)])
                     for i in range(t)]).reshape(t, -1)
    hist = hist / float(frames.shape[1] * frames.shape[2])
    f = frames.astype(np.float64) / 255.0
    gray = f.mean(-1)                                                      # [T, H, W]
    dx, dy = np.abs(np.diff(gray, axis=2)), np.abs(np.diff(gray, axis=1))
    edges = np.concatenate([[0.0], np.geomspace(flat_tol, 1.0, bins)])
    ghist = np.stack([np.stack([np.histogram(d[i], edges)[0] / d[i].size for d in (dx, dy)])
                      for i in range(t)]).reshape(t, -1)
    seams = np.concatenate([dx.mean(1), dy.mean(2)], axis=1)               # [T, (W - 1) + (H - 1)]
    change = np.abs(np.diff(gray, axis=0))                                 # [T - 1, H, W]
    motion = np.concatenate([np.zeros((1, 2)), np.stack(
        [np.mean(np.abs(np.diff(f, axis=0)), axis=(1, 2, 3)), np.mean(change > flat_tol, axis=(1, 2))],
        axis=1)], axis=0)
    return {"layout": thumbs, "colour": hist, "edges": ghist, "grid": seams, "motion": motion}


def video_frame_features(frames: Any, grid: int = 4, bins: int = 8) -> np.ndarray:
    """:func:`video_feature_groups` concatenated: uint8 [T, H, W, 3] -> float64 [T, D]."""
    g = video_feature_groups(frames, grid, bins)
    return np.concatenate([g[k] for k in VIDEO_FEATURE_GROUPS], axis=1)


def fd_video_proxy(generated: Sequence[Any], real: Sequence[Any]) -> dict[str, float]:
    """PROXY video quality: per group of :func:`video_feature_groups`, the Fréchet distance between
    Gaussian fits of that group's features pooled over all frames of two sets; 'all' for every group
    at once.

    Not FVD (no I3D embedding): it sees colour layout, edges, seams and flicker, not content or realism.
    Separate groups keep a small group (motion: 2 numbers) from drowning in a large one (a 32x32 clip
    has 62 seam features), so each failure shows on its own scale (eval/quality.py).

    Args:
      generated, real: sequences of uint8 [T_i, H, W, 3] clips.
    Returns:
      {'all': fd, 'layout': fd, 'colour': fd, 'edges': fd, 'grid': fd, 'motion': fd}.
    """
    def pooled(clips):
        per = [video_feature_groups(v) for v in clips]
        return {k: np.concatenate([p[k] for p in per], 0) for k in VIDEO_FEATURE_GROUPS}
    a, b = pooled(generated), pooled(real)
    out = {"all": frechet_distance(np.concatenate([a[k] for k in VIDEO_FEATURE_GROUPS], 1),
                                   np.concatenate([b[k] for k in VIDEO_FEATURE_GROUPS], 1))}
    out.update({k: frechet_distance(a[k], b[k]) for k in VIDEO_FEATURE_GROUPS})
    return out


# ----------------------------------------------------------------------------------------------------
# Set-level evaluation


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


def evaluate_clips(clips: Iterable[ClipLike], gt_events: Sequence[Any] | None = None, *,
                   event_tol_s: float = 0.1, max_offset: float = 2.0,
                   duration_tol_s: float = 0.1, event_stream: str = "audio") -> dict[str, Any]:
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
            frames, audio = check_clip(c["frames"], c["fps"], c["audio"], c["sr"],
                                       duration_tol_s=duration_tol_s)
            off = estimate_offset(frames, c["fps"], audio, c["sr"], max_offset=max_offset)
            align = av_align(frames, c["fps"], audio, c["sr"])
        except ClipError as e:
            skipped[e.reason] += 1
            continue
        row.update(desync=abs(off), offset=off, av_align=align)
        if gt_events is not None:
            if i >= len(gt_events):
                raise ValueError(f"gt_events has {len(gt_events)} entries but clip {i} needs one; pass one "
                                 "array per clip, in the same order")
            if event_stream == "video":
                detected = detect_video_events(frames, c["fps"])
            elif c.get("mel") is not None:
                detected = detect_mel_events(c["mel"], c["mel_fps"])
            else:
                detected = detect_audio_events(audio, c["sr"])
            ev = event_metrics(detected, gt_events[i], event_tol_s)
            row.update(event_precision=ev["precision"], event_recall=ev["recall"], event_f1=ev["f1"],
                       event_timing_error_s=ev["mean_timing_error_s"])
        for k, v in row.items():
            per_metric[k].append(v)
    out: dict[str, Any] = {k: mean_ci95(v) for k, v in per_metric.items()}
    if not per_metric:  # every clip skipped: still report the contract metrics, as NaN
        names = ["desync", "offset", "av_align"]
        if gt_events is not None:
            names += ["event_precision", "event_recall", "event_f1", "event_timing_error_s"]
        out.update({k: (float("nan"), float("nan")) for k in names})
    n_skipped = int(sum(skipped.values()))
    out.update(num_clips=num, num_evaluated=num - n_skipped, num_skipped=n_skipped, skipped=dict(skipped),
               per_clip={k: [r.get(k, float("nan")) for r in per_clip] for k in per_metric})
    return out
