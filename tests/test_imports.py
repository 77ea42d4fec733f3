"""Every library module imports on its own, first, and no module-level imports form a cycle."""

import ast
import importlib
import multiprocessing
import os
import pkgutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _import_alone(name: str):
  """Runs in a forked child of a process that has imported no syncdpo_jax module but the package."""
  try:
    importlib.import_module(name)
    return name, None
  except Exception as e:  # noqa: BLE001  (reported by name)
    return name, f"{type(e).__name__}: {e}"


def _check() -> int:
  sys.path.insert(0, REPO)
  import syncdpo_jax  # the package's __init__ only

  names = sorted(m.name for m in pkgutil.walk_packages(syncdpo_jax.__path__, "syncdpo_jax."))
  # The heavy dependencies once, so each forked child pays only for our own modules.
  import flax.nnx, grain, jax, optax, orbax.checkpoint, tensorflow_datasets  # noqa: F401, E401

  with multiprocessing.get_context("fork").Pool(2, maxtasksperchild=1) as pool:
    results = pool.map(_import_alone, names, chunksize=1)
  failed = [f"{n}: {err}" for n, err in results if err]
  print(f"{len(names)} modules, {len(failed)} failed")
  print("\n".join(failed))
  return 1 if failed or len(names) < 30 else 0


def module_graph() -> dict[str, set[str]]:
  """{module: the library modules its module-level statements import} (function-level imports, the
  library's deliberate lazy ones, are not edges). Importing a.b.c also imports a and a.b; a module's
  own packages are not edges."""
  root = os.path.join(REPO, "syncdpo_jax")
  files = {}
  for d, _, fs in os.walk(root):
    for f in fs:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(d, f), REPO)[:-3].split(os.sep)
        files[".".join(rel[:-1] if rel[-1] == "__init__" else rel)] = os.path.join(d, f)

  def with_parents(name):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(files)

  graph = {}
  for mod, path in files.items():
    is_pkg = path.endswith("__init__.py")
    edges = set()
    for node in ast.parse(open(path).read()).body:
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
          base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
      else:
        continue
      for t in targets:
        if t == "syncdpo_jax" or t.startswith("syncdpo_jax."):
          edges |= with_parents(t)
    # A module's own packages are initialised before it runs: importing a sibling is no cycle.
    graph[mod] = edges - with_parents(mod)
  return graph


def test_no_import_cycles():
  graph = module_graph()
  assert "syncdpo_jax.train.loop" in graph and len(graph) > 30
  cycles, state = [], {}

  def visit(m, stack):
    state[m] = "open"
    for n in sorted(graph[m]):
      if state.get(n) == "open":
        cycles.append(stack[stack.index(n) :] + [n])
      elif n not in state:
        visit(n, stack + [n])
    state[m] = "done"

  for m in sorted(graph):
    if m not in state:
      visit(m, [m])
  assert not cycles, "module-level import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_module_imports_in_isolation():
  # A fresh interpreter: this one's conftest has imported (and registered with tfds) part of the library.
  r = subprocess.run([sys.executable, __file__], capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stdout + r.stderr[-3000:]


if __name__ == "__main__":
  sys.exit(_check())
