"""TrainState: everything a training step reads and writes, as one pytree.

The NNX graph definition (the model's static structure) lives outside, in the step closures; the state
holds only arrays, so it can be jitted, sharded, donated and checkpointed as a whole.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
  """Fields:
  step: int32 []: number of optimizer steps taken.
  params: nnx.State of the policy's parameters (f32).
  opt_state: optax state for `params`.
  rng: uint32 [2] raw PRNG key; each step derives its key with fold_in(rng, step), so a resumed
    run draws exactly the same numbers as an uninterrupted one.
  ref_params: frozen reference parameters for DPO (None for SFT).
  ema_params: exponential moving average of params (None when config.train.ema_decay == 0).
  curriculum: syncdpo_jax.perturb curriculum state (None for SFT).
  """

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array
  ref_params: Any = None
  ema_params: Any = None
  curriculum: Any = None
