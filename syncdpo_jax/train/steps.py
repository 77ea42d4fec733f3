"""Pure training steps: `sft_step(state, batch) -> (state, metrics)` and `dpo_step(...)`.

Both are built by a `make_*_step` factory that closes over the static pieces (the NNX graph definition,
the codec, config numbers) and are jitted once by the loop with explicit in/out shardings and the state
donated. Nothing here touches the host: metrics come back as device scalars, read one step late.

Batch (global jax.Arrays, see syncdpo_jax.data):
  video [B, T_v, H, W, 3] in [-1, 1], audio [B, T_a, n_mels] normalised log-mel, label int32 [B].
  DPO on sampled pairs (train/pairs.py) instead holds LATENTS: video / audio (winner) and loser_video /
  loser_audio, [B, T_v', h, w, C_v] / [B, T_a', C_a], and label (see make_dpo_step).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from syncdpo_jax import objectives, perturb
from syncdpo_jax.objectives import flow
from syncdpo_jax.objectives import sft as sft_lib
from syncdpo_jax.perturb import curriculum as curriculum_lib
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


def drop_labels(key: jax.Array, label: jax.Array, p_uncond: float, null_label: int) -> jax.Array:
  """Replaces each label by the null class with probability p_uncond (trains the CFG branch)."""
  drop = jax.random.uniform(key, label.shape) < p_uncond
  return jnp.where(drop, null_label, label)


def t_kwargs(obj_cfg) -> dict:
  return dict(
      kind=obj_cfg.t_sampling,
      mean=float(obj_cfg.t_logit_mean),
      std=float(obj_cfg.t_logit_std),
      shift=float(obj_cfg.t_shift),
  )


def encode(codec, batch):
  """Batch -> (video latents [B, T_v, h, w, C_v], audio latents [B, T_a, C_a])."""
  return codec.encode_video(batch["video"]), codec.encode_audio(batch["audio"])


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
  null_label = int(config.model.num_classes)
  accum = int(config.optim.grad_accum_steps)
  task_probs = tuple(obj.task_probs)

  def sft_step(state: TrainState, batch: dict):
    key = jax.random.fold_in(state.rng, state.step)
    k_loss, k_drop = jax.random.split(key)
    video, audio = encode(codec, batch)
    cond = {"label": drop_labels(k_drop, batch["label"], float(obj.p_uncond), null_label)}
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


def per_sample_error(pred_v, pred_a, target_v, target_a, video_weight, audio_weight):
  """Weighted per-sample velocity error e = w_v * mse_v + w_a * mse_a: [B] (weights scalars or [B])."""
  return video_weight * flow.per_sample_mse(pred_v, target_v) + audio_weight * flow.per_sample_mse(
      pred_a, target_a
  )


def dpo_tasks(key: jax.Array, batch: int, task_probs) -> jax.Array | None:
  """Per-pair task of cross-task DPO (sft.TASK_*, int32 [B]), or None for joint-only DPO (task_probs
  (1, 0, 0), the default), which draws no random numbers."""
  if task_probs[1] == 0 and task_probs[2] == 0:
    return None
  return sft_lib.sample_tasks(key, batch, task_probs)


def dpo_task_times(task: jax.Array | None, t: jax.Array, w_v: float, w_a: float):
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


def dpo_step_keys(state: TrainState) -> tuple[jax.Array, ...]:
  """The DPO step's keys (negatives, t, video noise, audio noise, label drop), from (rng, step)."""
  return tuple(jax.random.split(jax.random.fold_in(state.rng, state.step), 5))


