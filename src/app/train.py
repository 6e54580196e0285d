"""Train the Iris classifier and publish it as the next model version.

    invoke run --cmd "python -m app.train"   # in the container: data/ is the host's DATA_DIR
    invoke train --workers 2                 # two containers train one model together
    python -m app.train --epochs 200 --output data/models

One process, several local GPUs or several workers: the template's `distributed_training` reads
which from the environment and picks the strategy; this loop is the same for all of them. Seeded:
in one process, two runs with the same data, epochs and seed give the same model and the same
metrics. TensorBoard logs (loss and
accuracy per epoch, held out too, and the graph of a training step) go to <logs>/iris/<version>/.

A custom loop (strategy.run) rather than Keras' model.fit: with Keras 3, model.fit under
MultiWorkerMirroredStrategy fails (keras-team/keras#20585); this loop runs under every strategy.
It also logs accuracy and held-out figures each epoch; for a model of your own,
`distributed_training.Training.fit` is the same loop, ready to use.
"""

import argparse
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import distributed_training
from app import dataset, store
from distributed_training.training import TrainingError, reason

DEFAULT_DATASET = Path("data/iris.csv")  # relative to the working directory: /app in the image
DEFAULT_MODELS = Path("data/models")
DEFAULT_EPOCHS = 60
DEFAULT_SEED = 42
BATCH_PER_REPLICA = 16
TEST_FRACTION = 0.2


# Set to stop a training after its current step (by `python -m app.train` on SIGTERM or Ctrl-C).
STOP = threading.Event()


@dataclass(frozen=True)
class TrainedModel:
    metrics: dict
    cluster: distributed_training.Cluster
    # The published version and its folder; None on a worker that is not the chief (it publishes
    # nothing).
    version: int | None = None
    folder: Path | None = None


def build_model(train_features, class_count: int):
    """A small dense network; its first layer normalises raw measurements, so clients send them as
    they are."""
    import keras

    normalizer = keras.layers.Normalization(name="normalize")
    normalizer.adapt(train_features)
    return keras.Sequential(
        [
            keras.Input(shape=(len(dataset.FEATURES),), name="measurements"),
            normalizer,
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(class_count, activation="softmax", name="probabilities"),
        ],
        name=store.MODEL_NAME,
    )


