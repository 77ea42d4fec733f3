"""Training objectives: flow matching, SFT with cross-task synergy, flow-DPO. Pure functions, no I/O."""

from syncdpo_jax.objectives.dpo import flow_dpo_loss, implicit_margin
from syncdpo_jax.objectives.flow import noisy, per_sample_mse, sample_t, shift_t, velocity_target
from syncdpo_jax.objectives.sft import sft_loss

__all__ = [
    "flow_dpo_loss",
    "implicit_margin",
    "noisy",
    "per_sample_mse",
    "sample_t",
    "shift_t",
    "velocity_target",
    "sft_loss",
]
