"""The Iris dataset as the template ships it, data/iris.csv: 150 flowers, 4 measurements in cm,
3 species.

R. A. Fisher's data (1936), public domain, in the version that R and scikit-learn carry. Plain
Python (no TensorFlow, no pandas), so that the host's tests can check the file as well.
"""

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "species"


class DatasetError(Exception):
    """The dataset file is missing or malformed; the message names the file and the line."""


@dataclass(frozen=True)
class Dataset:
    features: list[list[float]]
    labels: list[int]  # indexes into classes
    classes: tuple[str, ...]  # sorted, so class indexes do not depend on the order of the rows


def load(path: Path) -> Dataset:
    """Read a CSV with the header `sepal_length,sepal_width,petal_length,petal_width,species`."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except FileNotFoundError:
        raise DatasetError(f"no dataset at {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"cannot read {path}: {error}") from None
    expected_header = [*FEATURES, LABEL]
    if not rows or [cell.strip() for cell in rows[0]] != expected_header:
        raise DatasetError(f"{path}: the first line must be the header {','.join(expected_header)}")
    features, species = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(expected_header):
            raise DatasetError(
                f"{path}, line {number}: {len(row)} values, expected {len(expected_header)}"
            )
        try:
            values = [float(cell) for cell in row[: len(FEATURES)]]
        except ValueError:
            raise DatasetError(
                f"{path}, line {number}: the measurements must be numbers: {','.join(row)}"
            ) from None
        if not all(math.isfinite(value) for value in values):
            raise DatasetError(
                f"{path}, line {number}: the measurements must be finite numbers: {','.join(row)}"
            )
        features.append(values)
        species.append(row[-1].strip())
    classes = tuple(sorted(set(species)))
    if len(classes) < 2:
        raise DatasetError(f"{path}: a classifier needs at least two species, found {len(classes)}")
    return Dataset(
        features=features, labels=[classes.index(name) for name in species], classes=classes
    )


def split(dataset: Dataset, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Row indexes for training and held-out testing, stratified by class, the same for the same
    seed."""
    generator = random.Random(seed)  # noqa: S311 (a reproducible split, not a secret)
    train, test = [], []
    for label in range(len(dataset.classes)):
        rows = [index for index, row_label in enumerate(dataset.labels) if row_label == label]
        generator.shuffle(rows)
        held_out = max(1, round(len(rows) * test_fraction))
        test += rows[:held_out]
        train += rows[held_out:]
    return sorted(train), sorted(test)
