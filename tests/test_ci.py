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
