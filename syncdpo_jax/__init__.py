"""syncdpo_jax: temporally synchronized joint video-audio generation in JAX.

Subpackages (dependency direction: perturb, objectives, model know nothing of I/O; train composes):
  data        SyncBench-Synth generator, tfds builders, media I/O, grain pipelines
  perturb     pure-functional temporal perturbations + curriculum
  model       joint DiT (Flax NNX), attention/RoPE layers, sharding rules
  objectives  flow matching, SFT (cross-task synergy), flow-DPO
  train       TrainState, jitted steps, training loop
  sample      ODE samplers, CFG / SyncCFG
  eval        sync metrics and reports
"""

__version__ = "0.1.0"
