"""Test setup: every test process sees 8 virtual CPU devices.

Tests that need a mesh build one from `jax.devices()[:8]`; all other tests run on device 0 exactly as
they would on a one-device machine (jax places un-sharded arrays on the first device).
This must run before any test imports jax, hence module level in conftest.
"""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
