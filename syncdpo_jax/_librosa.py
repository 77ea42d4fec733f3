"""librosa, imported on first use, by one process of a machine at a time (numba's cache race).

Import ``librosa`` from here (``from syncdpo_jax._librosa import librosa``), never directly. The name
stands in for the module: the first attribute access imports librosa, so processes that never touch
audio features (a training run reads precomputed mels) skip its ~3-5 s import, numba cache loads included.

Why: librosa compiles its numba gufuncs when its modules are imported and caches them on disk
(``cache=True``, next to librosa's sources or under ``NUMBA_CACHE_DIR``). Each gufunc is cached as two
files written separately; when two processes compile it at once, the two files can come from different
processes, whose native symbol names differ, and every later process that loads that cache segfaults
inside the gufunc (numba issue 10128). That happens on a fresh install whenever several processes
import librosa first together: pytest-xdist workers, the reproduction's parallel runs, a demo beside the
tests. We hold an exclusive file lock while importing the modules that define the gufuncs we reach
(``librosa.onset`` pulls in ``util``, ``core.audio`` and ``core.pitch``), so the first process compiles
and writes the cache and the others wait, then load a consistent one. Uncontended, the lock costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import tempfile

try:
  import fcntl
except ImportError:  # Windows: no flock; the race stays possible there.
  fcntl = None


def lock_path() -> str:
  """The lock file shared by every process that uses this librosa install and numba cache."""
  spec = importlib.util.find_spec("librosa")
  where = f"{spec.origin if spec else 'librosa'}|{os.environ.get('NUMBA_CACHE_DIR', '')}"
  key = hashlib.sha256(where.encode()).hexdigest()[:16]
  return os.path.join(tempfile.gettempdir(), f"syncdpo_jax-librosa-{key}.lock")


@contextlib.contextmanager
def _exclusive(path: str):
  """Holds an exclusive lock on `path`; without one (no flock, or another user's unwritable lock file)
  it goes on unlocked: the race is rare, an import that fails on a lock file would not be."""
  try:
    f = open(path, "a") if fcntl is not None else None
  except OSError:
    f = None
  if f is None:
    yield
    return
  with f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@functools.cache
def _import():
  with _exclusive(lock_path()):
    import librosa as module
    import librosa.onset  # noqa: F401  (compiles and caches the gufuncs; see the module docstring)
  return module


class _Librosa:
  """The librosa module, imported (under the lock) when an attribute is first asked for."""

  def __getattr__(self, name: str):
    return getattr(_import(), name)

  def __repr__(self) -> str:
    return "<librosa, imported on first use>"


librosa = _Librosa()

__all__ = ["librosa", "lock_path"]
