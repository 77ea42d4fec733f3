"""The pinned libraries' internals syncdpo_jax relies on (syncdpo_jax/_internals.py) are still there.

Each check fails with the library, the version the code was written against and the installed one, so
an upgrade that moves an internal says exactly what to port.
"""

import importlib.metadata
import importlib.util
import inspect
import sys

import jax
import pytest

from syncdpo_jax import _internals


def _where(lib: str) -> str:
  return (
      f"{lib} {importlib.metadata.version(lib)} installed; syncdpo_jax/_internals.py was written against "
      f"{_internals.WRITTEN_AGAINST[lib]}: port the function there"
  )


def test_orbax_array_handler_registry():
  import orbax.checkpoint as ocp

  try:
    from orbax.checkpoint._src.metadata import array_metadata_store
    from orbax.checkpoint._src.serialization import type_handler_registry
  except ImportError as e:
    pytest.fail(f"{_where('orbax-checkpoint')}: {e}")
  assert hasattr(array_metadata_store, "Store"), _where("orbax-checkpoint")
  _internals.orbax_register_array_handler(1 << 20)
  handler = type_handler_registry.GLOBAL_TYPE_HANDLER_REGISTRY.get(jax.Array)
  assert isinstance(handler, ocp.type_handlers.ArrayHandler), _where("orbax-checkpoint")
  # The threshold is what the replacement is for; orbax keeps it on the handler.
  assert getattr(handler, "_min_slice_bytes_for_replica_parallel", None) == 1 << 20, _where(
      "orbax-checkpoint"
  )


def test_clu_summary_writer_is_the_tensorflow_free_one(tmp_path):
  from syncdpo_jax.train import writers  # installs the module before clu is imported

  if importlib.util.find_spec("tensorflow") is not None:
    pytest.skip("TensorFlow is installed: clu's own SummaryWriter is used")
  from clu.metric_writers import summary_writer

  assert summary_writer is sys.modules[_internals.CLU_SUMMARY_WRITER], _where("clu")
  w = summary_writer.SummaryWriter(str(tmp_path))
  assert isinstance(w, writers.TensorBoardXWriter), _where("clu")
  w.write_scalars(1, {"x": 1.0})
  w.close()
  assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


def test_jax_cache_key_internal():
  cache_key = _internals.jax_cache_key_module()
  assert cache_key is not None, f"{_where('jax')}: jax._src.cache_key._hash_accelerator_config is gone"
  # Replaced by a function of the same signature (hash_obj, accelerators: the devices' ndarray).
  params = list(inspect.signature(cache_key._hash_accelerator_config).parameters)
  assert params == ["hash_obj", "accelerators"], f"{_where('jax')}: its parameters are now {params}"
