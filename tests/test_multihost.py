"""Multi-host training for real: `launch/main.py --distributed` in 2 and 4 processes on localhost.

Each process is the user's command with jax.distributed on a free localhost port, CPU collectives
through gloo and its own virtual CPU devices (2 x 4 and 4 x 2 = the conftest's 8). This is the code
path of a TPU pod (per-process data rows, a global batch, multi-process orbax checkpoints, a
preemption agreed across hosts); here it runs on a laptop CPU first.

The per-step losses must equal those of one process on 8 devices with the same global batch: the
data pipeline gives every process its rows of the same global batches (pipeline.make_dataset), so
only the order of the cross-process float reductions differs. RTOL is the tightest decade that
holds: the largest difference measured is 7.7e-8 relative (a float32 ulp or so of the loss).

Cost (2 quiet cores): the 2-process test launches the CLI twice (killed run, resume): 52 s from a cold
compilation cache (one process compiles the step and hands it to the other; the resume reads it from
the cache), 47 s warm; plus 11-19 s for the single-process reference. Per launch and process, what is
left is importing (~3.5 s), tracing the step (~4-5 s: ~5800 equations, half of them the per-leaf
optimizer and EMA updates), building the state and the two saves. The 4-process test is marked slow.
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from syncdpo_jax import data as data_lib
from syncdpo_jax import launch_lib
from syncdpo_jax.data import pipeline
from syncdpo_jax.train import checkpoint as ckpt_lib
from syncdpo_jax.train import loop
from syncdpo_jax.train import writers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import test as test_config  # noqa: E402

RTOL = 1e-6
# Every run here (the processes and the reference) uses these on top of configs/test.py. A constant
# LR schedule makes step k independent of train.num_steps, so a killed run, its resume and the
# reference agree step by step whatever their lengths (and share one compiled step each).
OVERRIDES = {
    "optim.schedule": "constant",
    "train.log_every": 1,
    "train.checkpoint_every": 1,
    "train.keep_checkpoints": 100,
}
LONG = 100_000  # num_steps of a run that is stopped from outside
TIMEOUT_S = 600  # per launch


def _config(data_dir, num_steps):
  c = test_config.get_config("sft")
  c.data.data_dir = str(data_dir)
  for dotted, value in OVERRIDES.items():
    group, field = dotted.split(".")
    c[group][field] = value
  c.train.num_steps = num_steps
  return c


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """The test dataset, built once here so that no launched process builds it."""
  d = tmp_path_factory.getbasetemp() / "tfds_shared"  # the directory tests/test_train.py uses
  data_lib.build_dataset(_config(d, 1).data)
  return d


class _Reference:
  """One process on the conftest's 8 devices; extended on demand (a resume is exact)."""

  def __init__(self, workdir, data_dir):
    self.workdir, self.data_dir, self.steps = workdir, data_dir, 0

  def losses(self, n: int) -> dict[int, float]:
    if n > self.steps:
      c = _config(self.data_dir, n)
      c.train.checkpoint_every = 10 * n  # only the final one, which an extension resumes from
      loop.train(c, str(self.workdir))
      self.steps = n
    got = _losses(self.workdir)
    return {s: got[s] for s in range(1, n + 1)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
  ref = _Reference(tmp_path_factory.mktemp("multihost_ref") / "run", data_dir)
  ref.losses(6)
  return ref


def _losses(workdir) -> dict[int, float]:
  """step -> loss from metrics.jsonl; a resumed step's row replaces the killed run's."""
  return {int(r["step"]): r["loss"] for r in writers.read_jsonl(os.path.join(workdir, "metrics.jsonl"))}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _launch(workdir, data_dir, nproc: int, ndev: int, num_steps: int, tag: str) -> list:
  """`nproc` processes of `launch/main.py --distributed`, `ndev` CPU devices each; logs in workdir/../."""
  port = _free_port()
  # The processes inherit the conftest's compilation cache and XLA flags; cache misses are logged
  # (JAX_EXPLAIN_CACHE_MISSES) so a test can check which programs a launch compiled.
  env = dict(
      os.environ,
      JAX_PLATFORMS="cpu",
      JAX_NUM_CPU_DEVICES=str(ndev),
      JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
      JAX_EXPLAIN_CACHE_MISSES="1",
  )
  cmd = [
      sys.executable,
      os.path.join(REPO, "launch", "main.py"),
      "--config",
      os.path.join(REPO, "configs", "test.py"),
      "--workdir",
      str(workdir),
      f"--config.data.data_dir={data_dir}",
      f"--config.train.num_steps={num_steps}",
      *[f"--config.{k}={v}" for k, v in OVERRIDES.items()],
      "--distributed",
      f"--coordinator_address=localhost:{port}",
      f"--num_processes={nproc}",
  ]
  procs = []
  for i in range(nproc):
    with open(_log(workdir, tag, i), "w") as log:
      procs.append(
          subprocess.Popen(cmd + [f"--process_id={i}"], env=env, stdout=log, stderr=subprocess.STDOUT)
      )
  return procs


def _log(workdir, tag, i):
  return os.path.join(os.path.dirname(workdir), f"{tag}_process{i}.log")


def _tail(workdir, tag, n: int) -> str:
  out = []
  for i in range(n):
    with open(_log(workdir, tag, i)) as f:
      out.append(f"--- {tag} process {i} ---\n" + "".join(f.readlines()[-25:]))
  return "\n".join(out)


def _kill_all(procs):
  for p in procs:
    if p.poll() is None:
      p.kill()
    p.wait()


def _wait_all(procs, workdir, tag) -> None:
  deadline = time.time() + TIMEOUT_S
  for p in procs:
    try:
      p.wait(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
      _kill_all(procs)
      pytest.fail(f"{tag}: processes still running after {TIMEOUT_S} s\n" + _tail(workdir, tag, len(procs)))
  rcs = [p.returncode for p in procs]
  assert rcs == [0] * len(procs), f"{tag}: exit codes {rcs}\n" + _tail(workdir, tag, len(procs))


def _complete_checkpoints(workdir) -> list[int]:
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(s) for s in os.listdir(d) if s.isdigit()) if os.path.isdir(d) else []


def _wait_until(cond, procs, workdir, tag, what: str):
  deadline = time.time() + TIMEOUT_S
  while not cond():
    dead = [i for i, p in enumerate(procs) if p.poll() is not None]
    if dead or time.time() > deadline:
      _kill_all(procs)
      pytest.fail(f"{tag}: never saw {what} (exited: {dead})\n" + _tail(workdir, tag, len(procs)))
    time.sleep(0.1)


def _assert_losses_equal(got: dict, want: dict):
  assert sorted(got) == sorted(want), (sorted(got), sorted(want))
  steps = sorted(want)
  np.testing.assert_allclose([got[s] for s in steps], [want[s] for s in steps], rtol=RTOL)


def test_each_process_reads_its_rows_of_the_single_process_batches(data_dir):
  """2 processes' batches, concatenated in process order, are the batches of one process."""
  cfg = _config(data_dir, 1).data
  cfg.batch_size = 4  # 2 rows per process; two batches cross a global-batch boundary
  one = iter(pipeline.make_dataset(cfg, cfg.split_train, seed=0, train=True))
  two = [
      iter(pipeline.make_dataset(cfg, cfg.split_train, seed=0, train=True, process_index=p, process_count=2))
      for p in (0, 1)
  ]
  for _ in range(2):
    want, halves = next(one), [next(it) for it in two]
    for k in ("video", "audio", "label", "events"):
      np.testing.assert_array_equal(np.concatenate([h[k] for h in halves]), want[k])


def test_a_worker_that_cannot_reach_the_coordinator_fails_clearly():
  port = _free_port()  # nothing listens there
  with pytest.raises(ConnectionError, match="could not reach the coordinator.*--coordinator_address"):
    launch_lib.init_distributed(f"localhost:{port}", 2, 1, timeout_s=1)


def test_two_processes_killed_mid_run_resume_to_the_single_process_losses(tmp_path, data_dir, reference):
  """2 x 4 devices; SIGKILL one process while it saves a checkpoint every step; restart both."""
  workdir = str(tmp_path / "run")
  procs = _launch(workdir, data_dir, 2, 4, LONG, "first")
  try:
    _wait_until(
        lambda: any(s >= 2 for s in _complete_checkpoints(workdir)),
        procs,
        workdir,
        "first",
        "a checkpoint of step >= 2",
    )
    procs[1].kill()  # SIGKILL: no handler runs; the next step's save is likely in flight
    procs[1].wait(timeout=60)
    # Process 0 now waits in a collective for its dead peer. JAX's coordination service would
    # abort it after its heartbeat timeout (100 s); a pod's scheduler kills and restarts the job.
    time.sleep(1)
  finally:
    _kill_all(procs)
  done = _complete_checkpoints(workdir)
  assert done and done[-1] >= 2, done
  for step in done:  # only complete checkpoints carry a bare step name; each has every item
    d = os.path.join(workdir, "checkpoints", str(step))
    assert {"params", "train", "data", "meta"} <= set(os.listdir(d)), (step, os.listdir(d))
    assert {"process_0-of-2.json", "process_1-of-2.json"} <= set(os.listdir(os.path.join(d, "data")))
  last = done[-1]

  procs = _launch(workdir, data_dir, 2, 4, last + 2, "resumed")
  try:
    _wait_all(procs, workdir, "resumed")
  finally:
    _kill_all(procs)
  with open(_log(workdir, "resumed", 0)) as f:
    assert f"checkpoints/{last} (step {last})" in f.read(), _tail(workdir, "resumed", 2)
  for i in range(2):  # the first launch cached the step for both processes (launch_lib.init_distributed)
    with open(_log(workdir, "resumed", i)) as f:
      assert "CACHE MISS for 'jit_sft_step'" not in f.read(), f"process {i} compiled the step again"
  _assert_losses_equal(_losses(workdir), reference.losses(last + 2))
  # This pytest process is 1 process: it must refuse the 2 processes' data positions, clearly.
  with pytest.raises(ValueError, match="resume with the same number of processes"):
    ckpt_lib._check_data_process_count(pathlib.Path(workdir) / "checkpoints" / str(last) / "data")


@pytest.mark.slow  # ~100 s
def test_four_processes_stop_together_on_one_sigterm(tmp_path, data_dir, reference):
  """4 x 2 devices; a preemption notice (SIGTERM) reaches one process only: all four save the same
  step and exit cleanly, and the losses so far equal the single-process run's."""
  workdir = str(tmp_path / "run")
  procs = _launch(workdir, data_dir, 4, 2, LONG, "sigterm")
  try:
    metrics = os.path.join(workdir, "metrics.jsonl")
    _wait_until(
        lambda: os.path.exists(metrics) and _losses(workdir), procs, workdir, "sigterm", "a logged step"
    )
    procs[2].send_signal(signal.SIGTERM)
    _wait_all(procs, workdir, "sigterm")
  finally:
    _kill_all(procs)
  saved = set()
  for i in range(4):
    with open(_log(workdir, "sigterm", i)) as f:
      lines = [l for l in f if l.startswith("SIGTERM: saved checkpoint")]
    assert len(lines) == 1, _tail(workdir, "sigterm", 4)
    saved.add(int(lines[0].split()[3]))
  assert len(saved) == 1, saved
  step = saved.pop()
  assert _complete_checkpoints(workdir)[-1] == step
  _assert_losses_equal(_losses(workdir), reference.losses(step))
