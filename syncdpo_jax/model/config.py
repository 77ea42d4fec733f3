"""Model configs for the joint video-audio DiT: `get_model_config(size)` (the architecture) and
`get_parallel_config(size)` (how it runs: mesh, logical-axis rules, remat, attention kernel).

Sizes:
  tiny  unit tests; compiles and runs in a second or two on one CPU core.
  demo  1.85M params; learns a 2 s SyncBench-Synth clip in minutes on 2 CPU cores
        (video latents [20, 8, 8, 48] at 10 fps = 32x32 px with a space-to-depth-4 codec, in 4 tokens
        a frame; audio log-mel [100, 40] at 50 fps, 2 frames a token).
  1b    ~1B params, for compile checks (`jax.eval_shape`) and real runs.
  5b    Wan2.2-5B-class video stream (dim 3072, 30 layers, FFN 14336, 48-channel latents with a
        16x spatial VAE) plus an audio stream; only needs to build with `jax.eval_shape` here.

All temporal quantities are in SECONDS (`local_window_s`) and converted to frames per modality by its
own latent frame rate. What the latents look like (channels, rates, class count, shapes) is not stored
here: the data and codec fix it, and the model is built for it (model/io.py). The parallel section
changes how, not what, is computed: a checkpoint moves across it freely (`--config.parallel.mesh.fsdp=8`).
"""

from __future__ import annotations

import ml_collections

