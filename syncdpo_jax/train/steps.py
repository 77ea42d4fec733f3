"""Pure training steps: `sft_step(state, batch) -> (state, metrics)` and `dpo_step(...)`.

Both are built by a `make_*_step` factory that closes over the static pieces (the NNX graph definition,
the codec, config numbers) and are jitted once by the loop with explicit in/out shardings and the state
donated. Nothing here touches the host: metrics come back as device scalars, read one step late.

The objectives themselves (noising, targets, errors, the DPO loss) live in syncdpo_jax.objectives; a
step draws the random numbers, calls them, and applies the update.

Batch (global jax.Arrays, see syncdpo_jax.data):
  video [B, T_v, H, W, 3] in [-1, 1], audio [B, T_a, n_mels] normalised log-mel, label int32 [B].
  DPO on sampled pairs (train/pair_sources.RankedPairs) instead holds LATENTS: video / audio (winner)
  and loser_video / loser_audio, [B, T_v', h, w, C_v] / [B, T_a', C_a], and label.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from syncdpo_jax import codec as codec_lib
from syncdpo_jax.objectives import dpo as dpo_lib
from syncdpo_jax.objectives import flow
from syncdpo_jax.objectives import sft as sft_lib
from syncdpo_jax.perturb import curriculum as curriculum_lib
from syncdpo_jax.train import pair_sources
from syncdpo_jax.train.state import TrainState


def make_apply(graphdef, rest, prediction: str = "v") -> Callable:
  """(params, video, audio, t_v, t_a, cond) -> (v_video, v_audio) velocities, a pure function of params.

  `prediction` (config.objective.prediction) says what the network outputs; it is converted to the
  velocity here (objectives.flow.velocity_model), so losses, samplers and guidance see velocities.
  """

  def apply(params, video, audio, t_v, t_a, cond):
    model = nnx.merge(graphdef, params, rest)
    return flow.velocity_model(model, prediction)(video, audio, t_v, t_a, cond)

  return apply


def micro_batches(tree, k: int):
  """[B, ...] leaves -> [k, B / k, ...]: micro-batch i holds examples i, i + k, i + 2k, ...

  Strided, not contiguous: a batch sharded over the data-parallel devices keeps every micro-batch
  spread over all of them (each device's rows hold every residue mod k), so no micro-batch idles
  devices and the split moves no data.
  """

  def split(x):
    return jnp.moveaxis(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 1, 0)

  return jax.tree.map(split, tree)


def accumulated_value_and_grad(loss_fn: Callable, params, inputs, k: int):
  """((loss, metrics), grads) of `loss_fn(params, inputs)` over the batch, computed in k micro-batches.

  loss_fn returns (scalar mean over its examples, dict of scalar means over its examples). The micro
  batches are equal in size, so the mean of their means is the batch's mean: with every random draw
  made for the whole batch beforehand, k > 1 gives the gradient of k = 1 (to float summation order)
  with 1/k of the activations live. A lax.scan: one micro-batch's program, compiled once.
  """
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if k == 1:
    return grad_fn(params, inputs)

  def body(acc, micro):
    out = grad_fn(params, micro)
    return jax.tree.map(lambda a, x: a + x / k, acc, out), None

  micro = micro_batches(inputs, k)
  shapes = jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[0], micro))
  out, _ = jax.lax.scan(body, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes), micro)
  return out


def make_cond(key: jax.Array, batch: dict, p_uncond: float, null_label: int) -> dict:
  """The model's conditioning from a batch: {'label': [B]} and, where the dataset carries caption
  embeddings, 'text' [B, L, D] / 'text_mask' [B, L]. With probability p_uncond an example is made
  unconditional, its label the null class and its caption zeros with no token: what sampling's null
  condition is (sample/guidance.null_cond), so CFG has trained what it subtracts."""
  drop = jax.random.uniform(key, batch["label"].shape) < p_uncond  # made unconditional (trains CFG)
  cond = {"label": jnp.where(drop, null_label, batch["label"])}
  if "text" in batch:
    keep = ~drop
    cond["text"] = jnp.where(keep[:, None, None], batch["text"], 0.0).astype(batch["text"].dtype)
    mask = batch.get("text_mask", jnp.ones(batch["text"].shape[:2], bool))
    cond["text_mask"] = mask.astype(bool) & keep[:, None]
  return cond


def t_kwargs(obj_cfg) -> dict:
  return dict(
      kind=obj_cfg.t_sampling,
      mean=float(obj_cfg.t_logit_mean),
      std=float(obj_cfg.t_logit_std),
      shift=float(obj_cfg.t_shift),
  )


def ema_decay_at(step, decay: float):
  """The EMA's decay after update `step` (0-based): min(decay, (1 + step) / (10 + step)).

  The warm-up (tf.train.ExponentialMovingAverage's num_updates rule) keeps the average from
  remembering the initialisation: a fixed 0.999 still gives the random init 37% of the weight after
  1000 steps, and the averaged model of a short run samples worse than the raw one.
  """
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(decay, (1.0 + step) / (10.0 + step))


def _apply_update(state: TrainState, grads, tx: optax.GradientTransformation, ema_decay: float):
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema_params
  if ema is not None:
    d = ema_decay_at(state.step, ema_decay)
    ema = jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), ema, params)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema)


def make_sft_step(graphdef, rest, codec, tx: optax.GradientTransformation, config) -> Callable:
  """Flow-matching SFT with cross-task synergy (see objectives.sft); optim.grad_accum_steps
  micro-batches per update."""
  obj = config.objective
  apply = make_apply(graphdef, rest, obj.prediction)
  null_label = int(config.data.num_classes)
  accum = int(config.optim.grad_accum_steps)
  task_probs = tuple(obj.task_probs)

  def sft_step(state: TrainState, batch: dict):
    key = jax.random.fold_in(state.rng, state.step)
    k_loss, k_drop = jax.random.split(key)
    video, audio = codec_lib.encode_batch(codec, batch)
    cond = make_cond(k_drop, batch, float(obj.p_uncond), null_label)
    draws = sft_lib.sft_draws(k_loss, video, audio, task_probs, t_kwargs(obj))

    def loss_fn(params, ex):
      return sft_lib.sft_loss_given(
          lambda v, a, tv, ta, c: apply(params, v, a, tv, ta, c),
          ex["video"],
          ex["audio"],
          ex["cond"],
          ex["draws"],
          task_probs=task_probs,
          lambda_v=float(obj.lambda_v),
          lambda_a=float(obj.lambda_a),
          video_weight=float(obj.video_weight),
          audio_weight=float(obj.audio_weight),
          prediction=obj.prediction,
          error_space=obj.error_space,
          snr_cap=float(obj.snr_cap),
      )

    examples = {"video": video, "audio": audio, "cond": cond, "draws": draws}
    (loss, metrics), grads = accumulated_value_and_grad(loss_fn, state.params, examples, accum)
    new_state = _apply_update(state, grads, tx, float(config.train.ema_decay))
    metrics = dict(sft_lib.finish_metrics(metrics), grad_norm=optax.global_norm(grads))
    return new_state, metrics

  return sft_step


def dpo_step_keys(state: TrainState) -> tuple[jax.Array, ...]:
  """The DPO step's keys (negatives, t, video noise, audio noise, label drop), from (rng, step)."""
  return tuple(jax.random.split(jax.random.fold_in(state.rng, state.step), 5))


def make_dpo_step(graphdef, rest, codec, tx: optax.GradientTransformation, config, source=None) -> Callable:
  """Flow-DPO (objectives.dpo.flow_dpo_loss_given) on the pairs of config.dpo.pairs' source.

  The source (train/pair_sources.py) turns the batch into (winner, loser) latents: SyncDPO's rule-based
  losers built here in the step, or sampled-and-ranked pairs fed by the loop; it also says how the
  curriculum moves (`source`: the loop's, which it also feeds batches from; default: config.dpo.pairs').
  Cross-task DPO draws each pair's task first (config.dpo.task_probs): the rules
  distort a conditional pair's given stream (config.dpo.distort).

  Cost: the policy runs forward+backward and the frozen reference forward on [winner; loser] stacked
  along the batch (2B each), i.e. (2*3 + 2*1) / 3 = 2.67x the FLOPs of an SFT step on B.
  """
  obj, dpo = config.objective, config.dpo
  apply = make_apply(graphdef, rest, obj.prediction)
  null_label = int(config.data.num_classes)
  source = source or pair_sources.make_pair_source(codec, config)
  task_probs = tuple(float(p) for p in dpo.task_probs)
  accum = int(config.optim.grad_accum_steps)
  loss_kwargs = dict(
      beta=float(dpo.beta),
      prediction=obj.prediction,
      error_space=obj.error_space,
      snr_cap=float(obj.snr_cap),
      sft_weight=float(dpo.sft_weight),
      beta_video=dpo.beta_video,
      beta_audio=dpo.beta_audio,
      hinge_weight=float(dpo.hinge_weight),
      sdpo_mu=dpo.sdpo_mu,
      task_names=tuple(n for n, q in zip(dpo_lib.TASK_NAMES, task_probs) if q > 0),
  )

  def dpo_step(state: TrainState, batch: dict):
    k_neg, k_t, k_ev, k_ea, k_drop = dpo_step_keys(state)
    task = dpo_lib.sample_pair_tasks(jax.random.fold_in(k_t, 1), batch["label"].shape[0], task_probs)
    video_w, audio_w, video_l, audio_l, info = source.pairs(k_neg, state.curriculum, batch, task)
    draws = dpo_lib.dpo_draws(
        (k_t, k_ev, k_ea),
        video_w,
        audio_w,
        task,
        t_kwargs(obj),
        float(dpo.video_weight),
        float(dpo.audio_weight),
    )
    cond = make_cond(k_drop, batch, float(obj.p_uncond), null_label)
    # Every random draw is made above for the whole batch: a micro-batch's loss is its pairs' share.
    pairs = dict(draws, video_w=video_w, audio_w=audio_w, video_l=video_l, audio_l=audio_l, cond=cond)
    if task is not None:
      pairs["task"] = task

    def loss_fn(params, p):
      policy = lambda v, a, tv, ta, c: apply(params, v, a, tv, ta, c)
      ref = lambda v, a, tv, ta, c: apply(jax.lax.stop_gradient(state.ref_params), v, a, tv, ta, c)
      return dpo_lib.flow_dpo_loss_given(policy, ref, p, **loss_kwargs)

    (loss, metrics), grads = accumulated_value_and_grad(loss_fn, state.params, pairs, accum)
    new_state = _apply_update(state, grads, tx, float(config.train.ema_decay))
    grad_norm = optax.global_norm(grads)
    metrics = dict(
        dpo_lib.finish_metrics(metrics),
        loss=loss,
        grad_norm=grad_norm,
        # Whether optim.grad_clip scaled this step (clipped steps have the same size however
        # saturated the DPO sigmoid is: beta cannot brake them).
        grad_clipped=(
            (grad_norm > float(config.optim.grad_clip)) & (float(config.optim.grad_clip) > 0)
        ).astype(jnp.float32),
        **curriculum_lib.log_metrics(state.curriculum),
    )
    cur, extra = source.next_curriculum(state.curriculum, metrics, info)
    return new_state.replace(curriculum=cur), dict(metrics, **extra)

  return dpo_step
