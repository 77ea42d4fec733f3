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


# ----------------------------------------------------------------------------- dense layers

def dense(din: int, dout: int, axes: tuple[str | None, str | None], *, rngs: nnx.Rngs,
          dtype=jnp.float32, param_dtype=jnp.float32, zero: bool = False,
          use_bias: bool = True) -> nnx.Linear:
    """`nnx.Linear` whose kernel [din, dout] carries logical `axes` (bias gets axes[1]).

    zero=True zero-initialises the kernel (adaLN-zero gates and output heads start the DiT as
    an identity map / zero velocity).
    """
    init = nnx.initializers.zeros_init() if zero else nnx.initializers.xavier_uniform()
    return nnx.Linear(din, dout, use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                      kernel_init=init, rngs=rngs,
                      kernel_metadata={"out_sharding": axes},
                      bias_metadata={"out_sharding": (axes[1],)})


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
    parts = [rope_angles(tt.reshape(-1), dt, theta), rope_angles(hh.reshape(-1), dh, theta),
             rope_angles(ww.reshape(-1), dh, theta)]
    return jnp.concatenate(parts, axis=-1)


# ----------------------------------------------------------------------------- attention cores

def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None,
              impl: str = "xla") -> jax.Array:
    """Softmax attention.

    q: [*batch, Lq, H, D]; k, v: [*batch, Lk, H, D]; mask: bool broadcastable to
    [*batch, H, Lq, Lk] (True = attend) or None. Returns [*batch, Lq, H, D].
    impl: 'xla' (einsum reference, float32 softmax; any number of batch dims),
          'dot_product_attention' (jax.nn.dot_product_attention, XLA picks the kernel),
          'cudnn' (jax.nn.dot_product_attention's cuDNN flash kernel; GPU, bf16/f16 only).
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    if impl == "xla":
        logits = jnp.einsum("...qhd,...khd->...hqk", q, k,
                            preferred_element_type=jnp.float32) * scale
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
            flat(q), flat(k), flat(v), mask=m, scale=scale,
            implementation="cudnn" if impl == "cudnn" else None)
        return out.reshape(q.shape)
    raise ValueError(f"unknown attention implementation {impl!r} (config field model.attention_impl)")


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
    bq, bk = int(block * Fraction(q_rate).limit_denominator(10_000)), \
        int(block * Fraction(k_rate).limit_denominator(10_000))
    n = max(1, math.ceil(window_s / float(block) - 1e-9))
    nb = max(math.ceil(Tq / bq), math.ceil(Tk / bk))
    return BandPlan(float(block), bq, bk, nb, n)


def check_local_window(Tq: int, Tk: int, q_rate: float, k_rate: float, window_s: float) -> None:
    """Trace-time validation of a local window against the clip: raises naming model.local_window_s."""
    dur = Tq / q_rate
    if window_s > dur:
        raise ValueError(f"model.local_window_s={window_s} s is larger than the clip ({dur:.4g} s = "
                         f"{Tq} frames at {q_rate} fps); use a window shorter than the clip")
    ok = _window_ok(frame_times(Tq, q_rate), frame_times(Tk, k_rate), window_s)
    for name, rows in (("query", ok.any(1)), ("key", ok.any(0))):
        if not rows.all():
            raise ValueError(f"model.local_window_s={window_s} s is too small: some {name} frames see no "
                             f"frame of the other stream (rates {q_rate} and {k_rate} fps); use at least "
                             f"half the longer frame period ({0.5 / min(q_rate, k_rate):.4g} s)")


def local_cross_attention_dense(q: jax.Array, k: jax.Array, v: jax.Array, q_rate: float,
                                k_rate: float, window_s: float, impl: str = "xla") -> jax.Array:
    """Reference: full [Tq*Sq, Tk*Sk] attention with a window mask (quadratic; tests and benchmarks).

    q: [B, Tq, Sq, H, D] (Tq frames at q_rate, Sq tokens per frame); k, v: [B, Tk, Sk, H, D].
    Query frame i sees key frame j iff |i/q_rate - j/k_rate| <= window_s. Returns [B, Tq, Sq, H, D].
    """
    B, Tq, Sq, H, D = q.shape
    Tk, Sk = k.shape[1], k.shape[2]
    ok = _window_ok(frame_times(Tq, q_rate), frame_times(Tk, k_rate), window_s)
    mask = np.repeat(np.repeat(ok, Sq, axis=0), Sk, axis=1)            # [Tq*Sq, Tk*Sk]
    out = attention(q.reshape(B, Tq * Sq, H, D), k.reshape(B, Tk * Sk, H, D),
                    v.reshape(B, Tk * Sk, H, D), jnp.asarray(mask)[None, None], impl)
    return out.reshape(q.shape)


def local_cross_attention(q: jax.Array, k: jax.Array, v: jax.Array, q_rate: float, k_rate: float,
                          window_s: float, impl: str = "xla") -> jax.Array:
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
        return jnp.concatenate([xb[:, o:o + nb] for o in range(2 * n + 1)], axis=2)

    kb, vb = windows(k), windows(v)                                      # [B, nb, (2n+1)*bk*Sk, H, D]
    # Static mask [nb, bq*Sq, (2n+1)*bk*Sk] from frame indices (out-of-range keys are padding).
    qi = np.arange(nb)[:, None] * bq + np.arange(bq)[None]               # [nb, bq]
    kj = (np.arange(nb)[:, None] - n) * bk + np.arange((2 * n + 1) * bk)[None]   # [nb, (2n+1)bk]
    ok = np.abs(qi[:, :, None] / q_rate - kj[:, None, :] / k_rate) <= window_s + 1e-6
    ok &= ((kj >= 0) & (kj < Tk))[:, None, :]
    mask = np.repeat(np.repeat(ok, Sq, axis=1), Sk, axis=2)[:, None]     # [nb, 1, Lq, Lk]
    out = attention(qb, kb, vb, jnp.asarray(mask), impl)                 # [B, nb, bq*Sq, H, D]
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
    "dense", "RMSNorm", "layer_norm", "timestep_features", "rope_angles", "apply_rope",
    "rope_3d_angles", "attention", "local_cross_attention", "local_cross_attention_dense",
    "band_plan", "check_local_window", "frame_times", "modulate", "positions_on_video_timeline",
)
