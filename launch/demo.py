"""The embedded demo, end to end on a CPU: data -> video codec -> SFT -> SyncDPO -> evaluation (what
`make demo` runs).

  python launch/demo.py --workdir workdirs/demo

Each stage is the public CLI (`launch/main.py`), so the demo doubles as a worked example of it.
Stages resume: re-running the demo after an interruption continues from the last checkpoint.
Outputs under WORKDIR: examples/ (dataset clips + sync plots), perturbations.png, codec/ (the learned
video codec: its weights, curves, reconstructions.png), sft/ and dpo/
(metrics.jsonl, tensorboard/, plots/curves.png, checkpoints/), eval/ (report.md/json/png,
grid_<mode>.png, samples/).
"""

import argparse
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stage(title: str, cmd: list[str]) -> None:
  print(f"\n=== {title}\n$ {' '.join(cmd)}", flush=True)
  t0 = time.time()
  subprocess.run(cmd, check=True, cwd=REPO)
  print(f"=== {title}: done in {time.time() - t0:.0f}s", flush=True)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--workdir", default="workdirs/demo")
  ap.add_argument("--data_dir", default="workdirs/tfds")
  args = ap.parse_args()
  w = os.path.abspath(args.workdir)
  py, main_py, cfg = (
      sys.executable,
      os.path.join(REPO, "launch", "main.py"),
      os.path.join(REPO, "configs", "demo.py"),
  )
  data = f"--config.data.data_dir={os.path.abspath(args.data_dir)}"
  codec = f"--config.codec.checkpoint={w}/codec"
  t0 = time.time()
  stage(
      "1/6 SyncBench-Synth: build the dataset, write example clips and sync plots",
      [
          py,
          "-m",
          "syncdpo_jax.data.build",
          "--variant",
          "demo",
          "--data_dir",
          args.data_dir,
          "--examples",
          os.path.join(w, "examples"),
      ],
  )
  stage(
      "2/6 The negatives: a figure of every perturbation at strengths 0, 0.5, 1",
      [py, "-m", "syncdpo_jax.figures", "--out", os.path.join(w, "perturbations.png")],
  )
  stage(
      "3/6 The video codec: a small autoencoder trained on the training frames",
      [py, main_py, f"--config={cfg}:codec", f"--workdir={w}/codec", data],
  )
  stage(
      "4/6 SFT: flow matching with cross-task synergy",
      [py, main_py, f"--config={cfg}:sft", f"--workdir={w}/sft", data, codec],
  )
  stage(
      "5/6 SyncDPO: DPO against on-the-fly temporal negatives, coarse-to-subtle curriculum",
      [py, main_py, f"--config={cfg}:dpo", f"--workdir={w}/dpo", f"--config.init_from={w}/sft", data, codec],
  )
  stage(
      "6/6 Evaluation: SFT vs SyncDPO, joint and conditional generation",
      [
          py,
          main_py,
          f"--config={cfg}:eval",
          f"--workdir={w}",
          data,
          codec,
          f"--config.eval.checkpoints=sft={w}/sft,syncdpo={w}/dpo",
      ],
  )
  print(
      f"""
Demo finished in {time.time() - t0:.0f}s. Look at:
  {w}/eval/report.md             the table above (report.json, report.png beside it)
  {w}/eval/grid_<mode>.png       what was generated: frames and log-mels, real / SFT / SyncDPO, per mode
  {w}/eval/samples/              generated mp4s with sound (sft/, syncdpo/, real/)
  {w}/sft/plots/curves.png       SFT loss;  {w}/dpo/plots/curves.png  DPO loss, reward accuracy/margin, difficulty
  {w}/codec/reconstructions.png  what the video codec keeps of real clips
  {w}/perturbations.png          what the negatives do to onset/motion curves
  {w}/examples/                  dataset clips and their sync plots
  tensorboard --logdir {w}       the same curves in TensorBoard
""",
      flush=True,
  )


if __name__ == "__main__":
  main()
