"""The training loop: the only place in `train` with side effects (data, checkpoints, metrics, signals).

Resume order (explicit, as in big_vision):
  1. the latest checkpoint in WORKDIR/checkpoints (a preempted or finished run continues exactly:
     parameters, optimizer, curriculum, rng and the grain iterator all come back);
  2. else `config.init_from` (a workdir or checkpoint of another run): the policy parameters only; for
     DPO the frozen reference is a copy of them;
  3. else scratch (an SFT run; a DPO run without a reference is refused before anything compiles).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import signal
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from syncdpo_jax import codec as codec_lib
from syncdpo_jax import config_lib
from syncdpo_jax import data as data_lib
from syncdpo_jax.data import pipeline
from syncdpo_jax.model import flops as flops_lib
from syncdpo_jax.model import sharding as sharding_lib
from syncdpo_jax.perturb import curriculum as curriculum_lib
from syncdpo_jax.train import checkpoint as ckpt_lib
from syncdpo_jax.train import optim, pair_sources, plots, steps, writers
from syncdpo_jax.train.state import TrainState


@dataclasses.dataclass
class Setup:
  """Everything `train` builds before the first step (also used by tests and benchmarks)."""

  mesh: jax.sharding.Mesh
  graphdef: Any
  rest: Any
  codec: codec_lib.Codec
  tx: Any
  state: TrainState
  state_shardings: Any
  batch_sharding: NamedSharding
  step_fn: Callable  # jitted (state, batch) -> (state, metrics)
  flops_per_step: float
  pair_source: Any = None  # DPO: where the pairs come from (train/pair_sources.py); None for SFT


def _replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def state_shardings(abstract_state: TrainState, tx, mesh, rules) -> TrainState:
  """NamedShardings for every TrainState leaf: params (and copies: ref, EMA, optimizer moments) by the
  model's logical-axis rules, scalars and small pytrees replicated."""
  param_sh = sharding_lib.state_shardings(abstract_state.params, mesh, rules)
  rep = _replicated(mesh)
  # Optimizer moments mirror the params' structure and take their shardings; counts are replicated.
  opt_sh = optax.tree_map_params(
      tx, lambda _, s: s, abstract_state.opt_state, param_sh, transform_non_params=lambda _: rep
  )
  return TrainState(
      step=rep,
      params=param_sh,
      opt_state=opt_sh,
      rng=rep,
      ref_params=None if abstract_state.ref_params is None else param_sh,
      ema_params=None if abstract_state.ema_params is None else param_sh,
      curriculum=None
      if abstract_state.curriculum is None
      else jax.tree.map(lambda _: rep, abstract_state.curriculum),
  )


def check_mesh_divides(config, mesh) -> None:
  """The global batch (each micro-batch of it) must split evenly over the batch axes; heads over the
  tensor axis."""
  rules = config.parallel.logical_axis_rules
  axes = sharding_lib.batch_axes(mesh, rules)
  n = sharding_lib.batch_axes_size(mesh, rules)
  k = int(config.optim.grad_accum_steps)
  if k < 1:
    raise ValueError(f"config.optim.grad_accum_steps={k} must be >= 1 (1 = no accumulation).")
  if config.data.batch_size % (n * k):
    raise ValueError(
        f"config.data.batch_size={config.data.batch_size} is not divisible by the mesh's batch axes "
        f"{' x '.join(axes) or '(none)'} = {n} (config.parallel.mesh={dict(mesh.shape)}) times "
        f"optim.grad_accum_steps={k}: "
        f"every micro-batch spreads over the batch axes. Use a batch size that is a multiple of "
        f"{n * k}, or change config.parallel.mesh / optim.grad_accum_steps."
    )
  sharding_lib.check_heads_divide(config.model, mesh, rules)


