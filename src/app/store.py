"""Trained models on disk, in TensorFlow Serving's layout: <models>/<name>/<version>/, versions
numbered 1, 2, 3...

Each version folder holds one artifact for three servers: a SavedModel (`saved_model.pb` and
`variables/`) whose `serving_default` signature takes float32 [None, features] and returns the class
probabilities, which this server, TensorFlow Serving and KServe load as it is; `model.keras`, the
Keras file; and `metrics.json`. A version appears whole or not at all: it is written under a hidden
name, flushed to disk, and renamed into place, so a server never loads a half-written model, even
after a power cut.
"""

import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MODEL_NAME = "iris"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
SAVED_MODEL_FILE = "saved_model.pb"
VARIABLES_DIR = "variables"
SIGNATURE = "serving_default"
# The canonical spelling of a whole number, in ASCII digits: not "02" (TensorFlow Serving would read
# it as 2, beside a "2"), not "²" (a digit to str.isdigit, and no number to int()).
_VERSION_NAME = re.compile(r"0|[1-9][0-9]*")
_INCOMPLETE = ".incomplete-"
# When this process started (near enough: when it first imported this module). An unfinished version
# older than that was left by a training that was killed: no living process writes it any more.
_STARTED = time.time()


class InvalidVersion(Exception):
    """A version folder that cannot be served; the message says why."""


def version_number(name: str) -> int | None:
    return int(name) if _VERSION_NAME.fullmatch(name) else None


def scan(models_dir: Path, name: str = MODEL_NAME) -> tuple[list[tuple[int, Path]], list[str]]:
    """The version folders, newest first, and why each other entry is no version. Hidden entries are
    left out silently: they are versions being written."""
    folder = models_dir / name
    if not folder.is_dir():
        return [], []
    found, skipped = [], []
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        number = version_number(entry.name)
        if number is None:
            skipped.append(f"{entry}: not a version number (1, 2, 3...)")
        elif entry.is_symlink():
            skipped.append(f"{entry}: a symbolic link; a version is a folder of its own")
        elif not entry.is_dir():
            skipped.append(f"{entry}: not a folder")
        else:
            found.append((number, entry))
    return sorted(found, reverse=True), sorted(skipped)


def versions(models_dir: Path, name: str = MODEL_NAME) -> list[int]:
    """The version folders' numbers, oldest first (2 before 10, as text would not sort them)."""
    return [number for number, _ in reversed(scan(models_dir, name)[0])]


