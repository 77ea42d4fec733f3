"""Flow-DPO in the Diffusion-DPO form (Wallace et al. 2023), with the flow-matching velocity error.

With the same noise eps and time t for the winner w (the real, aligned pair) and the loser l (its
temporally distorted copy), let e(x) be the per-sample mean squared velocity error. Then

  L = -log sigmoid( -beta/2 * [ (e_theta(w) - e_ref(w)) - (e_theta(l) - e_ref(l)) ] )

The argument of the sigmoid is the implicit reward margin: positive when the policy, relative to the
frozen reference, denoises the winner better than the loser. beta is tied to the error reduction
(Diffusion-DPO: mean over elements, beta = 5000); it is a config value.

`flow_dpo_loss_given` is the whole objective on a batch of pairs (stacking, noising, targets, errors),
with its random draws made by `dpo_draws` beforehand; the training step (train/steps.py) only wires
the models, the pair source and the optimizer to it.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from syncdpo_jax.objectives import flow
from syncdpo_jax.objectives import sft as sft_lib


def implicit_margin(err_w, err_l, ref_err_w, ref_err_l, beta: float) -> jax.Array:
  """-beta/2 * [(e_theta(w) - e_ref(w)) - (e_theta(l) - e_ref(l))], per sample [B]."""
  return -0.5 * beta * ((err_w - ref_err_w) - (err_l - ref_err_l))


def flow_dpo_loss(
    err_w: jax.Array, err_l: jax.Array, ref_err_w: jax.Array, ref_err_l: jax.Array, beta: float
):
  """Mean Diffusion-DPO loss over the batch.

  Args:
    err_w, err_l: [B] per-sample velocity errors of the policy on winner / loser.
    ref_err_w, ref_err_l: [B] the same for the frozen reference (treated as constants).
    beta: > 0, the KL-regularisation strength.
  Returns:
    (loss scalar, metrics) with `reward_accuracy` (fraction of samples with positive margin),
    `reward_margin` (mean margin), and the four mean errors.
  """
  ref_err_w = jax.lax.stop_gradient(ref_err_w)
  ref_err_l = jax.lax.stop_gradient(ref_err_l)
  margin = implicit_margin(err_w, err_l, ref_err_w, ref_err_l, beta)
  loss = -jax.nn.log_sigmoid(margin).mean()
  metrics = {
      "reward_accuracy": (margin > 0).astype(jnp.float32).mean(),
      "reward_margin": margin.mean(),
      "err_w": err_w.mean(),
      "err_l": err_l.mean(),
      "ref_err_w": ref_err_w.mean(),
      "ref_err_l": ref_err_l.mean(),
  }
  return loss, metrics


# --- The whole flow-DPO objective on a batch of pairs -------------------------------------------------


def sample_pair_tasks(key: jax.Array, batch: int, task_probs) -> jax.Array | None:
  """Per-pair task of cross-task DPO (sft.TASK_*, int32 [B]), or None for joint-only DPO (task_probs
  (1, 0, 0), the default), which draws no random numbers. The task sampler is SFT's."""
  if task_probs[1] == 0 and task_probs[2] == 0:
    return None
  return sft_lib.sample_tasks(key, batch, task_probs)


def pair_times(task: jax.Array | None, t: jax.Array, w_v: float, w_a: float):
  """Per-pair timesteps and error weights of cross-task DPO: (t_v, t_a, weight_v, weight_a), each [B].

  Like SFT's cross-task synergy (objectives/sft.py) the given stream is clean (t = 0) and carries no
  error, so a video-driven pair asks "which audio fits this video": the video->audio preference the
  conditional modes are evaluated on. Joint pairs (and task None) keep one t for both streams.
  """
  ones = jnp.ones(t.shape, jnp.float32)
  if task is None:
    return t, t, w_v * ones, w_a * ones
  video_given, audio_given = task == sft_lib.TASK_VIDEO_DRIVEN, task == sft_lib.TASK_AUDIO_DRIVEN
  return (
      jnp.where(video_given, 0.0, t),
      jnp.where(audio_given, 0.0, t),
      jnp.where(video_given, 0.0, w_v),
      jnp.where(audio_given, 0.0, w_a),
  )


