"""Train a lesson's run on several processes: one GPU each, on one machine or several.

    torchrun --standalone --nproc_per_node=8 -m ganlib.launch 09 --profile gpu            # one node, 8 GPUs
    torchrun --nnodes=2 --node_rank=R --nproc_per_node=8 --rdzv_backend=c10d \\
             --rdzv_endpoint=HOST:29500 -m ganlib.launch 09 --profile gpu                  # two nodes
    python -m ganlib.launch 07 --profile smoke                                            # one process

Each command trains exactly the run the lesson trains in that profile (its recipe, its seed, its
checkpoint name) into the lesson's checkpoint folder (``$GANLIB_CHECKPOINTS/<lesson>`` where set, else
the course's ``checkpoints/``); opened with ``pretrained=False``, the lesson then resumes from it and
finds nothing left to train, so a lab can train on a node and its students load the result. The
recipe's ``batch_size`` is the global batch: each of N ranks trains on ``batch_size / N`` images per
step (``ganlib.distributed``). Prepare the data on every node first (``python -m ganlib.data
fashion_mnist``), or the ranks race on the download.

Lessons: 07 (WGAN-GP on Fashion-MNIST: a penalty by double backward, 5 critic steps per G step), 08
(the SAGAN ablation's six runs: spectral norm, attention, hinge), 09 (StyleGAN2 at 32 px: lazy R1,
minibatch std) and 10 (the loss zoo's five image runs, EBGAN's autoencoder D included). Lessons 03, 05,
06 and 11 build their runs inside the notebook (03, 05, 06) or per label draw (11); lesson 11's library
run functions (``semisupervised.train_semi_supervised``, ``bigan.train_image_bigan``) already take the
recipe's batch as the global one.
"""

from __future__ import annotations

import argparse
import sys

import torch

from . import data, distributed, profiles, sagan, speed, stylegan, wgan, zoo


def _recipe(presets: dict, profile: str, steps: int | None) -> dict:
    """The lesson's recipe for ``profile``, ``steps`` long if given."""
    return dict(presets[profile], **({"steps": steps} if steps else {}))


def lesson_07(profile: str, seed: int, device: torch.device, steps: int | None = None) -> list[tuple[str, object]]:
    """Lesson 07's WGAN-GP run on Fashion-MNIST, as its "Train" section calls it."""
    recipe = _recipe(wgan.LESSON_07, profile, steps)
    images = data.load_images("fashion_mnist", device=device, limit=recipe["limit"])
    torch.manual_seed(seed)
    run = f"fashion_mnist-wgan_gp-{profile}-seed{seed}-{recipe['steps']}"
    state = wgan.train_wgan_gp(images, recipe, directory=profiles.checkpoint_dir("07_wgan_gp"), run=run, z_dim=100,
                               amp=speed.precision(device, cpu_bf16=False), progress=distributed.is_main())
    return [(run, state)]


def lesson_08(profile: str, seed: int, device: torch.device, steps: int | None = None) -> list[tuple[str, object]]:
    """Lesson 08's ablation, as its "Train" section runs it: every variant with ``seed``, and the attention
    comparison's two variants again with ``seed + 1``."""
    recipe = _recipe(sagan.LESSON_08, profile, steps)
    images = data.load_images("fashion_mnist", device=device, limit=recipe["limit"])
    done = []
    for name, run_seed in [(name, seed) for name in sagan.VARIANTS] + [(n, seed + 1) for n in ("+ hinge, TTUR", "SAGAN")]:
        run = sagan.run_name("fashion_mnist", profile, run_seed, recipe["width"], recipe["batch_size"], name)
        done.append((run, sagan.train_variant(name, images, recipe, run_seed, directory=profiles.checkpoint_dir("08_sagan"),
                                              run=run, z_dim=100, amp=speed.precision(device))))
    return done


def lesson_09(profile: str, seed: int, device: torch.device, steps: int | None = None) -> list[tuple[str, object]]:
    """Lesson 09's StyleGAN2 run at 32 x 32, as its "Train" section calls it."""
    recipe = _recipe(stylegan.LESSON_09, profile, steps)
    fashion = data.load_images("fashion_mnist", device=device, limit=recipe["limit"])
    images = data.ImageSet(stylegan.pad_to_32(fashion.x), fashion.y, fashion.classes, "fashion_mnist-32")
    sg = stylegan.lesson_config(recipe)
    torch.manual_seed(seed)
    z_fixed = torch.randn(36, sg.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    run = f"fashion_mnist32-{profile}-seed{seed}-c{sg.channel_max}-b{recipe['batch_size']}"
    state = stylegan.train_stylegan(images, recipe, directory=profiles.checkpoint_dir("09_stylegan"), run=run,
                                    z_fixed=z_fixed, amp=speed.precision(device), progress=distributed.is_main())
    return [(run, state)]


def lesson_10(profile: str, seed: int, device: torch.device, steps: int | None = None) -> list[tuple[str, object]]:
    """Lesson 10's five losses on Fashion-MNIST (GAN, LSGAN, RaSGAN, RaLSGAN, EBGAN), one recipe."""
    recipe = _recipe(zoo.IMAGES_10, profile, steps)
    images = data.load_images("fashion_mnist", device=device, limit=recipe["limit"])
    done = []
    for loss in zoo.NAMES:
        run = zoo.image_name("fashion_mnist", loss, seed, recipe)
        done.append((run, zoo.train_images(loss, images, seed, recipe, directory=profiles.checkpoint_dir("10_loss_zoo"),
                                           run=run, amp=speed.precision(device))))
    return done


LESSONS = {"07": lesson_07, "08": lesson_08, "09": lesson_09, "10": lesson_10}
LESSON_DIRS = {"07": "07_wgan_gp", "08": "08_sagan", "09": "09_stylegan", "10": "10_loss_zoo"}  # their checkpoint folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ganlib.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lesson", choices=sorted(LESSONS), help="the lesson whose run to train")
    parser.add_argument("--profile", default="gpu", choices=["smoke", "cpu", "gpu"], help="the lesson's profile (default gpu)")
    parser.add_argument("--seed", type=int, default=0, help="the lesson's seed (default 0)")
    parser.add_argument("--device", default=None, choices=["cuda", "cpu"], help="default: CUDA where there is one")
    parser.add_argument("--steps", type=int, default=None,
                        help="train this many steps instead of the recipe's (a shorter trial; the run's recipe says so)")
    args = parser.parse_args(argv)
    device = distributed.setup(args.device)
    try:
        profile, device = profiles.setup(args.profile, args.seed, device=str(device))
        for run, state in LESSONS[args.lesson](profile, args.seed, device, args.steps):
            if distributed.is_main():
                minutes = sum(state.history.seconds) / 60
                print(f"lesson {args.lesson}, {profile}: {run} at step {state.step} on {distributed.world()} process(es), "
                      f"{minutes:.1f} min; checkpoint in {profiles.checkpoint_dir(LESSON_DIRS[args.lesson])}")
    finally:
        distributed.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
