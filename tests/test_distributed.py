"""ganlib.distributed: the course's training loop under torchrun, on two CPU processes (gloo).

One torchrun launch (tests/ddp_worker.py, about 15 s: two torch imports and tiny float64 models) runs every
scenario; the references run here, in one process. float64 because with Adam a gradient near zero turns
reduction-order noise (1e-8 in float32) into a step of +-lr: in float64 the sums over ranks and over the
whole batch agree to 1e-12.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

import ddp_worker as worker
from ganlib import distributed, layers, losses

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "ddp_worker.py"), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)  # a hang fails here
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _same(a: dict, b: dict, **tol) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert_close(a[k], b[k], **tol, msg=lambda m, k=k: f"{k}: {m}")


def test_two_ranks_on_halves_equal_one_process_on_the_whole_batch(ranks):
    """A WGAN-GP critic (n_critic 2, penalty by double backward), a G step and a lazy R1 phase: both ranks end
    bit-identical, and equal to one process on the whole global batch; the logs are the global means."""
    one = worker.equality([slice(0, worker.B)])
    for name in ("G", "D", "G_ema"):
        _same(ranks[0]["equality"][name], ranks[1]["equality"][name], rtol=0, atol=0)
        _same(ranks[0]["equality"][name], one[name], rtol=1e-10, atol=1e-12)
    for key, values in one["history"].items():  # logged in fp32 (train.fit's meter)
        assert_close(torch.tensor(ranks[0]["equality"]["history"][key]), torch.tensor(values), rtol=1e-6, atol=1e-6,
                     equal_nan=True)  # NaN: R1 is not logged at odd steps


def test_batch_norm_normalises_each_ranks_share(ranks):
    """What is true with batch norm in D: each rank normalises with its own share's statistics, so two ranks equal
    one process that runs D on each half separately (a ghost batch), not one process on the whole batch; the
    running statistics differ between ranks (rank 0's are the ones a checkpoint keeps)."""
    ghost = worker.equality([slice(0, 4), slice(4, 8)], batch_norm=True)
    whole = worker.equality([slice(0, worker.B)], batch_norm=True)
    D = worker.toy_state(batch_norm=True).D
    # a bias just before batch norm changes nothing (its true gradient is 0): Adam turns its rounding noise into steps
    idle = {f"{i}.bias" for i, (m, after) in enumerate(zip(D, D[1:])) if isinstance(after, torch.nn.BatchNorm1d)}
    params = [k for k in ghost["D"] if "running" not in k and "num_batches" not in k and k not in idle]
    assert len(idle) == 2 and len(params) == 8
    for k in params:  # 1e-6, not 1e-12: through batch norm the idle biases' noise reaches the rest a little
        assert_close(ranks[0]["batchnorm"]["D"][k], ghost["D"][k], rtol=0, atol=1e-6)
    assert max(float((ranks[0]["batchnorm"]["D"][k] - whole["D"][k]).abs().max()) for k in params) > 0.05
    running = [k for k in ghost["D"] if k.endswith("running_mean")]
    assert running and any(not torch.equal(ranks[0]["batchnorm"]["D"][k], ranks[1]["batchnorm"]["D"][k]) for k in running)


def test_each_rank_draws_its_own_data(ranks):
    """profiles.setup seeds every process alike: without the per-rank reseed, both ranks would draw one batch twice."""
    z0, z1 = ranks[0]["resume_once"]["drawn"], ranks[1]["resume_once"]["drawn"]
    assert len(z0) == worker.STEPS and all(a.shape == (worker.B // 2, worker.Z) for a in z0)
    assert all(not torch.equal(a, b) for a, b in zip(z0, z1))
    _same(ranks[0]["resume_once"]["G"], ranks[1]["resume_once"]["G"], rtol=0, atol=0)  # different data, one model


def test_a_run_resumed_on_two_ranks_equals_an_uninterrupted_one(ranks):
    """The checkpoint keeps every rank's random stream and each rank restores its own."""
    for r in range(2):
        once, split = ranks[r]["resume_once"], ranks[r]["resume_split"]
        for name in ("G", "D"):
            _same(once[name], split[name], rtol=0, atol=0)
        assert all(torch.equal(a, b) for a, b in zip(once["drawn"][2:], split["drawn"]))


def test_an_inf_on_one_rank_stops_both_with_the_same_error(ranks):
    messages = [r["nan"] for r in ranks]
    assert messages[0].startswith("TrainingDiverged: training diverged between steps 2 and 3")
    assert messages[0] == messages[1]


def test_the_global_batch_splits_evenly_or_is_refused(ranks):
    assert [r["local_batch"] for r in ranks] == [worker.B // 2] * 2
    assert "does not split evenly across 2 ranks" in ranks[0]["uneven"]


def test_one_process_is_a_no_op():
    assert not distributed.active() and distributed.world() == 1 and distributed.is_main()
    assert distributed.local_batch(7) == 7
    x = torch.tensor([1.0, 2.0])
    assert distributed.mean(x) is x and distributed.gather("a") == ["a"]


def test_sync_batchnorm_is_refused_on_cpu_and_for_a_penalised_d():
    D = layers.mlp(2, 1, hidden=8, depth=1, batch_norm=True)
    with pytest.raises(ValueError, match="CUDA only"):
        distributed.sync_batchnorm(D)
    with pytest.raises(ValueError, match="double backward"):
        distributed.sync_batchnorm(D, penalty=True)


def _families():
    """(name, state or (G, D, opt_G, opt_D), schedule) for one tiny model of every family the lessons train."""
    from ganlib import bigan, cgan, data, dcgan, infogan, sagan, semisupervised, stylegan, train, wgan, zoo

    torch.manual_seed(0)
    shape, B = (1, 28, 28), 4
    images = data.ImageSet(torch.rand(32, *shape) * 2 - 1, torch.arange(32) % 10, tuple("abcdefghij"), "toy")
    images32 = data.ImageSet(stylegan.pad_to_32(images.x), images.y, images.classes, "toy-32")

    G, D = dcgan.Generator(shape, 16, 8), dcgan.Discriminator(shape, 8)
    opts = dcgan.optimizers(G, D)
    yield "DCGAN", (G, D, *opts), train.schedule(*train.gan_steps(G, D, *opts, images, B))
    for make_D, steps in ((cgan.ProjectionDiscriminator, cgan.conditional_steps), (cgan.ACDiscriminator, cgan.acgan_steps)):
        st = cgan.make_state(make_D, images, width=8, z_dim=16)
        yield f"cGAN {make_D.__name__}", (st.G, st.D, st.opt_G, st.opt_D), train.schedule(*steps(st.G, st.D, st.opt_G, st.opt_D, images, B))
    G, D = infogan.networks("dcgan", shape, 16, 10, 2, 8)
    opts = infogan.optimizers(G, D)
    yield "InfoGAN", (G, D, *opts), train.schedule(*infogan.infogan_steps(G, D, *opts, images, B))
    st = wgan.gp_state(shape, 8, "cpu", 16)
    yield "WGAN-GP", (st.G, st.D, st.opt_G, st.opt_D), train.schedule(*wgan.gp_steps(st.G, st.D, st.opt_G, st.opt_D, images, B), 2)
    st = sagan.variant_state("SAGAN", shape, 8, z_dim=16)
    yield "SAGAN (spectral norm, attention)", (st.G, st.D, st.opt_G, st.opt_D), train.schedule(
        *train.gan_steps(st.G, st.D, st.opt_G, st.opt_D, images, B, d_loss=losses.d_loss_hinge, g_loss=losses.g_loss_hinge))
    cfg = stylegan.lesson_config(stylegan.LESSON_09["smoke"])
    st = stylegan.make_state(cfg)
    yield "StyleGAN2 (lazy R1)", (st.G, st.D, st.opt_G, st.opt_D), stylegan.stylegan_phases(st, images32, B, cfg)
    st = zoo.image_state("EBGAN", shape, 8, z_dim=16)
    yield "EBGAN", (st.G, st.D, st.opt_G, st.opt_D), train.schedule(*zoo.steps_for("EBGAN", st.G, st.D, st.opt_G, st.opt_D, images, B, margin=1.0))
    recipe = semisupervised.SSL_11["smoke"]
    G, D = semisupervised.ssl_networks(shape, recipe)
    opts = train.adam(G, D, 1e-3)
    split = semisupervised.split_labels(images, 1, 0)
    yield "semi-supervised GAN", (G, D, *opts), train.schedule(*semisupervised.semi_supervised_steps(G, D, *opts, split, B))
    GE, JD = bigan.toy_bigan(8, 1)
    opts = train.adam(GE, JD, 1e-3)
    yield "BiGAN", (GE, JD, *opts), train.schedule(*bigan.bidirectional_steps(GE, JD, *opts, data.grid(), B))


def test_every_family_averages_the_gradients_of_every_optimiser_step(monkeypatch):
    """Every optimiser step of every model family goes through updates.update, where the gradients are averaged
    across ranks: for each family, one average per optimiser step, over exactly the parameters that step updates."""
    seen = []
    monkeypatch.setattr(distributed, "average_gradients", lambda params: seen.append({id(p) for p in params}))
    for name, (G, D, opt_G, opt_D), phases in _families():
        stepped = []
        seen.clear()
        for opt in (opt_G, opt_D):
            opt.register_step_post_hook(lambda o, *_: stepped.append({id(p) for p in distributed.optimizer_params(o)}))
        for phase in phases:
            if phase.due(0):
                for _ in range(phase.repeat):
                    phase.fn()
        assert len(stepped) >= 2, f"{name}: {len(stepped)} optimiser steps"
        assert seen == stepped, f"{name}: {len(seen)} averages for {len(stepped)} optimiser steps"
