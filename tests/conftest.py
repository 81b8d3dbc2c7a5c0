import os
import sys
from pathlib import Path

import matplotlib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # tools/course.py: the headless runner the tests share
matplotlib.use("Agg")
os.environ.setdefault("GANLIB_PROFILE", "smoke")
