"""Building blocks: RoPE, attention cores, banded local cross-attention, dense layers with logical axes.

Everything here is pure JAX or a small NNX module; shapes are in docstrings. Attention tensors use
the [batch..., length, heads, head_dim] layout of `jax.nn.dot_product_attention`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Finite "minus infinity": a fully masked row (a padded query) then gives a uniform softmax instead
# of NaN, and NaNs never leak into gradients through the dropped padding.
_NEG = -1e30


# jax.checkpoint policies of parallel.remat's values ('none' = no remat): applied per layer.
REMAT_POLICY_FNS = {
    "full": None,  # save nothing: recompute the whole layer in the backward pass
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


# Attention kernels that never materialise the [Lq, Lk] scores of the calls they take (`attention`).
FLASH_IMPLS = ("cudnn", "splash")


def stacked_layers(make_layer, n: int, rngs: nnx.Rngs) -> nnx.Module:
  """`n` layers `make_layer(rngs)` as one module whose parameters have a leading [n] axis (scanned).

  Each layer draws its own init keys (split_rngs); the logical axes of every parameter gain a
  leading 'layers' name, e.g. a q kernel is ('layers', 'embed', 'heads') of shape [n, D, D].
  """

  @nnx.split_rngs(splits=n)
  @nnx.vmap(in_axes=(0,), out_axes=0, axis_size=n, transform_metadata={nnx.PARTITION_NAME: "layers"})
  def make(r: nnx.Rngs) -> nnx.Module:
    return make_layer(r)

  return make(rngs)


def remat_activation_bytes(carry, proj, pv, scores, elem, itemsize: int, remat: str) -> tuple[float, float]:
  """(saved, layer) activation bytes per example and layer under remat policy `remat`, from a block's
  parts (train/plan.py's estimate; the categories are defined there): 'saved' is what the backward
  keeps ('full' the carry, 'dots_no_batch' + every dense output, 'dots' + attention outputs and f32
  scores, 'none' everything), 'layer' the running layer's working set (its recomputed forward plus the
  cotangents: f32 d-probs and d-logits, proj and pv)."""
  everything = carry + proj + pv + (4 + itemsize) * scores + elem
  saved = {
      "full": carry,
      "dots_no_batch": carry + proj,
      "dots": carry + proj + pv + 4.0 * scores,
      "none": everything,
  }[remat]
  layer = 8.0 * scores + proj + pv + (0.0 if remat == "none" else everything - carry)
  return saved, layer


# ----------------------------------------------------------------------------- dense layers


def dense(
    din: int,
    dout: int,
    axes: tuple[str | None, str | None],
    *,
    rngs: nnx.Rngs,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    zero: bool = False,
    use_bias: bool = True,
) -> nnx.Linear:
  """`nnx.Linear` whose kernel [din, dout] carries logical `axes` (bias gets axes[1]).

  zero=True zero-initialises the kernel (adaLN-zero gates and output heads start the DiT as
  an identity map / zero velocity).
  """
  init = nnx.initializers.zeros_init() if zero else nnx.initializers.xavier_uniform()
  return nnx.Linear(
      din,
      dout,
      use_bias=use_bias,
      dtype=dtype,
      param_dtype=param_dtype,
      kernel_init=init,
      rngs=rngs,
      kernel_metadata={"out_sharding": axes},
      bias_metadata={"out_sharding": (axes[1],)},
  )


class RMSNorm(nnx.Module):
  """RMS norm over the last axis with a learned scale [dim] (computed in float32)."""

  def __init__(self, dim: int, axis_name: str = "norm", eps: float = 1e-6):
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32), out_sharding=(axis_name,))
    self.eps = eps

  def __call__(self, x: jax.Array) -> jax.Array:
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
    return (y * self.scale[...]).astype(x.dtype)


def layer_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """Parameter-free LayerNorm over the last axis (adaLN supplies scale/shift); float32 math."""
  xf = x.astype(jnp.float32)
  mu = jnp.mean(xf, -1, keepdims=True)
  var = jnp.mean(jnp.square(xf - mu), -1, keepdims=True)
  return ((xf - mu) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def timestep_features(t: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
  """Sinusoidal features of t in [0, 1]: t [B] -> [B, dim] (t scaled by 1000 as in DiT)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = (t.astype(jnp.float32) * 1000.0)[:, None] * freqs[None]
  return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def sincos_2d(h: int, w: int, dim: int, max_period: float = 10000.0) -> np.ndarray:
  """Fixed 2D sin-cos absolute position embedding (MAE / DiT): [h*w, dim], row-major over (h, w).

  Half the channels encode the row, half the column, each as [sin, cos] over dim/4 frequencies.
  """
  if dim % 4:
    raise ValueError(f"sincos_2d needs a width divisible by 4, got {dim} (model.video_dim)")
  q = dim // 4
  omega = 1.0 / max_period ** (np.arange(q, dtype=np.float64) / q)

  def one(pos):
    a = pos.reshape(-1)[:, None] * omega[None]
    return np.concatenate([np.sin(a), np.cos(a)], axis=1)

  yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
  return np.concatenate([one(yy), one(xx)], axis=1).astype(np.float32)


