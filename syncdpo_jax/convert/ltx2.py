"""diffusers-format LTX-2 transformer -> our `model.ltx2.LTX2` (and an orbax checkpoint for init_from).

  model_cfg, model = convert.ltx2.load("/path/to/LTX-2/transformer")       # config.json + safetensors
  python -m syncdpo_jax.convert ltx2 --src DIR --out WORKDIR [--config configs/ltx2.py:gpu-8x80gb]

`src_dir` is what `LTX2VideoTransformer3DModel.save_pretrained` writes: `config.json` and either
`diffusion_pytorch_model.safetensors` or shards with their `*.safetensors.index.json`. Tensors are read
one at a time from memory maps and each is placed straight into its target sharding
(`jax.make_array_from_callback`: every device reads only its own slice), so a 19B checkpoint never sits
whole on one host. A source tensor the map does not know, a parameter of ours no tensor fills, or a
shape that disagrees is an error naming it.

Names: ours keep the reference's, with these differences (`our_name`): per-layer tensors
`transformer_blocks.<i>.X` are stacked on a leading layer axis of `transformer_blocks.X` (scanned
layers), `*.emb.timestep_embedder.linear_k` -> `*.linear_k`, `ff.net.0.proj` / `ff.net.2` -> `ff.fc1` /
`ff.fc2`, `to_out.0` -> `to_out`, a Linear's `weight` [out, in] -> `kernel` [in, out] (transposed) and
an RMSNorm's `weight` -> `scale`. `label_embedding` (model.label_text, ours) starts at its init.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from syncdpo_jax.convert.safetensors_io import SafetensorsFolder
from syncdpo_jax.model import factory, ltx2
from syncdpo_jax.model import sharding as sharding_lib
from syncdpo_jax.model.io import ModelIO

# Our parameters that the reference does not have (they start at their init when converting).
OUR_ADDITIONS = ("label_embedding",)
_RENAMES = (
    (r"\.emb\.timestep_embedder\.linear_([12])\.", r".linear_\1."),
    (r"ff\.net\.0\.proj\.", "ff.fc1."),  # ff and audio_ff
    (r"ff\.net\.2\.", "ff.fc2."),
    (r"\.to_out\.0\.", ".to_out."),
)


def our_name(ref_key: str) -> tuple[str, int | None, bool]:
  """A reference tensor name -> (our dotted parameter path, its layer or None, whether to transpose)."""
  layer = None
  m = re.match(r"transformer_blocks\.(\d+)\.(.*)$", ref_key)
  if m:
    layer, ref_key = int(m.group(1)), "transformer_blocks." + m.group(2)
  name = ref_key
  for pat, rep in _RENAMES:
    name = re.sub(pat, rep, name)
  transpose = False
  if re.search(r"\.norm_[qk]\.weight$", name):
    name = name[: -len("weight")] + "scale"
  elif name.endswith(".weight"):
    name, transpose = name[: -len("weight")] + "kernel", True
  return name, layer, transpose


def read_config(src_dir: str) -> dict:
  path = os.path.join(src_dir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"{path} not found: --src must be a diffusers transformer folder (save_pretrained)"
    )
  with open(path) as f:
    ref = json.load(f)
  if ref.get("_class_name") not in (None, "LTX2VideoTransformer3DModel"):
    raise ValueError(f"{path}: _class_name={ref['_class_name']!r}, expected 'LTX2VideoTransformer3DModel'")
  return ref


def model_config(ref: dict, dtype: str = "float32") -> ml_collections.ConfigDict:
  """Our config.model for the reference config `ref` (config.json); unported switches are refused."""
  for k, want in ltx2.UNPORTED.items():
    if k in ref and ref[k] != want:
      raise ValueError(f"config.json: {k}={ref[k]!r} is not ported (this port covers LTX-2.0, {k}={want!r})")
  c = ltx2.get_config("19b")
  for k in ltx2.reference_fields():
    if k in ref:
      c[k] = tuple(ref[k]) if isinstance(ref[k], list) else ref[k]
  c.out_channels, c.audio_out_channels = ref.get("out_channels"), ref.get("audio_out_channels")
  c.size = "converted"
  c.dtype = dtype
  return c


def model_io(ref: dict, *, fps: float = 24.0, num_classes: int = 1) -> ModelIO:
  """The latents the reference model takes: its in_channels, LTX-2's 24 fps over the VAE's temporal
  stride, the audio VAE's latent rate, caption_channels wide captions (window shapes nominal)."""
  t_stride = ref.get("vae_scale_factors", (8, 32, 32))[0]
  rate = (
      ref.get("audio_sampling_rate", 16000)
      / ref.get("audio_hop_length", 160)
      / ref.get("audio_scale_factor", 4)
  )
  return ModelIO(
      video_channels=int(ref.get("in_channels", 128)),
      audio_channels=int(ref.get("audio_in_channels", 128)),
      video_fps=fps / t_stride,
      audio_fps=float(rate),
      num_classes=num_classes,
      text_dim=int(ref.get("caption_channels", 3840)),
      T_v=1,
      h=1,
      w=1,
      T_a=1,
  )


