"""Latent codecs: what the model sees instead of pixels and waveforms.

Every codec has the same interface (`Codec`): encode/decode for each modality and a `LatentLayout`
(channels, spatial and temporal downsampling, latent frame rates). Time stays first and each latent
frame covers a fixed span of seconds, so temporal perturbations and the model's timelines work the same
in pixel and latent space. `config.codec.name` picks one (`make_codec`):

  pixel_mel    embedded default, no weights: video = space-to-depth patchified pixels, audio = the
               pipeline's normalised log-mel. Decode is exact (pixels) / Griffin-Lim (audio).
  flax_vae     a pretrained VAE (Wan-style video VAE, MMAudio-style mel VAE) given as Flax NNX modules
               by a user factory (`config.codec.factory`); its layout comes from config.codec.*.
  autoencoder  a small video autoencoder trained on the data first (syncdpo_jax.autoencoder: mode
               'codec'; config.codec.checkpoint = its workdir), per-channel standardised latents of
               4x4-px cells; audio as pixel_mel. The demo's codec.
  precomputed  the batch already holds latents (`syncdpo_jax.data.precompute` stored them): encode is
               the identity, decode delegates to `config.codec.decoder` (the codec that made them).

Conventions (input of every encoder; output of every decoder):
  video [B, T, H, W, 3] float in [-1, 1] at data.fps, H = W = data.resolution;
  audio [B, T_a, n_mels] normalised log-mel in [-1, 1] at sr / hop frames per second
  (syncdpo_jax.data.features), i.e. the pipeline's batch.
Latents: video [B, T / s_t, H / s, W / s, C_v], audio [B, T_a / s_a, C_a]; latent frame k covers pixel
frames [k * s_t, (k + 1) * s_t), so it sits at k * s_t / data.fps seconds.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Protocol

import jax
import jax.numpy as jnp

CODECS = ("pixel_mel", "autoencoder", "flax_vae", "precomputed")
DECODERS = ("", "pixel_mel", "flax_vae")


@dataclasses.dataclass(frozen=True)
class LatentLayout:
  """Shape and timing of a codec's latents.

  Attributes:
    video_channels: C_v of video latents [T', h, w, C_v].
    audio_channels: C_a of audio latents [T_a', C_a].
    spatial_downsample: s, pixels per latent cell along H and W.
    temporal_downsample: s_t, pixel frames per video latent frame (1 = frame-aligned).
    audio_temporal_downsample: s_a, log-mel frames per audio latent frame.
    fps: video latent frames per second (= data.fps / s_t).
    audio_fps: audio latent frames per second (= data.sr / data.hop / s_a).
  """

  video_channels: int
  audio_channels: int
  spatial_downsample: int
  temporal_downsample: int
  audio_temporal_downsample: int
  fps: float
  audio_fps: float

  def window_shapes(self, data_cfg) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
    """((T_v', h, w, C_v), (T_a', C_a)): latents of one data.window_s window (no batch dim).

    Raises ValueError naming the fields when the window is not a whole number of latent frames.
    """
    t_v = _whole(
        data_cfg.window_s * self.fps,
        "data.window_s * latent fps (data.fps / " f"codec.temporal_downsample = {self.fps:g})",
    )
    t_a = _whole(
        data_cfg.window_s * self.audio_fps,
        "data.window_s * audio latent fps (data.sr / "
        f"data.hop / codec.audio_temporal_downsample = {self.audio_fps:g})",
    )
    h = _whole(
        data_cfg.resolution / self.spatial_downsample,
        f"data.resolution={data_cfg.resolution} / spatial downsample {self.spatial_downsample}",
    )
    return (t_v, h, h, self.video_channels), (t_a, self.audio_channels)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _whole(x: float, what: str) -> int:
  if abs(x - round(x)) > 1e-6 or round(x) < 1:
    raise ValueError(
        f"{what} = {x:g} is not a positive whole number of frames; pick data.window_s, "
        "data.fps, data.resolution and the codec's downsampling factors so it is."
    )
  return int(round(x))


class Codec(Protocol):
  """What the training steps, samplers and evaluation need from a codec (see module docstring)."""

  layout: LatentLayout

  @property
  def fps(self) -> float:
    ...  # video latent frames per second

  @property
  def audio_fps(self) -> float:
    ...  # audio latent frames per second

  @property
  def video_channels(self) -> int:
    ...

  @property
  def audio_channels(self) -> int:
    ...

  @property
  def spatial_downsample(self) -> int:
    ...

  @property
  def temporal_downsample(self) -> int:
    ...  # pixel frames per video latent frame

  def encode_video(self, video: jax.Array) -> jax.Array:
    ...

  def decode_video(self, latent: jax.Array) -> jax.Array:
    ...

  def encode_audio(self, mel: jax.Array) -> jax.Array:
    ...

  def decode_audio(self, latent: jax.Array) -> jax.Array:
    ...


class _LayoutAttrs:
  """The `Codec` attributes, read from `self.layout`."""

  layout: LatentLayout

  fps = property(lambda self: self.layout.fps)
  audio_fps = property(lambda self: self.layout.audio_fps)
  video_channels = property(lambda self: self.layout.video_channels)
  audio_channels = property(lambda self: self.layout.audio_channels)
  spatial_downsample = property(lambda self: self.layout.spatial_downsample)
  temporal_downsample = property(lambda self: self.layout.temporal_downsample)
  audio_temporal_downsample = property(lambda self: self.layout.audio_temporal_downsample)


# ----------------------------------------------------------------------------------------- pixel_mel


def encode_batch(codec: Codec, batch: dict) -> tuple[jax.Array, jax.Array]:
  """Clips {'video': pixels [B, T, H, W, 3] in [-1, 1], 'audio': normalised log-mel [B, T_a, n_mels]}
  (numpy or jax, a pipeline batch or an eval set) -> (video latents [B, T_v', h, w, C_v], audio
  latents [B, T_a', C_a])."""
  return codec.encode_video(jnp.asarray(batch["video"])), codec.encode_audio(jnp.asarray(batch["audio"]))


def space_to_depth(video: jax.Array, p: int) -> jax.Array:
  """[..., T, H, W, C] -> [..., T, H/p, W/p, C*p*p] (channel order: (py, px, c))."""
  *lead, h, w, c = video.shape
  if h % p or w % p:
    raise ValueError(
        f"video frames {h}x{w} are not divisible by config.codec.patch={p}; "
        f"pick a patch that divides config.data.resolution."
    )
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


def pixel_mel_layout(patch: int, data_cfg) -> LatentLayout:
  """Layout of `PixelMelCodec`: 3 p^2 video channels, n_mels audio channels, data rates."""
  if data_cfg.resolution % patch:
    raise ValueError(
        f"config.data.resolution={data_cfg.resolution} is not divisible by " f"config.codec.patch={patch}."
    )
  return LatentLayout(
      video_channels=3 * patch * patch,
      audio_channels=int(data_cfg.n_mels),
      spatial_downsample=int(patch),
      temporal_downsample=1,
      audio_temporal_downsample=1,
      fps=float(data_cfg.fps),
      audio_fps=float(data_cfg.sr) / float(data_cfg.hop),
  )


@dataclasses.dataclass(frozen=True)
class PixelMelCodec(_LayoutAttrs):
  """Identity-in-time codec: pixels in [-1, 1] -> space-to-depth latents; log-mel passes through.

  Both are then standardised, latent = (x - mean) / std with one (mean, std) per stream
  (config.codec.video_norm / audio_norm, measured on the training split by
  `python tools/latent_stats.py`), as latent VAEs scale theirs (SD's scaling factor, Wan's
  per-channel mean / std): the flow then mixes data and noise of equal variance, so t = 0.5 is where
  signal and noise weigh the same and a model's output for the clean signal has unit scale.

  Attributes:
    patch: spatial space-to-depth factor p.
    layout: `pixel_mel_layout(patch, data_cfg)`.
    video_norm, audio_norm: (mean, std) of each stream's raw latents; (0, 1) = none.
  """

  patch: int
  layout: LatentLayout
  video_norm: tuple[float, float] = (0.0, 1.0)
  audio_norm: tuple[float, float] = (0.0, 1.0)

  def encode_video(self, video: jax.Array) -> jax.Array:
    """video: [B, T, H, W, 3] in [-1, 1] -> [B, T, H/p, W/p, 3p^2]."""
    return _standardise(space_to_depth(video, self.patch), self.video_norm)

  def decode_video(self, latent: jax.Array) -> jax.Array:
    """[B, T, h, w, 3p^2] -> [B, T, h*p, w*p, 3], clipped to [-1, 1]."""
    return jnp.clip(depth_to_space(_unstandardise(latent, self.video_norm), self.patch), -1.0, 1.0)

  def encode_audio(self, mel: jax.Array) -> jax.Array:
    """mel: [B, T_a, n_mels] normalised log-mel -> its standardised copy (the latent)."""
    return _standardise(mel, self.audio_norm)

  def decode_audio(self, latent: jax.Array) -> jax.Array:
    """Latent -> normalised log-mel, clipped to the valid [-1, 1] range (waveform via Griffin-Lim)."""
    return jnp.clip(_unstandardise(latent, self.audio_norm), -1.0, 1.0)


def _standardise(x: jax.Array, norm: tuple[float, float]) -> jax.Array:
  mean, std = norm
  return x if (mean, std) == (0.0, 1.0) else (x - mean) / std


def _unstandardise(x: jax.Array, norm: tuple[float, float]) -> jax.Array:
  mean, std = norm
  return x if (mean, std) == (0.0, 1.0) else x * std + mean


def latent_norms(codec_cfg) -> dict:
  """{'video_norm': (mean, std), 'audio_norm': (mean, std)} of config.codec; raises on a bad value."""
  out = {}
  for k in ("video_norm", "audio_norm"):
    v = tuple(float(x) for x in codec_cfg[k])
    if len(v) != 2 or not v[1] > 0:
      raise ValueError(
          f"config.codec.{k}={codec_cfg[k]!r}: expected (mean, std) with std > 0; "
          "`python tools/latent_stats.py --config ...` measures them, (0, 1) = none."
      )
    out[k] = v
  return out


# --------------------------------------------------------------------------------------- autoencoder


@dataclasses.dataclass(frozen=True, eq=False)
class AutoencoderCodec(_LayoutAttrs):
  """Video through a trained `syncdpo_jax.autoencoder.VideoAutoencoder`, frame by frame; audio as
  `PixelMelCodec`'s (the standardised log-mel).

  Attributes:
    layout: `latent_layout` of config.codec (C channels per 4x4-px cell, data rates).
    model: the trained autoencoder (its weights are constants of every jitted function that encodes).
    stats: per-channel (mean, std) [2, C] of its raw latents on training frames: the latent the model
      sees is (z - mean) / std.
    audio_norm: (mean, std) of the log-mel (config.codec.audio_norm).
  """

  layout: LatentLayout
  model: Any
  stats: Any
  audio_norm: tuple[float, float] = (0.0, 1.0)

  def encode_video(self, video: jax.Array) -> jax.Array:
    """[B, T, H, W, 3] in [-1, 1] -> [B, T, H/4, W/4, C]."""
    b, t = video.shape[:2]
    z = self.model.encode(video.reshape(b * t, *video.shape[2:]))
    z = (z - self.stats[0]) / self.stats[1]
    return z.reshape(b, t, *z.shape[1:])

  def decode_video(self, latent: jax.Array) -> jax.Array:
    """[B, T, h, w, C] -> [B, T, 4h, 4w, 3], clipped to [-1, 1]."""
    b, t = latent.shape[:2]
    x = self.model.decode(latent.reshape(b * t, *latent.shape[2:]) * self.stats[1] + self.stats[0])
    return jnp.clip(x.reshape(b, t, *x.shape[1:]), -1.0, 1.0)

  def encode_audio(self, mel: jax.Array) -> jax.Array:
    return _standardise(mel, self.audio_norm)

  def decode_audio(self, latent: jax.Array) -> jax.Array:
    return jnp.clip(_unstandardise(latent, self.audio_norm), -1.0, 1.0)


# ------------------------------------------------------------------------------------------ flax_vae


@dataclasses.dataclass(frozen=True, eq=False)
class FlaxVAECodec(_LayoutAttrs):
  """A pretrained VAE given as Flax NNX modules (or any jittable callables).

  Attributes:
    layout: what the encoders produce (config.codec.video_channels, ..., see `latent_layout`);
      `check_codec_layout` verifies it with `jax.eval_shape` before anything runs.
    video_encoder: [B, T, H, W, 3] in [-1, 1] -> [B, T / s_t, H / s, W / s, C_v]. Temporal stride s_t:
      latent frame k must cover pixel frames [k s_t, (k + 1) s_t). A causal VAE that keeps the first
      frame apart (Wan: T -> 1 + (T - 1) / 4) needs a wrapper that meets this, e.g. encode the clip
      with its first frame repeated s_t times and drop the first latent frame; any scaling of the
      latents to unit variance (Wan's per-channel mean/std) also belongs in the wrapper.
    audio_encoder: normalised log-mel [B, T_a, n_mels] -> [B, T_a / s_a, C_a] (an MMAudio-style mel VAE;
      its mel settings must be data.sr / n_fft / hop / n_mels / fmin / fmax, or resampled inside).
    video_decoder, audio_decoder: the inverses (optional; needed only to look at or score samples).
      Decoders return the encoder's input conventions; outputs are clipped to [-1, 1].
  """

  layout: LatentLayout
  video_encoder: Callable[[jax.Array], jax.Array]
  audio_encoder: Callable[[jax.Array], jax.Array]
  video_decoder: Callable[[jax.Array], jax.Array] | None = None
  audio_decoder: Callable[[jax.Array], jax.Array] | None = None

  def encode_video(self, video: jax.Array) -> jax.Array:
    return self.video_encoder(video)

  def encode_audio(self, mel: jax.Array) -> jax.Array:
    return self.audio_encoder(mel)

  def decode_video(self, latent: jax.Array) -> jax.Array:
    if self.video_decoder is None:
      raise ValueError(
          "the flax_vae codec has no video_decoder: return one from config.codec.factory "
          "to decode samples (training on latents needs none)."
      )
    return jnp.clip(self.video_decoder(latent), -1.0, 1.0)

  def decode_audio(self, latent: jax.Array) -> jax.Array:
    if self.audio_decoder is None:
      raise ValueError(
          "the flax_vae codec has no audio_decoder: return one from config.codec.factory "
          "to decode samples (training on latents needs none)."
      )
    return jnp.clip(self.audio_decoder(latent), -1.0, 1.0)


def load_factory(path: str) -> Callable[..., dict]:
  """'package.module:function' -> the function (config.codec.factory)."""
  mod, sep, fn = path.partition(":")
  if not sep or not mod or not fn:
    raise ValueError(
        f"config.codec.factory={path!r}; expected 'package.module:function', a function "
        "(codec_cfg, data_cfg) -> {'video_encoder', 'audio_encoder', 'video_decoder', "
        "'audio_decoder'} of Flax NNX modules with their pretrained weights loaded."
    )
  try:
    return getattr(importlib.import_module(mod), fn)
  except (ImportError, AttributeError) as e:
    raise ValueError(
        f"config.codec.factory={path!r} cannot be imported ({e}); make {mod!r} importable "
        "(installed, or on PYTHONPATH) and define {fn!r} in it."
    ) from e


def check_codec_layout(codec: Codec, data_cfg) -> None:
  """Encodes a window's shapes with `jax.eval_shape` (no compute) and checks them against the layout."""
  (t_v, h, w, c_v), (t_a, c_a) = codec.layout.window_shapes(data_cfg)
  r = int(data_cfg.resolution)
  t_pix = t_v * codec.layout.temporal_downsample
  t_mel = t_a * codec.layout.audio_temporal_downsample
  got_v = jax.eval_shape(codec.encode_video, jax.ShapeDtypeStruct((1, t_pix, r, r, 3), jnp.float32)).shape
  got_a = jax.eval_shape(
      codec.encode_audio, jax.ShapeDtypeStruct((1, t_mel, int(data_cfg.n_mels)), jnp.float32)
  ).shape
  for what, got, want, fields in (
      (
          "video",
          got_v,
          (1, t_v, h, w, c_v),
          "codec.temporal_downsample, codec.spatial_downsample, codec.video_channels",
      ),
      ("audio", got_a, (1, t_a, c_a), "codec.audio_temporal_downsample, codec.audio_channels"),
  ):
    if tuple(got) != want:
      raise ValueError(
          f"the {what} encoder maps a {data_cfg.window_s:g} s window to latents {tuple(got)}, "
          f"but config.{fields.replace(', ', ', config.')} say {want}; set them to what the "
          "VAE produces."
      )


# --------------------------------------------------------------------------------------- precomputed


@dataclasses.dataclass(frozen=True, eq=False)
class PrecomputedCodec(_LayoutAttrs):
  """The batch already holds latents (a `precomputed_latents` dataset): encode is the identity.

  Attributes:
    layout: the stored latents' layout (checked against the dataset's metadata by the pipeline).
    decoder: the codec that made the latents, used to decode (eval, sampling); None = cannot decode.
  """

  layout: LatentLayout
  decoder: Codec | None = None

  def encode_video(self, video: jax.Array) -> jax.Array:
    """Video latents [B, T', h, w, C_v] -> themselves."""
    return video

  def encode_audio(self, audio: jax.Array) -> jax.Array:
    """Audio latents [B, T_a', C_a] -> themselves."""
    return audio

  def _decoder(self) -> Codec:
    if self.decoder is None:
      raise ValueError(
          "config.codec.name='precomputed' with config.codec.decoder='' cannot decode latents "
          "to media (eval / sample runs need it): set --config.codec.decoder to the codec that "
          "made them ('pixel_mel', or 'flax_vae' with config.codec.factory)."
      )
    return self.decoder

  def decode_video(self, latent: jax.Array) -> jax.Array:
    return self._decoder().decode_video(latent)

  def decode_audio(self, latent: jax.Array) -> jax.Array:
    return self._decoder().decode_audio(latent)


def pixel_codec(codec_cfg, data_cfg) -> PixelMelCodec:
  """The pixel_mel codec of config.codec (codec.patch, codec.video_norm / audio_norm), whatever
  codec.name says: its decode is exact (pixels) and its latent cells are p x p pixels, so the eval's
  ruler (the real clips, the quality gate's anchors) is the same for every model's codec."""
  return PixelMelCodec(
      patch=int(codec_cfg.patch),
      layout=pixel_mel_layout(int(codec_cfg.patch), data_cfg),
      **latent_norms(codec_cfg),
  )


def media_codec(codec: Codec) -> Codec:
  """The codec that turns media (pixels, log-mel) into latents: a precomputed codec's decoder."""
  return codec._decoder() if isinstance(codec, PrecomputedCodec) else codec


# -------------------------------------------------------------------------------------------- config


def latent_layout(codec_cfg, data_cfg) -> LatentLayout:
  """The layout `config.codec` describes (pure: no weights, no I/O).

  pixel_mel (and latents precomputed with it: name='precomputed', decoder='pixel_mel') derive theirs
  from codec.patch and the data rates; flax_vae and other precomputed latents read
  codec.{video,audio}_channels, codec.spatial_downsample, codec.temporal_downsample and
  codec.audio_temporal_downsample.
  """
  name = codec_cfg.name
  if name not in CODECS:
    raise ValueError(f"config.codec.name={name!r} is not known; available: {CODECS}.")
  if name == "precomputed" and codec_cfg.decoder not in DECODERS:
    raise ValueError(f"config.codec.decoder={codec_cfg.decoder!r}; expected one of {DECODERS}.")
  if name == "pixel_mel" or (name == "precomputed" and codec_cfg.decoder == "pixel_mel"):
    return pixel_mel_layout(int(codec_cfg.patch), data_cfg)
  if name == "autoencoder":
    from syncdpo_jax import autoencoder  # local: it imports this module

    s = autoencoder.DOWNSAMPLE
    if data_cfg.resolution % s:
      raise ValueError(
          f"config.data.resolution={data_cfg.resolution} is not divisible by {s}, the autoencoder's downsampling."
      )
    return dataclasses.replace(
        pixel_mel_layout(s, data_cfg), video_channels=int(codec_cfg.autoencoder.channels)
    )
  fields = (
      "video_channels",
      "audio_channels",
      "spatial_downsample",
      "temporal_downsample",
      "audio_temporal_downsample",
  )
  bad = [f for f in fields if int(codec_cfg[f]) < 1]
  if bad:
    raise ValueError(
        f"config.codec.name={name!r} needs the latent layout: set "
        + ", ".join(f"--config.codec.{f}" for f in bad)
        + " (>= 1) to the VAE's numbers, e.g. "
        "a Wan2.2 video VAE: video_channels=48, spatial_downsample=16, temporal_downsample=4."
    )
  if data_cfg.resolution % int(codec_cfg.spatial_downsample):
    raise ValueError(
        f"config.data.resolution={data_cfg.resolution} is not divisible by "
        f"config.codec.spatial_downsample={codec_cfg.spatial_downsample}."
    )
  s_t, s_a = int(codec_cfg.temporal_downsample), int(codec_cfg.audio_temporal_downsample)
  return LatentLayout(
      video_channels=int(codec_cfg.video_channels),
      audio_channels=int(codec_cfg.audio_channels),
      spatial_downsample=int(codec_cfg.spatial_downsample),
      temporal_downsample=s_t,
      audio_temporal_downsample=s_a,
      fps=float(data_cfg.fps) / s_t,
      audio_fps=float(data_cfg.sr) / float(data_cfg.hop) / s_a,
  )


def _make_flax_vae(codec_cfg, data_cfg, layout: LatentLayout) -> FlaxVAECodec:
  if not codec_cfg.factory:
    raise ValueError(
        "config.codec.name='flax_vae' needs config.codec.factory='package.module:function' "
        "returning the VAE's NNX modules (see syncdpo_jax.codec.FlaxVAECodec)."
    )
  modules: dict[str, Any] = load_factory(codec_cfg.factory)(codec_cfg, data_cfg)
  known = {"video_encoder", "audio_encoder", "video_decoder", "audio_decoder"}
  if not isinstance(modules, dict) or not {"video_encoder", "audio_encoder"} <= set(modules) <= known:
    raise ValueError(
        f"config.codec.factory={codec_cfg.factory!r} must return a dict with 'video_encoder' "
        f"and 'audio_encoder' (optionally 'video_decoder', 'audio_decoder'); got "
        f"{sorted(modules) if isinstance(modules, dict) else type(modules).__name__}."
    )
  codec = FlaxVAECodec(layout=layout, **modules)
  check_codec_layout(codec, data_cfg)
  return codec


def make_codec(codec_cfg, data_cfg) -> Codec:
  """Builds the codec named by `config.codec.name` (see module docstring).

  flax_vae calls config.codec.factory (which loads the weights); precomputed checks the layout against
  the stored dataset's metadata (data.data_dir / precomputed_latents / data.builder_config).
  """
  layout = latent_layout(codec_cfg, data_cfg)
  name = codec_cfg.name
  if name == "pixel_mel":
    return pixel_codec(codec_cfg, data_cfg)
  if name == "flax_vae":
    return _make_flax_vae(codec_cfg, data_cfg, layout)
  if name == "autoencoder":
    from syncdpo_jax import autoencoder  # local: it imports this module

    model, stats = autoencoder.load(codec_cfg, data_cfg)
    return AutoencoderCodec(
        layout=layout, model=model, stats=jnp.asarray(stats), audio_norm=latent_norms(codec_cfg)["audio_norm"]
    )
  # The model is built for `layout`; the stored latents must have it (reads the dataset's metadata).
  from syncdpo_jax.data import latents  # local: the data package imports this module

  latents.check_stored_layout(data_cfg, layout)
  decoder = None
  if codec_cfg.decoder == "pixel_mel":
    decoder = pixel_codec(codec_cfg, data_cfg)
  elif codec_cfg.decoder == "flax_vae":
    decoder = _make_flax_vae(codec_cfg, data_cfg, layout)
  return PrecomputedCodec(layout=layout, decoder=decoder)
