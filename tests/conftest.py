import matplotlib

# The environment (smoke profile, a fresh checkpoint folder) and tools/ on sys.path are set up by the
# repository's conftest.py, which also records nbval's runs of the notebooks (see its docstring).
matplotlib.use("Agg")
