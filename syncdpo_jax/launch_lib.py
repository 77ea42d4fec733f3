"""What `launch/main.py` runs: join the other processes (--distributed), print the resolved config and
mesh, then dispatch on config.mode."""
from __future__ import annotations

import os
import socket
import time

import jax


def _wait_for_coordinator(address: str, timeout_s: float) -> bool:
  """True once a TCP connection to `address` ("host:port") succeeds, False after `timeout_s`."""
  host, port = address.rsplit(":", 1)
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
        return True
    except OSError:
      if time.monotonic() >= deadline:
        return False
      time.sleep(0.5)


def init_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, *, timeout_s: int = 300) -> None:
  """`jax.distributed.initialize` for `launch/main.py --distributed`, with errors a user can act on.

  Arguments left None are auto-detected by JAX (Cloud TPU, SLURM, Open MPI; the coordinator also from
  $JAX_COORDINATOR_ADDRESS). Must run before anything touches a device.

  JAX aborts the whole process (a C++ CHECK, no Python exception) when a worker cannot reach the
  coordinator, so a worker that knows the address first waits for the port itself and raises a clear
  error instead.
  """
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  where = (f"process {process_id} of {num_processes}" if process_id is not None
           else "this process")
  if address and process_id not in (None, 0) and not _wait_for_coordinator(address, timeout_s):
    raise ConnectionError(
        f"--distributed: {where} could not reach the coordinator at {address} within {timeout_s} s "
        "(--distributed_timeout). Process 0 must be running and listen there: check "
        "--coordinator_address / $JAX_COORDINATOR_ADDRESS (process 0's host and a free port), that "
        "process 0 started, and that no firewall blocks the port.")
  print(f"jax.distributed: {where} connecting to {address or '(auto-detected)'}; waiting up to "
        f"{timeout_s} s for all processes.", flush=True)
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=timeout_s)
  except ValueError as e:
    hint = (" No cluster environment (Cloud TPU, SLURM, Open MPI) was detected: pass "
            "--coordinator_address=HOST:PORT (process 0's host), --num_processes and --process_id to "
            "every process." if None in (address, num_processes, process_id) else "")
    raise ValueError(f"--distributed: {e}{hint}") from e
  except jax.errors.JaxRuntimeError as e:
    raise RuntimeError(
        f"--distributed: {where} could not start the JAX distributed runtime at {address}: {e}. "
        "If process 0 could not start its RPC server, the port is in use: pick another in "
        "--coordinator_address.") from e
  _process_independent_cpu_cache_keys()


def _process_independent_cpu_cache_keys() -> bool:
  """Lets the processes of a multi-process CPU run share compiled programs instead of each compiling.

  JAX keys its persistent compilation cache partly by the devices' topology, and on CPU that
  fingerprint differs per process (each describes its own host), so the same program gets another key
  in every process. Only process 0 writes the cache, so every other process compiled every program
  again on every launch: a resumed CPU run paid its full compile time each time. The program, its
  global devices and its compile options are the same in every process, so hashing the global device
  list (platform, kind, id, owning process) instead makes the keys equal across processes and the
  cache serves them all. Accelerators are left alone (TPU topologies are global; JAX already makes GPU
  keys process-independent). A no-op when the JAX internals it wraps are not there. Returns whether
  it changed anything.
  """
  if jax.process_count() == 1 or jax.default_backend() != "cpu":
    return False
  try:
    from jax._src import cache_key
  except ImportError:
    return False
  if not callable(getattr(cache_key, "_hash_accelerator_config", None)):
    return False

  def hash_global_devices(hash_obj, devices) -> None:
    for d in devices.flat:
      hash_obj.update(f"{d.platform}/{d.device_kind}/{d.id}/{d.process_index};".encode())

  cache_key._hash_accelerator_config = hash_global_devices
  # With equal keys, a program missing from the cache is compiled by one process and handed to the
  # others through the coordination service instead of compiled by every process at once.
  jax.config.update("jax_share_binary_between_hosts", True)
  return True


def run(config, workdir: str):
  """Runs `config.mode` ('sft' | 'dpo' | 'eval' | 'sample') in `workdir`."""
  from syncdpo_jax import config_lib
  config_lib.validate(config)
  if jax.process_index() == 0:
    print("Resolved config:\n" + str(config), flush=True)
    print(f"Devices: {jax.device_count()} ({jax.devices()[0].platform}), processes: "
          f"{jax.process_count()}, mesh: {dict(config.model.mesh)}", flush=True)
  if config.mode in ("sft", "dpo"):
    from syncdpo_jax.train import loop
    return loop.train(config, workdir)
  from syncdpo_jax.train import evaluate
  if config.mode == "eval":
    return evaluate.evaluate(config, workdir)
  return evaluate.sample_run(config, workdir)
