import os
import sys
import tempfile
from pathlib import Path

import matplotlib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # tools/course.py: the headless runner the tests share
matplotlib.use("Agg")
os.environ.setdefault("GANLIB_PROFILE", "smoke")
# Lessons write checkpoints; under the tests they go to a fresh folder shared by the whole session
# (so lesson 04 finds lesson 03's), never into the working tree.
os.environ["GANLIB_CHECKPOINTS"] = tempfile.mkdtemp(prefix="ganlib-checkpoints-")