def train(
    data_path: Path,
    models_dir: Path,
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = DEFAULT_SEED,
    logs_dir: Path | None = None,
    cluster: distributed_training.Cluster | None = None,
) -> TrainedModel:
    """Train on a stratified split of the dataset, evaluate on the held-out rows; the chief
    publishes the next version.

    logs_dir: where TensorBoard logs go (default: `logs` beside models_dir). cluster: default, from
    the environment.
    """
    cluster = distributed_training.from_environment(os.environ) if cluster is None else cluster
    data = dataset.load(
        data_path
    )  # first: a missing dataset fails before TensorFlow takes seconds to import

    import keras
    import numpy as np
    import tensorflow as tf

    train_rows, test_rows = dataset.split(data, TEST_FRACTION, seed)
    features = np.asarray(data.features, dtype="float32")
    labels = np.asarray(data.labels, dtype="int32")
    keras.utils.set_random_seed(seed)  # Python's, NumPy's and TensorFlow's generators
    # The same result from multi-threaded kernels too.
    tf.config.experimental.enable_op_determinism()
    name, strategy = distributed_training.create_strategy(cluster)
    replicas = strategy.num_replicas_in_sync
    global_batch = BATCH_PER_REPLICA * replicas
    steps_per_epoch = math.ceil(
        len(train_rows) / global_batch
    )  # the same on every worker, or the exchanges would not pair up
    across = f" over {cluster.workers} workers" if cluster.workers > 1 else ""
    print(
        f"{cluster.describe()}: {name}{across}, {replicas} replica{'s' * (replicas > 1)} in sync, "
        f"global batch {global_batch}",
        file=sys.stderr,
        flush=True,
    )

    def shard(context: tf.distribute.InputContext) -> tf.data.Dataset:
        """This worker's share of the training rows, reshuffled every pass, in batches of one
        replica's size."""
        rows = tf.data.Dataset.from_tensor_slices((features[train_rows], labels[train_rows]))
        rows = rows.shard(context.num_input_pipelines, context.input_pipeline_id)
        return (
            rows.shuffle(len(train_rows), seed=seed)
            .repeat()
            .batch(context.get_per_replica_batch_size(global_batch))
        )

    with strategy.scope():
        model = build_model(features[train_rows], len(data.classes))
        optimizer = keras.optimizers.Adam(learning_rate=0.02)
        optimizer.build(model.trainable_variables)
    batches = iter(strategy.distribute_datasets_from_function(shard))

    def replica_step(batch_features, batch_labels):
        with tf.GradientTape() as tape:
            probabilities = model(batch_features, training=True)
            per_row = keras.losses.sparse_categorical_crossentropy(batch_labels, probabilities)
            loss = tf.nn.compute_average_loss(
                per_row
            )  # divided by the global batch: the replicas' sum is its mean
        optimizer.apply_gradients(
            zip(
                tape.gradient(loss, model.trainable_variables),
                model.trainable_variables,
                strict=True,
            )
        )
        correct = tf.reduce_sum(
            tf.cast(
                tf.equal(tf.argmax(probabilities, axis=-1, output_type=tf.int32), batch_labels),
                tf.float32,
            )
        )
        return loss, correct, tf.cast(tf.size(batch_labels), tf.float32)

    @tf.function
    def train_step(iterator):
        results = strategy.run(replica_step, args=next(iterator))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None) for value in results]

    def held_out() -> tuple[float, float]:
        """Loss and accuracy on the held-out rows (every worker has them all: no exchange)."""
        probabilities = model(features[test_rows], training=False)
        loss = keras.losses.sparse_categorical_crossentropy(labels[test_rows], probabilities)
        return float(np.mean(loss)), float(
            np.mean(np.argmax(probabilities, axis=-1) == labels[test_rows])
        )

    logs = _Logs(logs_dir or models_dir.parent / "logs", enabled=cluster.chief)
    try:
        logs.trace_graph()
        for epoch in range(epochs):
            loss_sum = correct = seen = 0.0
            for step in range(steps_per_epoch):
                step_loss, step_correct, step_seen = (float(value) for value in train_step(batches))
                if STOP.is_set():
                    raise KeyboardInterrupt
                if epoch == step == 0:
                    logs.export_graph("train_step")
                loss_sum, correct, seen = (
                    loss_sum + step_loss,
                    correct + step_correct,
                    seen + step_seen,
                )
            train_loss, train_accuracy = loss_sum / steps_per_epoch, correct / seen
            if cluster.chief:
                test_loss, test_accuracy = held_out()
                logs.epoch(epoch, train_loss, train_accuracy, test_loss, test_accuracy)
                if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
                    print(
                        f"epoch {epoch + 1}/{epochs}: loss {train_loss:.4f}, "
                        f"accuracy {train_accuracy:.3f}; "
                        f"held out: loss {test_loss:.4f}, accuracy {test_accuracy:.3f}",
                        file=sys.stderr,
                        flush=True,
                    )
    except BaseException as error:
        logs.discard()
        if isinstance(error, tf.errors.OpError) and STOP.is_set():
            # Stopped too, while waiting for another worker that had stopped.
            raise KeyboardInterrupt from None
        if isinstance(error, tf.errors.OpError):
            raise TrainingError(
                f"training stopped on {cluster.describe()}: {reason(error)}"
            ) from None
        raise

    test_loss, test_accuracy = held_out()
    metrics = {
        "accuracy": round(test_accuracy, 4),
        "loss": round(test_loss, 4),
        "train_accuracy": round(train_accuracy, 4),
        "train_rows": len(train_rows),
        "test_rows": len(test_rows),
        "epochs": epochs,
        "seed": seed,
        "workers": cluster.workers,
        "replicas": replicas,
        "features": list(dataset.FEATURES),
        "classes": list(data.classes),
        "dataset": str(data_path),
        "tensorflow": tf.__version__,
    }

    def write(folder: Path) -> None:
        model.save(folder / store.MODEL_FILE)
        store.export(model, folder)
        (folder / store.METRICS_FILE).write_text(
            json.dumps(metrics, indent=2) + "\n", encoding="utf-8"
        )

    if not cluster.chief:
        # Every worker saves, as TensorFlow's multi-worker saving expects; only the chief's copy is
        # kept.
        with tempfile.TemporaryDirectory(prefix="worker-save-") as scratch:
            write(Path(scratch))
        distributed_training.wait_for_chief(cluster)
        return TrainedModel(metrics=metrics, cluster=cluster)
    try:
        version, folder = store.publish(models_dir, write)
    except BaseException:
        logs.discard()
        raise
    logs.publish(version)
    return TrainedModel(metrics=metrics, cluster=cluster, version=version, folder=folder)