# ----------------------------------------------------------------------------- RoPE


def rope_angles(positions: jax.Array | np.ndarray, dim: int, theta: float) -> jax.Array:
  """Rotation angles: positions [..., L] (may be fractional) -> [..., L, dim // 2]."""
  inv = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
  return jnp.asarray(positions, jnp.float32)[..., None] * jnp.asarray(inv, jnp.float32)


def apply_rope(x: jax.Array, angles: jax.Array) -> jax.Array:
  """Rotates pairs (x[..., i], x[..., i + D/2]) by `angles`.

  x: [B, L, H, D]; angles: [L, D/2] or [B, L, D/2]. Returns x's shape and dtype.
  """
  if angles.ndim == 2:
    angles = angles[None]
  cos = jnp.cos(angles)[:, :, None, :]
  sin = jnp.sin(angles)[:, :, None, :]
  xf = x.astype(jnp.float32)
  x1, x2 = jnp.split(xf, 2, axis=-1)
  out = jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
  return out.astype(x.dtype)


def rope_3d_angles(T: int, h: int, w: int, head_dim: int, theta: float) -> jax.Array:
  """3D RoPE angles for a frame-major [T, h, w] token grid -> [T*h*w, head_dim/2].

  The head dim is split as in Wan: time gets D - 4*(D//6), height and width 2*(D//6) each.
  """
  dh = 2 * (head_dim // 6)
  dt = head_dim - 2 * dh
  tt, hh, ww = np.meshgrid(np.arange(T), np.arange(h), np.arange(w), indexing="ij")
  parts = [
      rope_angles(tt.reshape(-1), dt, theta),
      rope_angles(hh.reshape(-1), dh, theta),
      rope_angles(ww.reshape(-1), dh, theta),
  ]
  return jnp.concatenate(parts, axis=-1)


# ----------------------------------------------------------------------------- attention cores


def attention(
    q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None, impl: str = "xla"
) -> jax.Array:
  """Softmax attention.

  q: [*batch, Lq, H, D]; k, v: [*batch, Lk, H, D]; mask: bool broadcastable to
  [*batch, H, Lq, Lk] (True = attend) or None. Returns [*batch, Lq, H, D].
  impl: 'xla' (einsum reference, float32 softmax; any number of batch dims),
        'dot_product_attention' (jax.nn.dot_product_attention, XLA picks the kernel),
        'cudnn' (jax.nn.dot_product_attention's cuDNN flash kernel; GPU, bf16/f16 only; unmasked
          calls only: cuDNN turns a mask into a materialised bias, which in training needs even
          lengths, and the label-token cross-attention has Lk = 1. Masked calls, all short here
          (the caption cross-attention, the local band's blocks), take the 'xla' path),
        'splash' (the Pallas TPU flash kernel, see `splash_attention`; TPU only). Splash takes
          unmasked and key-padding-masked attention with one batch dim (self-attention, the
          caption cross-attention, the global tokens); a query-dependent mask (the banded local
          attention's blocks) runs on the 'xla' path: those blocks are small (a block of frames
          against its 2n+1 neighbours), splash's win is on the long unmasked sequences.
  """
  scale = 1.0 / math.sqrt(q.shape[-1])
  if impl == "splash":
    key_mask = _key_padding_mask(mask, q, k)
    if q.ndim == 4 and (mask is None or key_mask is not None):
      return splash_attention(q, k, v, key_mask)
    impl = "xla"
  if impl == "cudnn" and mask is not None:
    impl = "xla"
  if impl == "xla":
    logits = jnp.einsum("...qhd,...khd->...hqk", q, k, preferred_element_type=jnp.float32) * scale
    if mask is not None:
      logits = jnp.where(mask, logits, _NEG)
    p = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("...hqk,...khd->...qhd", p.astype(v.dtype), v)
  if impl in ("dot_product_attention", "cudnn"):
    batch = q.shape[:-3]
    flat = lambda a: a.reshape((-1,) + a.shape[-3:])
    m = None
    if mask is not None:
      m = jnp.broadcast_to(mask, batch + (q.shape[-2], q.shape[-3], k.shape[-3]))
      m = m.reshape((-1,) + m.shape[-3:])
    out = jax.nn.dot_product_attention(
        flat(q), flat(k), flat(v), mask=m, scale=scale, implementation="cudnn" if impl == "cudnn" else None
    )
    return out.reshape(q.shape)
  raise ValueError(f"unknown attention implementation {impl!r} (config field parallel.attention_impl)")


def _key_padding_mask(mask: jax.Array | None, q: jax.Array, k: jax.Array) -> jax.Array | None:
  """[*batch, Lk] when `mask` (broadcastable to [*batch, H, Lq, Lk]) varies only along keys, else None."""
  if mask is None or mask.ndim != q.ndim or mask.shape[-3] != 1 or mask.shape[-2] != 1:
    return None
  return jnp.broadcast_to(mask[..., 0, 0, :], q.shape[:-3] + (k.shape[-3],))


def _round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def _splash_block(n: int) -> int:
  """Largest tile in (512, 256, 128) dividing a padded length n (a multiple of 128)."""
  return next(b for b in (512, 256, 128) if n % b == 0)


def splash_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    key_mask: jax.Array | None = None,
    *,
    interpret: bool = False,
    rules=None,
) -> jax.Array:
  """Flash attention with the Pallas TPU splash kernel (never materialises the [Lq, Lk] logits).

  q: [B, Lq, H, D]; k, v: [B, Lk, H, D]; key_mask: bool [B, Lk] (True = attend; every row needs
  one True, as the model's label token is) or None.
  Returns [B, Lq, H, D] in q's dtype; same result as `attention(..., impl='xla')`.

  The kernel wants lengths in whole 128-token tiles: both sequences are zero-padded; padded keys get
  segment id 0 (never attended: real queries carry id 1), padded queries attend to the real keys
  (their rows stay well defined) and are sliced off. A key mask becomes the keys' segment ids.
  Under an active mesh the kernel runs per device in a `shard_map`: batch split over the mesh axes
  of the logical 'batch' rule, heads over those of 'act_heads' (`rules`, default the model's
  DEFAULT_RULES); an axis that does not divide its dimension is left out, as for the constraints.
  `interpret=True` runs the kernel in the Pallas interpreter (any backend; tests on CPU).
  """
  try:
    from jax.experimental.pallas.ops.tpu import splash_attention as splash
  except ImportError as e:  # pragma: no cover - depends on the installed jax
    raise ImportError(
        "parallel.attention_impl='splash' needs jax.experimental.pallas.ops.tpu."
        f"splash_attention, which this jax ({jax.__version__}) cannot import ({e}); "
        "install jax[tpu] or use parallel.attention_impl='dot_product_attention'"
    ) from e
  if not interpret and jax.default_backend() != "tpu":
    raise ValueError(
        f"parallel.attention_impl='splash' runs a TPU kernel but this process' backend is "
        f"{jax.default_backend()!r}; use 'xla' or 'dot_product_attention' here ('cudnn' "
        "on NVIDIA GPUs), or run on a TPU"
    )
  B, Lq, H, D = q.shape
  Lk = k.shape[1]
  pq, pk = _round_up(Lq, 128), _round_up(Lk, 128)
  bq, bk = _splash_block(pq), _splash_block(pk)
  blocks = splash.BlockSizes(
      block_q=bq,
      block_kv=bk,
      block_kv_compute=bk,
      block_q_dkv=bq,
      block_kv_dkv=bk,
      block_kv_dkv_compute=bk,
      block_q_dq=bq,
      block_kv_dq=bk,
  )
  if key_mask is None:
    key_mask = jnp.ones((B, Lk), bool)

  def local(q, k, v, key_mask):
    # Per device: [b, L, h, D] -> the kernel's [h, L, D] layout, vmapped over b.
    def to_kernel(x, padded_len):
      return jnp.pad(jnp.swapaxes(x, 1, 2), ((0, 0), (0, 0), (0, padded_len - x.shape[1]), (0, 0)))

    h = q.shape[2]
    qh = to_kernel(q * jnp.asarray(1.0 / math.sqrt(D), q.dtype), pq)  # the kernel does not scale
    kh, vh = to_kernel(k, pk), to_kernel(v, pk)
    kv_ids = jnp.pad(key_mask.astype(jnp.int32), ((0, 0), (0, pk - Lk)))
    q_ids = jnp.ones((q.shape[0], pq), jnp.int32)
    kernel = splash.make_splash_mha(
        splash.MultiHeadMask([splash.FullMask((pq, pk))] * h),
        head_shards=1,
        q_seq_shards=1,
        block_sizes=blocks,
        interpret=interpret,
    )
    one = lambda qh, kh, vh, qi, ki: kernel(qh, kh, vh, segment_ids=splash.SegmentIds(qi, ki))
    out = jax.vmap(one)(qh, kh, vh, q_ids, kv_ids)  # [b, h, pq, D]
    return jnp.swapaxes(out[:, :, :Lq], 1, 2).astype(q.dtype)

  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return local(q, k, v, key_mask)
  from syncdpo_jax.model.config import DEFAULT_RULES  # local: config is a leaf, layers stays pure
  from syncdpo_jax.model.sharding import logical_to_mesh

  spec = logical_to_mesh(
      ("batch", None, "act_heads", None), DEFAULT_RULES if rules is None else rules, dict(mesh.shape), q.shape
  )
  P = jax.sharding.PartitionSpec
  return jax.shard_map(
      local, mesh=mesh, in_specs=(spec, spec, spec, P(spec[0], None)), out_specs=spec, check_vma=False
  )(q, k, v, key_mask)