def make_rule_negatives(codec, config) -> Callable:
  """SyncDPO's losers: fn(key, curriculum_state, video_w, audio_w, task) -> (video_l, audio_l, info).

  Latents in and out ([B, T_v, h, w, C_v], [B, T_a, C_a]); the perturbation strength and mix come from
  the curriculum state (config.curriculum, config.perturb). `task` (int32 [B] or None: all joint) and
  config.dpo.distort = 'given' make a conditional pair's loser distort its given stream: the batch of
  negatives is then also built with every rule forced onto the video (video-driven pairs) or the audio
  (audio-driven pairs), with the same key (the same rule and magnitude), and each pair takes its
  task's. Only the variants some pair can use are built. Pure and jit-able.
  """
  cur_cfg, pert_cfg = config.curriculum, config.perturb
  fps_v, fps_a = float(codec.fps), float(codec.audio_fps)
  default_mix = perturb.probs_from_config(pert_cfg)
  pert_options = perturb.options_from_config(pert_cfg)
  probs_t = tuple(float(p) for p in config.dpo.task_probs)
  given = config.dpo.distort == "given"
  forced = {m: {n: dict(o, modality=m) for n, o in pert_options.items()} for m in ("video", "audio")}
  # Which option set each task uses; a task that never occurs builds nothing.
  variants = {
      sft_lib.TASK_JOINT: pert_options,
      sft_lib.TASK_AUDIO_DRIVEN: forced["audio"] if given else pert_options,
      sft_lib.TASK_VIDEO_DRIVEN: forced["video"] if given else pert_options,
  }

  def negatives(key, curriculum, video_w, audio_w, task=None):
    strength = curriculum_lib.strength(curriculum)
    probs = curriculum_lib.mix_probs(curriculum, cur_cfg, default_mix)
    build = lambda opts: perturb.make_negatives(key, video_w, audio_w, strength, fps_v, fps_a, probs, opts)
    if task is None or not given:
      return build(pert_options)
    out = None
    for k in (sft_lib.TASK_JOINT, sft_lib.TASK_AUDIO_DRIVEN, sft_lib.TASK_VIDEO_DRIVEN):
      if probs_t[k] == 0:
        continue
      neg = build(variants[k])
      if out is None:
        out = neg
        continue
      pick = task == k
      out = jax.tree.map(
          lambda n, o: jnp.where(pick.reshape(pick.shape + (1,) * (n.ndim - 1)), n, o), neg, out
      )
    return out

  return negatives


