"""Orbax checkpoints of the TrainState and the grain iterator.

Layout: WORKDIR/checkpoints/<step>/{params, ema, train, data, meta}
  params  the policy parameters (kept apart so `config.init_from` can load just them)
  ema     their exponential moving average (only when train.ema_decay > 0): what eval, sampling and
          `config.init_from` load by default (config.load_ema)
  train   the rest of the TrainState: step, opt_state, rng, reference params, curriculum
  data    the grain iterator state (one JSON file per process)
  meta    JSON fingerprint of everything that fixes array shapes, checked on resume

Orbax writes each checkpoint to a temporary directory and renames it when complete, so a run killed
mid-save (even with SIGKILL) leaves the previous checkpoint as the latest restorable one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp
from absl import flags

from syncdpo_jax import _internals
from syncdpo_jax import codec as codec_lib
from syncdpo_jax import config_lib

# Config fields whose values fix parameter/optimizer shapes, or what the parameters mean (a network
# trained to output x0 sampled as if it output velocities generates garbage): a checkpoint written
# under one value cannot be restored under another.
FINGERPRINT_FIELDS = (
    "model",
    "objective.prediction",
    "data.resolution",
    "data.fps",
    "data.window_s",
    "data.n_mels",
    "data.sr",
    "data.hop",
    "train.ema_decay",
)
# Model fields that change how, not what, is computed: a checkpoint moves freely across them, as across
# config.parallel (orbax reshards onto whatever mesh the restoring run uses).
MODEL_RUNTIME_FIELDS = ("dtype",)
# Fields a fingerprint held in config.model before they were derived from data + codec (ModelIO) or
# moved to config.parallel.
_DERIVED_MODEL_FIELDS = (
    "video_channels",
    "audio_channels",
    "video_fps",
    "audio_fps",
    "num_classes",
    "text_dim",
)
_MOVED_MODEL_FIELDS = ("mesh", "logical_axis_rules", "remat", "attention_impl", "shapes")


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node.to_dict() if hasattr(node, "to_dict") else node


def fingerprint(config) -> dict:
  out = {f: _get(config, f) for f in FINGERPRINT_FIELDS}
  out["model"] = {k: v for k, v in out["model"].items() if k not in MODEL_RUNTIME_FIELDS}
  # What the parameters were built for (derived from data + codec, not stored in the config).
  out["model_io"] = config_lib.model_io(config).parameter_fields()
  # The codec enters through the latents it makes, not its name: latents precomputed with pixel_mel
  # train the same parameters as pixel_mel on the fly.
  out["latent_layout"] = dataclasses.asdict(codec_lib.latent_layout(config.codec, config.data))
  # Standardised latents mean other numbers to the same parameters.
  out["codec"] = {k: list(v) for k, v in codec_lib.latent_norms(config.codec).items()}
  return out


def _upgrade(saved: dict) -> dict:
  """A fingerprint written before model.name named the architecture (it held the size preset), before
  model.head_mlp_dim / zero_init_branches / head_patch_skip / video_patch_bottleneck (linear heads,
  random init, no skip, a full-rank patch embedding) or before the codec could standardise its latents
  (it did not), or before the model's input fields were derived (they were stored in its model
  section) and the parallel settings had their own section.
  """
  m = saved.get("model")
  if isinstance(m, dict) and "size" not in m and m.get("name") in ("tiny", "demo", "1b", "5b"):
    saved = dict(saved, model=dict(m, name="joint_dit", size=m["name"]))
  if isinstance(saved.get("model"), dict) and saved["model"].get("name") == "joint_dit":
    # DiT fields added later, at the value every run had before
    saved = dict(
        saved,
        model={
            **{
                "head_mlp_dim": 0,
                "zero_init_branches": False,
                "head_patch_skip": False,
                "video_patch_bottleneck": 0,
                "video_head_bottleneck": 0,
            },
            **saved["model"],
        },
    )
  m = saved.get("model")
  if isinstance(m, dict) and "model_io" not in saved and all(k in m for k in _DERIVED_MODEL_FIELDS):
    saved = dict(
        saved,
        model={k: v for k, v in m.items() if k not in _DERIVED_MODEL_FIELDS + _MOVED_MODEL_FIELDS},
        model_io={k: m[k] for k in _DERIVED_MODEL_FIELDS},
    )
  if "codec" not in saved:
    saved = dict(saved, codec={"video_norm": [0.0, 1.0], "audio_norm": [0.0, 1.0]})
  return saved


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
  if isinstance(a, dict) and isinstance(b, dict):
    out = []
    for k in sorted(set(a) | set(b)):
      out += _diff(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{prefix}.{k}" if prefix else k)
    return out
  return (
      []
      if a == b or (isinstance(a, (list, tuple)) and list(a) == list(b))
      else [f"config.{prefix}: checkpoint has {a!r}, config has {b!r}"]
  )


def check_compatible(saved: dict, config, where: str) -> None:
  """Raises ValueError naming every shape-relevant config field that differs from the checkpoint's."""
  diffs = _diff(_upgrade(saved), fingerprint(config))
  if diffs:
    raise ValueError(
        f"The checkpoint in {where} was written with an incompatible config:\n  "
        + "\n  ".join(diffs)
        + "\nFix: use the same values (e.g. --config.model.depth=...), or start in a fresh --workdir."
    )


