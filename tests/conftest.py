"""Test setup: every test process sees 8 virtual CPU devices.

Tests that need a mesh build one from `jax.devices()[:8]`; all other tests run on device 0 exactly as
they would on a one-device machine (jax places un-sharded arrays on the first device).
This must run before any test imports jax, hence module level in conftest.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite's programs are tiny and run a few steps: most of their time is XLA compiling them.
#  - LLVM at -O0 halves that (measured on the train steps: SFT 31 -> 16 s, DPO 42 -> 18 s of CPU).
#  - At -O0, XLA's older CPU fusion emitters compile a quarter faster than the default MLIR ones, with
#    bit-equal losses and gradient norms after 6 SFT steps (SFT step compile 10.1 -> 7.1 s, means of 8;
#    tests/test_train.py 302 -> 227 s of CPU from a cold cache). With the lazy librosa import and the
#    checkpoint change made the same day, the whole suite went from 570 to 340 s wall on 2 cores.
#    Not for real runs: at the default -O2 they compile slower (SFT step 12.5 -> 17.8 s).
# Set in the environment so the CLI subprocesses and the notebook kernel that tests launch compile the
# same way (and share the compilation cache).
_TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
for _flag in _TEST_XLA_FLAGS:
  if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)

# Many tests compile the same tiny train steps (in this process and in launched subprocesses): a
# persistent compilation cache makes the second and later compiles a disk read.
_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "jax")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
# Every compile is cached, however small: orbax's per-array slicing programs and the like add up over
# the many processes (xdist workers, CLI subprocesses, the notebook kernel) that compile the same ones.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)