class _Logs:
    """TensorBoard logs of one training: written under a hidden name, named after the version once
    it is published."""

    def __init__(self, logs_dir: Path, *, enabled: bool):
        import tensorflow as tf

        self.tf = tf
        self.enabled = enabled
        self.root = logs_dir / store.MODEL_NAME
        self.folder = self.root / f".incomplete-{uuid.uuid4().hex}"
        if enabled:
            self.folder.mkdir(
                parents=True
            )  # here, so that a folder it may not write is an OSError naming it
            self.train = tf.summary.create_file_writer(str(self.folder / "train"))
            self.validation = tf.summary.create_file_writer(str(self.folder / "validation"))

    def trace_graph(self) -> None:
        """Record the graphs of the TensorFlow functions that run from now until export_graph."""
        if self.enabled:
            self.tf.summary.trace_on(graph=True)

    def export_graph(self, name: str) -> None:
        if self.enabled:
            with self.train.as_default():
                self.tf.summary.trace_export(name=name, step=0)

    def epoch(
        self,
        epoch: int,
        train_loss: float,
        train_accuracy: float,
        test_loss: float,
        test_accuracy: float,
    ) -> None:
        """Keras' TensorBoard tags, so the dashboards look as they do for model.fit.

        tf.summary.scalar needs the tensorboard package, which TensorFlow 2.21 no longer installs;
        this writes the very record it writes (a float tagged for TensorBoard's scalars plugin) with
        TensorFlow alone.
        """
        from tensorflow.core.framework import summary_pb2

        scalar = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
            data_class=summary_pb2.DATA_CLASS_SCALAR,
        )
        for writer, loss, accuracy in (
            (self.train, train_loss, train_accuracy),
            (self.validation, test_loss, test_accuracy),
        ):
            with writer.as_default(step=epoch):
                for tag, value in (("epoch_loss", loss), ("epoch_accuracy", accuracy)):
                    self.tf.summary.write(
                        tag, self.tf.constant(value, dtype=self.tf.float32), metadata=scalar
                    )
        # A sign of life: the folder's time is what tells another training's publish that this
        # run is still under way, not left by a training that was killed (store.remove_abandoned).
        os.utime(self.folder)

    def _close(self) -> None:
        self.train.close()
        self.validation.close()

    def discard(self) -> None:
        if self.enabled:
            self._close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def publish(self, version: int) -> None:
        """The run becomes <logs>/iris/<version>; logs left there by a deleted version of that
        number are replaced, and those that killed trainings left unfinished are removed."""
        self._close()
        store.remove_abandoned(self.root)
        target = self.root / str(version)
        shutil.rmtree(target, ignore_errors=True)
        os.rename(self.folder, target)


def superseded(models_dir: Path, version: int) -> tuple[int, dict | None] | None:
    """The version before `version` and its metrics (None where its metrics.json is unreadable);
    None for the first."""
    older = [number for number in store.versions(models_dir) if number < version]
    if not older:
        return None
    try:
        metrics = json.loads(
            (models_dir / store.MODEL_NAME / str(older[-1]) / store.METRICS_FILE).read_text(
                encoding="utf-8"
            )
        )
    except (OSError, ValueError):
        metrics = None
    return older[-1], metrics if isinstance(metrics, dict) else None


