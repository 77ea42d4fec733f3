"""syncdpo_jax.sample: Euler / Heun / Adams-Bashforth (AB2) ODE samplers over the flow, CFG and SyncCFG,
joint / V2A / A2V modes.

Typical use::

    cfg = get_sample_config()
    video, audio = initial_streams(key, cfg.mode, video_shape=..., audio_shape=...)
    video, audio = make_sampler(model_fn, cfg, null_label=num_classes)(video, audio, {'label': labels})
"""

from syncdpo_jax.sample.config import get_sample_config, validate_sample_config
from syncdpo_jax.sample.guidance import guided_velocity, null_cond, silent_audio_anchor, static_video_anchor
from syncdpo_jax.sample.ode import ab2, euler, heun, integrate, shift_time, timesteps
from syncdpo_jax.sample.sampler import initial_streams, make_sampler, sample

__all__ = [
    "ab2",
    "euler",
    "get_sample_config",
    "guided_velocity",
    "heun",
    "initial_streams",
    "integrate",
    "make_sampler",
    "null_cond",
    "sample",
    "shift_time",
    "silent_audio_anchor",
    "static_video_anchor",
    "timesteps",
    "validate_sample_config",
]
