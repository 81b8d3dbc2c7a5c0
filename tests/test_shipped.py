"""The trained weights the course ships: each verifies, still meets its lesson's bar, and its lesson's
``pretrained=True`` path loads it instead of training (executed here in the cpu profile)."""

import pytest

from ganlib import pretrained

import weights  # tools/weights.py

ROOT = weights.ROOT
RUNS = pretrained.manifest()
LESSONS = sorted({key.split("/")[0] for key in RUNS})


def test_the_course_ships_weights_for_the_lessons_that_promise_them():
    assert set(LESSONS) == set(weights.QUALITY), "every lesson in tools/weights.py's QUALITY has shipped runs"


def test_every_file_is_in_the_manifest_and_all_together_stay_within_the_budget():
    on_disk = {p.relative_to(pretrained.WEIGHTS_DIR).as_posix() for p in pretrained.WEIGHTS_DIR.rglob("*.pt")}
    assert on_disk == {entry["file"] for entry in RUNS.values()}
    assert sum(entry["bytes"] for entry in RUNS.values()) < weights.BUDGET_MB * 2**20
    for entry in RUNS.values():
        assert entry["sha256"] == pretrained.sha256(pretrained.WEIGHTS_DIR / entry["file"])


def test_the_package_carries_the_weights():
    """Colab installs ganlib from git: the wheel must hold the weights and the manifest."""
    from fnmatch import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setup["package-data"]["ganlib.assets.weights"]
    assert "ganlib.assets.weights" in setup["packages"] and "manifest.json" in patterns
    for entry in RUNS.values():
        assert any(fnmatch(entry["file"], pattern) for pattern in patterns), entry["file"]


@pytest.fixture(scope="module")
def judge():
    return weights.Judge.make()


@pytest.mark.parametrize("key", sorted(RUNS))
def test_every_shipped_run_still_meets_its_lessons_bar(key, judge):
    quality = weights.quality_of(key)
    values = quality.measure(key, RUNS[key]["recipe"], judge)
    assert quality.failures(values) == [], f"{key}: {values}"


# Lessons that measure another lesson's shipped run along the way: lesson 04 reads lesson 03's kept generators.
USERS = {"04_evaluation": "03_dcgan"}


@pytest.mark.parametrize("lesson", LESSONS + sorted(USERS))
def test_the_lessons_pretrained_path_loads_the_shipped_runs_and_its_claims_hold(lesson, tmp_path, monkeypatch):
    """The lesson in its cpu profile with pretrained=True, in a fresh checkpoint folder: every shipped run
    loads (one line each) instead of training, and the lesson's own cpu-profile asserts pass on them."""
    import nbformat
    import papermill as pm

    monkeypatch.setenv("GANLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    out = tmp_path / f"{lesson}.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / f"{lesson}.ipynb"), str(out), parameters={"profile": "cpu", "pretrained": True},
                        cwd=str(ROOT / "notebooks"), kernel_name="python3", progress_bar=False)
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")  # printed, or shown (an explorer's lines)
                   for c in nbformat.read(out, 4).cells for o in c.get("outputs", []))
    if lesson in USERS:
        (key,) = [k for k in RUNS if k.startswith(f"{USERS[lesson]}/")]
        assert f"{len(RUNS[key]['kept'])} generators of lesson 03 (steps {RUNS[key]['kept']})" in text
        assert "training its recipe here" not in text
    for key in (k for k in RUNS if k.startswith(f"{lesson}/")):
        assert f"loaded the shipped weights {RUNS[key]['file']}" in text
        assert not (tmp_path / "checkpoints" / f"{key}.pt").exists(), "a loaded run is not trained or saved again"
