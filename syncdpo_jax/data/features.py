"""Audio features: the normalised log-mel that the model sees as audio "latents", and its inverse.

Normalisation (shared convention): power mel, divided by a FIXED reference (the mel power of a
full-scale sinusoid, so it does not depend on the clip), to dB with amin=1e-10, clipped to [-80, 0] dB,
then ``x = mel_db / 40 + 1``: silence -> -1, a full-scale tone -> +1. A fixed reference (not the clip
max) keeps loudness information, which is what onsets are made of.

Frame j is centred at time ``j * hop / sr`` (librosa ``center=True``), so with ``sr / hop`` an integer
multiple of fps, audio frame ``j`` lines up with video frame ``i`` at ``j * hop / sr == i / fps``.
"""

from __future__ import annotations

import functools

import ml_collections
import numpy as np

from syncdpo_jax._librosa import librosa

DB_MIN = -80.0
DB_SCALE = 40.0


def ref_power(n_fft: int) -> float:
  """Mel power of a full-scale sinusoid: |X| = n_fft / 4 with a periodic Hann window (sum = n_fft / 2)."""
  return (n_fft / 4.0) ** 2


@functools.lru_cache(maxsize=16)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
  # norm=None: triangles peak at 1, so a tone at a band centre keeps its power (fixed reference holds).
  return librosa.filters.mel(
      sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm=None, dtype=np.float32
  )


def num_audio_frames(num_samples: int, hop: int) -> int:
  """Frames a window of `num_samples` samples maps to (exact when hop divides it)."""
  return num_samples // hop


def normalize_db(mel_db: np.ndarray) -> np.ndarray:
  """[-80, 0] dB -> [-1, 1]."""
  return (np.clip(mel_db, DB_MIN, 0.0) / DB_SCALE + 1.0).astype(np.float32)


def denormalize_db(x: np.ndarray) -> np.ndarray:
  """[-1, 1] -> [-80, 0] dB (inverse of `normalize_db` on its range)."""
  return ((np.clip(x, -1.0, 1.0) - 1.0) * DB_SCALE).astype(np.float32)


def log_mel(audio: np.ndarray, cfg: ml_collections.ConfigDict, num_frames: int | None = None) -> np.ndarray:
  """Normalised log-mel of a mono waveform.

  Args:
    audio: float [N] mono waveform at `cfg.sr`, nominally in [-1, 1].
    cfg: data config (sr, n_fft, hop, n_mels, fmin, fmax).
    num_frames: output frames; default ``N // hop`` (the exact count for a window, T_a). librosa's
      centred STFT yields ``1 + N // hop`` frames; the extra one (centred past the window end) is dropped
      and missing frames are filled with silence (-1).
  Returns:
    float32 [T_a, n_mels] in [-1, 1].
  """
  audio = np.asarray(audio, dtype=np.float32)
  if audio.ndim != 1:
    raise ValueError(f"log_mel expects a mono waveform [N], got shape {audio.shape}")
  t_a = num_audio_frames(audio.shape[0], cfg.hop) if num_frames is None else int(num_frames)
  if audio.shape[0] == 0:
    return np.full((t_a, cfg.n_mels), -1.0, np.float32)
  spec = (
      np.abs(librosa.stft(audio, n_fft=cfg.n_fft, hop_length=cfg.hop, center=True, pad_mode="constant")) ** 2
  )  # [1 + n_fft/2, frames]
  mel = _mel_basis(int(cfg.sr), int(cfg.n_fft), int(cfg.n_mels), float(cfg.fmin), float(cfg.fmax)) @ spec
  mel_db = librosa.power_to_db(mel / ref_power(cfg.n_fft), ref=1.0, amin=1e-10, top_db=None)
  x = normalize_db(mel_db).T  # [frames, n_mels]
  if x.shape[0] >= t_a:
    return np.ascontiguousarray(x[:t_a])
  pad = np.full((t_a - x.shape[0], x.shape[1]), -1.0, np.float32)
  return np.concatenate([x, pad], axis=0)


def mel_power(norm_logmel: np.ndarray, cfg: ml_collections.ConfigDict) -> np.ndarray:
  """Inverse normalisation: [T_a, n_mels] in [-1, 1] -> mel power [n_mels, T_a] (librosa layout)."""
  db = denormalize_db(np.asarray(norm_logmel, np.float32))
  return (librosa.db_to_power(db, ref=1.0) * ref_power(cfg.n_fft)).T.astype(np.float32)
