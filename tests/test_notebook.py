"""The Colab quickstart (notebooks/quickstart.ipynb) executes headless on its smoke setting and shows what
it promises: the perturbation figure, the training curves, the eval table and generated clips with sound.

The notebook runs once per module in a kernel of this interpreter (the `python3` kernel spec resolves to
sys.executable), in a temporary working directory, on configs/test.py with a few steps.
"""

import base64
import importlib.util
import io
import os
import re

import av
import nbformat
import pytest
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "notebooks", "quickstart.ipynb")


def _generator():
  spec = importlib.util.spec_from_file_location(
      "make_quickstart", os.path.join(REPO, "notebooks", "make_quickstart.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_committed_notebook_is_generated_and_has_no_outputs():
  with open(NOTEBOOK) as f:
    assert f.read() == _generator().render(), "run: python notebooks/make_quickstart.py"
  code = [c for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
  assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
  """The notebook after a headless run of its smoke setting; raises on the first failing cell."""
  run_dir = tmp_path_factory.mktemp("notebook")
  nb = nbformat.read(NOTEBOOK, as_version=4)
  with pytest.MonkeyPatch.context() as mp:  # the kernel inherits this process's environment
    mp.setenv("SYNCDPO_NOTEBOOK_SMOKE", "1")
    mp.setenv("SYNCDPO_NOTEBOOK_WORKDIR", str(run_dir / "work"))
    # The same SyncBench-Synth `test` build as tests/test_train.py (tmp_path.parent / "tfds_shared").
    mp.setenv("SYNCDPO_NOTEBOOK_DATA_DIR", str(tmp_path_factory.getbasetemp() / "tfds_shared"))
    mp.setenv("JAX_PLATFORMS", "cpu")
    # XLA_FLAGS (-O0: a 4-step run is mostly compile time) come from tests/conftest.py.
    NotebookClient(
        nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(run_dir)}}
    ).execute()
  return nb


def _cell(nb, marker: str):
  """The one code cell whose source contains `marker`."""
  cells = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
  assert len(cells) == 1, f"{len(cells)} cells contain {marker!r}"
  return cells[0]


def _data(cell, mime: str) -> list[str]:
  return [o.data[mime] for o in cell.outputs if o.output_type == "display_data" and mime in o.data]


def _text(cell) -> str:
  return "".join(o.text for o in cell.outputs if o.output_type == "stream")


def test_notebook_ran_the_smoke_setting_through_sft_and_dpo(executed):
  assert "SMOKE=True" in _text(_cell(executed, "SMOKE = os.environ.get("))
  assert "[sft] step 4/4" in _text(_cell(executed, "loop.train(sft_config"))
  dpo = _text(_cell(executed, "loop.train(dpo_config"))
  assert "[dpo] step 4/4" in dpo and "reward_accuracy=" in dpo


def test_notebook_shows_negatives_and_curves_as_images(executed):
  for marker in ("perturbations_figure(", "curves.png", "plot_alignment("):
    pngs = _data(_cell(executed, marker), "image/png")
    assert len(pngs) == 1 and base64.b64decode(pngs[0])[:8] == b"\x89PNG\r\n\x1a\n", marker


def test_notebook_shows_the_eval_table(executed):
  cell = _cell(executed, "evaluate.evaluate(")
  (table,) = _data(cell, "text/markdown")
  header = table.splitlines()[0]
  for metric in ("desync", "av_align", "event_f1"):
    assert f"| {metric} |" in header, header
  assert "| quality_gate |" in header, header
  assert re.search(r"^\| real \| [0-9]", table, re.M), table
  for run in ("sft/v2a", "syncdpo/v2a"):
    # A few smoke steps do not make clips: such a row fails the quality gate and shows no sync number.
    row = re.search(rf"^\| {re.escape(run)} \| .*$", table, re.M)
    assert row, (run, table)
    assert re.match(rf"\| {re.escape(run)} \| ([0-9]|n/a( ± n/a)? \|.*\| fail \|)", row.group(0)), row.group(
        0
    )
    # eval.sync_cfg_both: the same mode sampled without SyncCFG, as its own row.
    assert re.search(rf"^\| {re.escape(run)}/synccfg_off \| ", table, re.M), table
  assert len(_data(cell, "image/png")) == 1  # report.png


def test_notebook_plays_two_generated_clips_with_sound(executed):
  (html,) = _data(_cell(executed, "video_html("), "text/html")
  clips = re.findall(r'<video controls[^>]*><source src="data:video/mp4;base64,([A-Za-z0-9+/=]+)"', html)
  assert len(clips) == 2, html[:300]
  for clip in clips:
    with av.open(io.BytesIO(base64.b64decode(clip))) as container:
      assert container.streams.video and container.streams.audio  # an mp4 with its soundtrack
      assert container.streams.audio[0].codec_context.sample_rate > 0
