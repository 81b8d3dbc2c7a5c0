import matplotlib

# The environment (smoke profile, a fresh checkpoint folder) and tools/ on sys.path are set up by the
# repository's conftest.py, which also records nbval's runs of the notebooks (see its docstring).
matplotlib.use("Agg")


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_device_check(monkeypatch):
    """The unit tests run in pytest's own process: the device check (for the notebooks' kernels) stays off here."""
    monkeypatch.delenv("GANLIB_DEVICE_CHECK", raising=False)