def make_dpo_step(graphdef, rest, codec, tx: optax.GradientTransformation, config) -> Callable:
  """Flow-DPO on (winner, loser) pairs; the loser comes from one of two places.

  - The batch holds only the real pair (config.dpo.pairs='rules', SyncDPO): the loser is built in-step
    by temporal perturbation (make_rule_negatives) and the curriculum is updated in-step.
  - The batch also holds 'loser_video' / 'loser_audio' (config.dpo.pairs='sample_rank', see
    train/pairs.py): 'video' / 'audio' are the winner and those the loser, all four as latents: the
    pairs were sampled in latent space, and a decode -> encode round trip would cost a VAE pass per
    step and change what was ranked. The curriculum state is carried through untouched: its
    difficulty does not describe sampled pairs.
  The branch is on the batch's keys, fixed at trace time; the noise, t and loss are shared.

  Cost: the policy runs forward+backward and the frozen reference forward on [winner; loser] stacked
  along the batch (2B each), i.e. (2*3 + 2*1) / 3 = 2.67x the FLOPs of an SFT step on B.
  """
  obj, dpo = config.objective, config.dpo
  apply = make_apply(graphdef, rest, obj.prediction)
  cur_cfg = config.curriculum
  null_label = int(config.model.num_classes)
  rule_negatives = make_rule_negatives(codec, config)
  beta = float(dpo.beta)
  w_v, w_a = float(dpo.video_weight), float(dpo.audio_weight)
  task_probs = tuple(float(p) for p in dpo.task_probs)
  needs_losers = dpo.pairs == "sample_rank"
  accum = int(config.optim.grad_accum_steps)

  def dpo_step(state: TrainState, batch: dict):
    k_neg, k_t, k_ev, k_ea, k_drop = dpo_step_keys(state)
    explicit = "loser_video" in batch
    if needs_losers and not explicit:
      raise ValueError(
          "config.dpo.pairs='sample_rank' but the batch has no 'loser_video' / 'loser_audio': "
          "feed the ranked pairs (train/pairs.py), or set config.dpo.pairs='rules'."
      )
    b = batch["video"].shape[0]
    task = dpo_tasks(jax.random.fold_in(k_t, 1), b, task_probs)
    if explicit:
      video_w, audio_w = batch["video"], batch["audio"]
      video_l, audio_l = batch["loser_video"], batch["loser_audio"]
    else:
      video_w, audio_w = encode(codec, batch)
      video_l, audio_l, info = rule_negatives(k_neg, state.curriculum, video_w, audio_w, task)

    # Same t and the same noise for winner and loser: the only difference the loss sees is the content
    # (for rule-based losers, the temporal structure the perturbation destroyed).
    t = flow.sample_t(k_t, (b,), **t_kwargs(obj))
    t_v, t_a, err_w_v, err_w_a = dpo_task_times(task, t, w_v, w_a)
    eps_v = jax.random.normal(k_ev, video_w.shape, video_w.dtype)
    eps_a = jax.random.normal(k_ea, audio_w.shape, audio_w.dtype)
    label = drop_labels(k_drop, batch["label"], float(obj.p_uncond), null_label)
    # Every random draw is made above for the whole batch: a micro-batch's loss is its pairs' share.
    pairs = {
        "video_w": video_w,
        "audio_w": audio_w,
        "video_l": video_l,
        "audio_l": audio_l,
        "eps_v": eps_v,
        "eps_a": eps_a,
        "t_v": t_v,
        "t_a": t_a,
        "err_w_v": err_w_v,
        "err_w_a": err_w_a,
        "label": label,
    }

    def loss_fn(params, p):
      n = p["label"].shape[0]
      stack = lambda w, l: jnp.concatenate([w, l], axis=0)
      x0_v, x0_a = stack(p["video_w"], p["video_l"]), stack(p["audio_w"], p["audio_l"])
      e_v, e_a = stack(p["eps_v"], p["eps_v"]), stack(p["eps_a"], p["eps_a"])
      t2_v, t2_a = stack(p["t_v"], p["t_v"]), stack(p["t_a"], p["t_a"])
      # The per-sample error is SFT's (objective.error_space), so DPO's errors and SFT's agree.
      snr_cap = float(obj.snr_cap)
      ew_v = stack(p["err_w_v"], p["err_w_v"]) * flow.error_weight(t2_v, obj.error_space, snr_cap=snr_cap)
      ew_a = stack(p["err_w_a"], p["err_w_a"]) * flow.error_weight(t2_a, obj.error_space, snr_cap=snr_cap)
      xt_v, xt_a = flow.noisy(x0_v, e_v, t2_v), flow.noisy(x0_a, e_a, t2_a)
      tgt_v = flow.velocity_error_target(x0_v, e_v, xt_v, t2_v, obj.prediction)
      tgt_a = flow.velocity_error_target(x0_a, e_a, xt_a, t2_a, obj.prediction)
      cond = {"label": stack(p["label"], p["label"])}
      ref_pv, ref_pa = apply(jax.lax.stop_gradient(state.ref_params), xt_v, xt_a, t2_v, t2_a, cond)
      ref_err = per_sample_error(ref_pv, ref_pa, tgt_v, tgt_a, ew_v, ew_a)
      pv, pa = apply(params, xt_v, xt_a, t2_v, t2_a, cond)
      err = per_sample_error(pv, pa, tgt_v, tgt_a, ew_v, ew_a)
      loss, m = objectives.flow_dpo_loss(err[:n], err[n:], ref_err[:n], ref_err[n:], beta)
      m = dict(m, dpo_loss=loss)
      if dpo.sft_weight > 0:
        loss = loss + float(dpo.sft_weight) * err[:n].mean()
      return loss, m

    (loss, metrics), grads = accumulated_value_and_grad(loss_fn, state.params, pairs, accum)
    new_state = _apply_update(state, grads, tx, float(config.train.ema_decay))
    metrics = dict(
        metrics, loss=loss, grad_norm=optax.global_norm(grads), **curriculum_lib.log_metrics(state.curriculum)
    )
    if not explicit:
      cur = curriculum_lib.update(state.curriculum, cur_cfg, metrics["reward_accuracy"])
      new_state = new_state.replace(curriculum=cur)
      metrics["neg_abs_offset_s"] = jnp.abs(info["offset_s"]).mean()
    return new_state, metrics

  return dpo_step
