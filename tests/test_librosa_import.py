"""The librosa import lock (syncdpo_jax._librosa): first-time imports run one process at a time."""

import threading

from syncdpo_jax import _librosa


def test_lock_excludes_a_second_holder(tmp_path):
  """A second holder (another open file, as in another process) waits until the first releases."""
  path = str(tmp_path / "librosa.lock")
  entered = threading.Event()

  def second():
    with _librosa._exclusive(path):
      entered.set()

  with _librosa._exclusive(path):
    t = threading.Thread(target=second)
    t.start()
    assert not entered.wait(0.5), "the second holder got the lock while the first held it"
  t.join(10)
  assert entered.is_set(), "the second holder never got the lock after the first released it"


def test_lock_is_per_numba_cache(monkeypatch, tmp_path):
  """Processes that share librosa's cache share the lock; a private NUMBA_CACHE_DIR gets its own."""
  monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
  shared = _librosa.lock_path()
  assert _librosa.lock_path() == shared
  monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
  assert _librosa.lock_path() != shared


def test_module_exports_librosa_with_onset():
  assert callable(_librosa.librosa.onset.onset_detect)


def test_an_unusable_lock_file_does_not_stop_the_import(tmp_path):
  """Another user's lock file (or an unwritable temp dir) must not make librosa unimportable."""
  with _librosa._exclusive(str(tmp_path / "missing_dir" / "librosa.lock")):
    pass