def dpo_draws(
    keys: tuple[jax.Array, jax.Array, jax.Array],
    video: jax.Array,
    audio: jax.Array,
    task: jax.Array | None,
    t_kwargs: dict,
    video_weight: float = 1.0,
    audio_weight: float = 1.0,
) -> dict:
  """Every random number of one DPO loss, per pair, shared by winner and loser.

  keys: (k_t, k_eps_video, k_eps_audio); video [B, T_v, h, w, C_v], audio [B, T_a, C_a]: the winners
  (for shapes and dtypes). Returns {'t_v', 't_a', 'err_w_v', 'err_w_a' [B], 'eps_v', 'eps_a' (the
  latents' shapes)}. Drawn for the whole batch before the loss runs, so a
  micro-batch's loss is its pairs' share of the batch's (gradient accumulation = one big batch).
  """
  k_t, k_ev, k_ea = keys
  t = flow.sample_t(k_t, video.shape[:1], **t_kwargs)
  t_v, t_a, err_w_v, err_w_a = pair_times(task, t, video_weight, audio_weight)
  return {
      "t_v": t_v,
      "t_a": t_a,
      "err_w_v": err_w_v,
      "err_w_a": err_w_a,
      "eps_v": jax.random.normal(k_ev, video.shape, video.dtype),
      "eps_a": jax.random.normal(k_ea, audio.shape, audio.dtype),
  }


def per_sample_error(pred_v, pred_a, target_v, target_a, video_weight, audio_weight) -> jax.Array:
  """Weighted per-sample velocity error e = w_v * mse_v + w_a * mse_a: [B] (weights scalars or [B])."""
  return video_weight * flow.per_sample_mse(pred_v, target_v) + audio_weight * flow.per_sample_mse(
      pred_a, target_a
  )


def sdpo_scale(res_w: jax.Array, res_l: jax.Array, mu: float) -> jax.Array:
  """Diffusion-SDPO's safeguard: the factor on each pair's loser gradient, [B] in [0, 1].

  res_w, res_l: [B, D] output-space gradients of the winner's and the loser's error (the weighted
  residuals). Where they point the same way (<g_l, g_w> > 0), pushing the loser's error up also pushes
  the winner's up; scaling the loser's gradient by clip((1 - mu) |g_w|^2 / <g_l, g_w>, 0, 1) keeps the
  winner's error from rising to first order (mu in [0, 1): the margin kept). 1 elsewhere.
  """
  dot = jnp.sum(res_l * res_w, axis=-1)
  gw2 = jnp.sum(jnp.square(res_w), axis=-1)
  scale = jnp.clip((1.0 - mu) * gw2 / jnp.where(dot > 0, dot, 1.0), 0.0, 1.0)
  return jax.lax.stop_gradient(jnp.where(dot > 0, scale, 1.0))


TASK_NAMES = ("joint", "a2v", "v2a")  # sft.TASK_* order: joint, audio-driven (a2v), video-driven (v2a)


