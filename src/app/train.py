"""Train the Iris classifier and publish it as the next model version.

    invoke run --cmd "python -m app.train"            # in the container: data/ is the host's DATA_DIR
    python -m app.train --epochs 200 --output data/models

Seeded: two runs with the same data, epochs and seed give the same model and the same metrics.
"""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from app import dataset, store

DEFAULT_DATASET = Path("data/iris.csv")  # relative to the working directory: /app in the image
DEFAULT_MODELS = Path("data/models")
DEFAULT_EPOCHS = 60
DEFAULT_SEED = 42
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class TrainedModel:
    version: int
    folder: Path
    metrics: dict


def build_model(train_features, class_count: int):
    """A small dense network; its first layer normalises raw measurements, so clients send them as they are."""
    import keras

    normalizer = keras.layers.Normalization(name="normalize")
    normalizer.adapt(train_features)
    model = keras.Sequential(
        [
            keras.Input(shape=(len(dataset.FEATURES),), name="measurements"),
            normalizer,
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(class_count, activation="softmax", name="probabilities"),
        ],
        name=store.MODEL_NAME,
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def train(data_path: Path, models_dir: Path, *, epochs: int = DEFAULT_EPOCHS, seed: int = DEFAULT_SEED) -> TrainedModel:
    """Train on a stratified split of the dataset, evaluate on the held-out rows, publish the next version."""
    data = dataset.load(data_path)  # first: a missing dataset fails before TensorFlow takes seconds to import

    import keras
    import numpy as np
    import tensorflow as tf

    train_rows, test_rows = dataset.split(data, TEST_FRACTION, seed)
    features = np.asarray(data.features, dtype="float32")
    labels = np.asarray(data.labels, dtype="int32")
    keras.utils.set_random_seed(seed)  # Python's, NumPy's and TensorFlow's generators
    tf.config.experimental.enable_op_determinism()  # the same result from multi-threaded kernels too
    model = build_model(features[train_rows], len(data.classes))
    history = model.fit(features[train_rows], labels[train_rows], epochs=epochs, batch_size=16, verbose=0)
    test_loss, test_accuracy = model.evaluate(features[test_rows], labels[test_rows], verbose=0)
    metrics = {
        "accuracy": round(float(test_accuracy), 4),
        "loss": round(float(test_loss), 4),
        "train_accuracy": round(float(history.history["accuracy"][-1]), 4),
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "epochs": epochs,
        "seed": seed,
        "features": list(dataset.FEATURES),
        "classes": list(data.classes),
        "dataset": str(data_path),
        "tensorflow": tf.__version__,
    }

    def write(folder: Path) -> None:
        model.save(folder / store.MODEL_FILE)
        store.export(model, folder)
        (folder / store.METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")

    version, folder = store.publish(models_dir, write)
    return TrainedModel(version=version, folder=folder, metrics=metrics)


def explain(error: dataset.DatasetError, data_path: Path) -> str:
    """The dataset error, with what to do when the file is simply not there."""
    if data_path.exists():
        return str(error)
    return f"{error} (the template ships data/iris.csv; with another DATA_DIR, copy it there)"


def positive_whole_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.train", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs", type=positive_whole_number, default=DEFAULT_EPOCHS, help=f"passes over the training rows (default {DEFAULT_EPOCHS})"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_MODELS,
        help=f"models folder; the model goes to <output>/{store.MODEL_NAME}/<version>/ (default {DEFAULT_MODELS})",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATASET, help=f"the dataset CSV (default {DEFAULT_DATASET})")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed of the split, the weights and the shuffling (default {DEFAULT_SEED})"
    )
    arguments = parser.parse_args(argv)
    try:
        trained = train(arguments.data, arguments.output, epochs=arguments.epochs, seed=arguments.seed)
    except dataset.DatasetError as error:
        print(f"error: {explain(error, arguments.data)}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: cannot write the model under {arguments.output}: {error}", file=sys.stderr)
        return 1
    metrics = trained.metrics
    print(
        f"trained {store.MODEL_NAME} version {trained.version}: accuracy {metrics['accuracy']:.3f} on {metrics['test_rows']} held-out rows "
        f"({metrics['train_rows']} training rows, {metrics['epochs']} epochs, seed {metrics['seed']}); saved to {trained.folder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
