"""The tf.distribute strategy for a cluster: several workers -> MultiWorkerMirroredStrategy; one
worker with several GPUs -> MirroredStrategy; else TensorFlow's default strategy."""

from __future__ import annotations

import signal

from distributed_training.cluster import Cluster


def strategy_name(cluster: Cluster, gpus: int) -> str:
    """Which strategy fits: all the workers' devices, this machine's GPUs, or one device."""
    if cluster.workers > 1:
        return "MultiWorkerMirroredStrategy"
    if gpus > 1:
        return "MirroredStrategy"
    return "the default strategy"


def create_strategy(cluster: Cluster):
    """The name and the tf.distribute strategy for `cluster`; for several workers, once all of them
    are up (MultiWorkerMirroredStrategy waits for them, up to the collective timeout)."""
    import tensorflow as tf

    name = strategy_name(cluster, len(tf.config.list_physical_devices("GPU")))
    if name == "MultiWorkerMirroredStrategy":
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster.spec),
            task_type=cluster.task["type"],
            task_id=cluster.task["index"],
            rpc_layer="grpc",
        )
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=cluster.collective_timeout
        )
        sigterm = signal.getsignal(signal.SIGTERM)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            cluster_resolver=resolver, communication_options=options
        )
        # TensorFlow's coordination service takes SIGTERM over, to note a preemption, and carries
        # on: given back, `docker stop` and a deleted pod end a worker again.
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
        return name, strategy
    if name == "MirroredStrategy":
        return name, tf.distribute.MirroredStrategy()
    return name, tf.distribute.get_strategy()
