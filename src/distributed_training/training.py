"""Train your own Keras model on one process, on local GPUs or over N workers, with one loop.

    training = distributed_training.start()            # reads the environment, picks the strategy
    with training.scope():                             # the variables on every replica
        model = keras.Sequential([...])
        optimizer = keras.optimizers.Adam(0.01)
    losses = training.fit(model, optimizer, keras.losses.mean_squared_error, examples,
                          batch_size=16, epochs=20)  # examples(): unbatched (features, label) rows
    training.save(lambda folder: model.save(folder / "model.keras"), Path("data/models/mine"))

A custom loop rather than Keras' model.fit: with Keras 3 (TensorFlow 2.21), model.fit under
MultiWorkerMirroredStrategy fails with "Attempt to convert a value (PerReplica...)"
(keras-team/keras#20585). This one runs under every strategy: each replica computes its batch's
loss with `tf.nn.compute_average_loss` (divided by the global batch, so that the replicas' sum is
the mean), `strategy.run` applies the gradients summed over all the replicas, and every worker
ends with the same weights. Each worker reads its own share of the rows
(`distribute_datasets_from_function`); only the chief's saved model is kept.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from distributed_training.cluster import Cluster, from_environment, wait_for_chief
from distributed_training.strategy import create_strategy


class TrainingError(Exception):
    """Training stopped: most often another worker failed, or did not answer within the collective
    timeout; the message says which, in one line."""


@dataclass(frozen=True)
class Training:
    """This process's part in a training: its place among the workers and their strategy."""

    cluster: Cluster
    strategy_name: str
    strategy: object  # a tf.distribute.Strategy

    @property
    def chief(self) -> bool:
        return self.cluster.chief

    def scope(self):
        """Create the model and its optimizer inside it: their variables then live on every
        replica."""
        return self.strategy.scope()

    def fit(
        self,
        model,
        optimizer,
        loss: Callable,
        examples: Callable,
        *,
        batch_size: int,
        epochs: int,
        steps_per_epoch: int | None = None,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> list[float]:
        """Train `model` for `epochs`; the mean training loss of each epoch.

        loss(labels, predictions): the loss of each row, unreduced (keras.losses.mean_squared_error,
        keras.losses.sparse_categorical_crossentropy...). examples(): a tf.data.Dataset of
        unbatched (features, label) rows, the same on every worker (shuffle with a seed): each
        worker takes its share and makes batches of `batch_size` rows per replica.
        steps_per_epoch: by default the rows over the global batch, where the dataset knows how many
        rows it has. on_epoch(epoch, loss): called on every worker after each epoch
        (`training.chief` says which one logs).
        """
        import tensorflow as tf

        strategy = self.strategy
        global_batch = batch_size * strategy.num_replicas_in_sync
        steps = steps_per_epoch or steps_for(int(examples().cardinality()), global_batch)

        def per_worker(context):
            rows = examples().shard(context.num_input_pipelines, context.input_pipeline_id)
            return rows.repeat().batch(context.get_per_replica_batch_size(global_batch))

        batches = iter(strategy.distribute_datasets_from_function(per_worker))
        if not optimizer.built:
            with strategy.scope():
                optimizer.build(model.trainable_variables)

        def replica_step(features, labels):
            with tf.GradientTape() as tape:
                predictions = model(features, training=True)
                value = tf.nn.compute_average_loss(loss(labels, predictions))
                if model.losses:  # the layers' regularization, once over all the replicas
                    value += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            gradients = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return value

        @tf.function
        def train_step(iterator):
            value = strategy.run(replica_step, args=next(iterator))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

        losses = []
        try:
            for epoch in range(epochs):
                total = sum(float(train_step(batches)) for _ in range(steps))
                losses.append(total / steps)
                if on_epoch is not None:
                    on_epoch(epoch, losses[-1])
        except tf.errors.OpError as error:
            raise TrainingError(
                f"training stopped on {self.cluster.describe()}: {reason(error)}"
            ) from None
        return losses

    def save(self, write: Callable[[Path], None], folder: Path) -> Path | None:
        """Call it on every worker: the chief's `write(folder)` is kept; the others write into a
        scratch folder that is removed (TensorFlow's multi-worker saving expects every worker to
        save), then wait until the chief has ended. The folder on the chief, None elsewhere."""
        if self.chief:
            folder.mkdir(parents=True, exist_ok=True)
            write(folder)
            return folder
        with tempfile.TemporaryDirectory(prefix="worker-save-") as scratch:
            write(Path(scratch))
        wait_for_chief(self.cluster)
        return None


def start(environ: Mapping[str, str] | None = None) -> Training:
    """This process's training, from `environ` (default: the process's environment): one line on
    standard error says where it stands and which strategy it runs."""
    cluster = from_environment(os.environ if environ is None else environ)
    name, strategy = create_strategy(cluster)
    print(f"{cluster.describe()}: {describe_strategy(cluster, name, strategy)}", file=sys.stderr)
    return Training(cluster=cluster, strategy_name=name, strategy=strategy)


def describe_strategy(cluster: Cluster, name: str, strategy) -> str:
    replicas = strategy.num_replicas_in_sync
    across = f" over {cluster.workers} workers" if cluster.workers > 1 else ""
    return f"{name}{across}, {replicas} replica{'s' * (replicas > 1)} in sync"


def steps_for(rows: int, global_batch: int) -> int:
    """Steps in an epoch: every row once, in global batches (the same number on every worker, or
    their exchanges would not pair up)."""
    if rows < 0:
        raise TrainingError(
            "the dataset does not say how many rows it has (after a filter, or read from files): "
            "give fit() steps_per_epoch"
        )
    if rows == 0:
        raise TrainingError("the dataset has no rows")
    return math.ceil(rows / global_batch)


def reason(error) -> str:
    """What a TensorFlow error says, in one line: its cause, without the graph's trace, and which
    peer failed."""
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    noise = (
        "Graph execution error",
        "Detected at node",
        "File ",
        "[[",
        "Additional GRPC",
        ":UNKNOWN:",
        "The error could be",
    )
    cause = next((line for line in lines if not line.startswith(noise)), type(error).__name__)
    peer = re.search(r"remote target /job:(\w+)/replica:\d+/task:(\d+)", error.message)
    return f"{cause} (from {peer[1]} {peer[2]})" if peer else cause
