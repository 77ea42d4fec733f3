"""The repo has one format: pyink with the settings in pyproject.toml (run `pyink .` to apply it)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_python_file_is_pyink_formatted():
  r = subprocess.run(
      [sys.executable, "-m", "pyink", "--check", "."], cwd=REPO, capture_output=True, text=True, timeout=300
  )
  assert r.returncode == 0, "run `pyink .` in the repo root:\n" + r.stderr[-3000:]