# Replica-parallel saving splits every replicated array into one share per replica, so that all hosts
# write (a data-parallel pod's replicated weights are written by all hosts, not by host 0 alone). A
# share costs a device slice program (compiled per shape, per process) and a write of its own; under
# 1 MiB that costs more than splitting saves, so smaller shares are not split: replica 0 writes the
# array whole. Large weights are still split. (Measured on the 2-process test: 2.5 s less per launch.)
MIN_REPLICA_SLICE_BYTES = 1 << 20


@functools.cache
def _register_array_handler() -> None:
  """Saves jax.Arrays with orbax's default ArrayHandler, less splitting below MIN_REPLICA_SLICE_BYTES.

  StandardSave reads orbax's global type-handler registry, so this replaces its jax.Array entry (once
  per process) with the default handler with the threshold set (orbax internals: syncdpo_jax/_internals.py).
  """
  _internals.orbax_register_array_handler(MIN_REPLICA_SLICE_BYTES)


def make_manager(
    workdir: str, *, max_to_keep: int, save_every: int, async_save: bool
) -> ocp.CheckpointManager:
  """Every process must create one (and take part in every save/restore): each writes its own shards
  and process 0 commits the checkpoint (the rename) once all have finished."""
  _register_array_handler()
  if jax.process_count() > 1:
    # orbax's barriers default to device collectives, which on CPU (gloo) give up when a process is
    # more than 30 s late; the coordination service's barriers wait as long as orbax asks.
    flags.FLAGS.experimental_orbax_use_distributed_barrier = True
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep,
      save_interval_steps=save_every,
      create=True,
      enable_async_checkpointing=async_save,
      cleanup_tmp_directories=True,
  )
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=options,
      item_names=("params", "ema", "train", "data", "meta"),
  )


def save(mgr: ocp.CheckpointManager, step: int, state, data_iter, config, *, force: bool = False) -> bool:
  """Saves (asynchronously where enabled). The iterator state is captured before returning."""
  args = dict(
      params=ocp.args.StandardSave(state.params),
      train=ocp.args.StandardSave(state.replace(params=None, ema_params=None)),
      meta=ocp.args.JsonSave(fingerprint(config)),
  )
  if state.ema_params is not None:
    args["ema"] = ocp.args.StandardSave(state.ema_params)
  if data_iter is not None:
    args["data"] = grain.checkpoint.CheckpointSave(data_iter)
  return mgr.save(step, args=ocp.args.Composite(**args), force=force)


def save_params(workdir: str, params, config) -> str:
  """Writes `params` (on any sharding) as step 0 of `workdir`'s checkpoints with config's fingerprint:
  the layout `config.init_from=workdir` restores from (a converted model). Returns the step folder."""
  _register_array_handler()
  root = os.path.join(os.path.abspath(workdir), "checkpoints")
  with ocp.CheckpointManager(
      root, item_names=("params", "meta"), options=ocp.CheckpointManagerOptions(create=True)
  ) as mgr:
    if mgr.latest_step() is not None:
      raise FileExistsError(f"{root} already holds checkpoints; write the converted model to a fresh --out")
    mgr.save(
        0,
        args=ocp.args.Composite(
            params=ocp.args.StandardSave(params), meta=ocp.args.JsonSave(fingerprint(config))
        ),
    )
    mgr.wait_until_finished()
  return os.path.join(root, "0")


