"""python -m ganlib.launch under torchrun (two CPU processes, gloo): it trains the lesson's own run into the
lesson's checkpoint folder, and the lesson then resumes from it with nothing left to train."""

import json
import os
import subprocess
import sys

import torch

import course
from ganlib import stylegan, wgan


def _torchrun(lesson: str, checkpoints, nproc: int = 2) -> str:
    env = {k: v for k, v in os.environ.items() if k != "GANLIB_DEVICE_CHECK"}
    env.update(OMP_NUM_THREADS="1", GANLIB_CHECKPOINTS=str(checkpoints), PYTHONPATH=str(course.ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "ganlib.launch", lesson, "--profile", "smoke"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=course.ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_lesson_09_resumes_the_run_two_ranks_trained(tmp_path, monkeypatch):
    """StyleGAN2 (lazy R1, minibatch std within each rank's share) on two ranks: the lesson opened afterwards in
    the same profile finds its run finished, and trains nothing."""
    out = _torchrun("09", tmp_path)
    run = f"fashion_mnist32-smoke-seed0-c16-b{stylegan.LESSON_09['smoke']['batch_size']}"
    assert f"{run} at step {stylegan.LESSON_09['smoke']['steps']} on 2 process(es)" in out
    blob = torch.load(tmp_path / "09_stylegan" / f"{run}.pt", weights_only=False)
    assert len(blob["rng_ranks"]) == 2 and blob["meta"]["recipe"]["batch_size"] == 8  # the global batch
    monkeypatch.setenv("GANLIB_CHECKPOINTS", str(tmp_path))
    result = course.execute(course.ROOT / "notebooks" / "09_stylegan.ipynb", tmp_path / "executed", {"profile": "smoke"})
    assert result.error is None, result.error
    nb = json.loads((tmp_path / "executed" / "09_stylegan.ipynb").read_text())
    printed = "".join(o.get("text", "") if isinstance(o.get("text"), str) else "".join(o.get("text", []))
                      for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    steps = stylegan.LESSON_09["smoke"]["steps"]
    assert f"resumed from {tmp_path / '09_stylegan' / run}.pt at step {steps} of {steps}" in printed


def test_lesson_07_trains_its_recipe_with_the_global_batch(tmp_path):
    _torchrun("07", tmp_path)
    recipe = wgan.LESSON_07["smoke"]
    blob = torch.load(tmp_path / "07_wgan_gp" / f"fashion_mnist-wgan_gp-smoke-seed0-{recipe['steps']}.pt", weights_only=False)
    assert blob["step"] == recipe["steps"] and len(blob["rng_ranks"]) == 2
    assert blob["meta"]["recipe"] == {**{k: v for k, v in recipe.items() if k != "steps"}, "steps": recipe["steps"]}



def test_lesson_08_trains_the_six_runs_of_its_ablation(tmp_path):
    from ganlib import sagan

    out = _torchrun("08", tmp_path)
    recipe = sagan.LESSON_08["smoke"]
    runs = [(name, 0) for name in sagan.VARIANTS] + [("+ hinge, TTUR", 1), ("SAGAN", 1)]
    for name, seed in runs:
        run = sagan.run_name("fashion_mnist", "smoke", seed, recipe["width"], recipe["batch_size"], name)
        assert f"{run} at step {recipe['steps']} on 2 process(es)" in out
        blob = torch.load(tmp_path / "08_sagan" / f"{run}.pt", weights_only=False)
        assert blob["step"] == recipe["steps"] and len(blob["rng_ranks"]) == 2


def test_lesson_10_trains_its_five_losses(tmp_path):
    from ganlib import zoo

    out = _torchrun("10", tmp_path)
    recipe = zoo.IMAGES_10["smoke"]
    for loss in zoo.NAMES:
        run = zoo.image_name("fashion_mnist", loss, 0, recipe)
        assert f"{run} at step {recipe['steps']} on 2 process(es)" in out
        assert torch.load(tmp_path / "10_loss_zoo" / f"{run}.pt", weights_only=False)["step"] == recipe["steps"]
