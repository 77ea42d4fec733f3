"""Latent codecs: what the model sees instead of pixels and waveforms.

The embedded default (`PixelMelCodec`) needs no learned weights: video latents are space-to-depth
patchified pixels and audio latents are the pipeline's normalised log-mel frames. Both keep time first
and at the data's own rates, so temporal perturbations and the model's timelines are the same in pixel
and latent space. A pretrained VAE (e.g. a Wan-style video VAE, an MMAudio-style mel VAE) slots in by
implementing the same four methods plus the rates/channels.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


def space_to_depth(video: jax.Array, p: int) -> jax.Array:
  """[..., T, H, W, C] -> [..., T, H/p, W/p, C*p*p] (channel order: (py, px, c))."""
  *lead, h, w, c = video.shape
  if h % p or w % p:
    raise ValueError(f"video frames {h}x{w} are not divisible by config.codec.patch={p}; "
                     f"pick a patch that divides config.data.resolution.")
  x = video.reshape(*lead, h // p, p, w // p, p, c)
  x = jnp.moveaxis(x, -4, -3)  # [..., H/p, W/p, p, p, C]
  return x.reshape(*lead, h // p, w // p, p * p * c)


def depth_to_space(latent: jax.Array, p: int) -> jax.Array:
  """Inverse of `space_to_depth`: [..., T, h, w, C*p*p] -> [..., T, h*p, w*p, C]."""
  *lead, h, w, cpp = latent.shape
  c = cpp // (p * p)
  x = latent.reshape(*lead, h, w, p, p, c)
  x = jnp.moveaxis(x, -3, -4)  # [..., h, p, w, p, C]
  return x.reshape(*lead, h * p, w * p, c)


@dataclasses.dataclass(frozen=True)
class PixelMelCodec:
  """Identity-in-time codec: pixels in [-1, 1] -> space-to-depth latents; log-mel passes through.

  Attributes:
    patch: spatial space-to-depth factor p.
    fps: video frame rate (latent frames = pixel frames).
    audio_fps: audio latent frame rate (= sr / hop of the log-mel).
  """
  patch: int
  fps: float
  audio_fps: float

  def encode_video(self, video: jax.Array) -> jax.Array:
    """video: [B, T, H, W, 3] in [-1, 1] -> [B, T, H/p, W/p, 3p^2]."""
    return space_to_depth(video, self.patch)

  def decode_video(self, latent: jax.Array) -> jax.Array:
    """[B, T, h, w, 3p^2] -> [B, T, h*p, w*p, 3], clipped to [-1, 1]."""
    return jnp.clip(depth_to_space(latent, self.patch), -1.0, 1.0)

  def encode_audio(self, mel: jax.Array) -> jax.Array:
    """mel: [B, T_a, n_mels] normalised log-mel -> itself (the latent)."""
    return mel

  def decode_audio(self, latent: jax.Array) -> jax.Array:
    """Latent -> normalised log-mel, clipped to the valid [-1, 1] range (waveform via Griffin-Lim)."""
    return jnp.clip(latent, -1.0, 1.0)


def make_codec(codec_cfg, data_cfg) -> PixelMelCodec:
  """Builds the codec named by `config.codec.name`."""
  if codec_cfg.name != "pixel_mel":
    raise ValueError(f"config.codec.name={codec_cfg.name!r} is not known; available: 'pixel_mel'.")
  return PixelMelCodec(patch=int(codec_cfg.patch), fps=float(data_cfg.fps),
                       audio_fps=float(data_cfg.sr) / float(data_cfg.hop))
