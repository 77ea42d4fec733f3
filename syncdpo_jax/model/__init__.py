"""syncdpo_jax.model: Harmony-style joint video-audio DiT (Flax NNX), the model factory, sharding
rules, FLOPs.

    from syncdpo_jax import model
    cfg = model.get_model_config("demo")         # or a run config's config.model
    io = model.example_io("demo")                # or config_lib.model_io(config): the run's latents
    m = model.build(cfg, io, nnx.Rngs(0))        # the architecture cfg.name names ('joint_dit')
    out_video, out_audio = m(video, audio, t_v, t_a, {"label": label})

Your own architecture: `@model.register("name")` (see model/factory.py).
"""

from syncdpo_jax.model.config import get_model_config, get_parallel_config, validate_config
from syncdpo_jax.model.dit import JointDiT
from syncdpo_jax.model.factory import available, build, build_abstract, example_spec, register, resolve
from syncdpo_jax.model.io import ModelIO, example_io
from syncdpo_jax.model.flops import flops_per_example
from syncdpo_jax.model.sharding import (
    constrain,
    create_sharded_model,
    logical_to_mesh,
    make_mesh,
    param_table,
    replicated_large_params,
    state_shardings,
)

__all__ = [
    "JointDiT",
    "build",
    "build_abstract",
    "register",
    "resolve",
    "example_spec",
    "ModelIO",
    "example_io",
    "get_parallel_config",
    "available",
    "get_model_config",
    "validate_config",
    "flops_per_example",
    "make_mesh",
    "logical_to_mesh",
    "create_sharded_model",
    "state_shardings",
    "constrain",
    "param_table",
    "replicated_large_params",
]