# ----------------------------------------------------------------------------- local attention


def frame_times(n: int, rate: float) -> np.ndarray:
  """Times in seconds of n frames at `rate` frames/s: frame i at i / rate. -> float64 [n]."""
  return np.arange(n, dtype=np.float64) / float(rate)


def _window_ok(tq: np.ndarray, tk: np.ndarray, window_s: float) -> np.ndarray:
  # Tolerance of a microsecond so a key exactly W seconds away is inside the window regardless
  # of float rounding in i/rate.
  return np.abs(tq[:, None] - tk[None, :]) <= window_s + 1e-6


def _common_period(q_rate: float, k_rate: float) -> Fraction:
  """Shortest duration holding a whole number of frames of both rates (lcm of the periods)."""
  pq = 1 / Fraction(q_rate).limit_denominator(10_000)
  pk = 1 / Fraction(k_rate).limit_denominator(10_000)
  return Fraction(math.lcm(pq.numerator, pk.numerator), math.gcd(pq.denominator, pk.denominator))


@dataclass(frozen=True)
class BandPlan:
  """Static blocking of a local cross-attention between two frame sequences of equal duration.

  The timeline is cut into `nb` blocks of `block_s` seconds: `bq` query frames and `bk` key frames
  each. A query block attends to its own key block and `n` neighbours on each side, which
  covers +-window_s because n * block_s >= window_s; the exact window is a static mask.
  """

  block_s: float
  bq: int
  bk: int
  nb: int
  n: int


