"""Memory plan: does a run config fit its target devices? Answered on a laptop, before paying for a pod.

    python launch/plan.py --config configs/tpu_pod.py:v5p-128

What is exact and what is estimated:
  * state (exact): the TrainState is built with `jax.eval_shape` from the trainer's own init
    (`loop.make_init_fn`) and sharded with the trainer's own shardings (`loop.state_shardings`, the
    model's logical-axis rules) on a `jax.sharding.AbstractMesh` of the target's shape, so its bytes
    per device (params, optimizer moments, DPO reference, EMA) are those the trainer allocates there;
    gradients are one more copy of the params with their shardings.
  * activations (ESTIMATE, `activation_bytes`): what the backward pass keeps from the forward, counted
    from the model config (token counts, widths, heads) under the remat policy, plus the working set
    of the one layer whose backward is running. XLA's scheduling, fusion and collective buffers move
    the real number; the tests hold the estimate against XLA's own memory analysis of a compiled
    step on CPU. Budget headroom for what the estimate does not see.
Devices are never touched: a 256-chip plan runs on one CPU core in seconds.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh, AxisType

from syncdpo_jax.model import sharding as sharding_lib
from syncdpo_jax.model import layers as L
from syncdpo_jax.model.layers import band_plan

GIB = 1 << 30
FLASH_IMPLS = L.FLASH_IMPLS  # kernels that never materialise [Lq, Lk] scores (layers.attention)


# ----------------------------------------------------------------------------- activations (estimate)


@dataclasses.dataclass(frozen=True)
class Tokens:
  """Per-example sequence lengths a model sees for the latents it is built for (`model.resolve`'s spec).

  Nv video tokens (T_v frames x S tokens/frame), Na audio tokens (G global + Tt audio), Lc
  conditioning tokens (label + caption).
  """

  Nv: int
  S: int
  T_v: int
  Tt: int
  G: int
  Na: int
  Lc: int


def tokens(spec: Any) -> Tokens:
  """spec: model.resolve(model_cfg, io, parallel) (config_lib.model_spec of a run config)."""
  ph, pw = tuple(spec.video_patch)
  S = (spec.h // ph) * (spec.w // pw)
  Tt = spec.T_a // spec.audio_patch
  G = spec.global_tokens.num if spec.global_tokens.enabled else 0
  Lc = 1 + (spec.text_len if spec.text_dim else 0)
  return Tokens(Nv=spec.T_v * S, S=S, T_v=spec.T_v, Tt=Tt, G=G, Na=G + Tt, Lc=Lc)


def _score_elements(cfg: Any, tk: Tokens, tensor: int) -> dict[str, float]:
  """Attention-score elements [H, Lq, Lk] per example and layer, per device (heads / tensor)."""
  hv, ha, hi = (cfg.video_heads / tensor, cfg.audio_heads / tensor, cfg.interaction_heads / tensor)
  rate_a = cfg.audio_fps / cfg.audio_patch
  pv = band_plan(tk.T_v, tk.Tt, cfg.video_fps, rate_a, cfg.local_window_s)
  pa = band_plan(tk.Tt, tk.T_v, rate_a, cfg.video_fps, cfg.local_window_s)
  return {
      "self": hv * tk.Nv**2 + ha * tk.Na**2,
      "cond": hv * tk.Nv * tk.Lc + ha * tk.Na * tk.Lc,
      # The banded kernel's blocks: every query block against its (2n+1) key blocks.
      "band": hi
      * (pv.nb * pv.bq * tk.S * (2 * pv.n + 1) * pv.bk + pa.nb * pa.bq * (2 * pa.n + 1) * pa.bk * tk.S),
      "global": 2 * hi * tk.Nv * tk.G,
  }


def activation_bytes(
    cfg: Any, *, per_device_batch: int, tensor: int = 1, passes: int = 1
) -> dict[str, float]:
  """ESTIMATED activation bytes per device for one training step of `JointDiT(cfg)`.

  cfg: model.resolve(model_cfg, io, parallel) (architecture, latents, remat and attention kernel).

  per_device_batch: examples per device (global batch / (data x fsdp));
  tensor: the mesh's tensor-parallel size (heads and MLP widths are split over it);
  passes: examples through the policy per batch example (SFT 1; DPO 2: winner and loser).
  Returns {'saved': bytes kept for the backward by all layers, 'layer': working set of the one layer
  whose backward runs}.

  Per example and layer, with c the compute dtype's bytes, f32 residual streams, /t = split over
  `tensor` (heads, MLP hidden):
    carry   4 (Nv Dv + Na Da)                              layer input, kept by the layer scan
    proj    c x outputs of every dense layer in the block (what 'dots_no_batch' saves):
            per stream N D (3 + 4/t) + 2 Lc D/t + N M/t, plus the interaction's q/k/v/o
    pv      c x attention outputs before the o projection: ~4 (Nv Dv + Na Da)/t (self, cond,
            local, global per stream)
    scores  [H, Lq, Lk] attention scores (self, cond, local band, global) that a kernel
            materialises: none for flash kernels' calls ('cudnn': unmasked; 'splash': also the
            key-masked caption attention); the local band's blocks always
    elem    elementwise intermediates JAX keeps without remat (norm statistics and outputs, adaLN,
            RoPE and qk-norm in f32, gates, head splits): ~29 N D f32 per stream, and 5 c N M/t
            around the GELU
  Saved per layer by the remat policy:  'full' carry | 'dots_no_batch' carry + proj |
    'dots' + pv + f32 scores | 'none' all: carry + proj + pv + scores (f32 and c probs) + elem.
    ('full' and 'dots_no_batch' are exactly JAX's saved residuals (what
    `jax.ad_checkpoint.print_saved_residuals` lists; tested); 'dots' and 'none' came within 5% of
    them on the tiny and demo models.)
  The running layer's working set: its recomputed forward ('none' minus carry; nothing to recompute
  under 'none') plus the cotangents: f32 d-probs and d-logits (8 x scores), proj and pv.
  Ignored: the embeddings and output heads (one layer's worth at most), batch inputs, XLA's
  scratch and collective buffers.
  """
  tk = tokens(cfg)
  c = jnp.dtype(cfg.dtype).itemsize
  t = float(tensor)
  Dv, Da, Mv, Ma = cfg.video_dim, cfg.audio_dim, cfg.video_mlp_dim, cfg.audio_mlp_dim
  nd = tk.Nv * Dv + tk.Na * Da  # residual-stream elements, both streams
  nm = tk.Nv * Mv + tk.Na * Ma  # MLP hidden elements, both streams

  def stream_proj(N: int, D: int, M: int) -> float:
    return N * D * (3 + 4 / t) + 2 * tk.Lc * D / t + N * M / t

  carry = 4.0 * nd
  proj = stream_proj(tk.Nv, Dv, Mv) + stream_proj(tk.Na, Da, Ma)
  # Interaction: video<-audio q (Nv), k/v (Tt audio + G global), o; audio<-video q (Na), k/v (Nv), o.
  proj += tk.Nv * Dv / t + 2 * (tk.Tt + tk.G) * Dv / t + tk.Nv * Dv
  proj += tk.Na * Da / t + 2 * tk.Nv * Da / t + tk.Na * Da
  proj *= c
  pv = 4.0 * c * nd / t
  sc = _score_elements(cfg, tk, tensor)
  impl = cfg.attention_impl
  flash = {
      "self": impl in FLASH_IMPLS,
      "global": impl in FLASH_IMPLS,
      "cond": impl == "splash",
      "band": False,
  }
  scores = sum(v for k, v in sc.items() if not flash[k])
  elem = 4.0 * 29 * nd + 5.0 * c * nm / t
  saved, layer = L.remat_activation_bytes(carry, proj, pv, scores, elem, c, cfg.remat)
  n = per_device_batch * passes
  return {"saved": cfg.depth * n * saved, "layer": n * layer}


# ----------------------------------------------------------------------------- state (exact)


def abstract_mesh(mesh_cfg: Mapping[str, int], num_devices: int) -> AbstractMesh:
  """The mesh ('data', 'fsdp', 'tensor') a run of `num_devices` devices builds, without devices."""
  sizes = sharding_lib.resolve_mesh_shape(mesh_cfg, num_devices)
  axes = sharding_lib.MESH_AXES
  return AbstractMesh(tuple(sizes[a] for a in axes), axes, axis_types=(AxisType.Auto,) * len(axes))


def _bytes(tree: Any, shardings: Any) -> tuple[int, int]:
  """(total bytes, bytes per device) of an abstract pytree under its pytree of NamedShardings."""
  leaves, sh = jax.tree.leaves(tree), jax.tree.leaves(shardings)
  if len(leaves) != len(sh):
    raise ValueError(f"state has {len(leaves)} arrays but {len(sh)} shardings")
  total = sum(x.size * x.dtype.itemsize for x in leaves)
  per_device = sum(math.prod(s.shard_shape(x.shape)) * x.dtype.itemsize for x, s in zip(leaves, sh))
  return int(total), int(per_device)


@dataclasses.dataclass(frozen=True)
class Row:
  name: str
  per_device: float  # bytes on each device
  total: float  # bytes over all devices' distinct data (the unsharded size); 0 = n/a
  note: str


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
  """A config's memory per device on its target: rows in bytes, the device's HBM and the verdict."""

  name: str
  num_devices: int
  mesh: dict[str, int]
  per_device_batch: int
  tokens: Tokens
  num_params: int
  rows: tuple[Row, ...]
  hbm_bytes: float | None
  hints: tuple[str, ...] = ()  # what would shrink it, printed when it does not fit

  @property
  def total_per_device(self) -> float:
    return sum(r.per_device for r in self.rows)

  def row(self, name: str) -> Row:
    return next(r for r in self.rows if r.name == name)

  @property
  def fits(self) -> bool | None:
    return None if self.hbm_bytes is None else self.total_per_device <= self.hbm_bytes

  def format(self) -> str:
    # GiB for real targets; MiB keeps a laptop-sized config readable.
    unit, div = ("GiB", GIB) if self.total_per_device >= GIB else ("MiB", 1 << 20)
    mesh = " x ".join(f"{a}={s}" for a, s in self.mesh.items())
    t = self.tokens
    lines = [
        f"Memory plan: {self.name} on {self.num_devices} devices (mesh {mesh}), "
        f"{_count(self.num_params)} params",
        f"  per-device batch {self.per_device_batch}; tokens per example: video {t.Nv} "
        f"({t.T_v} frames x {t.S}), audio {t.Na} ({t.G} global + {t.Tt}), cond {t.Lc}",
        f"  {'':<22}{unit + '/device':>11}{unit + ' total':>11}  how",
    ]
    for r in self.rows:
      total = f"{r.total / div:>11.2f}" if r.total else f"{'':>11}"
      lines.append(f"  {r.name:<22}{r.per_device / div:>11.2f}{total}  {r.note}")
    lines.append(f"  {'total':<22}{self.total_per_device / div:>11.2f}")
    if self.hbm_bytes is None:
      lines.append(
          "  fits: unknown (no config.hardware section: pass --hbm_gib, or see "
          "configs/gpu.py, configs/tpu_pod.py)"
      )
    else:
      use = self.total_per_device / self.hbm_bytes
      verdict = (
          "FITS"
          if use <= 0.85
          else "FITS, TIGHT (<15% headroom for what the estimate " "does not see)"
          if use <= 1.0
          else "DOES NOT FIT"
      )
      lines.append(
          f"  {verdict}: {self.total_per_device / GIB:.2f} of {self.hbm_bytes / GIB:.0f} "
          f"GiB per device ({100 * use:.0f}%)"
      )
      if use > 1.0:
        lines.append("  to fit: " + ", ".join(self.hints))
    return "\n".join(lines)


def _count(n: int) -> str:
  return next(f"{n / d:.2f}{u}" for d, u in ((1e9, "B"), (1e6, "M"), (1e3, "K"), (1, "")) if n >= d or d == 1)


def example_bytes(config: Any) -> int:
  """Bytes of one f32 example as the jitted step receives it: the stored latents when the dataset
  holds them (codec 'precomputed'), else the frames [T, H, W, 3] and log-mel [T_a, n_mels]."""
  from syncdpo_jax import codec as codec_lib
  from syncdpo_jax.data.config import frames_per_window

  d = config.data
  text = 4 * int(d.get("text_dim", 0)) * int(d.get("text_len", 0)) + int(d.get("text_len", 0))  # + mask
  if config.codec.name == "precomputed":
    video, audio = codec_lib.latent_layout(config.codec, d).window_shapes(d)
    return 4 * (math.prod(video) + math.prod(audio)) + text
  t_v, t_a = frames_per_window(d)
  return 4 * (t_v * d.resolution**2 * 3 + t_a * d.n_mels)


def make_plan(config: Any, num_devices: int | None = None, hbm_gib: float | None = None) -> MemoryPlan:
  """The memory plan of a run config on `num_devices` devices of `hbm_gib` each (defaults:
  `config.hardware.num_devices` and `.hbm_gib`; without a hardware section, this process' devices
  and no verdict).

  Validates the config as the trainer would (batch and heads divide the mesh) before anything else.
  """
  from syncdpo_jax import config_lib
  from syncdpo_jax.train import loop, optim

  if config.mode == "dpo" and not config.init_from:
    # The trainer refuses DPO without a reference to read; a plan needs its shapes, not its values.
    config = config.copy_and_resolve_references()
    with config.unlocked():
      config.init_from = "<reference checkpoint: shapes only>"
  config_lib.validate(config)
  hw = config.get("hardware")
  if num_devices is None:
    num_devices = int(hw.num_devices) if hw is not None else jax.device_count()
  mesh = abstract_mesh(config.parallel.mesh, num_devices)
  loop.check_mesh_divides(config, mesh)
  rules = config.parallel.logical_axis_rules
  tx = optim.make_optimizer(config.optim, int(config.train.num_steps))
  abstract = jax.eval_shape(loop.make_init_fn(config, tx), jax.random.key(int(config.seed)))
  sh = loop.state_shardings(abstract, tx, mesh, rules)

  rows = []
  p_total, p_dev = _bytes(abstract.params, sh.params)
  rows.append(Row("params", p_dev, p_total, "f32, sharded by parallel.logical_axis_rules"))
  o_total, o_dev = _bytes(abstract.opt_state, sh.opt_state)
  rows.append(Row("optimizer", o_dev, o_total, "AdamW moments, as params"))
  if abstract.ref_params is not None:
    r_total, r_dev = _bytes(abstract.ref_params, sh.ref_params)
    rows.append(Row("reference (DPO)", r_dev, r_total, "frozen copy of the policy"))
  if abstract.ema_params is not None:
    e_total, e_dev = _bytes(abstract.ema_params, sh.ema_params)
    rows.append(Row("EMA", e_dev, e_total, f"train.ema_decay={config.train.ema_decay}"))
  accum = int(config.optim.grad_accum_steps)
  if accum > 1:  # the scan's running sum and one micro-batch's gradients
    rows.append(Row("gradients", 2 * p_dev, 2 * p_total, "running sum + one micro-batch's, f32"))
  else:
    rows.append(Row("gradients", p_dev, p_total, "one f32 copy of the params, same shardings"))

  batch_axes = mesh.shape["data"] * mesh.shape["fsdp"]
  per_device_batch = int(config.data.batch_size) // batch_axes
  micro = max(per_device_batch // accum, 1)  # what is live at once (optim.grad_accum_steps)
  m = config_lib.model_spec(config)
  passes = 2 if config.mode == "dpo" else 1
  if m.name == "ltx2":  # the ported LTX-2 estimates its own block
    from syncdpo_jax.model import ltx2

    act = ltx2.activation_bytes(m, per_device_batch=micro, tensor=mesh.shape["tensor"], passes=passes)
    tk = Tokens(Nv=m.T_v * m.h * m.w, S=m.h * m.w, T_v=m.T_v, Tt=m.T_a, G=0, Na=m.T_a, Lc=max(m.text_len, 1))
  else:
    act = activation_bytes(m, per_device_batch=micro, tensor=mesh.shape["tensor"], passes=passes)
    tk = tokens(m)
  depth = m.get("depth", m.get("num_layers"))
  what = f"{micro}{' x 2 (winner, loser)' if passes == 2 else ''} ex" + (
      f" (1 of {accum} micro-batches)" if accum > 1 else ""
  )
  rows.append(Row("activations (est.)", act["saved"], 0.0, f"{what} x {depth} layers, remat={m.remat!r}"))
  rows.append(
      Row(
          "layer working (est.)",
          act["layer"],
          0.0,
          f"one layer's backward, attention_impl={m.attention_impl!r}",
      )
  )
  rows.append(
      Row(
          "input batch",
          per_device_batch * example_bytes(config),
          0.0,
          f"{per_device_batch} ex, f32, as the step receives them",
      )
  )
  if hbm_gib is None and hw is not None:
    hbm_gib = hw.get("hbm_gib")
  hbm = float(hbm_gib) * GIB if hbm_gib else None
  name = hw.name if hw is not None and hw.get("name") else f"{config.model.name}/{config.model.size}"
  n_params = sum(x.size for x in jax.tree.leaves(abstract.params))
  hints = [
      "more fsdp devices (parallel.mesh)",
      "optim.grad_accum_steps=k (k micro-batches a step: 1/k of the activations, same results)",
  ]
  if m.remat != "full":
    hints.append("parallel.remat='full'")
  if m.attention_impl not in FLASH_IMPLS:
    hints.append("parallel.attention_impl='cudnn' (GPU) or 'splash' (TPU)")
  return MemoryPlan(
      name=f"{name} ({config.mode}, model {m.size})",
      num_devices=num_devices,
      mesh=dict(mesh.shape),
      per_device_batch=per_device_batch,
      tokens=tk,
      num_params=int(n_params),
      rows=tuple(rows),
      hbm_bytes=hbm,
      hints=tuple(hints),
  )
