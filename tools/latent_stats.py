"""The (mean, std) of a dataset's raw pixel_mel latents, for config.codec.video_norm / audio_norm.

  python tools/latent_stats.py --config configs/demo.py [--clips 256] [--config.data.data_dir=...]

Encodes the first `--clips` training clips with the codec's standardisation off and prints the two
flags to pass (or to write into the config). Latents standardised to zero mean and unit variance put
data and noise on one scale in the flow (see syncdpo_jax/codec.py, PixelMelCodec).
"""

from __future__ import annotations

import os
import sys

import jax.numpy as jnp
import numpy as np
from absl import app, flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from syncdpo_jax import codec as codec_lib  # noqa: E402
from syncdpo_jax import config_lib  # noqa: E402
from syncdpo_jax.data import pipeline  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "run config file", lock_config=False)
_CLIPS = flags.DEFINE_integer("clips", 256, "training clips to measure")


def stats(config, clips: int) -> dict[str, tuple[float, float]]:
  """{'video_norm': (mean, std), 'audio_norm': (mean, std)} of the raw latents of `clips` clips."""
  c = config.copy_and_resolve_references()
  if c.codec.name != "pixel_mel":
    raise ValueError(
        f"config.codec.name={c.codec.name!r}: only pixel_mel standardises its latents here; "
        "a VAE codec's wrapper scales its own (syncdpo_jax/codec.py, FlaxVAECodec)."
    )
  c.codec.video_norm, c.codec.audio_norm = (0.0, 1.0), (0.0, 1.0)
  codec = codec_lib.make_codec(c.codec, c.data)
  ex = pipeline.first_examples(c.data, c.data.split_train, clips, ("video", "audio"))
  out = {}
  for k, x in (
      ("video_norm", codec.encode_video(jnp.asarray(ex["video"]))),
      ("audio_norm", codec.encode_audio(jnp.asarray(ex["audio"]))),
  ):
    x = np.asarray(x, np.float64)
    out[k] = (round(float(x.mean()), 4), round(float(x.std()), 4))
  return out


def main(argv) -> None:
  del argv
  config = _CONFIG.value
  s = stats(config, _CLIPS.value)
  print(f"# {_CLIPS.value} clips of {config.data.data_dir} ({config.data.split_train})")
  print(" ".join(f"--config.codec.{k}='({m}, {sd})'" for k, (m, sd) in s.items()))


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