def read_metrics(folder: Path) -> dict:
    """The version's metrics.json, once its files are all there and readable; InvalidVersion says
    what is missing."""
    saved_model = folder / SAVED_MODEL_FILE
    try:
        os.listdir(folder)  # a folder that this user may not read (`chmod 000`) fails here
        if not saved_model.is_file() or saved_model.stat().st_size == 0:
            raise InvalidVersion(f"no SavedModel: {SAVED_MODEL_FILE} is missing or empty")
        if not (folder / VARIABLES_DIR).is_dir():
            raise InvalidVersion(f"no {VARIABLES_DIR}/ folder beside {SAVED_MODEL_FILE}")
    except OSError as error:  # PermissionError above all
        raise InvalidVersion(f"the folder cannot be read: {error}") from None
    try:
        metrics = json.loads((folder / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # missing, unreadable, not UTF-8 or not JSON
        raise InvalidVersion(f"{METRICS_FILE} cannot be read: {error}") from None
    if not isinstance(metrics, dict):
        raise InvalidVersion(f"{METRICS_FILE} is not a JSON object")
    return metrics


@dataclass(frozen=True)
class Signature:
    """A version's `serving_default`: a compiled function with a fixed float32 [None, features]
    input."""

    feature_count: int
    call: Callable  # float32 array [rows, features] -> float32 array [rows, classes]
    saved_model: (
        object  # what tf.saved_model.load returned: it owns the variables that the function reads
    )


def load_signature(folder: Path) -> Signature:
    """The SavedModel's serving_default signature, checked: one float32 [None, n] input, one
    output, one output row per row."""
    import numpy as np
    import tensorflow as tf

    try:
        saved_model = tf.saved_model.load(str(folder))
    # TensorFlow raises many types for a damaged SavedModel: all mean "cannot serve it".
    except Exception as error:  # noqa: BLE001
        first_line = str(error).strip().splitlines()[0][:300]
        raise InvalidVersion(
            f"the SavedModel does not load: {type(error).__name__}: {first_line}"
        ) from None
    function = saved_model.signatures.get(SIGNATURE)
    if function is None:
        raise InvalidVersion(f"the SavedModel has no {SIGNATURE} signature")
    inputs, outputs = function.structured_input_signature[1], function.structured_outputs
    specs = list(inputs.values())
    if (
        len(specs) != 1
        or len(outputs) != 1
        or specs[0].dtype != tf.float32
        or specs[0].shape.rank != 2
        or specs[0].shape[1] is None
    ):
        raise InvalidVersion(
            f"{SIGNATURE} must take one float32 [None, features] input and give one output,"
            f" not {inputs} -> {outputs}"
        )
    (input_name,), (output_name,) = inputs, outputs

    def call(rows):
        return function(**{input_name: tf.constant(rows, dtype=tf.float32)})[output_name].numpy()

    feature_count = int(specs[0].shape[1])
    try:  # the first call also sets TensorFlow up: done here, not in the first request
        shape = call(np.zeros((1, feature_count), dtype="float32")).shape
    except Exception as error:  # noqa: BLE001 (as above)
        raise InvalidVersion(
            f"{SIGNATURE} fails on a row of zeros:"
            f" {type(error).__name__}: {str(error).strip()[:300]}"
        ) from None
    if len(shape) != 2 or shape[0] != 1:
        raise InvalidVersion(
            f"{SIGNATURE} must give one row of outputs per input row, not {shape} for one row"
        )
    return Signature(feature_count=feature_count, call=call, saved_model=saved_model)


def export(model, folder: Path) -> None:
    """Write a Keras model into a version folder as a SavedModel: `serving_default` takes the
    model's float32 [None, features] input and returns its output, the class probabilities."""
    model.export(str(folder), format="tf_saved_model", verbose=False)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _flush(folder: Path) -> None:
    """Every file under `folder`, and each folder's entries, on disk: a rename is durable only
    after them."""
    for root, _, files in os.walk(folder):
        for file in files:
            _fsync(Path(root) / file)
        _fsync(Path(root))


def _highest_number(folder: Path) -> int:
    """The highest number any entry is named by, folder or not: a new version must take none of
    them."""
    return max(
        (
            number
            for entry in folder.iterdir()
            if (number := version_number(entry.name)) is not None
        ),
        default=0,
    )


def remove_abandoned(folder: Path, started: float | None = None) -> list[str]:
    """Remove the unfinished versions (`.incomplete-*`) that killed trainings left, those older
    than this process; the names of those removed."""
    started = _STARTED if started is None else started
    if not folder.is_dir():
        return []
    abandoned = [
        entry
        for entry in folder.iterdir()
        if entry.name.startswith(_INCOMPLETE) and entry.lstat().st_mtime < started
    ]
    for entry in abandoned:
        shutil.rmtree(entry, ignore_errors=True)
    return sorted(entry.name for entry in abandoned)


def publish(
    models_dir: Path, write: Callable[[Path], None], name: str = MODEL_NAME
) -> tuple[int, Path]:
    """Let `write` fill a fresh folder, then make it the next version; returns that version and
    its folder."""
    folder = models_dir / name
    remove_abandoned(folder)
    incomplete = folder / f"{_INCOMPLETE}{uuid.uuid4().hex}"
    incomplete.mkdir(parents=True)
    try:
        write(incomplete)
        _flush(incomplete)
    except BaseException:
        shutil.rmtree(incomplete, ignore_errors=True)
        raise
    while True:
        version = _highest_number(folder) + 1
        target = folder / str(version)
        try:
            # Fails when another trainer took this number in the meantime (the folder is not
            # empty): retry.
            os.rename(incomplete, target)
        except OSError:
            if os.path.lexists(target):
                continue
            raise
        _fsync(folder)
        return version, target