def band_plan(Tq: int, Tk: int, q_rate: float, k_rate: float, window_s: float) -> BandPlan:
  base = _common_period(q_rate, k_rate)
  # Blocks at least as long as the window keep n = 1 (3 key blocks per query block).
  m = max(1, math.ceil(window_s / float(base) - 1e-9))
  block = base * m
  bq, bk = int(block * Fraction(q_rate).limit_denominator(10_000)), int(
      block * Fraction(k_rate).limit_denominator(10_000)
  )
  n = max(1, math.ceil(window_s / float(block) - 1e-9))
  nb = max(math.ceil(Tq / bq), math.ceil(Tk / bk))
  return BandPlan(float(block), bq, bk, nb, n)


def check_local_window(Tq: int, Tk: int, q_rate: float, k_rate: float, window_s: float) -> None:
  """Trace-time validation of a local window against the clip: raises naming model.local_window_s."""
  dur = Tq / q_rate
  if window_s > dur:
    raise ValueError(
        f"model.local_window_s={window_s} s is larger than the clip ({dur:.4g} s = "
        f"{Tq} frames at {q_rate} fps); use a window shorter than the clip"
    )
  ok = _window_ok(frame_times(Tq, q_rate), frame_times(Tk, k_rate), window_s)
  for name, rows in (("query", ok.any(1)), ("key", ok.any(0))):
    if not rows.all():
      raise ValueError(
          f"model.local_window_s={window_s} s is too small: some {name} frames see no "
          f"frame of the other stream (rates {q_rate} and {k_rate} fps); use at least "
          f"half the longer frame period ({0.5 / min(q_rate, k_rate):.4g} s)"
      )


