"""Training: TrainState, pure jitted steps (SFT, SyncDPO), the loop with checkpoints and metrics."""

from syncdpo_jax.train.state import TrainState

__all__ = ["TrainState"]
