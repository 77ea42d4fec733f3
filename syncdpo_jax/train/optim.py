"""Optimizer from config: AdamW, warm-up + cosine/constant schedule, clipping, grad accumulation."""
from __future__ import annotations

import optax


def make_schedule(opt_cfg, num_steps: int) -> optax.Schedule:
  """Linear warm-up to `lr`, then 'cosine' decay to lr * `end_lr_frac` or 'constant'."""
  lr, warmup = float(opt_cfg.lr), int(opt_cfg.warmup_steps)
  if opt_cfg.schedule == "constant":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, max(warmup, 1)), optax.constant_schedule(lr)], [warmup])
  if opt_cfg.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(
        0.0, lr, max(warmup, 1), max(num_steps, warmup + 1), end_value=lr * float(opt_cfg.end_lr_frac))
  raise ValueError(f"config.optim.schedule={opt_cfg.schedule!r}: expected 'cosine' or 'constant'.")


def make_optimizer(opt_cfg, num_steps: int) -> optax.GradientTransformation:
  """clip_by_global_norm -> AdamW(schedule); wrapped in MultiSteps when grad_accum_steps > 1.

  With MultiSteps, `num_steps` counts optimizer updates' micro-steps (each train step is one
  micro-batch); the schedule advances once per real update.
  """
  accum = int(opt_cfg.grad_accum_steps)
  schedule = make_schedule(opt_cfg, max(num_steps // max(accum, 1), 1))
  tx = optax.chain(
      optax.clip_by_global_norm(float(opt_cfg.grad_clip)) if opt_cfg.grad_clip > 0 else optax.identity(),
      optax.adamw(schedule, b1=float(opt_cfg.b1), b2=float(opt_cfg.b2), eps=1e-8,
                  weight_decay=float(opt_cfg.weight_decay)),
  )
  if accum > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=accum)
  return tx
