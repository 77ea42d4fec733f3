"""Supervised flow matching with Harmony's cross-task synergy.

  L = L_joint + lambda_v * L_audio-driven + lambda_a * L_video-driven

L_joint denoises both streams at independent-but-equal-in-law timesteps; L_audio-driven denoises the
video while the audio is given clean (t_a = 0), L_video-driven the audio with the video given (t_v = 0).
Running all three as separate passes would triple the step cost, so each example draws ONE task
(probabilities `task_probs`) and its loss is importance-weighted by lambda_task / p_task: the expected
loss equals the formula above exactly, at the cost of a single forward/backward over the batch.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from syncdpo_jax.objectives import flow

TASK_JOINT, TASK_AUDIO_DRIVEN, TASK_VIDEO_DRIVEN = 0, 1, 2


def task_weights(lambda_v: float, lambda_a: float) -> jnp.ndarray:
  """Loss weight per task: [joint, audio-driven (video loss), video-driven (audio loss)]."""
  return jnp.asarray([1.0, lambda_v, lambda_a], jnp.float32)


def sample_tasks(key: jax.Array, batch: int, task_probs) -> jax.Array:
  """Per-example task id int32 [B] (TASK_*) drawn with probabilities `task_probs` (joint, audio-driven,
  video-driven); shared by SFT's and DPO's cross-task sampling."""
  probs = jnp.asarray(task_probs, jnp.float32)
  return jax.random.choice(key, 3, (batch,), p=probs / probs.sum())


def sample_tasks_and_times(key: jax.Array, batch: int, task_probs, t_kwargs: dict):
  """Per-example task id [B], t_v [B], t_a [B] (the given stream gets t = 0)."""
  k_task, k_tv, k_ta = jax.random.split(key, 3)
  task = sample_tasks(k_task, batch, task_probs)
  t_v = flow.sample_t(k_tv, (batch,), **t_kwargs)
  t_a = flow.sample_t(k_ta, (batch,), **t_kwargs)
  t_v = jnp.where(task == TASK_VIDEO_DRIVEN, 0.0, t_v)
  t_a = jnp.where(task == TASK_AUDIO_DRIVEN, 0.0, t_a)
  return task, t_v, t_a


def sft_draws(
    key: jax.Array,
    video: jax.Array,
    audio: jax.Array,
    task_probs=(1.0, 0.0, 0.0),
    t_kwargs: dict | None = None,
) -> dict:
  """Every random number of one SFT loss, per example: {'task', 't_v', 't_a' [B], 'eps_v', 'eps_a'}.

  Drawn for the whole batch before the loss runs, so the loss of any slice of the batch is the loss
  those examples have in the whole (gradient accumulation over micro-batches equals one big batch).
  """
  k_task, k_ev, k_ea = jax.random.split(key, 3)
  task, t_v, t_a = sample_tasks_and_times(k_task, video.shape[0], task_probs, t_kwargs or {})
  return {
      "task": task,
      "t_v": t_v,
      "t_a": t_a,
      "eps_v": jax.random.normal(k_ev, video.shape, video.dtype),
      "eps_a": jax.random.normal(k_ea, audio.shape, audio.dtype),
  }


def sft_loss(
    apply_fn: Callable,
    key: jax.Array,
    video: jax.Array,
    audio: jax.Array,
    cond: dict,
    *,
    task_probs=(1.0, 0.0, 0.0),
    t_kwargs: dict | None = None,
    **loss_kwargs,
):
  """Cross-task-synergy flow-matching loss: `sft_loss_given` with fresh `sft_draws(key, ...)`."""
  draws = sft_draws(key, video, audio, task_probs, t_kwargs)
  return sft_loss_given(apply_fn, video, audio, cond, draws, task_probs=task_probs, **loss_kwargs)


def sft_loss_given(
    apply_fn: Callable,
    video: jax.Array,
    audio: jax.Array,
    cond: dict,
    draws: dict,
    *,
    task_probs=(1.0, 0.0, 0.0),
    lambda_v: float = 0.1,
    lambda_a: float = 0.3,
    video_weight: float = 1.0,
    audio_weight: float = 1.0,
    prediction: str = "v",
    error_space: str = "velocity",
    snr_cap: float = 5.0,
):
  """Cross-task-synergy flow-matching loss of the examples given, with their random draws.

  Args:
    apply_fn: (video_t, audio_t, t_v, t_a, cond) -> (v_video, v_audio), velocities (a network that
      predicts x or eps is wrapped by `flow.velocity_model`).
    video: [B, T_v, h, w, C_v] clean latents; audio: [B, T_a, C_a] clean latents.
    draws: `sft_draws` of these examples.
    task_probs: sampling probabilities of (joint, audio-driven, video-driven); a task with weight > 0 must
      have probability > 0 (checked in the config validation).
    prediction: what the network behind apply_fn outputs ('x' | 'v' | 'eps'); the error is in velocity
      space against `flow.velocity_error_target` (see objectives/flow.py).
    error_space, snr_cap: the space of the per-sample error (`flow.error_weight`): 'velocity', 'x0' (the
      velocity error times max(t, t_eps)^2) or 'x0_snr' (that, times the SNR clipped to [1, snr_cap]).
  Returns: (scalar loss = mean over the examples, metrics dict of scalars: means over the examples).
  """
  task, t_v, t_a, eps_v, eps_a = (draws[k] for k in ("task", "t_v", "t_a", "eps_v", "eps_a"))
  xt_v, xt_a = flow.noisy(video, eps_v, t_v), flow.noisy(audio, eps_a, t_a)
  pred_v, pred_a = apply_fn(xt_v, xt_a, t_v, t_a, cond)
  tgt_v = flow.velocity_error_target(video, eps_v, xt_v, t_v, prediction)
  tgt_a = flow.velocity_error_target(audio, eps_a, xt_a, t_a, prediction)
  mse_v = flow.per_sample_mse(pred_v, tgt_v) * flow.error_weight(t_v, error_space, snr_cap=snr_cap)  # [B]
  mse_a = flow.per_sample_mse(pred_a, tgt_a) * flow.error_weight(t_a, error_space, snr_cap=snr_cap)  # [B]
  # A given stream (t = 0) has no loss: the model is not asked to denoise it.
  mse_v_used = jnp.where(task == TASK_VIDEO_DRIVEN, 0.0, mse_v)
  mse_a_used = jnp.where(task == TASK_AUDIO_DRIVEN, 0.0, mse_a)
  probs = jnp.asarray(task_probs, jnp.float32)
  probs = probs / probs.sum()
  importance = task_weights(lambda_v, lambda_a)[task] / jnp.maximum(probs[task], 1e-12)
  per_example = importance * (video_weight * mse_v_used + audio_weight * mse_a_used)
  joint = (task == TASK_JOINT).astype(jnp.float32)
  # Means over the examples (not over the joint ones only) keep every metric a plain mean, which
  # averages exactly over equal micro-batches: mse_*_joint = mean(mse * joint) / joint_fraction.
  metrics = {
      "loss": per_example.mean(),
      "joint_fraction": joint.mean(),
      "mse_video_joint_sum": (mse_v * joint).mean(),
      "mse_audio_joint_sum": (mse_a * joint).mean(),
  }
  return per_example.mean(), metrics


def finish_metrics(metrics: dict) -> dict:
  """The logged SFT metrics from `sft_loss_given`'s means (averaged over micro-batches or not)."""
  m = dict(metrics)
  n = jnp.maximum(m.pop("joint_fraction"), 1e-12)
  for stream in ("video", "audio"):
    m[f"mse_{stream}_joint"] = m.pop(f"mse_{stream}_joint_sum") / n
  return m
