"""Training: steps learn, resume is exact, SIGTERM leaves a restorable checkpoint, sharding is exact,
bad configs stop before compiling."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from syncdpo_jax import config_lib
from syncdpo_jax.data import pipeline
from syncdpo_jax.model import sharding as sharding_lib
from syncdpo_jax.train import loop, pair_sources
from syncdpo_jax.train import checkpoint as ckpt_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from configs import test as test_config  # noqa: E402


def _config(tmp_path, mode="sft", **train):
  c = test_config.get_config(mode)
  c.data.data_dir = str(tmp_path.parent / "tfds_shared")  # built once per test session directory
  for k, v in train.items():
    c.train[k] = v
  return c


def _fixed_batch(config, n=None):
  ds = pipeline.make_dataset(config.data, config.data.split_train, seed=0, train=True)
  b = next(iter(ds))
  keys = pair_sources.CLIP_KEYS + pair_sources.CONTEXT_KEYS  # context: DPO configs' timing rules
  return {k: jnp.asarray(b[k]) for k in keys if k in b}


def _one_device_mesh(config):
  return sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])


def _run_steps(setup, batch, n):
  state, losses = setup.state, []
  with jax.set_mesh(setup.mesh):
    batch = jax.device_put(batch, setup.batch_sharding)
    for _ in range(n):
      state, m = setup.step_fn(state, batch)
      losses.append(float(m["loss"]))
  return state, losses


def test_sft_loss_decreases_on_syncbench_synth(tmp_path):
  c = _config(tmp_path, num_steps=30)
  c.optim.warmup_steps = 1
  c.optim.schedule = "constant"
  setup = loop.build(c, mesh=_one_device_mesh(c))
  _, losses = _run_steps(setup, _fixed_batch(c), 30)
  assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory):
  """A real SFT checkpoint to start DPO from (DPO refuses to run without a reference); built once."""
  tmp = tmp_path_factory.mktemp("sft_init")
  c = _config(tmp, num_steps=2)
  loop.train(c, str(tmp / "sft"))
  return str(tmp / "sft")


def test_dpo_step_decreases_loss_on_fixed_batch(tmp_path, sft_dir):
  c = _config(tmp_path, "dpo")
  c.init_from = sft_dir
  c.optim.warmup_steps = 1
  c.optim.schedule = "constant"
  setup = loop.build(c, mesh=_one_device_mesh(c))
  # Policy == reference at init: the first loss is exactly log 2.
  state, losses = _run_steps(setup, _fixed_batch(c), 6)
  np.testing.assert_allclose(losses[0], np.log(2.0), rtol=1e-5)
  assert losses[-1] < losses[0], losses
  assert int(state.curriculum.step) == 6


def assert_same_train_state(a, b) -> None:
  """Two TrainStates agree: same step, and params, optimizer moments and curriculum within 1e-6."""
  assert int(a.step) == int(b.step)
  for x, y in zip(
      jax.tree.leaves((a.params, a.opt_state, a.curriculum)),
      jax.tree.leaves((b.params, b.opt_state, b.curriculum)),
  ):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6, rtol=0)


def test_resume_is_exact(tmp_path, sft_dir):
  """N steps straight == N/2 steps, stop (as a preemption would), fresh build, resume N/2 more."""
  c = _config(tmp_path, "dpo", num_steps=6, checkpoint_every=100)
  c.init_from = sft_dir
  straight = loop.train(c, str(tmp_path / "straight"))
  loop.train(c, str(tmp_path / "resumed"), stop_after=3)
  resumed = loop.train(c, str(tmp_path / "resumed"))
  assert int(straight.step) == 6
  assert_same_train_state(straight, resumed)
  # Same data order: the logged losses of steps 4..6 agree too.
  rows = lambda d: {r["step"]: r["loss"] for r in map(json.loads, open(d / "metrics.jsonl"))}
  s, r = rows(tmp_path / "straight"), rows(tmp_path / "resumed")
  for step in (4, 6):
    np.testing.assert_allclose(s[step], r[step], rtol=1e-6)


def test_ema_is_checkpointed_resumed_and_loaded(tmp_path):
  """The EMA survives a resume exactly, and loading a checkpoint's weights gives the EMA by default."""
  c = _config(tmp_path, num_steps=4, checkpoint_every=100, ema_decay=0.5)
  straight = loop.train(c, str(tmp_path / "straight"))
  loop.train(c, str(tmp_path / "resumed"), stop_after=2)
  resumed = loop.train(c, str(tmp_path / "resumed"))
  for a, b in zip(jax.tree.leaves(straight.ema_params), jax.tree.leaves(resumed.ema_params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=0)
  ema, src = ckpt_lib.restore_params(str(tmp_path / "straight"), straight.params, c)
  assert src.endswith("ema"), src
  c.load_ema = False
  raw, src_raw = ckpt_lib.restore_params(str(tmp_path / "straight"), straight.params, c)
  assert src_raw.endswith("params"), src_raw
  gap = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree.leaves(ema), jax.tree.leaves(raw)))
  assert gap > 1e-4  # four steps at decay 0.5: the average lags the weights
  for got, want in ((ema, straight.ema_params), (raw, straight.params)):
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("mode", ["sft", "dpo"])
def test_grad_accumulation_equals_one_big_batch(tmp_path, sft_dir, mode):
  """optim.grad_accum_steps=2 over a batch of 8 == 1 over the same 8: params, EMA and curriculum after
  3 updates, one step each, on a data x fsdp mesh (each micro-batch spread over the batch axes).

  Stepped with SGD: Adam divides each gradient element by its own running magnitude, so where the
  gradient is pure roundoff (DPO at policy == reference: parameters that treat winner and loser
  alike) it turns float summation order into lr-sized steps; SGD shows what accumulation computes.
  """
  from syncdpo_jax.train import steps

  runs = []
  for accum in (1, 2):
    c = _config(tmp_path, mode, ema_decay=0.9)
    c.init_from = sft_dir if mode == "dpo" else ""
    c.optim.grad_accum_steps = accum
    c.parallel.mesh = {"data": 2, "fsdp": 2, "tensor": 1}
    # beta multiplies float32 roundoff of the errors (~1e-7 of ~1) into the margin: at the test
    # config's 500 any change of matmul shapes moves the loss by ~1e-5, accumulation or not.
    c.dpo.beta = 5.0
    setup = loop.build(c, mesh=sharding_lib.make_mesh(c.parallel.mesh, devices=jax.devices()[:4]))
    sgd = optax.sgd(0.05)
    make = steps.make_dpo_step if mode == "dpo" else steps.make_sft_step
    step = jax.jit(make(setup.graphdef, setup.rest, setup.codec, sgd, c))
    state = setup.state.replace(opt_state=sgd.init(setup.state.params))
    losses = []
    with jax.set_mesh(setup.mesh):
      batch = jax.device_put(_fixed_batch(c), setup.batch_sharding)
      for _ in range(3):
        state, m = step(state, batch)
        losses.append(float(m["loss"]))
    runs.append((state, losses))
  (s1, l1), (s2, l2) = runs
  assert int(s1.step) == int(s2.step) == 3
  np.testing.assert_allclose(l1, l2, rtol=1e-6)
  for a, b in zip(
      jax.tree.leaves((s1.params, s1.ema_params, s1.curriculum)),
      jax.tree.leaves((s2.params, s2.ema_params, s2.curriculum)),
  ):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-6)


