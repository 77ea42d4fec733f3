"""JointDiT tests on the tiny config: shapes, interaction, windowing, bad inputs, real-size builds."""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from syncdpo_jax.model import JointDiT, example_spec
from syncdpo_jax.model.dit import JointBlock


def randomize(model: nnx.Module, seed: int = 0, scale: float = 0.3) -> nnx.Module:
  """Replace every parameter with noise: at init all gates/heads are zero (adaLN-zero), which would
  hide whether information flows between the streams."""
  graphdef, state = nnx.split(model)
  leaves, tree = jax.tree.flatten(state)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  leaves = [scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
  return nnx.merge(graphdef, jax.tree.unflatten(tree, leaves))


def inputs(cfg, B=2, seed=0, text=True):
  s = cfg  # a model spec: the latents it is built for (T_v, h, w, T_a, channels) among its fields
  kv, ka, kt = jax.random.split(jax.random.key(seed), 3)
  video = jax.random.normal(kv, (B, s.T_v, s.h, s.w, cfg.video_channels))
  audio = jax.random.normal(ka, (B, s.T_a, cfg.audio_channels))
  cond = {"label": jnp.arange(B, dtype=jnp.int32) % (cfg.num_classes + 1)}
  if text:
    cond["text"] = jax.random.normal(kt, (B, 3, cfg.text_dim))
    cond["text_mask"] = jnp.array([[True, True, False]] * B)
  return video, audio, cond


def forward(model, video, audio, t_v, t_a, cond):
  graphdef, state = nnx.split(model)
  return jax.jit(lambda st, *a: nnx.merge(graphdef, st)(*a))(state, video, audio, t_v, t_a, cond)


@pytest.fixture(scope="module")
def cfg():
  return example_spec("tiny")


@pytest.fixture(scope="module")
def model(cfg):
  return randomize(JointDiT(cfg, rngs=nnx.Rngs(0)))


def test_forward_shapes_and_zero_init(cfg):
  video, audio, cond = inputs(cfg)
  m = JointDiT(cfg, rngs=nnx.Rngs(0))
  t = jnp.array([0.3, 0.9])
  vv, va = forward(m, video, audio, t, t, cond)
  assert vv.shape == video.shape and va.shape == audio.shape
  assert vv.dtype == jnp.float32 and va.dtype == jnp.float32
  # adaLN-zero + zero heads: the untrained model predicts zero velocity.
  assert float(jnp.abs(vv).max()) == 0.0 and float(jnp.abs(va).max()) == 0.0


@pytest.mark.parametrize("patch_skip", [False, True])
def test_head_patch_skip_carries_the_input_patch_past_the_blocks(patch_skip):
  """With the patch embeddings zeroed the blocks see nothing of the input: only the head's skip
  (model.head_patch_skip) lets a token's output depend on its own input patch."""
  cfg = example_spec("tiny")
  cfg.head_mlp_dim, cfg.head_patch_skip = 32, patch_skip
  m = randomize(JointDiT(cfg, rngs=nnx.Rngs(0)))
  for e in (m.v_embed, m.a_embed):
    e.patch.kernel[...] = jnp.zeros_like(e.patch.kernel[...])
    e.patch.bias[...] = jnp.zeros_like(e.patch.bias[...])
  video, audio, cond = inputs(cfg)
  t = jnp.array([0.3, 0.9])
  base = forward(m, video, audio, t, t, cond)
  moved = forward(m, video.at[0, 0, 0, 0].add(1.0), audio.at[0, 0].add(1.0), t, t, cond)
  for b, n in zip(base, moved):
    d = float(jnp.abs(n - b).max())
    assert (d > 1e-3) if patch_skip else (d == 0.0), d


def test_audio_drives_video_and_back(cfg, model):
  """With t_a = 0 (clean audio given), a different audio clip changes the video velocity, and a
  different (clean) video changes the audio velocity: the interaction really flows both ways."""
  video, audio, cond = inputs(cfg)
  ones, zeros = jnp.ones(2), jnp.zeros(2)
  vv, _ = forward(model, video, audio, ones, zeros, cond)
  vv2, _ = forward(model, video, audio[::-1] * 1.5, ones, zeros, cond)
  assert float(jnp.abs(vv - vv2).max()) > 1e-3
  _, va = forward(model, video, audio, zeros, ones, cond)
  _, va2 = forward(model, video[::-1] * 1.5, audio, zeros, ones, cond)
  assert float(jnp.abs(va - va2).max()) > 1e-3
  # Timesteps are per example: example 0 of the batch is unaffected by example 1's inputs.
  vv3, _ = forward(model, video, audio.at[1].mul(2.0), ones, zeros, cond)
  np.testing.assert_array_equal(vv3[0], vv[0])


@pytest.mark.parametrize("global_on", [False, True])
def test_window_limits_video_from_audio(cfg, global_on):
  """At the interaction layer, audio far outside +-W of video frame 0 cannot reach it; only the
  global tokens reach every frame. (Across a whole block, per-stream self-attention mixes time on purpose, so the
  locality check belongs to the interaction itself.)"""
  c = copy.deepcopy(cfg)
  c.global_tokens.enabled = global_on
  blk = randomize(JointBlock(c, rngs=nnx.Rngs(1)), seed=1)
  G = c.global_tokens.num if global_on else 0
  T, S, Ta = 4, 4, 10  # 1 s clip: video at 4 fps, audio tokens at 10 Hz
  hv = jax.random.normal(jax.random.key(2), (1, T * S, c.video_dim))
  ha = jax.random.normal(jax.random.key(3), (1, G + Ta, c.audio_dim))
  hdi_v, hdi_a = c.video_dim // c.interaction_heads, c.audio_dim // c.interaction_heads
  from syncdpo_jax.model import layers as L

  pos_a = L.positions_on_video_timeline(Ta, 10.0, 4.0)
  ropes = (
      (L.rope_angles(np.arange(T), hdi_v, 1e4), L.rope_angles(pos_a, hdi_v, 1e4)),
      (L.rope_angles(np.arange(T), hdi_a, 1e4), L.rope_angles(pos_a, hdi_a, 1e4)),
  )
  graphdef, state = nnx.split(blk)
  f = jax.jit(lambda st, hv, ha: nnx.merge(graphdef, st).interact(hv, ha, T, S, *ropes))
  uv, _ = f(state, hv, ha)
  # Audio token 9 is at 0.9 s; video frame 0 at 0 s sees audio within +-0.5 s (tiny: W = 0.5).
  uv2, _ = f(state, hv, ha.at[:, G + 9].add(5.0))
  frame0 = slice(0, S)
  np.testing.assert_array_equal(uv[:, frame0], uv2[:, frame0])
  last = slice((T - 1) * S, T * S)  # frame 3 = 0.75 s: inside the window
  assert float(jnp.abs(uv[:, last] - uv2[:, last]).max()) > 1e-4
  if global_on:
    # The global path is what carries long-range audio context (global tokens mix with all audio
    # in the audio self-attention): a global token reaches every video frame.
    uv3, _ = f(state, hv, ha.at[:, 0].add(5.0))
    assert float(jnp.abs(uv[:, frame0] - uv3[:, frame0]).max()) > 1e-4


@pytest.mark.parametrize("scan_layers", [False, True])
@pytest.mark.parametrize("policy", ["none", "full", "dots_no_batch"])
def test_remat_policy_is_applied_per_block(cfg, policy, scan_layers):
  # Rematerialisation is value-preserving by construction (jax.checkpoint); what can go wrong is
  # the wiring, so check the traced gradient holds one checkpoint per block (tracing only: cheap):
  # unrolled, one per block; scanned, one inside the loop body, which runs once per block.
  c = copy.deepcopy(cfg)
  c.remat, c.depth, c.scan_layers = policy, 2, scan_layers
  video, audio, cond = inputs(c, B=1, text=False)
  t = jnp.array([0.5])
  graphdef, state = nnx.split(JointDiT(c, rngs=nnx.Rngs(0)))

  def loss(st):
    vv, va = nnx.merge(graphdef, st)(video, audio, t, t, cond)
    return jnp.mean(vv**2) + jnp.mean(va**2)

  jaxpr = jax.make_jaxpr(jax.grad(loss))(state)
  text = str(jaxpr)
  n = text.count("remat") + text.count("checkpoint[")
  if policy == "none":
    assert n == 0, n
  elif not scan_layers:
    assert n >= 2, n
  else:
    # The backward scan (reverse=True, length=depth) holds the checkpointed block.
    scans = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    bwd = [e for e in scans if e.params["reverse"] and e.params["length"] == c.depth]
    assert bwd and any("remat" in str(e.params["jaxpr"]) for e in bwd), [e.params for e in scans]


def _expect_error(model, video, audio, cond, match):
  t = jnp.zeros(video.shape[0])
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(lambda: model(video, audio, t, t, cond))


def test_bad_inputs_name_the_config_field(cfg):
  m = JointDiT(cfg, rngs=nnx.Rngs(0))
  video, audio, cond = inputs(cfg, text=False)
  _expect_error(m, video, audio[:, :16], cond, "audio_fps")  # 0.8 s of audio, 1 s of video
  _expect_error(m, video[:, :, :3], audio, cond, "video_patch")  # h = 3 with patch 2
  _expect_error(m, video, audio, dict(cond, text=jnp.ones((2, 3, 5))), "text_dim")
  _expect_error(m, video[..., :5], audio, cond, "video_channels")
  c = copy.deepcopy(cfg)
  c.local_window_s = 2.0  # 2 s window, 1 s clip
  _expect_error(JointDiT(c, rngs=nnx.Rngs(0)), video, audio, cond, "local_window_s")
  c = copy.deepcopy(cfg)
  c.video_patch = (2, 0)
  with pytest.raises(ValueError, match="video_patch"):
    JointDiT(c, rngs=nnx.Rngs(0))
  c = copy.deepcopy(cfg)
  c.audio_patch = 3
  _expect_error(JointDiT(c, rngs=nnx.Rngs(0)), video, audio, cond, "audio_patch")


def _count_params(cfg) -> int:
  abstract = nnx.eval_shape(lambda: JointDiT(cfg, rngs=nnx.Rngs(0)))
  return sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))


