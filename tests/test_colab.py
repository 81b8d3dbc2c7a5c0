"""The course as a Colab student gets it, tried offline.

Every lesson's first cell installs ``ganlib`` on Colab from one URL pinned to the release the notebooks
belong to; these tests keep that URL equal everywhere, then do what a student does: open one lesson
alone, let its first cell install the course, and run it in the cpu profile. Nothing leaves the machine:
git's URL rewriting sends the install to a local copy of the course (its files as they are now, tagged
with the release), pip builds the wheel without an index, and a startup file plays Colab's
``google.colab`` module.
"""

import json
import os
import shutil
import subprocess
import sys
import tomllib

import nbformat
import papermill
import pytest

import course

ROOT = course.ROOT
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REPOSITORY = PYPROJECT["project"]["urls"]["Repository"]
TAG = f"v{PYPROJECT['project']['version']}"
PINNED = f"ganlib @ git+{REPOSITORY}@{TAG}"
LESSON = ROOT / "notebooks" / "06_infogan.ipynb"  # the quickest cpu profile with shipped weights (0.3 min)


def _install_lines(nb_path) -> list[str]:
    cells = nbformat.read(nb_path, as_version=4).cells
    return [line.strip() for c in cells if c.cell_type == "code" for line in c.source.splitlines() if "git+" in line or "ganlib @" in line]


def test_every_install_line_is_the_one_url_pinned_to_the_release():
    assert REPOSITORY.startswith("https://github.com/") and "<" not in REPOSITORY
    for nb in course.lessons() + course.appendices():
        first = nbformat.read(nb, as_version=4).cells[1]
        assert 'if "google.colab" in sys.modules' in first.source, f"{nb.name}: the install is guarded by Colab"
        assert _install_lines(nb) == [f'%pip install -q "{PINNED}"'], nb.name
    for deck in sorted((ROOT / "slides").glob("[0-9][0-9]_*.ipynb")):
        assert _install_lines(deck) in ([], [f'%pip install -q "{PINNED}"']), deck.name
    readme = (ROOT / "README.md").read_text()
    assert PINNED in readme and f"github/{REPOSITORY.removeprefix('https://github.com/')}/blob/{TAG}/" in readme
    assert "<org>" not in readme and "<repo>" not in readme


def _copy_of_the_course(dest):
    """The course's files as they are (tracked and new, nothing ignored) in a git repository tagged ``TAG``."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the course"], ["tag", TAG]):
        subprocess.run(git + cmd, cwd=dest, check=True, capture_output=True)


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """An environment like a Colab kernel's, offline: (env for the kernel, the folder pip installs into)."""
    tmp = tmp_path_factory.mktemp("colab")
    origin, site, fake, ipython = tmp / "origin", tmp / "site", tmp / "fake", tmp / "ipython"
    origin.mkdir()
    site.mkdir()  # present when the kernel starts, as Colab's site-packages is, so imports look there after the install
    _copy_of_the_course(origin)
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text('"""Stands in for Colab\'s module."""\n')
    (ipython / "profile_default" / "startup").mkdir(parents=True)
    (ipython / "profile_default" / "startup" / "00-colab.py").write_text("import google.colab  # noqa: F401\n")
    (tmp / "gitconfig").write_text(f'[url "file://{origin}"]\n\tinsteadOf = {REPOSITORY}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANLIB_")}  # a student has none of the course's
    env.update(PYTHONPATH=f"{site}{os.pathsep}{fake}", IPYTHONDIR=str(ipython), GIT_CONFIG_GLOBAL=str(tmp / "gitconfig"),
               GIT_CONFIG_NOSYSTEM="1", PIP_TARGET=str(site), PIP_NO_DEPS="1", PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env, site


def _run_alone(env, folder, **parameters):
    """Copy the lesson alone into ``folder`` and execute it there with papermill in the ``env`` above."""
    folder.mkdir()
    shutil.copy2(LESSON, folder / LESSON.name)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel papermill starts inherits this process's environment
    try:
        papermill.execute_notebook(str(folder / LESSON.name), str(folder / "executed.ipynb"), parameters=parameters,
                                   cwd=str(folder), kernel_name="python3", progress_bar=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return folder / "executed.ipynb"


def _printed(path) -> str:
    nb = json.loads(path.read_text())
    return "".join("".join(o.get("text", "")) + "".join(o.get("traceback", [])) for c in nb["cells"]
                   if c["cell_type"] == "code" for o in c["outputs"])


def test_a_lesson_alone_installs_the_course_and_loads_the_shipped_weights(colab, tmp_path):
    from ganlib import data

    if data.idx_files("fashion_mnist", "train") is None:
        pytest.skip("Fashion-MNIST is not on this machine (.ci/run installs Debian's dataset-fashion-mnist)")
    env, site = colab
    before = sorted((ROOT / "checkpoints").rglob("*")) if (ROOT / "checkpoints").exists() else []
    printed = _printed(_run_alone(env, tmp_path / "student", profile="cpu"))
    assert (site / "ganlib" / "assets" / "weights" / "manifest.json").exists(), "the first cell installed ganlib"
    assert "pretrained: loaded the shipped weights" in printed
    assert (tmp_path / "student" / "checkpoints" / "06_infogan").is_dir(), "checkpoints beside the notebook"
    after = sorted((ROOT / "checkpoints").rglob("*")) if (ROOT / "checkpoints").exists() else []
    assert after == before, "nothing written into the course's own folder"


def test_without_data_or_network_the_lesson_stops_with_the_datasets_instructions(colab, tmp_path):
    env, _ = colab
    empty = tmp_path / "empty"
    empty.mkdir()
    offline = {**env, "GANLIB_OFFLINE": "1", "GANLIB_DATA": str(empty), "GANLIB_SYSTEM_DATA": str(empty)}
    with pytest.raises(papermill.PapermillExecutionError) as err:
        _run_alone(offline, tmp_path / "student", profile="cpu")
    assert err.value.ename == "DatasetUnavailable"
    assert "apt-get install dataset-fashion-mnist" in str(err.value.evalue)
    assert sys.version_info >= (3, 10)
