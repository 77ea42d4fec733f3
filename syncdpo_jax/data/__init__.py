"""Data: SyncBench-Synth generator, tfds builders (ArrayRecord, no TensorFlow), media I/O, grain pipeline.

Importing this package registers the tfds builders `syncbench_synth`, `av_folder` and
`precomputed_latents` (codec latents written by `python -m syncdpo_jax.data.precompute`).
"""

from syncdpo_jax.data import builders, features, media, synth  # noqa: F401  (registers builders)
from syncdpo_jax.data import latents  # noqa: F401  (registers precomputed_latents)
from syncdpo_jax.data.builders import build_dataset, make_builder, skipped_inputs
from syncdpo_jax.data.config import audio_frame_rate, frames_per_window, get_data_config
from syncdpo_jax.data.features import log_mel
from syncdpo_jax.data.media import MediaError, mel_to_audio, read_mp4, write_mp4
from syncdpo_jax.data.synth import FAMILIES, SynthSpec, generate_clip

__all__ = [
    "FAMILIES",
    "MediaError",
    "SynthSpec",
    "audio_frame_rate",
    "build_dataset",
    "frames_per_window",
    "generate_clip",
    "get_data_config",
    "log_mel",
    "make_builder",
    "mel_to_audio",
    "read_mp4",
    "skipped_inputs",
    "write_mp4",
]
