"""Shared by every test suite: where the project is."""

import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]

# `devkit` is imported from the project folder, as invoke imports it next to tasks.py.
sys.path.insert(0, str(PROJECT_DIR))
