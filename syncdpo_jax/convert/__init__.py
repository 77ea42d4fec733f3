"""Loaders of reference checkpoints into this library's models.

from syncdpo_jax import convert
model_cfg, model = convert.ltx2.load(src_dir)     # a diffusers LTX-2 transformer folder
python -m syncdpo_jax.convert ltx2 --src DIR --out WORKDIR --config configs/ltx2.py:PRESET
"""

from syncdpo_jax.convert import ltx2

CONVERTERS = {"ltx2": ltx2}

__all__ = ["ltx2", "CONVERTERS"]
