"""Media I/O: mp4 (H.264 + AAC) write/read with PyAV, and log-mel -> waveform (Griffin-Lim).

`read_mp4` raises `MediaError` naming the file and the reason for everything a user's folder can hold
that we cannot use (corrupt/truncated container, no audio or video track, zero frames, unknown fps), so
the av_folder builder can report and skip or fail.
"""

from __future__ import annotations

import fractions
import functools
import os

import av
import ml_collections
import numpy as np

from syncdpo_jax._librosa import librosa
from syncdpo_jax.data import features


class MediaError(ValueError):
  """A media file cannot be used; `path` and `reason` say which and why."""

  def __init__(self, path: str, reason: str):
    self.path, self.reason = str(path), reason
    super().__init__(f"{os.path.basename(str(path))}: {reason}")


def _even(video: np.ndarray) -> np.ndarray:
  # yuv420p (what players expect from H.264) subsamples chroma 2x2, so H and W must be even: replicate
  # the last row/column rather than resample, so the original pixels are untouched.
  t, h, w, _ = video.shape
  return np.pad(video, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_mp4(
    path: str, video: np.ndarray, fps: float, audio: np.ndarray | None = None, sr: int = 16000, crf: int = 18
) -> None:
  """Writes an mp4 that plays in a normal player (H.264 yuv420p + AAC mono).

  Args:
    path: output file (.mp4).
    video: uint8 [T, H, W, 3] RGB. Odd H or W is padded by one replicated row/column.
    fps: frames per second (rational approximations like 29.97 are kept as a Fraction).
    audio: float [N] mono in [-1, 1] at `sr`, or None for a video-only file.
    crf: x264 quality (lower = better); 18 is visually lossless for our tiny frames.
  """
  video = np.asarray(video)
  if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
    raise ValueError(f"write_mp4 expects uint8 video [T, H, W, 3], got {video.dtype} {video.shape}")
  if video.shape[0] == 0:
    raise ValueError(f"write_mp4: video for {path} has zero frames")
  video = _even(video)
  rate = fractions.Fraction(fps).limit_denominator(1001)
  with av.open(str(path), mode="w") as out:
    vs = out.add_stream("libx264", rate=rate)
    vs.width, vs.height, vs.pix_fmt = video.shape[2], video.shape[1], "yuv420p"
    vs.options = {"crf": str(crf), "preset": "veryfast"}
    as_ = None
    if audio is not None:
      as_ = out.add_stream("aac", rate=int(sr))
      as_.layout = "mono"
    for frame in video:
      for pkt in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
        out.mux(pkt)
    for pkt in vs.encode():
      out.mux(pkt)
    if as_ is not None:
      a = np.clip(np.asarray(audio, np.float32), -1, 1)
      step = as_.codec_context.frame_size or 1024  # AAC consumes fixed 1024-sample frames
      a = np.pad(a, (0, (-a.shape[0]) % step))
      for i, s in enumerate(range(0, a.shape[0], step)):
        af = av.AudioFrame.from_ndarray(a[None, s : s + step], format="fltp", layout="mono")
        af.sample_rate, af.pts = int(sr), s
        for pkt in as_.encode(af):
          out.mux(pkt)
      for pkt in as_.encode():
        out.mux(pkt)


def read_mp4(path: str, *, require_audio: bool = True) -> tuple[np.ndarray, float, np.ndarray, int]:
  """Decodes an mp4 (or anything FFmpeg reads).

  Returns:
    video: uint8 [T, H, W, 3] RGB; fps: float; audio: float32 [N] mono (channels averaged) in [-1, 1];
    sr: int, the file's own audio sample rate (resample with `resample_audio`).
  Raises:
    MediaError(path, reason) for a corrupt/truncated file, no video track, no audio track (when
    require_audio), zero decoded frames, or an unknown/invalid frame rate.
  """
  if not os.path.exists(path):
    raise MediaError(path, "file does not exist")
  if os.path.getsize(path) == 0:
    raise MediaError(path, "zero-length file (0 bytes)")
  try:
    container = av.open(str(path))
  except av.error.FFmpegError as e:  # InvalidDataError etc.
    raise MediaError(path, f"corrupt or unreadable container ({type(e).__name__}: {e})") from e
  with container:
    if not container.streams.video:
      raise MediaError(path, "no video track")
    if require_audio and not container.streams.audio:
      raise MediaError(path, "no audio track (the sync benchmark needs sound)")
    vst = container.streams.video[0]
    rate = vst.average_rate or vst.guessed_rate or vst.base_rate
    fps = float(rate) if rate else 0.0
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
      raise MediaError(path, f"unknown frame rate ({rate!r}); re-encode with an explicit fps")
    frames, chunks, sr = [], [], 0
    streams = [vst] + ([container.streams.audio[0]] if container.streams.audio else [])
    try:
      for frame in container.decode(*streams):
        if isinstance(frame, av.VideoFrame):
          frames.append(frame.to_ndarray(format="rgb24"))
        else:
          sr = frame.sample_rate
          x = frame.to_ndarray()
          if x.dtype.kind == "i":  # s16 / s32 -> [-1, 1]
            x = x.astype(np.float32) / np.iinfo(x.dtype).max
          # planar: [C, n]; packed: [1, n*C] interleaved
          ch = len(frame.layout.channels)
          x = x.reshape(ch, -1) if frame.format.is_planar else x.reshape(-1, ch).T
          chunks.append(x.astype(np.float32).mean(axis=0))
    except av.error.FFmpegError as e:
      raise MediaError(
          path, f"truncated or corrupt stream after {len(frames)} frames " f"({type(e).__name__}: {e})"
      ) from e
  if not frames:
    raise MediaError(path, "zero decodable video frames (empty or truncated file)")
  audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
  if require_audio and audio.size == 0:
    raise MediaError(path, "audio track holds no decodable samples")
  return np.stack(frames), fps, audio.astype(np.float32), int(sr)


def resample_audio(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
  """float [N] at sr_in -> float32 [round(N * sr_out / sr_in)] at sr_out (soxr, high quality)."""
  if sr_in == sr_out:
    return np.asarray(audio, np.float32)
  return librosa.resample(np.asarray(audio, np.float32), orig_sr=sr_in, target_sr=sr_out).astype(np.float32)


def mel_to_audio(norm_logmel: np.ndarray, cfg: ml_collections.ConfigDict, n_iter: int = 32) -> np.ndarray:
  """Normalised log-mel [T_a, n_mels] -> waveform float32 [T_a * hop] at cfg.sr (Griffin-Lim).

  Inverts `features.log_mel`: denormalise to mel power with the same fixed reference and mel basis
  (norm=None), pseudo-inverse back to a linear spectrogram, then Griffin-Lim phase recovery.
  """
  m = features.mel_power(norm_logmel, cfg)  # [n_mels, T_a]
  # Pseudo-inverse of the mel basis, clipped at 0: librosa's NNLS inversion gives the same quality on
  # these spectra but is ~100x slower on a small CPU.
  inv = _mel_pinv(int(cfg.sr), int(cfg.n_fft), int(cfg.n_mels), float(cfg.fmin), float(cfg.fmax))
  mag = np.sqrt(np.maximum(inv @ m, 0.0))  # [1 + n_fft/2, T_a]
  n = m.shape[1] * int(cfg.hop)
  wav = librosa.griffinlim(
      mag,
      n_iter=n_iter,
      hop_length=int(cfg.hop),
      n_fft=int(cfg.n_fft),
      center=True,
      pad_mode="constant",
      random_state=0,
  )
  return np.pad(wav, (0, max(0, n - wav.shape[0])))[:n].astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_pinv(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
  return np.linalg.pinv(features._mel_basis(sr, n_fft, n_mels, fmin, fmax)).astype(np.float32)