# Logical axis names carried by every parameter / activation -> mesh axes. Order matters only for
# readability; every logical name used in the model must appear exactly once.
#   embed    model width of a weight (FSDP-sharded: ZeRO-3 style, gathered per layer by XLA)
#   heads    attention heads x head_dim of q/k/v/o kernels (tensor parallel)
#   mlp      MLP hidden width (tensor parallel)
#   batch    activation batch (data parallel over data *and* fsdp: FSDP is data parallel too)
#   length / act_embed   activation sequence / width (replicated; room for a 'context' axis)
#   vocab, patch, mod, norm, global  small tables and vectors: replicated
#   layers   leading axis of the stacked block parameters (scan_layers): replicated, every device
#            holds its shards of every layer (pipeline parallelism would map it to a 'stage' axis)
DEFAULT_RULES = (
    ("layers", None),
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("mlp", "tensor"),
    ("length", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("vocab", None),
    ("patch", None),
    ("mod", None),
    ("norm", None),
    ("global", None),
    ("text", None),
)

# 'cudnn' needs an NVIDIA GPU and bf16/f16; 'splash' a TPU (layers.splash_attention).
ATTENTION_IMPLS = ("xla", "dot_product_attention", "cudnn", "splash")
REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch")


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "base"
  # --- streams ---
  c.depth = 1  # joint blocks (each holds one video and one audio sub-block)
  c.video_dim = 32
  c.video_heads = 2
  c.video_mlp_dim = 64
  c.audio_dim = 32
  c.audio_heads = 2
  c.audio_mlp_dim = 64
  c.interaction_heads = 2  # heads of the local/global cross-modal attention (both directions)
  c.qk_norm = True
  c.rope_theta = 10000.0
  # Absolute position of a video token in the frame, added to it after the patch embedding: 'sincos'
  # (fixed 2D sin-cos, as DiT / JiT) or 'none'. RoPE is relative: without this, no token knows where
  # in the frame it is unless attention infers it from content, and the per-token path (the first
  # thing a DiT learns) can only predict the clip-wide mean at high noise.
  c.video_pos_embed = "sincos"
  # Each block's residual branches are x + (gate_init + g(t)) * f(x), g from the adaLN table (zero at
  # init). 0 = adaLN-zero (DiT): every block starts as the identity, and the attention weights get no
  # gradient until their gates have grown. 1 = the branches are open from step 1 (a pre-LN
  # transformer with adaLN shift/scale); the output heads stay zero-initialised either way.
  c.gate_init = 0.0
  # Zero-initialise the last projection of every residual branch (attention outputs, the MLP's fc2):
  # with open gates (gate_init = 1) every block then starts as the identity, so the input reaches the
  # head undisturbed, and the branch weights still get gradients from step 1 (through the gate,
  # unlike adaLN-zero, where a zero gate blocks them until it has grown).
  c.zero_init_branches = False
  # Hidden width of a per-token MLP in front of each stream's output projection; 0 = a linear head
  # (DiT). A linear head emits every token from a model-width subspace.
  c.head_mlp_dim = 0
  # The head also reads each token's noisy input patch (concatenated to the model's output token):
  # a token's detail then need not fit through the model's width (a 16x16-px token of 768 values
  # in a 128-wide model loses a few grey levels of detail everywhere, which reads as texture).
  c.head_patch_skip = False
  # Rank of the video patch embedding (patch -> r -> video_dim); 0 = a full linear embedding. A
  # 768-value token embedded at full rank passes 128 / 768 of the input noise straight through.
  c.video_patch_bottleneck = 0
  # Rank of the video head's last map (hidden -> r -> patch): the emitted tokens lie in an r-dim learned
  # subspace; 0 = full rank. Measured (README, fifth round): 64 on top of the demo's recipe moves
  # rec0.2's speckle (1.10 -> 0.87), not joint / a2v generation; not the default.
  c.video_head_bottleneck = 0
  # --- patching (the latents' channels, rates and shapes are the data's and codec's: model/io.py) ---
  c.video_patch = (2, 2)  # spatial (ph, pw); temporal patch is fixed to 1 so frames stay aligned
  c.video_temporal_patch = 1
  c.audio_patch = 2  # pa: audio frames per token
  # --- cross-modal interaction ---
  c.local_window_s = 0.5  # each frame attends to the other stream within +-W seconds
  c.global_tokens = ml_collections.ConfigDict({"enabled": True, "num": 2})
  # --- conditioning (the class count and caption width come with the data: model/io.py) ---
  c.time_embed_dim = 256  # sinusoidal features of t before the MLP
  # --- numerics ---
  c.dtype = "float32"  # compute dtype: 'float32' | 'bfloat16'
  c.param_dtype = "float32"
  # Stack the blocks' parameters on a leading 'layers' axis and run them with one scan: XLA
  # compiles one block instead of `depth` copies (compile time flat in depth). False keeps a
  # Python loop over separate blocks (params at blocks/<i>/...); the two layouts' checkpoints
  # are not interchangeable.
  c.scan_layers = True
  return c


def get_parallel_config(size: str = "tiny") -> ml_collections.ConfigDict:
  """config.parallel for model `size`: mesh, logical-axis rules, remat policy, attention kernel."""
  c = ml_collections.ConfigDict()
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.logical_axis_rules = DEFAULT_RULES
  c.remat = "none"  # one of REMAT_POLICIES, applied per joint block
  c.attention_impl = "xla"  # one of ATTENTION_IMPLS
  if size in ("1b", "5b"):
    c.remat = "dots_no_batch"
    c.attention_impl = "dot_product_attention"
    c.mesh.update({"data": 1, "fsdp": -1, "tensor": 4 if size == "5b" else 1})
  validate_parallel(c)
  return c


def validate_parallel(c: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the config.parallel field to fix."""
  if c.attention_impl not in ATTENTION_IMPLS:
    raise ValueError(f"parallel.attention_impl={c.attention_impl!r}; expected one of {ATTENTION_IMPLS}")
  if c.remat not in REMAT_POLICIES:
    raise ValueError(f"parallel.remat={c.remat!r}; expected one of {REMAT_POLICIES}")


def get_model_config(size: str) -> ml_collections.ConfigDict:
  """Model config for `size` in {'tiny', 'demo', '1b', '5b'}."""
  c = _base()
  c.name = "joint_dit"  # the architecture (model/factory.py registry)
  c.size = size
  if size == "tiny":
    pass
  elif size == "demo":
    # 1.85M params over 80 video + 52 audio tokens: ~0.4 s per SFT step at batch 16 on 2 CPU
    # cores. Audio is narrower than video.
    c.depth = 4
    c.video_dim, c.video_heads, c.video_mlp_dim = 128, 4, 256
    c.audio_dim, c.audio_heads, c.audio_mlp_dim = 64, 4, 128
    c.interaction_heads = 4
    # Chosen by time-to-quality on 2 CPU cores (README, "The demo's generator"): 16x16-px video
    # tokens (a 4x4 patch of 4x4-px cells, 768 values, 4 per frame) train 3x faster per step than
    # 8x8-px ones and reach a lower x0 error at equal wall time; open residual gates let
    # attention learn from step 1 (with adaLN-zero the tokens stayed independent: a patchwork).
    c.video_patch, c.audio_patch = (4, 4), 2
    c.gate_init = 1.0
    c.local_window_s = 0.2
    c.global_tokens.num = 2
    c.time_embed_dim = 128
  elif size == "1b":
    c.depth = 16
    c.video_dim, c.video_heads, c.video_mlp_dim = 1536, 12, 6144
    c.audio_dim, c.audio_heads, c.audio_mlp_dim = 1024, 8, 4096
    c.interaction_heads = 8
    c.video_patch, c.audio_patch = (2, 2), 1
    c.local_window_s = 0.25
    c.global_tokens.num = 8
    c.dtype = "bfloat16"
  elif size == "5b":
    # Video stream = Wan2.2-TI2V-5B transformer (dim 3072, 30 layers, 24 heads, FFN 14336,
    # patch (1, 2, 2) over 48-channel latents of a 16x16x4 VAE).
    c.depth = 30
    c.video_dim, c.video_heads, c.video_mlp_dim = 3072, 24, 14336
    c.audio_dim, c.audio_heads, c.audio_mlp_dim = 1536, 12, 6144
    c.interaction_heads = 12
    c.video_patch, c.audio_patch = (2, 2), 1
    c.local_window_s = 0.25
    c.global_tokens.num = 16
    c.dtype = "bfloat16"
  else:
    raise ValueError(
        f"unknown model size {size!r}; expected one of 'tiny', 'demo', '1b', '5b' "
        "(config field model.size / get_model_config argument)"
    )
  validate_config(c)
  return c


def validate_config(c: ml_collections.ConfigDict) -> None:
  """Checks that do not depend on input shapes; raises ValueError naming the field to fix."""
  if c.video_temporal_patch != 1:
    raise ValueError(
        f"model.video_temporal_patch={c.video_temporal_patch}: only 1 is supported so "
        "video tokens stay frame-aligned with audio for local attention"
    )
  ph, pw = tuple(c.video_patch)
  if ph < 1 or pw < 1 or c.audio_patch < 1:
    raise ValueError(
        f"patch sizes must be >= 1, got model.video_patch={c.video_patch}, "
        f"model.audio_patch={c.audio_patch}"
    )
  for stream in ("video", "audio"):
    dim, heads = c[f"{stream}_dim"], c[f"{stream}_heads"]
    if dim % heads:
      raise ValueError(f"model.{stream}_dim={dim} is not divisible by model.{stream}_heads={heads}")
    if (dim // heads) % 2:
      raise ValueError(
          f"head dim model.{stream}_dim/model.{stream}_heads={dim // heads} must be " "even for RoPE"
      )
  for stream in ("video", "audio"):
    dim = c[f"{stream}_dim"]
    if dim % c.interaction_heads or (dim // c.interaction_heads) % 2:
      raise ValueError(
          f"model.{stream}_dim={dim} must split into model.interaction_heads="
          f"{c.interaction_heads} heads of even size (RoPE)"
      )
  if (c.video_dim // c.video_heads) < 6:
    raise ValueError("video head dim (model.video_dim / model.video_heads) must be >= 6 for 3D RoPE")
  if c.dtype not in ("float32", "bfloat16"):
    raise ValueError(f"model.dtype={c.dtype!r}; expected 'float32' or 'bfloat16'")
  if c.video_pos_embed not in ("sincos", "none"):
    raise ValueError(f"model.video_pos_embed={c.video_pos_embed!r}; expected 'sincos' or 'none'")
  if c.video_pos_embed == "sincos" and c.video_dim % 4:
    raise ValueError(f"model.video_pos_embed='sincos' needs model.video_dim % 4 == 0, got {c.video_dim}")
  if c.local_window_s <= 0:
    raise ValueError(f"model.local_window_s={c.local_window_s} must be > 0 seconds")