def make_init_fn(config, tx) -> Callable[[jax.Array], TrainState]:
  """`init(rng) -> TrainState` for `config` (jit it with out_shardings; `jax.eval_shape` it for a plan).

  Holds what a TrainState is made of (policy params, optimizer moments, DPO reference, EMA,
  curriculum), so the trainer and the memory plan (train/plan.py) always count the same arrays.
  """
  is_dpo = config.mode == "dpo"

  def init(rng):
    model = config_lib.build_model(config, nnx.Rngs(params=rng))
    _, params, _ = nnx.split(model, nnx.Param, ...)
    copy = lambda: jax.tree.map(jnp.copy, params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.fold_in(rng, 1)),
        ref_params=copy() if is_dpo else None,
        ema_params=copy() if config.train.ema_decay > 0 else None,
        curriculum=curriculum_lib.init(config.curriculum) if is_dpo else None,
    )

  return init


def build(config, *, mesh=None) -> Setup:
  """Builds mesh, model, optimizer, sharded initial TrainState and the jitted step (no data, no I/O)."""
  config_lib.validate(config)
  mesh = mesh or sharding_lib.make_mesh(config.parallel.mesh)
  rules = config.parallel.logical_axis_rules
  check_mesh_divides(config, mesh)
  codec = codec_lib.make_codec(config.codec, config.data)
  tx = optim.make_optimizer(config.optim, int(config.train.num_steps))
  is_dpo = config.mode == "dpo"

  abstract_model = config_lib.build_abstract_model(config)
  graphdef, _, rest = nnx.split(abstract_model, nnx.Param, ...)
  init = make_init_fn(config, tx)
  rng = jax.random.key(int(config.seed))
  with jax.set_mesh(mesh):
    abstract_state = jax.eval_shape(init, rng)
    sh = state_shardings(abstract_state, tx, mesh, rules)
    # Sharded from the start: every parameter is created on its own shard, never whole on one host.
    state = jax.jit(init, out_shardings=sh)(rng)

  batch_sharding = sharding_lib.batch_sharding(mesh, rules)
  if is_dpo:
    source = pair_sources.make_pair_source(codec, config)
    step = steps.make_dpo_step(graphdef, rest, codec, tx, config, source)
  else:
    source, step = None, steps.make_sft_step(graphdef, rest, codec, tx, config)
  step_fn = jax.jit(
      step, in_shardings=(sh, batch_sharding), out_shardings=(sh, _replicated(mesh)), donate_argnums=(0,)
  )
  (t_v, h, w, _), (t_a, _) = codec.layout.window_shapes(config.data)  # latent frames, not pixels
  b = int(config.data.batch_size)
  # One count for the whole repo (model/flops.py), remat's recomputed forward included.
  flops_per_step = flops_lib.train_step_flops(config_lib.model_spec(config), t_v, h, w, t_a, b, dpo=is_dpo)
  return Setup(mesh, graphdef, rest, codec, tx, state, sh, batch_sharding, step_fn, flops_per_step, source)


class _Preempted:
  """SIGTERM flag: the loop saves a checkpoint at the next step boundary and exits cleanly.

  With several processes the stop must happen at the same step on all of them (a process that stops
  alone leaves the others waiting in the next collective), and a pod's SIGTERM reaches the hosts at
  different steps: JAX's preemption service (started by jax.distributed.initialize) catches SIGTERM
  on any process and agrees on a step, so no Python handler is installed there (it would replace
  the service's).
  """

  def __init__(self):
    self.flag = False
    self._prev = None

  def reached(self, step: int) -> bool:
    """True at the step where this run (all its processes) saves and stops for a SIGTERM."""
    if jax.process_count() > 1:
      self.flag = self.flag or multihost_utils.reached_preemption_sync_point(step)
    return self.flag

  def __enter__(self):
    if jax.process_count() > 1:
      return self
    try:
      self._prev = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. a notebook worker): no preemption handling
      self._prev = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.flag = True

  def __exit__(self, *exc):
    if self._prev is not None:
      signal.signal(signal.SIGTERM, self._prev)


_BARRIER_IDS = itertools.count()