@pytest.mark.parametrize("size,lo,hi", [("demo", 1.0e6, 2.0e6), ("1b", 0.8e9, 1.5e9), ("5b", 5.0e9, 8.0e9)])
def test_sizes_build_with_eval_shape(size, lo, hi):
  """Real sizes build abstractly. Blocks are identical, so the count at full depth is extrapolated
  from depths 1 and 2 (tracing 30 blocks of initialisers takes minutes on a shared CPU;
  benchmarks/model_sizes.py builds and traces the full models)."""
  cfg = example_spec(size)
  c1, c2 = copy.deepcopy(cfg), copy.deepcopy(cfg)
  c1.depth, c2.depth = 1, 2
  n1, n2 = _count_params(c1), _count_params(c2)
  n = n1 + (cfg.depth - 1) * (n2 - n1)
  assert lo <= n <= hi, n
  if size == "demo":  # trace the forward pass too; the large ones are traced in the benchmark
    assert n == _count_params(cfg)
    s = cfg
    video = jax.ShapeDtypeStruct((2, s.T_v, s.h, s.w, cfg.video_channels), jnp.float32)
    audio = jax.ShapeDtypeStruct((2, s.T_a, cfg.audio_channels), jnp.float32)
    t = jax.ShapeDtypeStruct((2,), jnp.float32)
    cond = {"label": jax.ShapeDtypeStruct((2,), jnp.int32)}
    vv, va = jax.eval_shape(lambda *a: JointDiT(cfg, rngs=nnx.Rngs(0))(*a), video, audio, t, t, cond)
    assert vv.shape == video.shape and va.shape == audio.shape


