"""Device discipline without a GPU: ganlib.devicecheck's stand-in GPU (under which `make test` runs every
lesson and deck), and the precision every lesson takes from the one policy."""

import ast
import copy
import subprocess
import sys

import nbformat
import numpy as np
import pytest
import torch

import course
from ganlib import dcgan, devicecheck, stylegan, stylegan_look

SOURCES = course.sources()


def _run(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter with the check enabled (it patches torch for the whole process)."""
    prelude = "import torch\nfrom ganlib import devicecheck as dc\ndc.enable()\ndev = dc.LESSON_DEVICE\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True)


def _raises_device_mix(code: str) -> str:
    done = _run(code)
    assert done.returncode != 0 and "DeviceMixError" in done.stderr, done.stderr[-2000:]
    return done.stderr


def test_a_gpu_tensor_meeting_a_host_tensor_raises_as_cuda_would():
    err = _raises_device_mix("x = torch.randn(8, 3, device=dev)\nd = torch.arange(3.0)\nx * d\n")
    assert "Expected all tensors to be on the same device" in err
    _raises_device_mix("from ganlib import dcgan\nG = dcgan.Generator((1, 28, 28), 8, 4).to(dev)\nG(torch.randn(2, 8))\n")


def test_stacking_a_0_dim_host_tensor_with_gpu_ones_raises():
    """CUDA takes a 0-dim host tensor as a scalar in elementwise calls, but not in a join (found on an H200)."""
    err = _raises_device_mix("torch.stack([torch.zeros((), device=dev), torch.tensor(1.0)])\n")
    assert "Expected all tensors to be on the same device" in err
    _raises_device_mix("torch.cat([torch.zeros(1, device=dev), torch.ones(1)])\n")


def test_sagan_logs_sigmas_on_the_device_of_d():
    """Lesson 08's ablation logs sigma of every layer of D through train.fit, which stacks every logged value
    on one device: created on the host, they crashed lesson 08 on an H200 (smoke and gpu profile)."""
    done = _run("from ganlib import sagan, train\n"
                "images = torch.rand(64, 1, 28, 28, device=dev) * 2 - 1\n"
                "torch.manual_seed(0)\n"
                "state = sagan.variant_state('SAGAN', (1, 28, 28), 8, dev)\n"
                "d_step, g_step = train.gan_steps(state.G, state.D, state.opt_G, state.opt_D, lambda n: images[:n], 8)\n"
                "h = train.fit(state, sagan.logging_sigmas(d_step, state, 2), g_step, 4, log_every=2, progress=False)\n"
                "assert any(k.startswith('sigma ') for k in h.values), list(h.values)\n")
    assert done.returncode == 0, done.stderr[-2000:]


def test_what_cuda_allows_passes():
    done = _run(
        "x = torch.randn(8, 3, device=dev)\n"
        "y = x * torch.tensor(2.0) + 1.0\n"  # a 0-dim CPU tensor and a Python number
        "z = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)).to(dev)\n"  # drawn on the host, moved
        "w = x + z; w.cpu().numpy(); float(w.sum()); w.tolist()\n"
        "x[torch.tensor([0, 2])] = torch.zeros(2, 3)\n"  # host indices and values into a GPU tensor
        "g = torch.Generator(device=dev).manual_seed(1); torch.rand(3, device=dev, generator=g)\n"
        "assert g.device == dev and torch.Generator().device == torch.device('cpu')  # as a CUDA generator answers\n"
        "from ganlib import profiles\n"
        "assert dc.home(profiles.draw(torch.rand, 3, device=dev, generator=g)) == 'gpu'  # drawn where g lives\n"
        "assert x.device == dev and torch.zeros(1).device == torch.device('cpu')\n")
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_host_generator_drawing_for_the_gpu_raises():
    err = _raises_device_mix("torch.randn(4, device=dev, generator=torch.Generator().manual_seed(0))\n")
    assert "Expected a 'cuda' device type for generator" in err
    _raises_device_mix("torch.rand(4, generator=torch.Generator(device=dev))\n")  # and the other way round
    _raises_device_mix("x = torch.zeros(4, device=dev)\nx.normal_(generator=torch.Generator())\n")


def test_numpy_on_a_gpu_tensor_raises():
    _raises_device_mix("import numpy as np\nnp.asarray(torch.zeros(3, device=dev))\n")


def test_marks_follow_models_copies_and_files(tmp_path):
    done = _run(
        "import copy\nfrom ganlib import dcgan\n"
        "G = dcgan.Generator((1, 28, 28), 8, 4).to(dev)\n"
        "assert all(dc.home(t) == 'gpu' for t in [*G.parameters(), *G.buffers()])\n"
        "G_ema = copy.deepcopy(G)\n"
        "assert all(dc.home(p) == 'gpu' for p in G_ema.parameters()) and next(G_ema.parameters()).device == dev\n"
        "(z,) = G_ema.random_inputs(2, next(G_ema.parameters()).device)  # library code drawing 'on x.device'\n"
        "assert dc.home(z) == 'gpu'\n"
        "h = torch.zeros(3); g = h.to(dev)\n"
        "assert dc.home(h) == 'host' and dc.home(g) == 'gpu', 'moving makes a new mark, the source keeps its own'\n"
        f"torch.save(G.state_dict(), {str(tmp_path / 'g.pt')!r})\n"
        f"sd = torch.load({str(tmp_path / 'g.pt')!r}, map_location=dev, weights_only=True)\n"
        "assert all(dc.home(t) == 'gpu' for t in sd.values())\n")
    assert done.returncode == 0, done.stderr[-2000:]


def test_library_draws_with_a_host_generator_work_for_any_device():
    """Bug class of lesson 09's first GPU run: a seeded CPU generator handed to a draw on the model's device.
    ganlib draws where the generator lives and moves the result (profiles.draw): the same numbers on every device."""
    done = _run(
        "from ganlib import stylegan, stylegan_look, cgan, dcgan, losses\n"
        "G = stylegan.Generator(stylegan.StyleGANConfig(channel_max=8, z_dim=8, w_dim=8)).to(dev).eval()\n"
        "noise = G.random_noise(2, dev, torch.Generator().manual_seed(0))\n"
        "ws = G.mapping(torch.randn(2, 8).to(dev))\n"
        "stylegan_look.noise_std_map(G, ws, n=2, generator=torch.Generator().manual_seed(0))\n"
        "assert all(dc.home(n) == 'gpu' for n in noise)\n"
        "C = cgan.Generator((1, 28, 28), 10, 8, 4).to(dev)\n"
        "cgan.generate(C, torch.arange(4, device=dev), generator=torch.Generator().manual_seed(0))\n"
        "x = torch.zeros(4, 1, 28, 28, device=dev)\n"
        "losses.interpolates(x, x, torch.Generator().manual_seed(0))\n"
        "from ganlib import bigan, semisupervised\n"  # lesson 11's uniform priors
        "for G in (semisupervised.MLPGenerator((1, 8, 8), 8, (8,)), bigan.image_bigan((1, 8, 8), 8, 8)[0]):\n"
        "    for gen in (torch.Generator().manual_seed(0), torch.Generator(dev).manual_seed(0)):  # host, lesson device\n"
        "        (z,) = G.to(dev).random_inputs(2, dev, gen)\n"
        "        assert dc.home(z) == 'gpu'\n")
    assert done.returncode == 0, done.stderr[-2000:]
    torch.manual_seed(0)
    G = stylegan.Generator(stylegan.StyleGANConfig(channel_max=8, z_dim=8, w_dim=8))
    a, b = (G.random_noise(2, "cpu", torch.Generator().manual_seed(5)) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))  # seeded: the same noise each time


def test_the_check_is_off_unless_asked_for(monkeypatch, capsys):
    from ganlib import profiles

    assert not devicecheck.enabled()  # the unit tests' own process never runs under it (tests/conftest.py)
    monkeypatch.setenv(profiles.CHECK_VAR, "0")
    assert profiles.setup("smoke", seed=0)[1] == torch.device("cpu") and not devicecheck.enabled()
    done = subprocess.run([sys.executable, "-c", "from ganlib import profiles, devicecheck\n"
                           "p, d = profiles.setup('smoke', 0)\nassert devicecheck.enabled() and d == devicecheck.LESSON_DEVICE\n"],
                          capture_output=True, text=True, env={**_env(), profiles.CHECK_VAR: "1"})
    assert done.returncode == 0, done.stderr[-2000:]


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k not in ("GANLIB_DEVICE", "GANLIB_DEVICE_CHECK")}


# ---------------------------------------------------------------------------------------------
# Precision: every lesson and deck asks the one policy
# ---------------------------------------------------------------------------------------------


def _code(nb_path) -> list[ast.Module]:
    cells = nbformat.read(nb_path, as_version=4).cells
    def python(line):  # an IPython magic (%pip ...) becomes a `pass` at its indentation
        stripped = line.lstrip()
        return line[: len(line) - len(stripped)] + "pass" if stripped.startswith(("%", "!")) else line

    sources = ["\n".join(map(python, c.source.splitlines())) for c in cells if c.cell_type == "code"]
    return [ast.parse(s) for s in sources]


def _is_policy(node) -> bool:
    """``speed.precision(...)``: the only way a lesson may decide its arithmetic."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "precision"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "speed")


def _amp_sources(tree) -> list[ast.AST]:
    """Every expression a cell binds to ``amp`` or passes as ``amp=``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "amp":
            found.append(node.value)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                names = target.elts if isinstance(target, ast.Tuple) else [target]
                values = node.value.elts if isinstance(node.value, ast.Tuple) and isinstance(target, ast.Tuple) else [node.value]
                found += [v for n, v in zip(names, values) if isinstance(n, ast.Name) and n.id == "amp"]
    return found


@pytest.mark.parametrize("nb_path", SOURCES, ids=[f"{p.parent.name}/{p.stem}" for p in SOURCES])
def test_every_lesson_takes_its_precision_from_the_policy(nb_path):
    """No lesson decides bf16 by itself (``amp = device.type == "cuda"`` bypassed the policy, GANLIB_PRECISION,
    and a T4's lack of native bf16): ``amp`` is ``speed.precision(...)`` or a name bound to it."""
    for tree in _code(nb_path):
        for value in _amp_sources(tree):
            ok = _is_policy(value) or (isinstance(value, ast.Name) and value.id == "amp")
            assert ok, f"{nb_path.name}: amp from {ast.unparse(value)!r}, not speed.precision(...)"


def test_the_precision_check_catches_a_hard_coded_choice(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('amp = device.type == "cuda"\nrun(amp=amp)')])
    nbformat.write(nb, tmp_path / "bad.ipynb")
    with pytest.raises(AssertionError, match="not speed.precision"):
        test_every_lesson_takes_its_precision_from_the_policy(tmp_path / "bad.ipynb")
    nb.cells[0].source = "run(amp=True)"
    nbformat.write(nb, tmp_path / "bad.ipynb")
    with pytest.raises(AssertionError, match="not speed.precision"):
        test_every_lesson_takes_its_precision_from_the_policy(tmp_path / "bad.ipynb")