def flow_dpo_loss_given(
    apply_policy: Callable,
    apply_ref: Callable,
    pairs: dict,
    *,
    beta: float,
    prediction: str = "v",
    error_space: str = "velocity",
    snr_cap: float = 5.0,
    sft_weight: float = 0.0,
    beta_video: float | None = None,
    beta_audio: float | None = None,
    hinge_weight: float = 0.0,
    sdpo_mu: float | None = None,
    task_names: tuple[str, ...] = TASK_NAMES,
):
  """Flow-DPO on a batch of (winner, loser) pairs with their draws (`dpo_draws`).

  Winner and loser are stacked along the batch (one 2B pass of each model) and noised with the same
  eps and t, so the only difference the loss sees is the content. The per-sample error is SFT's
  (objective.error_space through `flow.error_weight`), so DPO's errors and SFT's agree.

  Args:
    apply_policy, apply_ref: (video_t, audio_t, t_v, t_a, cond) -> (v_video, v_audio) velocities; the
      reference's outputs are treated as constants.
    pairs: {'video_w', 'video_l': [B, T_v, h, w, C_v], 'audio_w', 'audio_l': [B, T_a, C_a], 'cond':
      the model's conditioning {'label': [B], optional 'text' / 'text_mask'} (already dropped for CFG;
      a bare 'label' [B] is read as {'label': label}), `dpo_draws`' keys, and optionally 'task' int32 [B] (then the
      reward accuracy is also logged for each task in `task_names`, NaN in a batch without its pairs)}.
    beta: DPO's KL strength. beta_video / beta_audio: per-stream strengths (None: beta); the margin is
      -1/2 sum_m beta_m [(e_m(w) - e_ref,m(w)) - (e_m(l) - e_ref,m(l))].
    Regularisers that keep the policy on the data (each 0 / None = off):
      sft_weight:   + sft_weight * mean e(w), the SFT term on the winner (JavisDiT++ uses 0.1);
      hinge_weight: + hinge_weight * mean max(0, e(w) - e_ref(w)), DPO-positive: a penalty only when the
                    winner's error rises above the reference's;
      sdpo_mu:      Diffusion-SDPO's safeguard on the loser's gradient (`sdpo_scale`, output space).
  Returns: (scalar loss, metrics: `flow_dpo_loss`'s (its err_* with per-stream betas are the errors
    weighted by beta_m / beta), 'dpo_loss', 'drift_w' = mean e(w) - e_ref(w) (how far the policy left
    the data on the winners), 'hinge_active', 'sdpo_scale', and per task 'reward_accuracy_<task>_sum' /
    'task_<task>_fraction' (`finish_metrics` turns them into accuracies)).
  """
  p = pairs
  n = p["video_w"].shape[0]
  stack = lambda w, l: jnp.concatenate([w, l], axis=0)
  x0_v, x0_a = stack(p["video_w"], p["video_l"]), stack(p["audio_w"], p["audio_l"])
  e_v, e_a = stack(p["eps_v"], p["eps_v"]), stack(p["eps_a"], p["eps_a"])
  t_v, t_a = stack(p["t_v"], p["t_v"]), stack(p["t_a"], p["t_a"])
  ew_v = stack(p["err_w_v"], p["err_w_v"]) * flow.error_weight(t_v, error_space, snr_cap=snr_cap)
  ew_a = stack(p["err_w_a"], p["err_w_a"]) * flow.error_weight(t_a, error_space, snr_cap=snr_cap)
  # Per-stream betas enter as error weights: -beta/2 * delta(e~) with e~ = sum_m (beta_m / beta) e_m.
  bw_v = (beta if beta_video is None else beta_video) / beta
  bw_a = (beta if beta_audio is None else beta_audio) / beta
  xt_v, xt_a = flow.noisy(x0_v, e_v, t_v), flow.noisy(x0_a, e_a, t_a)
  tgt_v = flow.velocity_error_target(x0_v, e_v, xt_v, t_v, prediction)
  tgt_a = flow.velocity_error_target(x0_a, e_a, xt_a, t_a, prediction)
  # A pair's winner and loser share its conditioning (label, and caption where the data has one).
  cond = jax.tree.map(lambda c: stack(c, c), p["cond"] if "cond" in p else {"label": p["label"]})
  ref_pv, ref_pa = apply_ref(xt_v, xt_a, t_v, t_a, cond)
  ref_err = per_sample_error(ref_pv, ref_pa, tgt_v, tgt_a, bw_v * ew_v, bw_a * ew_a)
  pv, pa = apply_policy(xt_v, xt_a, t_v, t_a, cond)
  err = per_sample_error(pv, pa, tgt_v, tgt_a, bw_v * ew_v, bw_a * ew_a)
  err_w, err_l = err[:n], err[n:]
  metrics = {}
  if sdpo_mu is not None:
    flat = lambda x, w: (x.reshape(x.shape[0], -1) * w[:, None]).astype(jnp.float32)
    res = jnp.concatenate([flat(pv - tgt_v, bw_v * ew_v), flat(pa - tgt_a, bw_a * ew_a)], axis=1)  # [2B, D]
    scale = sdpo_scale(res[:n], res[n:], float(sdpo_mu))
    err_l = scale * err_l + (1.0 - scale) * jax.lax.stop_gradient(err_l)  # same value, scaled gradient
    metrics["sdpo_scale"] = scale.mean()
  loss, m = flow_dpo_loss(err_w, err_l, ref_err[:n], ref_err[n:], beta)
  drift = err_w - jax.lax.stop_gradient(ref_err[:n])
  metrics.update(m, dpo_loss=loss, drift_w=drift.mean())
  if sft_weight > 0:
    loss = loss + sft_weight * err_w.mean()
  if hinge_weight > 0:
    loss = loss + hinge_weight * jnp.maximum(drift, 0.0).mean()
    metrics["hinge_active"] = (drift > 0).astype(jnp.float32).mean()
  if p.get("task") is not None:
    won = (implicit_margin(err_w, err_l, ref_err[:n], ref_err[n:], beta) > 0).astype(jnp.float32)
    for k, name in enumerate(TASK_NAMES):
      if name not in task_names:
        continue
      is_k = (p["task"] == k).astype(jnp.float32)
      metrics[f"reward_accuracy_{name}_sum"] = (won * is_k).mean()
      metrics[f"task_{name}_fraction"] = is_k.mean()
  return loss, metrics


def finish_metrics(metrics: dict) -> dict:
  """The logged DPO metrics from `flow_dpo_loss_given`'s means (averaged over micro-batches or not):
  per-task sums -> per-task reward accuracies (NaN for a task no pair had)."""
  m = dict(metrics)
  for name in TASK_NAMES:
    if f"reward_accuracy_{name}_sum" in m:
      s, f = m.pop(f"reward_accuracy_{name}_sum"), m.pop(f"task_{name}_fraction")
      m[f"reward_accuracy_{name}"] = jnp.where(f > 0, s / jnp.maximum(f, 1e-12), jnp.nan)
  return m
