"""Lazy reading of safetensors files (single or sharded with an index JSON) into numpy, no torch.

The format is an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
then the raw tensors. Each tensor is a memory map of its bytes, so nothing is read until a slice of it
is asked for. (safetensors' own numpy API cannot return bfloat16, the dtype real checkpoints ship in;
ml_dtypes, which jax depends on, gives numpy that dtype.)
"""

from __future__ import annotations

import json
import os
import struct

import ml_dtypes
import numpy as np

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"  # what save_pretrained writes unsharded
_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_header(path: str) -> tuple[dict, int]:
  """(header without '__metadata__', byte offset of the data) of one safetensors file."""
  with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
  header.pop("__metadata__", None)
  return header, 8 + n


class SafetensorsFolder:
  """The tensors of `src` (a .safetensors file, or a folder with one, or with a sharded
  `*.safetensors.index.json`), by name: `names()`, `shape(name)`, `get(name) -> np.ndarray` (a
  memory map: bytes are read when used)."""

  def __init__(self, src: str):
    self._where: dict[str, tuple[str, dict, int]] = {}
    for path in _files(src):
      header, start = read_header(path)
      for name, info in header.items():
        if name in self._where:
          raise ValueError(f"tensor {name!r} is in both {self._where[name][0]} and {path}")
        self._where[name] = (path, info, start)

  def names(self) -> list[str]:
    return sorted(self._where)

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self._where[name][1]["shape"])

  def get(self, name: str) -> np.ndarray:
    path, info, start = self._where[name]
    if info["dtype"] not in _DTYPES:
      raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}, which this reader does not know")
    dtype = np.dtype(_DTYPES[info["dtype"]])
    begin, end = info["data_offsets"]
    shape = tuple(info["shape"])
    if end - begin != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
      raise ValueError(f"{path}: tensor {name!r} has {end - begin} bytes for shape {shape} of {dtype}")
    if not shape or end == begin:
      with open(path, "rb") as f:
        f.seek(start + begin)
        return np.frombuffer(f.read(end - begin), dtype).reshape(shape)
    return np.memmap(path, dtype=dtype, mode="r", offset=start + begin, shape=shape)


def _files(src: str) -> list[str]:
  if os.path.isfile(src):
    return [src]
  if not os.path.isdir(src):
    raise FileNotFoundError(f"{src}: no such safetensors file or folder")
  index = [f for f in sorted(os.listdir(src)) if f.endswith(".safetensors.index.json")]
  if index:
    with open(os.path.join(src, index[0])) as f:
      weight_map = json.load(f)["weight_map"]
    files = sorted(set(weight_map.values()))
    missing = [f for f in files if not os.path.isfile(os.path.join(src, f))]
    if missing:
      raise FileNotFoundError(f"{src}/{index[0]} names shards that are not there: {missing}")
    return [os.path.join(src, f) for f in files]
  if os.path.isfile(os.path.join(src, DIFFUSERS_WEIGHTS)):
    return [os.path.join(src, DIFFUSERS_WEIGHTS)]
  files = [f for f in sorted(os.listdir(src)) if f.endswith(".safetensors")]
  if len(files) != 1:
    raise FileNotFoundError(
        f"{src} holds {len(files)} .safetensors files {files} and no {DIFFUSERS_WEIGHTS} or "
        "*.safetensors.index.json: point --src at the file to read"
    )
  return [os.path.join(src, files[0])]


def write(path: str, tensors: dict[str, np.ndarray]) -> None:
  """Writes numpy arrays (float32, bfloat16, ...) as one safetensors file, names sorted, no metadata:
  the same bytes for the same tensors."""
  names = {np.dtype(v): k for k, v in _DTYPES.items()}
  header, offset, blobs = {}, 0, []
  for name in sorted(tensors):
    x = np.ascontiguousarray(tensors[name])
    if x.dtype not in names:
      raise ValueError(f"tensor {name!r}: dtype {x.dtype} has no safetensors name")
    blob = x.tobytes()
    header[name] = {
        "dtype": names[x.dtype],
        "shape": list(x.shape),
        "data_offsets": [offset, offset + len(blob)],
    }
    offset += len(blob)
    blobs.append(blob)
  head = json.dumps(header, separators=(",", ":")).encode()
  head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head)
    for blob in blobs:
      f.write(blob)
