"""What a model's inputs look like (`ModelIO`): fixed by the data and the codec, never by the model config.

A run derives it from its data + codec sections when the model is built
(`config_lib.model_io(config)`), so `--config.data.fps=12` or `--config.codec.patch=8` change the
latents and the model follows; nothing derived is stored in `config.model`. Code that builds a model
without a dataset (unit tests, FLOP and memory reports of the big presets) takes the latents a size was
designed for from `example_io(size)`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelIO:
  """The latents and conditioning one model consumes.

  video_channels / audio_channels: C_v of video latents [T_v, h, w, C_v], C_a of audio [T_a, C_a].
  video_fps / audio_fps: latent frames per second (RoPE positions and local windows are in seconds).
  num_classes: class labels 0..num_classes-1; label == num_classes is the learned null class (CFG).
  text_dim: caption embedding width (0 = no caption conditioning).
  T_v, h, w, T_a, text_len: one example's window (eval_shape targets, FLOP and memory reports); the
    parameters do not depend on them.
  """

  video_channels: int
  audio_channels: int
  video_fps: float
  audio_fps: float
  num_classes: int
  text_dim: int
  T_v: int
  h: int
  w: int
  T_a: int
  text_len: int = 0

  def __post_init__(self):
    for name in ("video_channels", "audio_channels", "num_classes", "T_v", "h", "w", "T_a"):
      if int(getattr(self, name)) < 1:
        raise ValueError(
            f"ModelIO.{name}={getattr(self, name)} must be >= 1 (derived from config.data/codec)"
        )
    if not (self.video_fps > 0 and self.audio_fps > 0):
      raise ValueError(
          f"latent frame rates video_fps={self.video_fps}, audio_fps={self.audio_fps} must be > 0 "
          "(derived from config.data.fps / sr / hop and the codec's downsampling)"
      )

  @property
  def video_shape(self) -> tuple[int, int, int, int]:
    """One example's video latents (T_v, h, w, C_v)."""
    return (self.T_v, self.h, self.w, self.video_channels)

  @property
  def audio_shape(self) -> tuple[int, int]:
    """One example's audio latents (T_a, C_a)."""
    return (self.T_a, self.audio_channels)

  def parameter_fields(self) -> dict:
    """The fields the parameters depend on (the window's lengths excluded): a checkpoint's fingerprint."""
    d = dataclasses.asdict(self)
    return {
        k: d[k]
        for k in ("video_channels", "audio_channels", "video_fps", "audio_fps", "num_classes", "text_dim")
    }


# The latents each size preset was designed for (get_model_config's docstring).
_EXAMPLES = {
    # 4 latent frames of 4x4 at 4 fps, 1 s of 20-fps audio latents, 3 caption tokens.
    "tiny": ModelIO(12, 8, 4.0, 20.0, num_classes=4, text_dim=16, T_v=4, h=4, w=4, T_a=20, text_len=3),
    # SyncBench-Synth through pixel_mel: 2 s of 32x32 px at 10 fps (space-to-depth 4 -> 8x8x48) and a
    # 40-bin log-mel at 50 fps; 8 scene families.
    "demo": ModelIO(48, 40, 10.0, 50.0, num_classes=8, text_dim=0, T_v=20, h=8, w=8, T_a=100),
    # 5 s of 704x1280 video as Wan2.2 VAE latents (16x spatial, 4x temporal, 48 channels; 6 fps kept
    # round) and a 25 Hz audio VAE; umT5-XXL caption embeddings.
    "1b": ModelIO(
        48, 64, 6.0, 25.0, num_classes=1000, text_dim=4096, T_v=30, h=44, w=80, T_a=125, text_len=512
    ),
    "5b": ModelIO(
        48, 64, 6.0, 25.0, num_classes=1000, text_dim=4096, T_v=30, h=44, w=80, T_a=125, text_len=512
    ),
}


def example_io(size: str) -> ModelIO:
  """The latents model size `size` was designed for (no dataset needed)."""
  if size not in _EXAMPLES:
    raise ValueError(f"no example latents for model size {size!r}; expected one of {sorted(_EXAMPLES)}")
  return _EXAMPLES[size]
