"""The only places syncdpo_jax reaches into pinned libraries' internals, each with the version it was
written against (requirements.txt pins them) and why no public API does the job.

Nothing else in the package imports a `_src` module or replaces a library's module or function. When a
pin moves, `tests/test_internals.py` fails here first, naming the library, the version written against
and the internal that changed; each function below also degrades to "not applied" (and says so by its
return value) rather than crash a run when its internal is gone.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Callable

import jax

# Library -> the version the internals below were read against.
WRITTEN_AGAINST = {"orbax-checkpoint": "0.12.8", "jax": "0.10.2", "clu": "0.0.12"}


# --- orbax-checkpoint: the jax.Array handler with a replica-parallel threshold ------------------------
# StandardSave looks jax.Array up in orbax's global type-handler registry. The public
# `ocp.type_handlers.register_type_handler(..., override=True)` logs an override warning on every
# process, and the array-metadata store the default handler is built with has no public constructor.


def orbax_register_array_handler(min_slice_bytes_for_replica_parallel: int) -> None:
  """Replaces orbax's default jax.Array handler by the same handler (same metadata store) with
  `min_slice_bytes_for_replica_parallel` set; no override warning."""
  import orbax.checkpoint as ocp
  from orbax.checkpoint._src.metadata import array_metadata_store
  from orbax.checkpoint._src.serialization import type_handler_registry

  type_handler_registry.GLOBAL_TYPE_HANDLER_REGISTRY.add(
      jax.Array,
      ocp.type_handlers.ArrayHandler(
          array_metadata_store=array_metadata_store.Store(),
          min_slice_bytes_for_replica_parallel=min_slice_bytes_for_replica_parallel,
      ),
      override=True,
      ignore_warnings=True,
  )


# --- clu: TensorBoard event files without TensorFlow --------------------------------------------------
# clu's `metric_writers` package imports `clu.metric_writers.summary_writer`, which imports TensorFlow
# (~600 MB, needed by nothing else here), at import time; no public switch avoids it.

CLU_SUMMARY_WRITER = "clu.metric_writers.summary_writer"


def clu_install_summary_writer(writer_factory: Callable[[str], object]) -> bool:
  """Registers a module under clu's summary-writer name whose `SummaryWriter(logdir)` is
  `writer_factory(logdir)`, before clu is imported, when TensorFlow is absent. Returns whether it did."""
  if CLU_SUMMARY_WRITER in sys.modules or importlib.util.find_spec("tensorflow") is not None:
    return False
  shim = types.ModuleType(CLU_SUMMARY_WRITER)
  shim.__doc__ = "A TensorFlow-free SummaryWriter installed by syncdpo_jax (see syncdpo_jax/_internals.py)."
  shim.SummaryWriter = writer_factory
  sys.modules[CLU_SUMMARY_WRITER] = shim
  return True


# --- jax: one compilation-cache key for every process of a multi-process CPU run ----------------------
# JAX keys its persistent cache partly by a fingerprint of the devices' topology (cache_key.
# _hash_accelerator_config), which on CPU differs per process; there is no option to change it.


def jax_cache_key_module():
  """jax's cache-key module, or None when it (or the function replaced) is not where it was."""
  try:
    from jax._src import cache_key
  except ImportError:
    return None
  return cache_key if callable(getattr(cache_key, "_hash_accelerator_config", None)) else None


def jax_hash_global_devices_in_cache_keys() -> bool:
  """Hashes the global device list (platform, kind, id, owning process) instead of the local topology
  into compilation-cache keys, so every process of a CPU run computes the same key. Returns whether
  it changed anything (False when the internal is gone)."""
  cache_key = jax_cache_key_module()
  if cache_key is None:
    return False

  def hash_global_devices(hash_obj, accelerators) -> None:  # jax's own signature
    for d in accelerators.flat:
      hash_obj.update(f"{d.platform}/{d.device_kind}/{d.id}/{d.process_index};".encode())

  cache_key._hash_accelerator_config = hash_global_devices
  return True