def test_video_patch_bottleneck_embeds_through_a_rank_r_map():
  """model.video_patch_bottleneck = r: the video patch embedding is patch -> r -> width (rank r), so a
  patch direction the r-map does not see leaves the tokens unchanged; 0 keeps one full-rank map."""
  cfg = example_spec("tiny")
  cfg.video_patch_bottleneck = 3
  m = JointDiT(cfg, rngs=nnx.Rngs(0))
  down = np.asarray(m.v_embed.patch_down.kernel[...])  # [patch_dim, 3]
  assert down.shape[1] == 3 and m.v_embed.patch.kernel[...].shape[0] == 3
  p = jax.random.normal(jax.random.key(0), (1, 2, down.shape[0]))
  null = np.linalg.svd(down.T)[2][-1]  # a patch direction in the kernel's null space
  shifted = p + jnp.asarray(null, p.dtype)
  np.testing.assert_allclose(m.v_embed.embed(shifted), m.v_embed.embed(p), atol=1e-5)
  cfg.video_patch_bottleneck = 0
  assert JointDiT(cfg, rngs=nnx.Rngs(0)).v_embed.patch_down is None
  # model.video_head_bottleneck = r: the video head's output lies in an r-dim subspace of patch space.
  cfg.video_head_bottleneck, cfg.zero_init_branches = 2, False
  m = JointDiT(cfg, rngs=nnx.Rngs(0))
  m.v_embed.head.kernel[...] = jax.random.normal(jax.random.key(1), m.v_embed.head.kernel[...].shape)
  x = jax.random.normal(jax.random.key(2), (1, 5, cfg.video_dim))
  c = jax.random.normal(jax.random.key(3), (1, cfg.video_dim))
  out = np.asarray(m.v_embed.out(x, c, None))[0]  # [5 tokens, patch_dim]
  assert np.linalg.matrix_rank(out - np.asarray(m.v_embed.head.bias[...]), tol=1e-4) <= 2
