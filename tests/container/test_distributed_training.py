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
    workers = []
    for index in range(2):
        config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        scratch = tmp_path / f"tmp-{index}"
        scratch.mkdir()
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "TMPDIR": str(scratch)}
        env.pop("TRAIN_WORKERS", None)
        command = [sys.executable, str(script), str(tmp_path / "out"), "--epochs", str(EPOCHS)]
        workers.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300)[0])
    finally:
        for worker in workers:
            worker.kill()
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
