"""What `launch/main.py` runs: join the other processes (--distributed), print the resolved config and
mesh, then dispatch on config.mode."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from typing import Callable

import jax

# Errors whose message is the whole story for a command-line user (a bad config field, a missing,
# unreadable or corrupt file, a full disk, an unreachable coordinator): they name the file or field.
USER_ERRORS = (ValueError, OSError)
# Libraries whose INFO/WARNING lines are about their own bookkeeping ("Given directory is read only",
# "setting save_interval_steps=0"): kept off the console unless --verbosity asks for them.
QUIET_LIBRARIES = ("orbax", "grain", "tensorflow_datasets", "etils")


class _DropLibraryChatter(logging.Filter):
  """Drops records below ERROR whose source file lies in one of QUIET_LIBRARIES."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR:
      return True
    parts = record.pathname.replace(os.sep, "/").split("/")
    return not any(lib in parts for lib in QUIET_LIBRARIES)


def quiet_console(verbosity_given: bool) -> None:
  """The console shows our progress lines and warnings; `--verbosity` given shows everything."""
  if verbosity_given:
    return
  from absl import logging as absl_logging

  absl_logging.set_verbosity(absl_logging.WARNING)
  absl_logging.get_absl_handler().addFilter(_DropLibraryChatter())


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(1)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing (`app.run(main, flags_parser=parse_flags)`) with one-line errors.

  ml_collections' config flags fail with a chain of KeyError/AttributeError tracebacks for an unknown
  field and an OSError naming no file for a config file that cannot be loaded; this names the flag.
  """
  from absl import flags

  if any(a.split("=")[0] in ("--verbosity", "-v") for a in argv):  # the traceback was asked for
    return flags.FLAGS(argv)
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(f"{e}\n(--helpshort lists the flags)")
  except (KeyError, AttributeError) as e:
    # ml_collections raises AttributeError(KeyError("'name'\nDid you mean ...?")): unwrap to the text.
    while e.args and isinstance(e.args[0], BaseException):
      e = e.args[0]
    msg = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
    first, _, hint = msg.partition("\n")
    name = first.strip("'\"")
    given = [a for a in argv if a.startswith("--config.") and name in a.split("=", 1)[0].split(".")]
    hint = f" {hint.strip()}" if hint.strip() else ""
    _fail(
        f"{given[0] if given else '--config.*'}: the config has no field {name!r}.{hint} Fix: check the "
        "name against the 'Resolved config' a run prints (or the config file's get_config)."
    )
  except OSError as e:
    given = [a for a in argv if a.startswith("--config=") or a == "--config"]
    _fail(
        f"{given[0] if given else '--config'}: cannot load the config file ({e.__cause__ or e}). Fix: "
        "pass an existing file, e.g. --config=configs/demo.py:sft."
    )


def run_cli(fn: Callable[[], object], verbosity_given: bool) -> None:
  """Runs `fn`; a user error ends in one line on stderr (what, where, the fix) and exit status 1.

  The traceback is for whoever debugs the code, not for whoever mistyped a path: it is shown when
  `--verbosity` is given.
  """
  try:
    fn()
  except USER_ERRORS as e:
    if verbosity_given:
      raise
    print(f"error: {e}\n(for the traceback, rerun with --verbosity=0)", file=sys.stderr, flush=True)
    sys.exit(1)


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


def init_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout_s: int = 300,
) -> None:
  """`jax.distributed.initialize` for `launch/main.py --distributed`, with errors a user can act on.

  Arguments left None are auto-detected by JAX (Cloud TPU, SLURM, Open MPI; the coordinator also from
  $JAX_COORDINATOR_ADDRESS). Must run before anything touches a device.

  JAX aborts the whole process (a C++ CHECK, no Python exception) when a worker cannot reach the
  coordinator, so a worker that knows the address first waits for the port itself and raises a clear
  error instead.
  """
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  where = f"process {process_id} of {num_processes}" if process_id is not None else "this process"
  if address and process_id not in (None, 0) and not _wait_for_coordinator(address, timeout_s):
    raise ConnectionError(
        f"--distributed: {where} could not reach the coordinator at {address} within {timeout_s} s "
        "(--distributed_timeout). Process 0 must be running and listen there: check "
        "--coordinator_address / $JAX_COORDINATOR_ADDRESS (process 0's host and a free port), that "
        "process 0 started, and that no firewall blocks the port."
    )
  print(
      f"jax.distributed: {where} connecting to {address or '(auto-detected)'}; waiting up to "
      f"{timeout_s} s for all processes.",
      flush=True,
  )
  try:
    jax.distributed.initialize(
        coordinator_address, num_processes, process_id, initialization_timeout=timeout_s
    )
  except ValueError as e:
    hint = (
        " No cluster environment (Cloud TPU, SLURM, Open MPI) was detected: pass "
        "--coordinator_address=HOST:PORT (process 0's host), --num_processes and --process_id to "
        "every process."
        if None in (address, num_processes, process_id)
        else ""
    )
    raise ValueError(f"--distributed: {e}{hint}") from e
  except jax.errors.JaxRuntimeError as e:
    raise RuntimeError(
        f"--distributed: {where} could not start the JAX distributed runtime at {address}: {e}. "
        "If process 0 could not start its RPC server, the port is in use: pick another in "
        "--coordinator_address."
    ) from e
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
  from syncdpo_jax import _internals

  if not _internals.jax_hash_global_devices_in_cache_keys():
    return False
  # With equal keys, a program missing from the cache is compiled by one process and handed to the
  # others through the coordination service instead of compiled by every process at once.
  jax.config.update("jax_share_binary_between_hosts", True)
  return True


def run(config, workdir: str):
  """Runs `config.mode` ('sft' | 'dpo' | 'eval' | 'sample' | 'codec') in `workdir`."""
  from syncdpo_jax import config_lib

  config_lib.validate(config)
  if jax.process_index() == 0:
    print("Resolved config:\n" + str(config), flush=True)
    # Derived from data + codec when the model is built, after the command line's overrides.
    print(f"Model inputs: {config_lib.model_io(config)}", flush=True)
    print(
        f"Devices: {jax.device_count()} ({jax.devices()[0].platform}), processes: "
        f"{jax.process_count()}, mesh: {dict(config.parallel.mesh)}",
        flush=True,
    )
  if config.mode == "codec":
    from syncdpo_jax import autoencoder

    return autoencoder.train(config, workdir)
  if config.mode in ("sft", "dpo"):
    from syncdpo_jax.train import loop

    return loop.train(config, workdir)
  from syncdpo_jax.runs import evaluate, sampling

  if config.mode == "eval":
    return evaluate.evaluate(config, workdir)
  return sampling.sample_run(config, workdir)