def _wait_for_all_processes(name: str, timeout_s: int = 3600) -> None:
  """Barrier over JAX's coordination service; a no-op with one process.

  Not `multihost_utils.sync_global_devices`: that is a device collective, which on CPU runs through
  gloo, whose rendezvous gives up after 30 s (shorter than building a dataset). Every process calls
  the same barriers in the same order, so the counter makes each name unique, as the service needs.
  """
  if jax.process_count() > 1:
    key = f"{name}_{next(_BARRIER_IDS)}"
    ocp.multihost.get_barrier_sync_fn()(key=key, timeout_ms=timeout_s * 1000)


def _host_metrics(metrics: dict) -> dict:
  return {k: float(np.asarray(v)) for k, v in jax.device_get(metrics).items()}


def train(config, workdir: str, *, stop_after: int | None = None) -> TrainState:
  """Trains as `config.mode` says ('sft' | 'dpo'), resuming as described in the module docstring.

  `stop_after`: leave after this many steps of this call with a checkpoint, exactly as a preemption
  would (for time-sliced schedulers, and for the exact-resume tests). With config.train.eval_every > 0
  the current params are sampled and scored every that many steps (runs/evaluate.make_periodic_eval).

  Writes WORKDIR/metrics.jsonl (one JSON object per logged step), WORKDIR/tensorboard/, WORKDIR/plots/,
  WORKDIR/checkpoints/ and WORKDIR/config.json; DPO with config.dpo.pairs='sample_rank' also
  WORKDIR/pairs.npz and WORKDIR/pairs_cost.json (runs/pairs.py). Returns the final TrainState.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)
  is_main = jax.process_index() == 0
  setup = build(config)
  mesh, state = setup.mesh, setup.state
  if is_main:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=1))
    print(sharding_lib.param_table(nnx.merge(setup.graphdef, state.params, setup.rest)), flush=True)

  # On shared storage (a pod's bucket) N processes must not build one dataset at once: process 0
  # builds it (a no-op when present) while the others wait; they only open it in make_dataset.
  if is_main:
    data_lib.build_dataset(config.data)
  _wait_for_all_processes("syncdpo_jax_dataset_built")
  ds = pipeline.make_dataset(config.data, config.data.split_train, seed=int(config.seed), train=True)
  data_iter = iter(ds)

  tc = config.train
  mgr = ckpt_lib.make_manager(
      workdir,
      max_to_keep=int(tc.keep_checkpoints),
      save_every=int(tc.checkpoint_every),
      async_save=bool(tc.async_checkpoint),
  )
  latest = mgr.latest_step()
  if latest is not None:
    state = ckpt_lib.restore(mgr, latest, state, data_iter, config)
    print(f"Resumed from {mgr.directory}/{latest} (step {int(state.step)}).", flush=True)
  elif config.init_from:
    params, src = ckpt_lib.restore_params(config.init_from, state.params, config)
    state = state.replace(params=params)
    if state.ref_params is not None:
      state = state.replace(ref_params=jax.tree.map(jnp.copy, params))
    if state.ema_params is not None:
      state = state.replace(ema_params=jax.tree.map(jnp.copy, params))
    print(
        f"Initialised from {src}" + (" (also the DPO reference)." if config.mode == "dpo" else "."),
        flush=True,
    )
  else:
    print("Training from scratch.", flush=True)

  source = setup.pair_source
  if source is not None:
    # E.g. the conventional baseline's pairs, sampled from the reference (= init_from; after a resume
    # the restored reference is that same model) before step 1, or loaded from WORKDIR/pairs.npz.
    source.prepare(config, workdir, setup.graphdef, setup.rest, state.ref_params)
  batch_keys = source.batch_keys if source is not None else pair_sources.CLIP_KEYS
  if int(config.data.get("text_dim", 0)) > 0:  # the captions go to the model (ModelIO.text_dim)
    batch_keys = batch_keys + pair_sources.TEXT_KEYS

  writer = writers.create_writer(workdir, just_logging=not is_main)
  eval_fn = None
  if int(tc.eval_every) > 0:
    from syncdpo_jax.runs import evaluate  # runs/ builds on train/: imported where used

    eval_fn = evaluate.make_periodic_eval(config, workdir, setup.graphdef, setup.rest, mesh)
  num_steps = int(tc.num_steps)
  first = int(jax.device_get(state.step))
  log_every = max(int(tc.log_every), 1)
  profile_at = int(tc.profile_step) if tc.profile_step >= 0 else None
  pending = None  # (step, device metrics) read one step late: the host never waits on the device
  last_log_t, last_log_step = time.time(), first
  t0 = time.time()

  def log(step_done: int, metrics: dict):
    nonlocal last_log_t, last_log_step
    m = _host_metrics(metrics)
    if not math.isfinite(m["loss"]):
      mgr.wait_until_finished()
      raise FloatingPointError(
          f"loss is {m['loss']} at step {step_done}. Last good checkpoint: "
          f"{mgr.latest_step()} in {mgr.directory} (resume from it with a lower config.optim.lr, "
          "or a larger config.optim.warmup_steps / smaller config.optim.grad_clip)."
      )
    now = time.time()
    sps = (step_done - last_log_step) / max(now - last_log_t, 1e-9)
    last_log_t, last_log_step = now, step_done
    m["steps_per_sec"] = sps
    m["tflops_per_device"] = setup.flops_per_step * sps / jax.device_count() / 1e12
    writer.write_scalars(step_done, m)
    eta = (num_steps - step_done) / max(sps, 1e-9)
    extra = "".join(f" {k}={m[k]:.3f}" for k in ("reward_accuracy", "reward_margin", "difficulty") if k in m)
    print(
        f"[{config.mode}] step {step_done}/{num_steps} loss={m['loss']:.4f}{extra} "
        f"{sps:.2f} steps/s ETA {eta:.0f}s",
        flush=True,
    )

  with _Preempted() as preempted:
    step_done = first
    for step_done in range(first + 1, num_steps + 1):
      if profile_at is not None and step_done == profile_at:
        jax.profiler.start_trace(os.path.join(workdir, "profile"))
      np_batch = source.host_batch(step_done, data_iter) if source is not None else next(data_iter)
      batch = pipeline.make_global_batch({k: np_batch[k] for k in batch_keys}, setup.batch_sharding)
      # The mesh context binds the model's activation constraints (sharding.constrain) to this mesh.
      with jax.set_mesh(mesh):
        if step_done == first + 1 and jax.process_count() > 1:
          # Compile (jit reuses it), then start together: a compile can take minutes longer on one
          # process (a cache hit on one host, a compile on another), and CPU collectives (gloo) give
          # up when a peer is more than 30 s late to the first step.
          setup.step_fn.lower(state, batch).compile()
          _wait_for_all_processes("syncdpo_jax_step_compiled")
        state, metrics = setup.step_fn(state, batch)
      if profile_at is not None and step_done == profile_at + 2:
        jax.profiler.stop_trace()
      if pending is not None:
        log(*pending)
        pending = None
      if step_done % log_every == 0 or step_done == num_steps:
        pending = (step_done, metrics)
      # A preemption (SIGTERM) or the caller's stop_after ends this call with a checkpoint.
      stop_now = preempted.reached(step_done) or (stop_after is not None and step_done - first >= stop_after)
      ckpt_lib.save(mgr, step_done, state, data_iter, config, force=stop_now or step_done == num_steps)
      if eval_fn is not None and tc.eval_every > 0 and step_done % int(tc.eval_every) == 0:
        eval_fn(state, step_done)
      if stop_now:
        mgr.wait_until_finished()
        why = "SIGTERM" if preempted.flag else f"stop_after={stop_after}"
        print(f"{why}: saved checkpoint {step_done} in {mgr.directory}; exiting cleanly.", flush=True)
        break
    if pending is not None:
      log(*pending)
  mgr.wait_until_finished()
  mgr.close()
  writer.flush()
  writer.close()
  if is_main:
    plots.plot_metrics(os.path.join(workdir, "metrics.jsonl"), os.path.join(workdir, "plots"))
    print(f"Done: {step_done - first} steps in {time.time() - t0:.1f}s; workdir {workdir}", flush=True)
  return state