def test_sharded_step_equals_single_device(tmp_path):
  c = _config(tmp_path)
  c.data.batch_size = 4
  batch = _fixed_batch(c)
  single = loop.build(c, mesh=_one_device_mesh(c))
  c8 = _config(tmp_path)
  c8.parallel.mesh = {"data": 2, "fsdp": 2, "tensor": 2}
  sharded = loop.build(c8)
  assert dict(sharded.mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
  s1, l1 = _run_steps(single, batch, 2)
  s8, l8 = _run_steps(sharded, batch, 2)
  np.testing.assert_allclose(l1, l8, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s8.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_bad_configs_fail_before_compiling(tmp_path):
  c = _config(tmp_path, "dpo")
  with pytest.raises(ValueError, match="init_from"):
    config_lib.validate(c)
  c.init_from = "/nonexistent"
  c.dpo.beta = 0.0
  with pytest.raises(ValueError, match="dpo.beta"):
    config_lib.validate(c)
  c = _config(tmp_path)
  c.mode = "train"
  with pytest.raises(ValueError, match="config.mode"):
    config_lib.validate(c)
  c = _config(tmp_path)
  c.data.batch_size = 3
  c.parallel.mesh = {"data": 2, "fsdp": 1, "tensor": 1}
  with pytest.raises(ValueError, match="batch"):
    loop.build(c, mesh=sharding_lib.make_mesh(c.parallel.mesh, devices=jax.devices()[:2]))


@pytest.mark.parametrize(
    "override, says",
    [
        ("--config.train.nope=3", "--config.train.nope=3: the config has no field 'nope'"),
        # A near miss: the field named, with ml_collections' suggestion, not its repr.
        ("--config.train.num_step=3", "no field 'num_step'. Did you mean \"num_steps\" instead of"),
        ("--config.train.num_steps=abc", "invalid literal for int()"),
        ("--config.model.video_heads=3", "model.video_dim=32 is not divisible by model.video_heads=3"),
        ("--config.mode=dpo", "needs a reference model"),
    ],
)
def test_user_errors_are_one_message_without_traceback(tmp_path, override, says):
  cmd = [
      sys.executable,
      os.path.join(REPO, "launch", "main.py"),
      f"--config={REPO}/configs/test.py",
      f"--workdir={tmp_path}/w",
      f"--config.data.data_dir={tmp_path}/tfds",
      override,
  ]
  r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
  assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
  assert says in r.stderr and r.stderr.startswith("error: ") and "Traceback" not in r.stderr, r.stderr
  # --verbosity gives the traceback back to whoever debugs.
  r = subprocess.run(cmd + ["--verbosity=0"], capture_output=True, text=True, timeout=300)
  assert r.returncode != 0 and "Traceback" in r.stderr


def test_cli_overrides_of_data_and_codec_rederive_the_model(tmp_path):
  """Fields the model derives (channels, rates, token grid) follow command-line data/codec changes."""
  w = tmp_path / "w"
  cmd = [
      sys.executable,
      os.path.join(REPO, "launch", "main.py"),
      f"--config={REPO}/configs/test.py",
      f"--workdir={w}",
      f"--config.data.data_dir={tmp_path.parent / 'tfds_shared'}",
      "--config.train.num_steps=2",
      "--config.data.fps=5",
      "--config.data.window_s=1.6",
      "--config.data.resolution=24",
      "--config.codec.patch=2",
  ]
  r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  rows = [json.loads(line) for line in open(w / "metrics.jsonl")]
  assert rows[-1]["step"] == 2 and np.isfinite(rows[-1]["loss"])
  printed = r.stdout[r.stdout.index("Model inputs:") :]
  # 1.6 s at 5 fps of 24 px frames in 2 px cells: 8 frames of 12x12x12 latents.
  for field in ("video_channels=12", "video_fps=5.0", "T_v=8", "h=12", "w=12"):
    assert field in printed, field


def test_incompatible_checkpoint_is_refused(tmp_path):
  c = _config(tmp_path, num_steps=1)
  loop.train(c, str(tmp_path / "run"))
  c.model.depth = c.model.depth + 1
  with pytest.raises(ValueError, match="config.model.depth"):
    loop.train(c, str(tmp_path / "run"))
  # Fingerprints from before model.name named the architecture (it held the size) still match.
  old = ckpt_lib.fingerprint(_config(tmp_path))
  old["model"] = dict(old["model"], name=old["model"].pop("size"))
  # ... and so do those from before the codec could standardise (it did not), but only for (0, 1),
  # and those from before the model's inputs were derived (config.model held them).
  del old["codec"]
  old["model"] = dict(old["model"], **old.pop("model_io"), remat="none", mesh={"data": -1})
  ckpt_lib.check_compatible(old, _config(tmp_path), "an older run")
  c = _config(tmp_path)
  c.codec.audio_norm = (-0.4, 0.37)
  with pytest.raises(ValueError, match="config.codec.audio_norm"):
    ckpt_lib.check_compatible(old, c, "an older run")


def _launch_test_run(workdir, data_dir, *overrides, **popen_kw):
  """`launch/main.py` on configs/test.py in a subprocess (the CLI a preempted pod job runs)."""
  cmd = [
      sys.executable,
      os.path.join(REPO, "launch", "main.py"),
      "--config",
      os.path.join(REPO, "configs", "test.py"),
      "--workdir",
      str(workdir),
      f"--config.data.data_dir={data_dir}",
      *overrides,
  ]
  return subprocess.Popen(cmd, env=dict(os.environ, JAX_PLATFORMS="cpu"), **popen_kw)


def _restore_checkpoint(tmp_path, workdir, data_dir, step):
  """Restores checkpoint `step` of `workdir` into a freshly built test-config state."""
  c = _config(tmp_path)
  c.data.data_dir = str(data_dir)
  setup = loop.build(c, mesh=_one_device_mesh(c))
  mgr = ckpt_lib.make_manager(str(workdir), max_to_keep=100, save_every=1, async_save=False)
  return ckpt_lib.restore(mgr, step, setup.state, None, c)


def test_sigterm_leaves_a_restorable_checkpoint(tmp_path):
  workdir = tmp_path / "run"
  data_dir = tmp_path.parent / "tfds_shared"
  proc = _launch_test_run(
      workdir,
      data_dir,
      "--config.train.num_steps=100000",
      "--config.train.checkpoint_every=100000",
      "--config.train.log_every=1",
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )
  try:
    deadline = time.time() + 300
    while time.time() < deadline:
      if (workdir / "metrics.jsonl").exists() and (workdir / "metrics.jsonl").read_text().count("\n") >= 2:
        break
      time.sleep(0.5)
    else:
      pytest.fail("training never logged a step:\n" + proc.stdout.read())
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, out
  assert "SIGTERM: saved checkpoint" in out, out
  root, step = ckpt_lib.resolve_init_from(str(workdir))
  assert step >= 2
  state = _restore_checkpoint(tmp_path, workdir, data_dir, step)
  assert int(state.step) == step


def test_periodic_eval_writes_scalars(tmp_path):
  """The eval hook samples from the live (mesh-sharded) params and logs apart from metrics.jsonl."""
  c = _config(tmp_path, num_steps=2, eval_every=2, eval_clips=2)
  c.eval.modes = ("v2a",)
  c.sample.num_steps = 2
  loop.train(c, str(tmp_path / "run"))
  rows = [json.loads(l) for l in open(tmp_path / "run" / "eval_metrics.jsonl")]
  assert rows and rows[-1]["step"] == 2 and "eval/v2a/desync" in rows[-1]
  train_rows = [json.loads(l) for l in open(tmp_path / "run" / "metrics.jsonl")]
  assert all("loss" in r for r in train_rows)


def test_kill_9_during_saves_leaves_the_last_complete_checkpoint_restorable(tmp_path):
  """SIGKILL while asynchronous saves run every step: no half-written checkpoint is ever 'latest'."""
  workdir = tmp_path / "run"
  data_dir = tmp_path.parent / "tfds_shared"
  proc = _launch_test_run(
      workdir,
      data_dir,
      "--config.train.num_steps=100000",
      "--config.train.checkpoint_every=1",
      "--config.train.keep_checkpoints=100",
      "--config.train.log_every=1",
      stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL,
  )
  try:
    deadline = time.time() + 300
    ckpts = workdir / "checkpoints"
    while time.time() < deadline:
      done = [d for d in (os.listdir(ckpts) if ckpts.exists() else []) if d.isdigit()]
      if len(done) >= 3:
        break
      time.sleep(0.2)
    else:
      pytest.fail("no checkpoints were written")
    proc.kill()  # SIGKILL: no handler runs, an async save is likely in flight
    proc.wait(timeout=60)
  finally:
    if proc.poll() is None:
      proc.kill()
  latest = ckpt_lib.make_manager(str(workdir), max_to_keep=100, save_every=1, async_save=False).latest_step()
  assert latest is not None and latest >= 3
  state = _restore_checkpoint(tmp_path, workdir, data_dir, latest)
  assert int(state.step) == latest


def test_ema_decay_warms_up_then_holds():
  from syncdpo_jax.train import steps

  d = [float(steps.ema_decay_at(n, 0.99)) for n in (0, 1, 8, 89, 891, 5000)]  # crosses 0.99 at n = 890
  np.testing.assert_allclose(d[:4], [1 / 10, 2 / 11, 9 / 18, 90 / 99], rtol=1e-6)
  assert d[4] == d[5] == pytest.approx(0.99)


def test_sample_mode_writes_mp4s_with_sound(tmp_path):
  """config.mode='sample' (joint, and v2a on a user's mp4): one mp4 per sample, video with its audio."""
  from syncdpo_jax.data import media
  from syncdpo_jax.runs import evaluate, sampling

  c = _config(tmp_path, num_steps=1)
  loop.train(c, str(tmp_path / "run"))
  s = test_config.get_config("sample")
  s.data.data_dir = c.data.data_dir
  s.sample_run.checkpoint = str(tmp_path / "run")
  s.sample_run.num_samples = 1
  paths = sampling.sample_run(s, str(tmp_path / "joint"))
  assert len(paths) == 1
  frames, fps, audio, sr = media.read_mp4(paths[0])
  assert frames.shape[0] == round(c.data.window_s * c.data.fps) and fps == pytest.approx(c.data.fps)
  assert audio.size > 0 and sr > 0
  s.sample.mode, s.sample_run.input = "v2a", paths[0]
  (p,) = sampling.sample_run(s, str(tmp_path / "v2a"))
  np.testing.assert_array_equal(media.read_mp4(p)[0].shape, frames.shape)


def test_captions_are_dropped_with_the_label_for_cfg():
  """steps.make_cond: an example made unconditional gets the null label, a zero caption and no
  caption token (sampling's null condition); the others keep theirs."""
  from syncdpo_jax.train import steps

  B, null = 64, 3
  batch = {
      "label": jnp.arange(B, dtype=jnp.int32) % null,
      "text": jnp.ones((B, 4, 5)),
      "text_mask": jnp.ones((B, 4), bool).at[:, 3].set(False),
  }
  cond = steps.make_cond(jax.random.key(0), batch, 0.5, null)
  dropped = np.asarray(cond["label"] == null)
  assert 0 < dropped.sum() < B
  np.testing.assert_array_equal(np.asarray(cond["text"])[dropped], 0.0)
  assert not np.asarray(cond["text_mask"])[dropped].any()
  np.testing.assert_array_equal(np.asarray(cond["text"])[~dropped], 1.0)
  np.testing.assert_array_equal(
      np.asarray(cond["text_mask"])[~dropped], np.asarray(batch["text_mask"])[~dropped]
  )
  kept = steps.make_cond(jax.random.key(0), batch, 0.0, null)
  for k in batch:
    np.testing.assert_array_equal(np.asarray(kept[k]), np.asarray(batch[k]))
