"""Writes notebooks/quickstart.ipynb (outputs cleared) from the cells below.

    python notebooks/make_quickstart.py            # rewrite the notebook
    python notebooks/make_quickstart.py --check    # exit 1 if the committed notebook differs

The notebook is edited here, as Python, and regenerated; tests/test_notebook.py executes it headless on
the tiny test-size setting and checks that it is in sync with this file.
"""

from __future__ import annotations

import argparse
import os
import sys

import nbformat

NOTEBOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quickstart.ipynb")

CELLS: list[tuple[str, str]] = [
    (
        "markdown",
        """\
# syncdpo_jax quickstart: SFT, then SyncDPO, on SyncBench-Synth

This notebook runs the whole pipeline through the library API, the same stages as `make demo`:

1. build **SyncBench-Synth**, a procedural audio-video benchmark whose clips carry exact ground-truth
   event times (impacts, speech-like faces, rhythm);
2. look at the **negatives**: rule-based temporal distortions of a real clip;
3. train a tiny joint video-audio diffusion transformer with flow matching (**SFT**);
4. post-train it with **SyncDPO** against negatives built on the fly, coarse to subtle;
5. **evaluate** SFT against SyncDPO (a sync-metrics table) and listen to generated clips.

On Colab (CPU runtime) or any 2-core machine the demo-size setting takes about 11 minutes after the
install. The test
suite runs this notebook on its tiny test-size setting (`SYNCDPO_NOTEBOOK_SMOKE=1`), so it cannot rot.""",
    ),
    (
        "code",
        """\
# Setup. On Colab: clone the repository and install it with its pinned requirements.
# Elsewhere: use the checkout this kernel already imports (`pip install -e .` or `make venv` there).
import os
import subprocess
import sys
from pathlib import Path

IN_COLAB = "google.colab" in sys.modules
# The git URL of this repository; OWNER/REPO is a placeholder: put where you got the notebook from.
REPO_URL = os.environ.get("SYNCDPO_REPO_URL", "https://github.com/OWNER/REPO.git")

if IN_COLAB:
  REPO = Path("/content/syncdpo_jax")
  if not REPO.exists():
    if "OWNER/REPO" in REPO_URL:
      raise ValueError("REPO_URL is still the OWNER/REPO placeholder: set it (in this cell, or the "
                       "SYNCDPO_REPO_URL environment variable) to the git URL of syncdpo_jax.")
    subprocess.run(["git", "clone", "--depth", "1", REPO_URL, str(REPO)], check=True)
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(REPO / "requirements.txt"),
                  "-e", str(REPO)], check=True)
  # A running kernel does not see a fresh editable install until it restarts; the path does it now.
  sys.path.insert(0, str(REPO))
else:
  try:
    import syncdpo_jax
  except ImportError as e:
    raise ImportError("syncdpo_jax is not importable from this kernel: run `pip install -e .` in the "
                      "repository root (or start Jupyter from its .venv, made by `make venv`).") from e
  REPO = Path(syncdpo_jax.__file__).resolve().parents[1]
print("repository:", REPO)""",
    ),
    (
        "markdown",
        """\
## Parameters

`SMOKE` picks the size. The demo-size setting is `configs/demo.py` (SyncBench-Synth `demo`: 4-s clips at
32x32 px, 2-s training windows; 1000 SFT steps, 30 SyncDPO steps, the 48 test clips sampled with 50
Adams-Bashforth steps). The smoke setting is `configs/test.py` (16x16 px, 1-s windows, a tiny model) with a
handful of steps: it only checks that every stage runs, its numbers mean nothing.""",
    ),
    (
        "code",
        """\
SMOKE = os.environ.get("SYNCDPO_NOTEBOOK_SMOKE", "0") == "1"
WORKDIR = Path(os.environ.get("SYNCDPO_NOTEBOOK_WORKDIR", REPO / "workdirs" / "quickstart")).resolve()
DATA_DIR = Path(os.environ.get("SYNCDPO_NOTEBOOK_DATA_DIR", REPO / "workdirs" / "tfds")).resolve()
WORKDIR.mkdir(parents=True, exist_ok=True)
print(f"SMOKE={SMOKE}  WORKDIR={WORKDIR}  DATA_DIR={DATA_DIR}")""",
    ),
    (
        "code",
        """\
import importlib.util
import json

import matplotlib.pyplot as plt
from IPython.display import HTML, Image, Markdown, display


def load_config(name: str, arg: str):
  \"\"\"configs/<name>.py's get_config(arg), as `launch/main.py --config configs/<name>.py:<arg>` loads it.\"\"\"
  spec = importlib.util.spec_from_file_location(f"configs_{name}", REPO / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg)
  config.data.data_dir = str(DATA_DIR)
  return config


CONFIG = "test" if SMOKE else "demo"
sft_config, dpo_config, eval_config = (load_config(CONFIG, mode) for mode in ("sft", "dpo", "eval"))
for config in (sft_config, dpo_config, eval_config):  # the demo's learned video codec lives here
  config.codec.checkpoint = str(WORKDIR / "codec")
dpo_config.init_from = str(WORKDIR / "sft")  # SyncDPO starts from SFT, which is also its frozen reference
if SMOKE:  # seconds, not minutes: a few steps, two eval clips, one sampler step, one generation mode
  sft_config.train.num_steps = dpo_config.train.num_steps = 4
  sft_config.train.log_every = dpo_config.train.log_every = 1
  eval_config.eval.num_clips = eval_config.eval.batch_size = 2
  eval_config.eval.modes = ("v2a",)
  eval_config.sample.num_steps = 1""",
    ),
    (
        "markdown",
        """\
## 1. SyncBench-Synth

Each clip is a small scene whose sounds and motions come from one list of event times, so
synchronisation can be measured against the truth. `build_dataset` writes the tfds dataset
(ArrayRecord, no TensorFlow) once and reuses it afterwards. The plot shows one training clip: video
motion energy (top) and audio onset strength (bottom) peak together at the dashed event times.""",
    ),
    (
        "code",
        """\
from syncdpo_jax import data as data_lib
from syncdpo_jax.data import build as build_lib

builder = data_lib.build_dataset(sft_config.data)
print(build_lib.summarize(builder))
clip = builder.as_data_source(split="train")[0]
build_lib.plot_alignment(clip, str(WORKDIR / "example_clip.png"))
display(Image(filename=str(WORKDIR / "example_clip.png")))""",
    ),
    (
        "markdown",
        """\
## 2. The negatives

DPO needs a preferred and a rejected sample for the same prompt. SyncDPO's **winner** is the real
video-audio pair; its **loser** is the same pair with its timing broken by a rule: shift the audio,
time-stretch or reverse a stream, shuffle or freeze frames, swap in another clip's audio, and so on.
The point is that nothing else differs, so that the only thing the model can learn from the
preference is timing; the shortcut audit (README) finds that only Shift, cut from a wider crop of the
clip (`data.context_s`), meets that: the other rules leave cues one stream alone gives away (repeated
frames, splices, levels below the clip), and the DPO configs default to Shift with context. A strength in [0, 1] maps coarse (strength 1: large, obvious, e.g. a shift of a
second) to subtle (strength 0: tens of milliseconds). The figure shows, for one clip, the audio onset
strength (blue) and video motion energy (orange) of every perturbation at strengths 0, 0.5 and 1; the
real pair is drawn faintly behind.""",
    ),
    (
        "code",
        """\
from syncdpo_jax import figures

figures.perturbations_figure(str(WORKDIR / "perturbations.png"))
display(Image(filename=str(WORKDIR / "perturbations.png")))""",
    ),
    (
        "markdown",
        """\
## 3. SFT: flow matching with cross-task synergy

`syncdpo_jax.train.loop.train` is what `launch/main.py` runs for `config.mode='sft'`. It writes
checkpoints, `metrics.jsonl` and TensorBoard files to the workdir, and resumes from the latest
checkpoint if you run the cell again.

At the demo's size the model does not see pixels but the latents of a small video autoencoder that the
cell first trains on the training frames (`configs/demo.py:codec`; README, "The demo's generator"): its
decoder turns the diffusion model's per-value errors into clean frames instead of per-pixel speckle.""",
    ),
    (
        "code",
        """\
from syncdpo_jax import autoencoder
from syncdpo_jax.train import loop

if sft_config.codec.name == "autoencoder":  # the demo's video codec, trained first (about 5 minutes)
  autoencoder.train(load_config(CONFIG, "codec"), sft_config.codec.checkpoint)
  display(Image(filename=str(WORKDIR / "codec" / "reconstructions.png")))
loop.train(sft_config, str(WORKDIR / "sft"));""",
    ),
    (
        "markdown",
        """\
## 4. SyncDPO

The policy starts from the SFT model; a frozen copy is the reference. Each step builds the negatives
inside the jitted step and pushes the policy to denoise the real pair better, *relative to the
reference*, than the perturbed one. The curriculum raises the **difficulty** from coarse to subtle
negatives as training goes on.""",
    ),
    (
        "code",
        """\
loop.train(dpo_config, str(WORKDIR / "dpo"));""",
    ),
    (
        "markdown",
        """\
## Curves

**Reward accuracy** is the fraction of pairs where the policy's implicit reward (how much better than
the reference it denoises a clip) is higher for the real pair than for its negative. At the first step
the policy *is* the reference: every reward difference is exactly 0, the loss is log 2 = 0.693 and the
accuracy 0 (a tie is not a win). It should rise past 0.5 (a coin flip, dashed) as the model learns to
prefer synchronised clips; when the curriculum's **difficulty** moves to subtler negatives it can dip
again before it recovers.""",
    ),
    (
        "code",
        """\
def read_metrics(run: str) -> list[dict]:
  with open(WORKDIR / run / "metrics.jsonl") as f:
    return [json.loads(line) for line in f]


def curve(ax, rows, key, title):
  pts = [(r["step"], r[key]) for r in rows if key in r]
  ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".")
  ax.set_title(title)
  ax.set_xlabel("step")
  ax.grid(alpha=0.3)


sft_rows, dpo_rows = read_metrics("sft"), read_metrics("dpo")
fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
curve(axes[0], sft_rows, "loss", "SFT loss (flow matching)")
curve(axes[1], dpo_rows, "loss", "SyncDPO loss")
curve(axes[2], dpo_rows, "reward_accuracy", "SyncDPO reward accuracy")
axes[2].axhline(0.5, color="k", ls="--", lw=0.8)  # a coin flip
curve(axes[3], dpo_rows, "difficulty", "curriculum difficulty")
fig.tight_layout()
# Shown as a PNG file: the library selects matplotlib's Agg backend (headless), so figures do not
# render inline on their own.
fig.savefig(WORKDIR / "curves.png", dpi=90)
plt.close(fig)
display(Image(filename=str(WORKDIR / "curves.png")))""",
    ),
    (
        "markdown",
        """\
## 5. Evaluation

Both checkpoints generate clips for the test split's labels; `v2a` is given the real video and generates
its audio, `a2v` the reverse, `joint` generates both. Every clip is decoded (pixels, Griffin-Lim audio)
and scored:

* **desync**: mean absolute audio-video offset in seconds, estimated over +-2 s (lower is better);
* **av_align**: IoU of audio onsets and video motion peaks (higher is better);
* **event_f1**: F1 of the generated stream's events against the ground-truth event times (higher is
  better; `n/a` for `joint`, which invents its own events);
* `fd_*_proxy`: Frechet distances of simple features to the real clips (quality proxies, lower is better).

The `real` rows score the data itself through the same decode path: the ceiling a model can reach.
Each value is a mean with its 95% confidence half-width.""",
    ),
    (
        "code",
        """\
from syncdpo_jax.runs import evaluate

evaluate.evaluate(eval_config, str(WORKDIR), [("sft", str(WORKDIR / "sft")), ("syncdpo", str(WORKDIR / "dpo"))])
display(Markdown((WORKDIR / "eval" / "report.md").read_text()))
display(Image(filename=str(WORKDIR / "eval" / "report.png")))""",
    ),
    (
        "markdown",
        """\
## Generated clips (video with sound)

The same real video, with the soundtrack each model generated for it (`v2a`): listen for whether the
sounds land on the visible events. More samples (every mode, and the real clips) are in
`WORKDIR/eval/samples/`.""",
    ),
    (
        "code",
        """\
import base64


def video_html(path: Path, caption: str) -> str:
  \"\"\"An inline <video controls> (mp4 with its audio track, base64-embedded) under a caption.\"\"\"
  data = base64.b64encode(path.read_bytes()).decode("ascii")
  return (f'<figure style="display:inline-block;margin:8px"><video controls width="256" '
          f'style="image-rendering:pixelated"><source src="data:video/mp4;base64,{data}" '
          f'type="video/mp4"></video><figcaption>{caption}</figcaption></figure>')


samples = WORKDIR / "eval" / "samples"
display(HTML(video_html(samples / "sft" / "v2a_0.mp4", "SFT, v2a") +
             video_html(samples / "syncdpo" / "v2a_0.mp4", "SyncDPO, v2a")))""",
    ),
]


def make_notebook() -> nbformat.NotebookNode:
  nb = nbformat.v4.new_notebook()
  nb.metadata = {
      "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
      "language_info": {"name": "python"},
      "colab": {"provenance": []},
  }
  for i, (kind, source) in enumerate(CELLS):
    cell = nbformat.v4.new_markdown_cell(source) if kind == "markdown" else nbformat.v4.new_code_cell(source)
    cell.id = f"cell-{i:02d}"  # stable ids: regenerating an unchanged notebook changes nothing
    nb.cells.append(cell)
  nbformat.validate(nb)
  return nb


def render() -> str:
  return nbformat.writes(make_notebook()) + "\n"


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--check", action="store_true", help="exit 1 if the notebook differs from these cells")
  a = p.parse_args(argv)
  text = render()
  if a.check:
    with open(NOTEBOOK) as f:
      same = f.read() == text
    print("up to date" if same else f"{NOTEBOOK} is stale: run python notebooks/make_quickstart.py")
    return 0 if same else 1
  with open(NOTEBOOK, "w") as f:
    f.write(text)
  print(f"wrote {NOTEBOOK}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
