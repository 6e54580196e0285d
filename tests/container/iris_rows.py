"""A small Iris-like dataset for the training tests inside the image, so DATA_DIR is never touched."""

import random
from pathlib import Path

from app import dataset

CENTRES = {"setosa": (5.0, 3.4, 1.5, 0.2), "versicolor": (5.9, 2.8, 4.3, 1.3), "virginica": (6.6, 3.0, 5.6, 2.0)}


def write_iris_like(path: Path, rows_per_class: int = 20) -> Path:
    """Rows around each species' mean measurements, the same every time."""
    generator = random.Random(0)  # noqa: S311 (test data)
    lines = [",".join([*dataset.FEATURES, dataset.LABEL])]
    for species, centre in CENTRES.items():
        lines += [",".join(f"{value + generator.gauss(0, 0.1):.2f}" for value in centre) + f",{species}" for _ in range(rows_per_class)]
    path.write_text("\n".join(lines) + "\n")
    return path