def _abstract(tree):
  """ShapeDtypeStructs carrying the target sharding, so orbax restores straight onto the mesh."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _check_data_process_count(data_dir) -> None:
  """The iterator position is saved per process (grain writes process_<i>-of-<n>.json): a resume
  must run as many processes as the run that saved it."""
  want = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
  if not data_dir.exists() or (data_dir / want).exists():
    return
  have = sorted(p.name for p in data_dir.iterdir() if p.name.startswith("process_"))
  raise ValueError(
      f"{data_dir} holds the data iterator state of {have}, not {want}: that checkpoint was written "
      f"by a run with another number of processes than this one ({jax.process_count()}). Fix: resume "
      "with the same number of processes (hosts), or start a fresh --workdir with "
      "--config.init_from=<that workdir> (parameters only)."
  )


def restore(mgr: ocp.CheckpointManager, step: int, state_like, data_iter, config):
  """Restores the full TrainState (and the iterator in place) at `step`.

  `state_like`: a TrainState of arrays or ShapeDtypeStructs with shardings (the restore target).
  """
  meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  check_compatible(meta, config, mgr.directory)
  args = dict(
      params=ocp.args.StandardRestore(_abstract(state_like.params)),
      train=ocp.args.StandardRestore(_abstract(state_like.replace(params=None, ema_params=None))),
  )
  if state_like.ema_params is not None:
    args["ema"] = ocp.args.StandardRestore(_abstract(state_like.ema_params))
  if data_iter is not None:
    _check_data_process_count(mgr.directory / str(step) / "data")
    args["data"] = grain.checkpoint.CheckpointRestore(data_iter)
  out = mgr.restore(step, args=ocp.args.Composite(**args))
  return out["train"].replace(params=out["params"], ema_params=out.get("ema"))


def resolve_init_from(path: str) -> tuple[str, int]:
  """`config.init_from` -> (checkpoints directory, step).

  Accepts a workdir (uses its latest checkpoint), its `checkpoints/` directory, or one step directory.
  """
  path = os.path.abspath(os.path.expanduser(path))
  candidates = [os.path.join(path, "checkpoints"), path]
  for root in candidates:
    if os.path.isdir(root):
      steps = [
          int(d) for d in os.listdir(root) if d.isdigit() and os.path.isdir(os.path.join(root, d, "params"))
      ]
      if steps:
        return root, max(steps)
  base = os.path.basename(path.rstrip("/"))
  if base.isdigit() and os.path.isdir(os.path.join(path, "params")):
    return os.path.dirname(path), int(base)
  raise FileNotFoundError(
      f"config.init_from={path!r} holds no checkpoint (looked for <workdir>/checkpoints/<step>/params, "
      "<dir>/<step>/params and <step-dir>/params). Point it at a finished run's workdir."
  )


def restore_params(path: str, params_like, config):
  """Loads one set of model parameters of the checkpoint at `path` onto the shardings of `params_like`.

  The EMA parameters where the checkpoint has them and `config.load_ema` (the averaged model is the
  one to sample from and to post-train), else the raw ones. Returns (params, the item directory read).
  """
  root, step = resolve_init_from(path)
  item = "ema" if config.load_ema and os.path.isdir(os.path.join(root, str(step), "ema")) else "params"
  with ocp.CheckpointManager(
      root, item_names=(item, "meta"), options=ocp.CheckpointManagerOptions(read_only=True)
  ) as mgr:
    meta = _upgrade(mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
    # Only the model, its output parametrization and the latent layout must agree; the data/optimizer
    # may differ between SFT and DPO.
    model_meta = {
        k: v for k, v in meta.items() if k in ("model", "model_io", "objective.prediction", "latent_layout")
    }
    diffs = _diff(model_meta, {k: v for k, v in fingerprint(config).items() if k in model_meta})
    if diffs:
      raise ValueError(
          f"The checkpoint {path!r} was trained with a different model:\n  "
          + "\n  ".join(diffs)
          + "\nFix: use the same model config as that run."
      )
    out = mgr.restore(
        step, args=ocp.args.Composite(**{item: ocp.args.StandardRestore(_abstract(params_like))})
    )
  return out[item], os.path.join(root, str(step), item)
