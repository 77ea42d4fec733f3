"""What `launch/main.py` runs: print the resolved config and mesh, then dispatch on config.mode."""
from __future__ import annotations

import jax


def run(config, workdir: str):
  """Runs `config.mode` ('sft' | 'dpo' | 'eval' | 'sample') in `workdir`."""
  from syncdpo_jax import config_lib
  config_lib.validate(config)
  if jax.process_index() == 0:
    print("Resolved config:\n" + str(config), flush=True)
    print(f"Devices: {jax.device_count()} ({jax.devices()[0].platform}), processes: "
          f"{jax.process_count()}, mesh: {dict(config.model.mesh)}", flush=True)
  if config.mode in ("sft", "dpo"):
    from syncdpo_jax.train import loop
    return loop.train(config, workdir)
  from syncdpo_jax.train import evaluate
  if config.mode == "eval":
    return evaluate.evaluate(config, workdir)
  return evaluate.sample_run(config, workdir)