def local_cross_attention_dense(
    q: jax.Array, k: jax.Array, v: jax.Array, q_rate: float, k_rate: float, window_s: float, impl: str = "xla"
) -> jax.Array:
  """Reference: full [Tq*Sq, Tk*Sk] attention with a window mask (quadratic; tests and benchmarks).

  q: [B, Tq, Sq, H, D] (Tq frames at q_rate, Sq tokens per frame); k, v: [B, Tk, Sk, H, D].
  Query frame i sees key frame j iff |i/q_rate - j/k_rate| <= window_s. Returns [B, Tq, Sq, H, D].
  """
  B, Tq, Sq, H, D = q.shape
  Tk, Sk = k.shape[1], k.shape[2]
  ok = _window_ok(frame_times(Tq, q_rate), frame_times(Tk, k_rate), window_s)
  mask = np.repeat(np.repeat(ok, Sq, axis=0), Sk, axis=1)  # [Tq*Sq, Tk*Sk]
  out = attention(
      q.reshape(B, Tq * Sq, H, D),
      k.reshape(B, Tk * Sk, H, D),
      v.reshape(B, Tk * Sk, H, D),
      jnp.asarray(mask)[None, None],
      impl,
  )
  return out.reshape(q.shape)


def local_cross_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, q_rate: float, k_rate: float, window_s: float, impl: str = "xla"
) -> jax.Array:
  """Banded local cross-attention; same result as `local_cross_attention_dense`, linear cost in T.

  q: [B, Tq, Sq, H, D]; k, v: [B, Tk, Sk, H, D]; both sequences cover the same duration.
  Each block of bq query frames attends to the (2n+1)*bk key frames around it (static slices of
  a padded key array), with the exact +-window mask inside; cost ~ T * (2n+1) * block, not T^2.
  Returns [B, Tq, Sq, H, D].
  """
  B, Tq, Sq, H, D = q.shape
  Tk, Sk = k.shape[1], k.shape[2]
  p = band_plan(Tq, Tk, q_rate, k_rate, window_s)
  nb, bq, bk, n = p.nb, p.bq, p.bk, p.n
  # Queries: pad to whole blocks -> [B, nb, bq*Sq, H, D].
  qp = jnp.pad(q, ((0, 0), (0, nb * bq - Tq), (0, 0), (0, 0), (0, 0)))
  qb = qp.reshape(B, nb, bq * Sq, H, D)
  # Keys: n empty blocks of padding on both sides, then (2n+1) shifted views stacked per block.
  kpad = ((0, 0), (n * bk, (nb + n) * bk - Tk), (0, 0), (0, 0), (0, 0))

  def windows(x):
    xb = jnp.pad(x, kpad).reshape(B, nb + 2 * n, bk * Sk, H, D)
    return jnp.concatenate([xb[:, o : o + nb] for o in range(2 * n + 1)], axis=2)

  kb, vb = windows(k), windows(v)  # [B, nb, (2n+1)*bk*Sk, H, D]
  # Static mask [nb, bq*Sq, (2n+1)*bk*Sk] from frame indices (out-of-range keys are padding).
  qi = np.arange(nb)[:, None] * bq + np.arange(bq)[None]  # [nb, bq]
  kj = (np.arange(nb)[:, None] - n) * bk + np.arange((2 * n + 1) * bk)[None]  # [nb, (2n+1)bk]
  ok = np.abs(qi[:, :, None] / q_rate - kj[:, None, :] / k_rate) <= window_s + 1e-6
  ok &= ((kj >= 0) & (kj < Tk))[:, None, :]
  mask = np.repeat(np.repeat(ok, Sq, axis=1), Sk, axis=2)[:, None]  # [nb, 1, Lq, Lk]
  out = attention(qb, kb, vb, jnp.asarray(mask), impl)  # [B, nb, bq*Sq, H, D]
  return out.reshape(B, nb * bq, Sq, H, D)[:, :Tq]


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
  """adaLN: x [B, L, D], shift/scale [B, D] -> x * (1 + scale) + shift."""
  return x * (1 + scale[:, None]) + shift[:, None]