def _path_str(path) -> str:
  return ".".join(str(p) for p in path)


def convert_params(src: str, model_cfg, io: ModelIO, parallel=None, mesh=None):
  """(graphdef, params, rest) of our model with its nnx.Param leaves read from the safetensors at
  `src`, each array created on its sharding (parallel.logical_axis_rules on `mesh`; default: one
  device)."""
  from syncdpo_jax.model import config as model_config_lib

  parallel = model_config_lib.get_parallel_config() if parallel is None else parallel
  mesh = mesh or sharding_lib.make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, devices=jax.devices()[:1])
  abstract = factory.build_abstract(model_cfg, io, parallel)
  graphdef, abs_params, rest = nnx.split(abstract, nnx.Param, ...)
  shardings = sharding_lib.state_shardings(abs_params, mesh, tuple(parallel.logical_axis_rules))
  flat = {_path_str(p): v for p, v in nnx.to_flat_state(abs_params)}
  flat_sh = {_path_str(p): v for p, v in nnx.to_flat_state(shardings)}
  stacked = bool(model_cfg.scan_layers)
  n_layers = int(model_cfg.num_layers)

  st = SafetensorsFolder(src)
  sources: dict[str, dict] = {}  # our path -> {layer or None: (ref key, transpose)}
  for key in st.names():
    name, layer, transpose = our_name(key)
    if layer is not None and not stacked:
      name, layer = name.replace("transformer_blocks.", f"transformer_blocks.{layer}.", 1), None
    if name not in flat:
      raise ValueError(f"{src}: tensor {key!r} (ours: {name!r}) has no place in the LTX-2 port")
    shape = st.shape(key)[::-1] if transpose else st.shape(key)
    want = flat[name].shape[1:] if layer is not None else flat[name].shape
    if tuple(shape) != tuple(want):
      raise ValueError(f"{src}: tensor {key!r} has shape {st.shape(key)}; our {name!r} needs {tuple(want)}")
    sources.setdefault(name, {})[layer] = (key, transpose)

  # Parameters that are ours, not the reference's (model.label_text's class tokens), start at their init.
  ours = [n for n in flat if n not in sources and n.split(".")[0] in OUR_ADDITIONS]
  missing = [n for n in flat if n not in sources and n not in ours]
  partial = [n for n in sources if None not in sources[n] and len(sources[n]) != n_layers]
  if missing or partial:
    raise ValueError(
        f"{src} does not fill the LTX-2 port: no tensor for {missing[:8]}"
        + (f" (+{len(missing) - 8})" if len(missing) > 8 else "")
        + (f"; missing layers of {partial[:8]}" if partial else "")
    )

  def read(key, transpose, dtype, idx):
    x = st.get(key)
    x = x.T if transpose else x
    return np.asarray(x[idx], dtype=dtype)

  def make(name):
    leaf, sh = flat[name], flat_sh[name]
    leaf = leaf.get_value() if isinstance(leaf, nnx.Variable) else leaf
    sh = sh.get_value() if isinstance(sh, nnx.Variable) else sh
    dtype = np.dtype(leaf.dtype)
    src_of = sources[name]

    def cb(index):
      if None in src_of:
        return read(*src_of[None], dtype, index)
      layers = range(n_layers)[index[0]]
      return np.stack([read(*src_of[i], dtype, index[1:]) for i in layers])

    return jax.make_array_from_callback(tuple(leaf.shape), sh, cb)

  init = _init_values(model_cfg, io, parallel, ours, {n: flat_sh[n] for n in ours}) if ours else {}
  values = {n: init[n] if n in init else make(n) for n in flat}
  params = nnx.from_flat_state(
      [(p, v.replace(values[_path_str(p)])) for p, v in nnx.to_flat_state(abs_params)]
  )
  return graphdef, params, rest


def _init_values(model_cfg, io, parallel, names, shardings) -> dict:
  """The initial values of parameters `names` (seed 0), on their shardings; XLA computes only those."""
  shardings = {n: s.get_value() if isinstance(s, nnx.Variable) else s for n, s in shardings.items()}

  def init():
    state = nnx.state(factory.build(model_cfg, io, nnx.Rngs(0), parallel), nnx.Param)
    return {
        n: v.get_value() for n, v in ((_path_str(p), v) for p, v in nnx.to_flat_state(state)) if n in names
    }

  return jax.jit(init, out_shardings=shardings)()