def comparison(version: int, metrics: dict, previous: tuple[int, dict | None]) -> str:
    """One line: the new version's held-out figures next to those of the version it supersedes."""
    number, old = previous
    if old is None:
        return (
            f"version {number}, which it supersedes, has no readable {store.METRICS_FILE} "
            "to compare with"
        )
    figures = []
    for key, label, digits in (("accuracy", "held-out accuracy", 3), ("loss", "held-out loss", 4)):
        if isinstance(old.get(key), int | float):
            figures.append(
                f"{label} {metrics[key]:.{digits}f} (version {number}: {old[key]:.{digits}f})"
            )
    if not figures:
        return f"version {number}, which it supersedes, records no accuracy or loss to compare with"
    return f"against version {number}, which it supersedes: {', '.join(figures)}"


def explain(error: dataset.DatasetError, data_path: Path) -> str:
    """The dataset error, with what to do when the file is simply not there."""
    if data_path.exists():
        return str(error)
    return f"{error} (the template ships data/iris.csv; with another DATA_DIR, copy it there)"


def positive_whole_number(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:  # ASCII: "²".isdigit() is true
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _ask_to_stop(signum, frame) -> None:
    """The first SIGTERM or Ctrl-C asks the training to stop after its current step; a second one
    acts at once.

    Not an exception raised from here: one raised while TensorFlow is in the middle of an operation
    garbles TensorFlow's own error (pybind11's "MISMATCH of original and normalized active
    exception").
    """
    STOP.set()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.train", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--epochs",
        type=positive_whole_number,
        default=DEFAULT_EPOCHS,
        help=f"passes over the training rows (default {DEFAULT_EPOCHS})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_MODELS,
        help=f"models folder; the model goes to <output>/{store.MODEL_NAME}/<version>/ "
        f"(default {DEFAULT_MODELS})",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        help=f"TensorBoard logs folder; a run per version in <logs>/{store.MODEL_NAME}/<version>/ "
        "(default: beside --output)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATASET,
        help=f"the dataset CSV (default {DEFAULT_DATASET})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_SEED,
        help=f"random seed of the split, the weights and the shuffling (default {DEFAULT_SEED})",
    )
    arguments = parser.parse_args(argv)
    # SIGTERM (`docker stop`, a pod deleted) ends the training as Ctrl-C does: what was half written
    # is removed.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _ask_to_stop)
    try:
        cluster = distributed_training.from_environment(os.environ)
        trained = train(
            arguments.data,
            arguments.output,
            epochs=arguments.epochs,
            seed=arguments.seed,
            logs_dir=arguments.logs,
            cluster=cluster,
        )
    except (distributed_training.ClusterError, TrainingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except dataset.DatasetError as error:
        print(f"error: {explain(error, arguments.data)}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"error: cannot write {error.filename or arguments.output}: {error.strerror or error}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; no model version was published", file=sys.stderr)
        return 130
    metrics = trained.metrics
    if trained.version is None:
        print(
            f"{trained.cluster.describe()}: done, held-out accuracy {metrics['accuracy']:.3f}, "
            f"loss {metrics['loss']:.4f}; "
            "the chief publishes the model version"
        )
        return 0
    workers, replicas = metrics["workers"], metrics["replicas"]
    print(
        f"trained {store.MODEL_NAME} version {trained.version}: "
        f"accuracy {metrics['accuracy']:.3f} on {metrics['test_rows']} held-out rows "
        f"({metrics['train_rows']} training rows, {metrics['epochs']} epochs, "
        f"seed {metrics['seed']}, {workers} worker{'s' * (workers > 1)}, "
        f"{replicas} replica{'s' * (replicas > 1)}); "
        f"saved to {trained.folder}"
    )
    previous = superseded(arguments.output, trained.version)
    if previous is not None:
        print(comparison(trained.version, metrics, previous))
    return 0


if __name__ == "__main__":
    sys.exit(main())
