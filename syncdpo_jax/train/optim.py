"""Optimizer from config: AdamW, warm-up + cosine/constant schedule, clipping.

(Gradient accumulation, optim.grad_accum_steps, happens inside the training step over micro-batches
of the step's batch: train/steps.accumulated_value_and_grad. One step is one optimizer update.)"""

from __future__ import annotations

import optax


def make_schedule(opt_cfg, num_steps: int) -> optax.Schedule:
  """Linear warm-up to `lr`, then 'cosine' decay to lr * `end_lr_frac` or 'constant'."""
  lr, warmup = float(opt_cfg.lr), int(opt_cfg.warmup_steps)
  if opt_cfg.schedule == "constant":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, max(warmup, 1)), optax.constant_schedule(lr)], [warmup]
    )
  if opt_cfg.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, max(warmup, 1), max(num_steps, warmup + 1), end_value=lr * float(opt_cfg.end_lr_frac)
    )
  raise ValueError(f"config.optim.schedule={opt_cfg.schedule!r}: expected 'cosine' or 'constant'.")


def make_optimizer(opt_cfg, num_steps: int) -> optax.GradientTransformation:
  """clip_by_global_norm -> AdamW(schedule over `num_steps` updates)."""
  schedule = make_schedule(opt_cfg, num_steps)
  return optax.chain(
      optax.clip_by_global_norm(float(opt_cfg.grad_clip)) if opt_cfg.grad_clip > 0 else optax.identity(),
      optax.adamw(
          schedule,
          b1=float(opt_cfg.b1),
          b2=float(opt_cfg.b2),
          eps=1e-8,
          weight_decay=float(opt_cfg.weight_decay),
      ),
  )
