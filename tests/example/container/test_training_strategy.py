"""Which tf.distribute strategy training picks, and two workers training one model together inside the image."""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import distributed_training as distributed
from app import store
from example.iris import write_iris_like

EPOCHS = 15


def test_one_process_trains_under_the_default_strategy(tf):
    name, strategy = distributed.create_strategy(distributed.Cluster())
    assert name == "the default strategy"
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1


def _free_ports(count: int) -> list[int]:
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        return [server.getsockname()[1] for server in sockets]
    finally:
        for server in sockets:
            server.close()


def start_workers(tmp_path, epochs: int) -> list[subprocess.Popen]:
    """Two processes of `python -m app.train`, named in TF_CONFIG as Vertex AI or Ray would name them."""
    iris = write_iris_like(tmp_path / "iris.csv")
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    workers = []
    for index in range(2):
        scratch = tmp_path / f"tmp-{index}"
        scratch.mkdir()
        config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(config),
            "TMPDIR": str(scratch),
            "TRAIN_COLLECTIVE_TIMEOUT": "60",
        }
        command = [
            sys.executable,
            "-m",
            "app.train",
            "--epochs",
            str(epochs),
            "--data",
            str(iris),
            "--output",
            str(tmp_path / "models"),
        ]
        workers.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    return workers


def test_two_workers_named_in_tf_config_train_one_model_and_only_the_chief_publishes_it(tmp_path):
    models = tmp_path / "models"
    workers = start_workers(tmp_path, EPOCHS)
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, f"{stdout}\n{stderr[-3000:]}"
    strategies = [
        next(line for line in stderr.splitlines() if "Strategy" in line) for _, stderr in outputs
    ]
    assert strategies == [
        "worker 0 of 2 (the chief): MultiWorkerMirroredStrategy over 2 workers, 2 replicas in sync, global batch 32",
        "worker 1 of 2 (not the chief): MultiWorkerMirroredStrategy over 2 workers, 2 replicas in sync, global batch 32",
    ]
    other = outputs[1][0].splitlines()
    assert store.versions(models) == [1], "exactly one version, the chief's"
    assert sorted(path.name for path in (models / store.MODEL_NAME).iterdir()) == ["1"]
    metrics = json.loads((models / store.MODEL_NAME / "1" / store.METRICS_FILE).read_text())
    assert (metrics["workers"], metrics["replicas"]) == (2, 2)
    assert metrics["accuracy"] >= 0.9, metrics
    # The worker that is not the chief evaluates its own copy of the model: the same weights give the same figures.
    held_out = re.fullmatch(
        r".*: done, held-out accuracy ([0-9.]+), loss ([0-9.]+); the chief publishes the model version",
        other[-1],
    )
    assert held_out is not None, other
    assert (float(held_out[1]), float(held_out[2])) == (
        round(metrics["accuracy"], 3),
        metrics["loss"],
    )
    assert [list((tmp_path / f"tmp-{index}").iterdir()) for index in range(2)] == [[], []], (
        "the other worker's save is cleaned up"
    )
    assert sorted(path.name for path in (tmp_path / "logs" / store.MODEL_NAME).iterdir()) == [
        "1"
    ], "one TensorBoard run, the chief's"


def test_sigterm_still_stops_each_worker_and_leaves_nothing_half_written(tmp_path):
    # TensorFlow's coordination service takes SIGTERM over for its preemption notice; the strategy gives it back.
    workers = start_workers(tmp_path, 100000)
    try:
        for line in workers[0].stderr:
            if line.startswith("epoch 10/"):
                break
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=30) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [worker.returncode for worker in workers] == [130, 130], outputs
    assert not (tmp_path / "models").exists()
    assert list((tmp_path / "logs" / store.MODEL_NAME).iterdir()) == [], (
        "no TensorBoard run of a version that never appeared"
    )
    assert [list((tmp_path / f"tmp-{index}").iterdir()) for index in range(2)] == [[], []]
