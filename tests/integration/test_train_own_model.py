"""`invoke train --workers 2` of a team's own training code, not the example's: a Keras model of the
test's own (tests/helpers/own_training.py, put in DATA_DIR where the workers run it) distributed by
the template's distributed_training; ordinary Keras code that never reads TF_CONFIG; and a worker
that dies of an exception whose message holds a tensor dump."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import own_training
from helpers.engine import docker


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o777)  # the containers' user may be another uid than this test's
    shutil.copy(own_training.__file__, folder / "own_training.py")
    return folder


def train(invoke, data, *arguments: str):
    command = " ".join(["python data/own_training.py data/out", *arguments])
    return invoke("train", "--workers", "2", "--cmd", command, env={"DATA_DIR": str(data)})


def leftovers(invoke) -> tuple[str, str]:
    """The training's containers and network that still exist."""
    prefix = f"{invoke.image_name}-train"
    containers = docker("ps", "--all", "--format", "{{.Names}}", "--filter", f"name=^{prefix}")
    networks = docker("network", "ls", "--format", "{{.Name}}", "--filter", f"name=^{prefix}$")
    return containers.stdout.strip(), networks.stdout.strip()


def last_line(result) -> str:
    assert result.returncode != 0, f"expected a failure:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_two_workers_train_a_model_of_the_teams_own_to_the_same_weights(invoke, cpu_image, data):
    result = train(invoke, data, "--epochs", "3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (
        f"{invoke.image_name}-train-1 | worker 1 of 2 (not the chief): MultiWorkerMirroredStrategy "
        "over 2 workers, 2 replicas in sync" in result.stdout
    )
    first, second = (json.loads((data / "out" / f"weights-{n}.json").read_text()) for n in (0, 1))
    assert first["weights"] == second["weights"], "one model, not two"
    assert first["losses"][-1] < first["losses"][0]
    assert sorted(path.name for path in (data / "out" / "model").iterdir()) == ["model.keras"]
    assert leftovers(invoke) == ("", "")


def test_workers_that_never_read_tf_config_are_a_failure_in_one_line(invoke, cpu_image, data):
    result = train(invoke, data, "--plain", "--epochs", "3")
    assert last_line(result) == (
        "error: the 2 workers never formed one cluster: none opened its TensorFlow port 2222, so "
        "each trained alone (the command never read TF_CONFIG); train with the template's "
        "distributed_training (README: Beyond one machine), or with --workers 1"
    )
    assert result.stdout.count("| trained alone") == 2, "both trained, each on its own"
    assert leftovers(invoke) == ("", "")


def test_a_worker_that_fails_is_its_exception_in_one_line_not_a_tensor_dump(
    invoke, cpu_image, data
):
    result = train(invoke, data, "--fail")
    worker = f"{invoke.image_name}-train-1"
    assert last_line(result) == (
        f"error: worker 1, {worker} failed with exit status 1: ValueError: Attempt to convert a "
        "value (PerReplica:{ … }) with an unsupported type "
        "(<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor.; "
        f"its whole output is above, under '{worker} |'; the other workers were stopped and removed"
    )
    assert f"{worker} |   0: <tf.Tensor: shape=(16, 1)" in result.stdout, "the whole output"
    assert leftovers(invoke) == ("", "")
