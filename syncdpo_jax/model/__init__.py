"""syncdpo_jax.model: Harmony-style joint video-audio DiT (Flax NNX), sharding rules, FLOPs.

    from syncdpo_jax.model import JointDiT, get_model_config
    cfg = get_model_config("demo")
    model = JointDiT(cfg, rngs=nnx.Rngs(0))
    v_video, v_audio = model(video, audio, t_v, t_a, {"label": label})
"""
from syncdpo_jax.model.config import get_model_config, validate_config
from syncdpo_jax.model.dit import JointDiT
from syncdpo_jax.model.flops import flops_per_example
from syncdpo_jax.model.sharding import (constrain, create_sharded_model, logical_to_mesh, make_mesh,
                                        param_table, replicated_large_params, state_shardings)

__all__ = [
    "JointDiT", "get_model_config", "validate_config", "flops_per_example", "make_mesh",
    "logical_to_mesh", "create_sharded_model", "state_shardings", "constrain", "param_table",
    "replicated_large_params",
]