def positions_on_video_timeline(n: int, rate: float, video_fps: float) -> np.ndarray:
  """RoPE index of n frames at `rate` on the video-frame timeline: j * video_fps / rate -> [n].

  This is Harmony's RoPE index scaling: audio token j sits at j * (T_v / T_a) so a video frame
  and the audio token at the same instant get the same rotary position.
  """
  return np.arange(n, dtype=np.float64) * (float(video_fps) / float(rate))


def as_dtype(name: str):
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def split_heads(x: jax.Array, heads: int) -> jax.Array:
  """[..., L, H*D] -> [..., L, H, D]."""
  return x.reshape(x.shape[:-1] + (heads, x.shape[-1] // heads))


def merge_heads(x: jax.Array) -> jax.Array:
  """[..., L, H, D] -> [..., L, H*D]."""
  return x.reshape(x.shape[:-2] + (x.shape[-2] * x.shape[-1],))


__all__: Sequence[str] = (
    "dense",
    "RMSNorm",
    "layer_norm",
    "timestep_features",
    "sincos_2d",
    "rope_angles",
    "apply_rope",
    "rope_3d_angles",
    "attention",
    "splash_attention",
    "local_cross_attention",
    "local_cross_attention_dense",
    "band_plan",
    "check_local_window",
    "frame_times",
    "modulate",
    "positions_on_video_timeline",
)
