"""Flowers of the example's dataset, shared by its tests: on the host, and inside the image (tests/ is
on PYTHONPATH there too), so standard library and the app only."""

import random
from pathlib import Path

from app import dataset

# Rows 1, 51 and 101 of data/iris.csv: one flower of each species, in the order of the model's classes.
SETOSA, VERSICOLOR, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]

# A small Iris-like dataset for the tests inside the image, so DATA_DIR is never touched.
HEADER = ",".join([*dataset.FEATURES, dataset.LABEL])
CENTRES = {
    "setosa": (5.0, 3.4, 1.5, 0.2),
    "versicolor": (5.9, 2.8, 4.3, 1.3),
    "virginica": (6.6, 3.0, 5.6, 2.0),
}


def write_iris_like(path: Path, rows_per_class: int = 20) -> Path:
    """Rows around each species' mean measurements, the same every time."""
    generator = random.Random(0)  # noqa: S311 (test data)
    lines = [HEADER]
    for species, centre in CENTRES.items():
        lines += [
            ",".join(f"{value + generator.gauss(0, 0.1):.2f}" for value in centre) + f",{species}"
            for _ in range(rows_per_class)
        ]
    path.write_text("\n".join(lines) + "\n")
    return path