def load(src_dir: str, dtype: str = "float32", *, io: ModelIO | None = None, parallel=None, mesh=None):
  """(model_cfg, model): our LTX-2 module with the weights of the diffusers folder `src_dir`.

  dtype: the compute dtype (model.dtype); parameters stay float32 (model.param_dtype). io: the latents
  to build for (default `model_io(config.json)`: 24 fps video, nominal window shapes). The returned
  model is called as `model(video, audio, t_v, t_a, cond)`; model/ltx2.py's docstring maps every
  argument onto the reference's forward.
  """
  ref = read_config(src_dir)
  model_cfg = model_config(ref, dtype)
  io = io or model_io(ref)
  graphdef, params, rest = convert_params(src_dir, model_cfg, io, parallel, mesh)
  return model_cfg, nnx.merge(graphdef, params, rest)


def check_run_config(model_cfg, config, ref: dict) -> None:
  """The run config must describe the converted architecture: its model fields equal the checkpoint's
  (output channels compared as resolved: None = the latents' channels)."""
  outs = ("out_channels", "audio_out_channels")
  diffs = [
      f"config.model.{k}: checkpoint {model_cfg[k]!r}, config {config.model.get(k)!r}"
      for k in ltx2.reference_fields()
      if k not in outs and _norm(model_cfg[k]) != _norm(config.model.get(k))
  ]
  from syncdpo_jax import config_lib

  io = config_lib.model_io(config)
  for k, ins, have in zip(outs, ("in_channels", "audio_in_channels"), (io.video_channels, io.audio_channels)):
    want = ref.get(k) or ref.get(ins)
    got = config.model.get(k) or have
    if want != got:
      diffs.append(f"config.model.{k}: checkpoint {want!r}, config {got!r}")
  if config.model.name != "ltx2":
    diffs.insert(0, f"config.model.name={config.model.name!r}, expected 'ltx2'")
  if diffs:
    raise ValueError("the --config does not match the checkpoint:\n  " + "\n  ".join(diffs))


def _norm(v: Any):
  return tuple(v) if isinstance(v, (list, tuple)) else v


def write_checkpoint(src_dir: str, out_workdir: str, config) -> str:
  """Converts `src_dir` for the run `config` (a configs/ltx2.py preset) into an orbax checkpoint under
  `out_workdir` that `--config.init_from=out_workdir` starts SFT or SyncDPO from. Returns its path."""
  from syncdpo_jax import config_lib
  from syncdpo_jax.train import checkpoint as ckpt_lib

  ref = read_config(src_dir)
  converted = model_config(ref, config.model.dtype)
  check_run_config(converted, config, ref)
  io = config_lib.model_io(config)
  ref_io = model_io(ref)
  if (io.video_channels, io.audio_channels) != (ref_io.video_channels, ref_io.audio_channels):
    raise ValueError(
        f"the run's latents have {io.video_channels} video / {io.audio_channels} audio channels "
        f"(config.codec) but the checkpoint takes {ref_io.video_channels} / {ref_io.audio_channels}"
    )
  mesh = sharding_lib.make_mesh(config.parallel.mesh)
  _, params, _ = convert_params(src_dir, config.model, io, config.parallel, mesh)
  return ckpt_lib.save_params(out_workdir, params, config)


# The run config a conversion is fingerprinted with when none is given: the 19B presets share their
# latents (LTX-2's VAEs at 24 fps, 16 kHz), so its checkpoint starts any of them.
DEFAULT_RUN_CONFIG = "configs/ltx2.py:gpu-8x80gb"


def default_run_config(src_dir: str):
  """DEFAULT_RUN_CONFIG (from the repository's configs/) with the architecture of `src_dir`'s config.json."""
  import importlib.util

  path = os.path.join(
      os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs", "ltx2.py"
  )
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: pass the run config with --config FILE[:ARG]")
  spec = importlib.util.spec_from_file_location("ltx2_run_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(DEFAULT_RUN_CONFIG.split(":", 1)[1])
  ref = read_config(src_dir)
  converted = model_config(ref, config.model.dtype)
  for k in ltx2.reference_fields():
    config.model[k] = converted[k]
  return config


def main(argv: list[str]) -> None:
  """The CLI (flags as launch/main.py's: --config FILE[:ARG] with --config.a.b=value overrides)."""
  from absl import app, flags
  from ml_collections import config_flags

  from syncdpo_jax import launch_lib

  config = config_flags.DEFINE_config_file(
      "config", None, f"the run config (default {DEFAULT_RUN_CONFIG} with the checkpoint's architecture)"
  )
  src = flags.DEFINE_string("src", None, "diffusers transformer folder (config.json + safetensors)")
  out = flags.DEFINE_string("out", None, "workdir to write; train from it with --config.init_from=<it>")
  flags.mark_flags_as_required(["src", "out"])

  def run(_):
    def convert():
      path = write_checkpoint(src.value, out.value, config.value or default_run_config(src.value))
      print(f"wrote {path}; start SFT or SyncDPO from it with --config.init_from={out.value}")

    verbose = any(a.split("=")[0] in ("--verbosity", "-v") for a in argv)
    launch_lib.quiet_console(verbose)
    launch_lib.run_cli(convert, verbose)

  app.run(run, argv=["python -m syncdpo_jax.convert ltx2", *argv], flags_parser=launch_lib.parse_flags)
