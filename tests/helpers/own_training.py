"""A training that is not the example's: a small Keras regressor, as a team's own code would be,
distributed by the template's `distributed_training`. A script (the tests copy it where a worker
can run it) that needs only the image:

    python own_training.py OUTPUT [--epochs N]   # every worker: OUTPUT/weights-<index>.json;
                                                 # the chief's model: OUTPUT/model/model.keras
    python own_training.py OUTPUT --plain        # Keras' model.fit, TF_CONFIG never read
    python own_training.py OUTPUT --fail         # worker 1 fails as model.fit does under
                                                 # MultiWorkerMirroredStrategy; the others wait
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

# What model.fit under MultiWorkerMirroredStrategy raises with Keras 3, tensor dump and all.
PER_REPLICA_ERROR = (
    "Attempt to convert a value (PerReplica:{\n"
    "  0: <tf.Tensor: shape=(16, 1), dtype=float32, numpy=\narray([[0.1],\n       [0.2]])>\n"
    "}) with an unsupported type (<class 'tensorflow.python.distribute.values.PerReplica'>) "
    "to a Tensor."
)


def rows():
    """256 rows of 4 features and a target that depends on them linearly, the same every time."""
    import numpy as np

    generator = np.random.default_rng(0)
    features = generator.normal(size=(256, 4)).astype("float32")
    target = features @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32") + 0.1
    return features, target.reshape(-1, 1)


def build(keras):
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )


def distributed(output: Path, epochs: int) -> str:
    import keras
    import tensorflow as tf

    import distributed_training

    training = distributed_training.start()
    keras.utils.set_random_seed(1)
    features, target = rows()
    with training.scope():
        model = build(keras)
        optimizer = keras.optimizers.Adam(0.05)

    def examples():
        return tf.data.Dataset.from_tensor_slices((features, target)).shuffle(256, seed=3)

    losses = training.fit(
        model, optimizer, keras.losses.mean_squared_error, examples, batch_size=16, epochs=epochs
    )
    weights = [layer.tolist() for layer in model.get_weights()]
    output.mkdir(parents=True, exist_ok=True)
    (output / f"weights-{training.cluster.index}.json").write_text(
        json.dumps({"losses": losses, "weights": weights})
    )
    training.save(lambda folder: model.save(folder / "model.keras"), output / "model")
    return f"{training.cluster.describe()}: loss {losses[0]:.4f} -> {losses[-1]:.4f}"


def plain(output: Path, epochs: int) -> str:
    import keras

    model = build(keras)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    features, target = rows()
    model.fit(features, target, batch_size=16, epochs=epochs, verbose=0)
    output.mkdir(parents=True, exist_ok=True)
    model.save(output / "model.keras")
    return "trained alone"


def main(argv: list[str]) -> str:
    parser = argparse.ArgumentParser()
    parser.add_argument("output", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--fail", action="store_true")
    arguments = parser.parse_args(argv)
    if arguments.fail:
        if os.environ.get("JOB_COMPLETION_INDEX") == "1":
            raise ValueError(PER_REPLICA_ERROR)
        time.sleep(120)
    if arguments.plain:
        return plain(arguments.output, arguments.epochs)
    return distributed(arguments.output, arguments.epochs)


if __name__ == "__main__":
    print(main(sys.argv[1:]), flush=True)
