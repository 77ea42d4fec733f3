"""Input checks for the per-clip metrics: a decoded clip that cannot be scored raises `ClipError`.

Every metric works on one decoded clip: ``frames`` uint8 ``[T, H, W, 3]`` (RGB) at ``fps`` and a mono
float waveform ``audio`` ``[N]`` at ``sr``, on the host after sampling and decoding (nothing in
syncdpo_jax.eval is jitted).

Bad input raises :class:`ClipError` (a ``ValueError``) whose ``reason`` is one short machine-readable code:

  ``'bad_input'``          wrong dtype / rank / channels, non-positive rate
  ``'too_short'``          the clip (the shorter of video and audio) is under ``MIN_DURATION_S`` = 1 s
  ``'duration_mismatch'``  video and audio durations differ by more than ``duration_tol_s``
  ``'silent_audio'``       the waveform peak is below ``SILENCE_PEAK`` (about -80 dBFS)
  ``'static_video'``       no frame-to-frame change at all (offset undefined)
  ``'no_audio_onsets'``    audio is not silent but has no onset (offset undefined)
  ``'no_peaks'``           neither audio onsets nor video peaks (AV-Align IoU is 0/0)
  ``'unreadable'``         (only from :func:`syncdpo_jax.eval.metrics.evaluate_clips`) the clip loader raised

:func:`syncdpo_jax.eval.metrics.evaluate_clips` catches these per clip, skips the clip and counts the
reasons, so a set-level report always says how many clips it dropped and why. A generator that often emits silence or frozen video
therefore shows up as a high skip count, not as a better score.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_DURATION_S = 1.0
# A waveform whose peak is below 1e-4 (-80 dBFS) is treated as silence: that is the floor of the
# normalised log-mel the model sees, so nothing quieter can carry an event.
SILENCE_PEAK = 1e-4


class ClipError(ValueError):
  """A clip a metric cannot score. ``reason`` is one of the codes in the module docstring."""

  def __init__(self, reason: str, message: str):
    super().__init__(f"[{reason}] {message}")
    self.reason = reason


def check_clip(
    frames: Any,
    fps: float,
    audio: Any,
    sr: int,
    *,
    min_duration_s: float = MIN_DURATION_S,
    duration_tol_s: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
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
    raise ClipError(
        "bad_input",
        f"frames must be uint8 [T, H, W, 3] RGB, got {frames.dtype} "
        f"{frames.shape}; convert with np.clip((x + 1) * 127.5, 0, 255).astype(np.uint8) "
        "if they are model outputs in [-1, 1]",
    )
  if audio.ndim != 1 or not np.issubdtype(audio.dtype, np.floating):
    raise ClipError(
        "bad_input",
        f"audio must be a mono float waveform [N], got {audio.dtype} "
        f"{audio.shape}; average the channels first (audio.mean(axis=channel_axis))",
    )
  if not (fps > 0 and sr > 0):
    raise ClipError("bad_input", f"fps and sr must be positive, got fps={fps}, sr={sr}")
  if not np.all(np.isfinite(audio)):
    raise ClipError("bad_input", "audio contains NaN or inf")
  dur_v, dur_a = frames.shape[0] / fps, audio.shape[0] / sr
  if min(dur_v, dur_a) < min_duration_s:
    raise ClipError(
        "too_short",
        f"clip is {dur_v:.3f} s of video and {dur_a:.3f} s of audio; at least "
        f"{min_duration_s} s of both is needed",
    )
  if abs(dur_v - dur_a) > duration_tol_s:
    raise ClipError(
        "duration_mismatch",
        f"video lasts {dur_v:.3f} s ({frames.shape[0]} frames at "
        f"{fps} fps) but audio {dur_a:.3f} s ({audio.shape[0]} samples at {sr} Hz); "
        f"allowed difference is {duration_tol_s} s (duration_tol_s). Check fps / sr.",
    )
  if np.max(np.abs(audio)) < SILENCE_PEAK:
    raise ClipError(
        "silent_audio",
        f"audio peak {np.max(np.abs(audio)):.2e} is below {SILENCE_PEAK} "
        "(-80 dBFS); there is nothing to synchronise",
    )
  dur = min(dur_v, dur_a)
  t = min(frames.shape[0], int(round(dur * fps)))
  n = min(audio.shape[0], int(round(dur * sr)))
  return frames[:t], audio[:n].astype(np.float64)
