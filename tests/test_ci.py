"""The CI workflow and the make targets it calls: parsed, and held to exactly the README's commands."""

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def _jobs():
    flow = yaml.safe_load(WORKFLOW.read_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads the bare key `on` as True
    return flow["jobs"], triggers


def _commands(job):
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def test_the_workflow_parses_and_runs_each_command_on_its_trigger():
    jobs, triggers = _jobs()
    assert set(jobs) == {"cpu", "gpu"} and {"push", "pull_request", "schedule", "workflow_dispatch"} <= set(triggers)
    assert _commands(jobs["cpu"]) == ["bash .ci/run"]
    assert _commands(jobs["gpu"]) == ["make test-gpu"]
    assert jobs["gpu"]["runs-on"] == ["self-hosted", "gpu"]
    assert "push" in jobs["cpu"]["if"] and "pull_request" in jobs["cpu"]["if"]
    assert "schedule" in jobs["gpu"]["if"] and "workflow_dispatch" in jobs["gpu"]["if"]


def test_ci_run_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test " in readme and "make test-gpu" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_make_test_runs_the_notebooks_under_nbval_after_preparing_them():
    plan = subprocess.run(["make", "-n", "-W", "pyproject.toml", "test"], cwd=ROOT, capture_output=True, text=True).stdout
    prepare, pytest_line = plan.index("tools/course.py prepare"), plan.index("-m pytest")
    assert prepare < pytest_line
    line = plan[pytest_line:].splitlines()[0]
    for arg in ("--nbval-lax", "--nbval-cell-timeout=", "build/nbval/notebooks", "build/nbval/slides", "tests"):
        assert arg in line


def test_make_test_gpu_fails_fast_without_a_gpu(tmp_path):
    env = {"PATH": str(tmp_path)}  # no nvidia-smi on this PATH: the check must refuse before installing anything
    (tmp_path / "bash").symlink_to("/bin/bash")
    done = subprocess.run(["/usr/bin/make", "gpu-check"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode != 0 and "no CUDA device: make test-gpu needs a GPU" in done.stdout + done.stderr


def test_make_test_gpu_writes_its_report_even_when_a_smoke_cell_fails(tmp_path):
    """The smoke run on the GPU failing must not stop the report (the GPU runner's only evidence); make still
    fails. Every command is a stand-in here: a fake nvidia-smi, and a fake Python whose pytest fails."""
    bin_dir, venv = tmp_path / "bin", tmp_path / "venv"
    bin_dir.mkdir()
    (venv / "bin").mkdir(parents=True)
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: stand-in'\n")
    calls = tmp_path / "calls.txt"
    (venv / "bin" / "python").write_text(
        f"#!/bin/sh\necho \"$*\" >> {calls}\n"
        'case "$*" in *"-m pytest"*) echo "1 failed, 9 passed"; exit 1;; esac\nexit 0\n')
    for exe in (bin_dir / "nvidia-smi", venv / "bin" / "python"):
        exe.chmod(0o755)
    (venv / ".installed").touch()  # newer than pyproject.toml: nothing to install
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(["make", "test-gpu", f"VENV={venv}", "LESSONS=03"], cwd=ROOT, capture_output=True, text=True,
                          env=env)
    ran = calls.read_text()
    assert "tools/gpu_report.py --smoke-log build/test-gpu/smoke.log 03" in ran, done.stdout + done.stderr
    assert done.returncode != 0, "a failed smoke run still fails make test-gpu"
    assert "1 failed" in (ROOT / "build" / "test-gpu" / "smoke.log").read_text()


def test_make_lab_starts_as_root_and_only_then_allows_it():
    """JupyterLab refuses to run as root without --allow-root (a container's usual user): make lab passes it
    exactly when it runs as root."""
    import os

    plan = subprocess.run(["make", "-n", "-W", "pyproject.toml", "lab"], cwd=ROOT, capture_output=True, text=True).stdout
    line = next(ln for ln in plan.splitlines() if "jupyter lab" in ln)
    assert ("--allow-root" in line) == (os.getuid() == 0), line
    as_user = subprocess.run(["make", "-n", "-W", "pyproject.toml", "lab", "LAB_FLAGS="], cwd=ROOT, capture_output=True,
                             text=True).stdout
    assert "--allow-root" not in next(ln for ln in as_user.splitlines() if "jupyter lab" in ln)
