"""The template's distributed training (src/distributed_training) with the image's TensorFlow: a
model of the test's own (tests/helpers/own_training.py), not the example's, trains in one process
and on two workers, which end with the same weights; only the chief's saved model is kept."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from helpers import own_training

EPOCHS = 3
DEAD_PROXY = "http://127.0.0.1:9"


def test_one_process_trains_a_keras_model_under_the_default_strategy(tmp_path, monkeypatch):
    for key in ("TF_CONFIG", "TRAIN_WORKERS"):
        monkeypatch.delenv(key, raising=False)
    assert own_training.main([str(tmp_path), "--epochs", "5"]).startswith("one worker: loss ")
    losses = json.loads((tmp_path / "weights-0.json").read_text())["losses"]
    assert len(losses) == 5
    assert losses[-1] < losses[0] / 2, losses
    assert (tmp_path / "model" / "model.keras").is_file()


def test_a_dataset_of_unknown_length_asks_for_steps_per_epoch(tf):
    import keras

    import distributed_training

    training = distributed_training.start({})
    with training.scope():
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        optimizer = keras.optimizers.SGD()

    def examples():
        rows = tf.data.Dataset.from_tensor_slices(([[1.0], [2.0]], [[1.0], [2.0]]))
        return rows.filter(lambda features, target: True)

    with pytest.raises(distributed_training.TrainingError, match="give fit\\(\\) steps_per_epoch"):
        training.fit(model, optimizer, keras.losses.mean_squared_error, examples, batch_size=1, epochs=1)  # fmt: skip
    losses = training.fit(
        model,
        optimizer,
        keras.losses.mean_squared_error,
        examples,
        batch_size=1,
        epochs=2,
        steps_per_epoch=2,
    )
    assert len(losses) == 2


def _free_ports(count: int) -> list[int]:
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    try:
        return [server.getsockname()[1] for server in sockets]
    finally:
        for server in sockets:
            server.close()


def test_two_workers_named_in_tf_config_end_with_the_same_weights(tmp_path):
    script = tmp_path / "own_training.py"
    shutil.copy(own_training.__file__, script)
    addresses = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    workers, logs = [], [tmp_path / f"worker-{index}.log" for index in range(2)]
    for index, log in enumerate(logs):
        config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        scratch = tmp_path / f"tmp-{index}"
        scratch.mkdir()
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "TMPDIR": str(scratch)}
        env.pop("TRAIN_WORKERS", None)
        # A proxy the app's .env sets for its downloads, which nothing listens on: the workers'
        # gRPC must not go through it.
        env.update(http_proxy=DEAD_PROXY, https_proxy=DEAD_PROXY, no_proxy="pypi.org")
        command = [sys.executable, str(script), str(tmp_path / "out"), "--epochs", str(EPOCHS)]
        # Each worker's output to a file: a pipe that nobody reads while the test waits for the
        # other worker fills up and stalls its writer, and with it the collective of both.
        with log.open("w") as output:
            workers.append(
                subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
            )
    try:
        for worker in workers:
            worker.wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("the workers did not end in 300 s:\n" + "\n".join(_tails(logs)))
    finally:
        for worker in workers:
            worker.kill()
    outputs = [log.read_text() for log in logs]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(outputs)
    assert "worker 0 of 2 (the chief): MultiWorkerMirroredStrategy over 2 workers" in outputs[0]
    first, second = (
        json.loads((tmp_path / "out" / f"weights-{index}.json").read_text()) for index in range(2)
    )
    assert first["weights"] == second["weights"], "every worker ends with the same weights"
    assert first["losses"] == second["losses"], "the loss is the global batch's on every worker"
    assert first["losses"][-1] < first["losses"][0]
    assert sorted(path.name for path in (tmp_path / "out" / "model").iterdir()) == ["model.keras"]
    assert os.listdir(tmp_path / "tmp-1") == [], "the other worker's copy is removed"


def _tails(logs) -> list[str]:
    return [f"--- {log.name}:\n" + "\n".join(log.read_text().splitlines()[-30:]) for log in logs]
