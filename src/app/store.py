"""Trained models on disk, in TensorFlow Serving's layout: <models>/<name>/<version>/, the newest version served.

Each version folder holds `model.keras` and `metrics.json`. A version appears whole or not at all: it is
written under a hidden name and renamed into place, so a server never loads a half-written model.
"""

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

MODEL_NAME = "iris"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"


def versions(models_dir: Path, name: str = MODEL_NAME) -> list[int]:
    """The published versions, oldest first: folders named by an integer (not 2 before 10, as text would sort)."""
    folder = models_dir / name
    if not folder.is_dir():
        return []
    return sorted(int(entry.name) for entry in folder.iterdir() if entry.name.isdigit() and entry.is_dir())


def newest(models_dir: Path, name: str = MODEL_NAME) -> tuple[int, Path] | None:
    """The newest published version and its folder, or None when there is none."""
    published = versions(models_dir, name)
    return (published[-1], models_dir / name / str(published[-1])) if published else None


def publish(models_dir: Path, write: Callable[[Path], None], name: str = MODEL_NAME) -> tuple[int, Path]:
    """Let `write` fill a fresh folder, then make it the next version; returns that version and folder."""
    folder = models_dir / name
    incomplete = folder / f".incomplete-{uuid.uuid4().hex}"
    incomplete.mkdir(parents=True)
    try:
        write(incomplete)
    except BaseException:
        shutil.rmtree(incomplete, ignore_errors=True)
        raise
    while True:
        version = (versions(models_dir, name) or [0])[-1] + 1
        target = folder / str(version)
        try:
            # Fails when another trainer took this number in the meantime (the folder is not empty): retry.
            os.rename(incomplete, target)
        except OSError:
            if target.exists():
                continue
            raise
        return version, target
