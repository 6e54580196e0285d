"""Training in one process (no TF_CONFIG, no training Job variables): seeded, published whole, logged for TensorBoard."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import distributed_training as distributed
from app import store, train
from example.iris import CENTRES, write_iris_like

EPOCHS = 15


@pytest.fixture
def iris_csv(tmp_path):
    return write_iris_like(tmp_path / "iris.csv")


def test_one_seed_gives_the_same_metrics_and_the_same_model(iris_csv, tmp_path):
    import keras

    models = tmp_path / "models"
    first = train.train(iris_csv, models, epochs=EPOCHS, seed=7, cluster=distributed.Cluster())
    second = train.train(iris_csv, models, epochs=EPOCHS, seed=7, cluster=distributed.Cluster())
    other = train.train(iris_csv, models, epochs=EPOCHS, seed=8, cluster=distributed.Cluster())
    assert (first.version, second.version, other.version) == (1, 2, 3)
    assert first.metrics == second.metrics
    assert other.metrics["loss"] != first.metrics["loss"], "another seed, another model"
    assert (first.metrics["workers"], first.metrics["replicas"]) == (1, 1)
    assert first.metrics["accuracy"] >= 0.9, first.metrics
    probe = np.asarray([CENTRES["setosa"], CENTRES["virginica"]], dtype="float32")
    predictions = [
        keras.models.load_model(model.folder / store.MODEL_FILE).predict(probe, verbose=0)
        for model in (first, second)
    ]
    np.testing.assert_array_equal(predictions[0], predictions[1])
    assert sorted(path.name for path in (models / store.MODEL_NAME).iterdir()) == ["1", "2", "3"], (
        "no incomplete folder is left"
    )


def test_the_train_command_prints_the_strategy_and_compares_with_the_version_it_supersedes(
    iris_csv, tmp_path, capsys
):
    arguments = [
        "--epochs",
        str(EPOCHS),
        "--data",
        str(iris_csv),
        "--output",
        str(tmp_path / "models"),
    ]
    assert train.main(arguments) == 0
    first = capsys.readouterr()
    assert (
        first.err.splitlines()[0]
        == "one worker: the default strategy, 1 replica in sync, global batch 16"
    )
    assert first.err.splitlines()[1].startswith("epoch 1/15: loss ")
    assert first.out.startswith("trained iris version 1: accuracy ")
    assert "1 worker, 1 replica" in first.out
    assert first.out.count("\n") == 1, "nothing to compare the first version with"
    assert train.main([*arguments, "--seed", "3"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    old = json.loads((tmp_path / "models" / "iris" / "1" / store.METRICS_FILE).read_text())
    new = json.loads((tmp_path / "models" / "iris" / "2" / store.METRICS_FILE).read_text())
    assert last == (
        f"against version 1, which it supersedes: held-out accuracy {new['accuracy']:.3f} (version 1: {old['accuracy']:.3f}), "
        f"held-out loss {new['loss']:.4f} (version 1: {old['loss']:.4f})"
    )


def _events(folder):
    import tensorflow as tf

    return [
        event
        for path in sorted(folder.glob("events.out.tfevents.*"))
        for event in tf.compat.v1.train.summary_iterator(str(path))
    ]


def test_tensorboard_gets_loss_and_accuracy_per_epoch_and_the_graph_in_one_run_per_version(
    iris_csv, tmp_path
):
    import tensorflow as tf

    trained = train.train(
        iris_csv,
        tmp_path / "models",
        epochs=EPOCHS,
        logs_dir=tmp_path / "logs",
        cluster=distributed.Cluster(),
    )
    run = tmp_path / "logs" / "iris" / str(trained.version)
    assert sorted(path.name for path in (tmp_path / "logs" / "iris").iterdir()) == ["1"]
    for name in ("train", "validation"):
        scalars, others = {}, set()
        for event in _events(run / name):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    scalars.setdefault(value.tag, []).append(
                        (event.step, float(tf.make_ndarray(value.tensor)))
                    )
                else:
                    others.add((value.tag, value.metadata.plugin_data.plugin_name))
        assert sorted(scalars) == ["epoch_accuracy", "epoch_loss"]
        assert [step for step, _ in scalars["epoch_loss"]] == list(range(EPOCHS))
        # The graph of a training step, for TensorBoard's Graphs tab, in the training run.
        assert others == (
            {("train_step", "graph_run_metadata_graph")} if name == "train" else set()
        )
    held_out = dict(scalars["epoch_loss"])[EPOCHS - 1]
    assert held_out == pytest.approx(trained.metrics["loss"], abs=1e-4), (
        "the last held-out loss is the version's"
    )


def test_logs_default_beside_the_models_folder_and_a_failed_training_leaves_none(
    tmp_path, iris_csv
):
    train.train(iris_csv, tmp_path / "models", epochs=1, cluster=distributed.Cluster())
    assert (tmp_path / "logs" / "iris" / "1" / "train").is_dir()
    (tmp_path / "a file").write_text("not a models folder")
    with pytest.raises(NotADirectoryError):
        train.train(
            iris_csv,
            tmp_path / "a file",
            epochs=1,
            logs_dir=tmp_path / "logs",
            cluster=distributed.Cluster(),
        )
    assert sorted(path.name for path in (tmp_path / "logs" / "iris").iterdir()) == ["1"], (
        "no run of a version that never appeared"
    )


def test_sigterm_stops_a_training_and_leaves_nothing_half_written(iris_csv, tmp_path):
    command = [
        sys.executable,
        "-m",
        "app.train",
        "--epochs",
        "100000",
        "--data",
        str(iris_csv),
        "--output",
        str(tmp_path / "models"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            if line.startswith("epoch 10/"):
                break
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert stderr.strip().splitlines()[-1] == "error: interrupted; no model version was published"
    assert not (tmp_path / "models").exists(), "no version, not even an incomplete one"
    assert list((tmp_path / "logs" / "iris").iterdir()) == [], (
        "no TensorBoard run of a version that never appeared"
    )


def test_a_logs_folder_that_cannot_be_written_is_one_line_before_training(
    iris_csv, tmp_path, capsys
):
    (tmp_path / "a file").write_text("not a folder")
    arguments = [
        "--data",
        str(iris_csv),
        "--output",
        str(tmp_path / "models"),
        "--logs",
        str(tmp_path / "a file"),
    ]
    assert train.main(arguments) == 1
    error = capsys.readouterr().err.splitlines()
    assert error[-1].startswith(f"error: cannot write {tmp_path / 'a file' / 'iris'}")
    assert error[-1].endswith(": Not a directory")
    assert not any(line.startswith("epoch") for line in error)
    assert not (tmp_path / "models").exists()


def test_publishing_removes_the_logs_that_killed_trainings_left_and_keeps_one_under_way(
    tmp_path, iris_csv
):
    logs = tmp_path / "logs" / "iris"
    killed, under_way = logs / ".incomplete-killed", logs / ".incomplete-under-way"
    for folder in (killed, under_way):
        (folder / "train").mkdir(parents=True)
    hour_ago = time.time() - 3600  # before this process started: no living training writes it
    os.utime(killed, (hour_ago, hour_ago))
    train.train(iris_csv, tmp_path / "models", epochs=1, cluster=distributed.Cluster())
    assert sorted(path.name for path in logs.iterdir()) == [".incomplete-under-way", "1"]
