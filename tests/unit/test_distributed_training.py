"""The template's distributed training (src/distributed_training) on the host: where a process stands
among its peers, read from the environment; which strategy follows; chief-only saving. No TensorFlow."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import distributed_training as distributed
from distributed_training import Cluster, ClusterError, Training, from_environment, strategy_name
from distributed_training.training import TrainingError, reason, steps_for
from helpers.project import PROJECT_DIR

POD = {
    "TRAIN_WORKERS": "3",
    "JOB_COMPLETION_INDEX": "1",
    "TRAIN_JOB": "iris-train",
    "TRAIN_SERVICE": "iris-workers",
    "TRAIN_PORT": "2222",
}
VERTEX = {  # the shape Vertex AI sets: workerpool0 is the chief, the next pool the workers
    "cluster": {
        "chief": ["cmle-training-workerpool0-ab-0:2222"],
        "worker": ["cmle-training-workerpool1-ab-0:2222"] * 2,
    },
    "task": {"type": "worker", "index": 1},
}


def test_without_either_variable_it_is_one_process_the_chief():
    cluster = from_environment({"PATH": "/usr/bin"})
    assert (cluster.workers, cluster.index, cluster.chief, cluster.spec, cluster.chief_address) == (
        1,
        0,
        True,
        None,
        None,
    )
    assert cluster.collective_timeout == distributed.cluster.DEFAULT_COLLECTIVE_TIMEOUT


def test_a_pod_of_the_indexed_job_derives_tf_config_from_its_index_and_the_hostnames():
    cluster = from_environment(POD)
    assert cluster.spec == {
        "worker": [
            "iris-train-0.iris-workers:2222",
            "iris-train-1.iris-workers:2222",
            "iris-train-2.iris-workers:2222",
        ]
    }
    assert cluster.task == {"type": "worker", "index": 1}
    assert (cluster.workers, cluster.index, cluster.chief) == (3, 1, False)
    assert cluster.chief_address == "iris-train-0.iris-workers:2222"
    assert cluster.describe() == "worker 1 of 3 (not the chief)"
    assert from_environment({**POD, "JOB_COMPLETION_INDEX": "0"}).chief


def test_the_derived_tf_config_is_the_one_tensorflow_reads():
    assert distributed.pod_tf_config(index=0, workers=2, job="j", service="s", port=1) == {
        "cluster": {"worker": ["j-0.s:1", "j-1.s:1"]},
        "task": {"type": "worker", "index": 0},
    }


def test_one_worker_in_the_job_is_one_process():
    assert from_environment({**POD, "TRAIN_WORKERS": "1", "JOB_COMPLETION_INDEX": "0"}) == Cluster()


def test_a_tf_config_already_set_is_used_as_it_is_and_wins_over_the_job_variables():
    cluster = from_environment({**POD, "TF_CONFIG": json.dumps(VERTEX)})
    assert cluster.spec == VERTEX["cluster"]
    assert cluster.task == VERTEX["task"]
    assert (cluster.workers, cluster.index, cluster.chief) == (3, 2, False), (
        "the chief is index 0, the workers follow it"
    )
    assert cluster.chief_address == "cmle-training-workerpool0-ab-0:2222"
    chief = from_environment(
        {"TF_CONFIG": json.dumps({**VERTEX, "task": {"type": "chief", "index": 0}})}
    )
    assert (chief.index, chief.chief) == (0, True)


def test_a_tf_config_of_workers_only_makes_worker_0_the_chief():
    ray = {
        "cluster": {"worker": ["10.0.0.1:9000", "10.0.0.2:9000"]},
        "task": {"type": "worker", "index": 0},
    }
    cluster = from_environment({"TF_CONFIG": json.dumps(ray)})
    assert (cluster.workers, cluster.index, cluster.chief, cluster.chief_address) == (
        2,
        0,
        True,
        "10.0.0.1:9000",
    )


def test_a_tf_config_of_a_single_task_is_one_process():
    single = {"cluster": {"chief": ["host:2222"]}, "task": {"type": "chief", "index": 0}}
    assert from_environment({"TF_CONFIG": json.dumps(single)}) == Cluster()


def test_the_collective_timeout_is_read_from_the_environment():
    assert from_environment({**POD, "TRAIN_COLLECTIVE_TIMEOUT": "30"}).collective_timeout == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"JOB_COMPLETION_INDEX": None},
            "TRAIN_WORKERS is set, so a worker of a training Job needs JOB_COMPLETION_INDEX too",
        ),
        (
            {"TRAIN_JOB": "", "TRAIN_PORT": None},
            "TRAIN_WORKERS is set, so a worker of a training Job needs TRAIN_JOB, TRAIN_PORT too",
        ),
        ({"TRAIN_WORKERS": "two"}, "TRAIN_WORKERS='two' is not a whole number of at least 1"),
        ({"TRAIN_WORKERS": "0"}, "TRAIN_WORKERS='0' is not a whole number of at least 1"),
        ({"TRAIN_WORKERS": "-2"}, "TRAIN_WORKERS='-2' is not a whole number of at least 1"),
        ({"JOB_COMPLETION_INDEX": "3"}, "JOB_COMPLETION_INDEX=3 is not below TRAIN_WORKERS=3"),
        (
            {"JOB_COMPLETION_INDEX": "1.5"},
            "JOB_COMPLETION_INDEX='1.5' is not a whole number of at least 0",
        ),
        ({"TRAIN_PORT": "0"}, "TRAIN_PORT='0' is not a whole number of at least 1"),
        ({"TRAIN_PORT": "70000"}, "TRAIN_PORT=70000 is not a port number (1-65535)"),
        (
            {"TRAIN_JOB": "Iris_Train"},
            "TRAIN_JOB='Iris_Train' does not make a hostname 'Iris_Train-2'",
        ),
        (
            {"TRAIN_JOB": "j" * 62},
            f"TRAIN_JOB='{'j' * 62}' does not make a hostname '{'j' * 62}-2'",
        ),
        (
            {"TRAIN_SERVICE": "workers.svc"},
            "TRAIN_SERVICE='workers.svc' does not make a hostname 'workers.svc'",
        ),
        (
            {"TRAIN_COLLECTIVE_TIMEOUT": "soon"},
            "TRAIN_COLLECTIVE_TIMEOUT='soon' is not a whole number of at least 1",
        ),
        ({"TRAIN_WORKERS": "²"}, "TRAIN_WORKERS='²' is not a whole number of at least 1"),
        (
            {"JOB_COMPLETION_INDEX": "٣"},
            "JOB_COMPLETION_INDEX='٣' is not a whole number of at least 0",
        ),
        ({"TF_CONFIG": "{cluster: 1}"}, "TF_CONFIG is not JSON: "),
        ({"TF_CONFIG": "[]"}, 'TF_CONFIG must be an object with "cluster" and "task"'),
        (
            {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}}'},
            'TF_CONFIG must be an object with "cluster" and "task"',
        ),
        (
            {
                "TF_CONFIG": '{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker", "index": 0}}'
            },
            "TF_CONFIG has 'ps' tasks; MultiWorkerMirroredStrategy runs only chief and worker tasks",
        ),
        (
            {"TF_CONFIG": '{"cluster": {"worker": "a:1"}, "task": {"type": "worker"}}'},
            'TF_CONFIG "cluster"."worker" must be a list of "host:port"',
        ),
        (
            {"TF_CONFIG": '{"cluster": {"worker": ["a"]}, "task": {"type": "worker"}}'},
            'TF_CONFIG "cluster"."worker" must be a list of "host:port"',
        ),
        (
            {"TF_CONFIG": '{"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief"}}'},
            "TF_CONFIG must name at most one chief",
        ),
        (
            {"TF_CONFIG": '{"cluster": {}, "task": {"type": "worker"}}'},
            "TF_CONFIG must name at most one chief, and a chief or a worker",
        ),
        (
            {
                "TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}'
            },
            'TF_CONFIG "task" {"type": "worker", "index": 2} is not one of the tasks in its "cluster"',
        ),
        (
            {
                "TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}'
            },
            'TF_CONFIG "task" {"type": "chief", "index": 0} is not one of the tasks',
        ),
    ],
)
def test_a_bad_or_missing_value_is_one_line_naming_it(change, message):
    environ = {key: value for key, value in {**POD, **change}.items() if value is not None}
    with pytest.raises(ClusterError) as raised:
        from_environment(environ)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("workers", "gpus", "expected"),
    [
        (1, 0, "the default strategy"),
        (1, 1, "the default strategy"),
        (1, 2, "MirroredStrategy"),
        (2, 0, "MultiWorkerMirroredStrategy"),
        (3, 4, "MultiWorkerMirroredStrategy"),
    ],
)
def test_the_strategy_follows_the_workers_then_the_local_gpus(workers, gpus, expected):
    assert strategy_name(Cluster(workers=workers), gpus) == expected


def _worker_of(port: int, timeout: int = 10) -> Cluster:
    spec = {"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]}
    return Cluster(
        workers=2,
        index=1,
        spec=spec,
        task={"type": "worker", "index": 1},
        collective_timeout=timeout,
    )


def test_a_worker_stays_until_the_chief_has_ended_then_leaves_at_once():
    chief = socket.create_server(("127.0.0.1", 0))
    port = chief.getsockname()[1]
    threading.Timer(1.5, chief.close).start()
    started = time.monotonic()
    distributed.wait_for_chief(_worker_of(port))
    assert 1.4 < time.monotonic() - started < 5
    started = time.monotonic()
    distributed.wait_for_chief(_worker_of(port))
    assert time.monotonic() - started < 1, "nothing listens there any more"


def test_a_worker_waits_for_the_chief_no_longer_than_the_collective_timeout():
    with socket.create_server(("127.0.0.1", 0)) as chief:
        started = time.monotonic()
        distributed.wait_for_chief(_worker_of(chief.getsockname()[1], timeout=1))
        assert 0.9 < time.monotonic() - started < 3


def test_the_chief_does_not_wait():
    started = time.monotonic()
    distributed.wait_for_chief(Cluster())
    distributed.wait_for_chief(from_environment({**POD, "JOB_COMPLETION_INDEX": "0"}))
    assert time.monotonic() - started < 0.5


def test_importing_it_does_not_import_tensorflow():
    # A fresh interpreter: this test process may have imported TensorFlow for another test.
    check = "import sys, distributed_training; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR / "src")},
    )
    assert result.stdout == "False\n"


def test_it_survives_deleting_the_example():
    package = PROJECT_DIR / "src" / "distributed_training"
    for module in package.glob("*.py"):
        assert "from app" not in module.read_text(), f"{module} imports the example"
        assert "import app" not in module.read_text(), f"{module} imports the example"


def _training(cluster: Cluster) -> Training:
    return Training(cluster=cluster, strategy_name="the default strategy", strategy=None)


def test_only_the_chiefs_saved_copy_is_kept(tmp_path):
    written = []

    def write(folder):
        (folder / "model.keras").write_text("weights")
        written.append(folder)

    chief = _training(from_environment({**POD, "JOB_COMPLETION_INDEX": "0"}))
    assert chief.save(write, tmp_path / "models" / "mine") == tmp_path / "models" / "mine"
    assert (tmp_path / "models" / "mine" / "model.keras").read_text() == "weights"
    worker = _training(_worker_of(1, timeout=1))  # no chief listens on port 1: no wait
    assert worker.save(write, tmp_path / "elsewhere") is None
    assert len(written) == 2, "every worker writes, as TensorFlow's multi-worker saving expects"
    assert not written[1].exists(), "the worker's copy is removed"
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize(
    ("rows", "global_batch", "steps"), [(120, 32, 4), (128, 32, 4), (1, 16, 1), (10, 1, 10)]
)
def test_an_epoch_is_every_row_once_in_global_batches(rows, global_batch, steps):
    assert steps_for(rows, global_batch) == steps


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (-2, "the dataset does not say how many rows it has"),  # tf.data.UNKNOWN_CARDINALITY
        (-1, "the dataset does not say how many rows it has"),  # tf.data.INFINITE_CARDINALITY
        (0, "the dataset has no rows"),
    ],
)
def test_an_epoch_of_unknown_length_asks_for_steps_per_epoch(rows, message):
    with pytest.raises(TrainingError, match=f"^{message}"):
        steps_for(rows, 32)


def test_a_tensorflow_error_is_its_cause_and_the_peer_that_failed_in_one_line():
    class OpError:  # what reason() reads of a tf.errors.OpError
        message = (
            "Graph execution error:\n\nDetected at node CollectiveReduceV2 defined at:\n"
            '  File "/app/src/app/train.py", line 90, in train\n\n'
            "Collective ops is aborted by: failed to connect to all addresses\n"
            "Additional GRPC error information from remote target /job:worker/replica:0/task:1:\n"
            ":UNKNOWN:Error received from peer\n"
            "The error could be from a previous operation.\n"
            "\t [[{{node CollectiveReduceV2}}]]"
        )

    assert reason(OpError()) == (
        "Collective ops is aborted by: failed to connect to all addresses (from worker 1)"
    )
