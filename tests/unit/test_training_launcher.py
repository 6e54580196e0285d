"""`invoke train`'s launcher (devkit/distributed.py), with the engine scripted: the workers' command lines, what
is refused before anything starts, how the workers' ends are read, and that nothing is left."""

import os
import subprocess

import pytest

from devkit import distributed
from devkit.engine import Engine
from devkit.errors import UserError
from devkit.targets import project_id, project_label
from helpers.command_lines import argv_of, settings_of, target_of, value_after
from helpers.recording_engine import RecordingEngine

# A worker's /proc/net/tcp and tcp6 while its TensorFlow server runs: port 2222 (08AE) listened on,
# on every IPv6 address, and a connection from it to a peer's 2222.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B00007F:A1F3 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 020012AC:C2D4 030012AC:08AE 01 00000000:00000000 00:00000000 00000000  1000        0 2 1
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:08AE 00000000000000000000000000000000:0000 0A 00000000:0
"""

BUILT = {
    "image inspect": (0, "linux/amd64\n", ""),
    "info --format {{.MemTotal}}": (0, f"{8 * 2**30}\n", ""),
}


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


def test_each_worker_is_the_jobs_pod_of_its_index_as_a_container_of_invoke_run(project):
    settings = settings_of(project, "acme/flowers")
    target = target_of(settings)
    workers = distributed.workers_of(settings, target, 3)
    argv = argv_of(
        distributed.worker_spec(
            settings, target, workers[2], user="1234:1234", command=distributed.DEFAULT_COMMAND
        )
    )
    assert argv[:4] == ["docker", "run", "--name", "acme-flowers-train-2"]
    assert value_after(argv, "--network") == ["acme-flowers-train"]
    assert value_after(argv, "--hostname") == ["flowers-train-2"]
    assert value_after(argv, "--network-alias") == ["flowers-train-2.flowers-workers"]
    environment = [value for value in value_after(argv, "--env") if "=" in value]
    assert environment[1:6] == [
        "JOB_COMPLETION_INDEX=2",
        "TRAIN_WORKERS=3",
        "TRAIN_JOB=flowers-train",
        "TRAIN_SERVICE=flowers-workers",
        "TRAIN_PORT=2222",
    ]
    # What every container of the project gets (invoke run's options), and the pod's read-only root.
    assert value_after(argv, "--user") == ["1234:1234"]
    assert value_after(argv, "--cap-drop") == ["ALL"]
    assert value_after(argv, "--security-opt") == ["no-new-privileges"]
    assert "--read-only" in argv
    assert value_after(argv, "--tmpfs") == ["/tmp"]
    assert value_after(argv, "--mount") == [
        f"type=bind,source={settings.data_dir},target=/app/data"
    ]
    assert argv[-4:] == ["acme/flowers:latest", "python", "-m", "app.train"]


def test_the_gpu_images_workers_get_the_gpus_and_names_of_their_own(project):
    settings = settings_of(project, "acme/flowers")
    target = target_of(settings, gpu=True)
    [worker] = distributed.workers_of(settings, target, 1)
    argv = argv_of(
        distributed.worker_spec(settings, target, worker, user=None, command=["python", "train.py"])
    )
    assert worker.container == "acme-flowers-gpu-train-0"
    assert value_after(argv, "--gpus") == ["all"]
    assert argv[-3:] == ["acme/flowers:latest-gpu", "python", "train.py"]


@pytest.mark.parametrize("workers", ["0", "-1", "two", "1001"])
def test_a_bad_worker_count_is_refused_before_anything_runs(project, workers):
    engine = RecordingEngine(answers=BUILT)
    settings = settings_of(project, "acme/flowers")
    with pytest.raises(
        UserError, match=f"^--workers {workers}: expected a whole number from 1 to 1000$"
    ):
        distributed.train(engine, settings, target_of(settings), workers=workers)
    assert engine.log == []


def test_more_workers_than_the_engines_memory_holds_are_refused_before_anything_runs(project):
    engine = RecordingEngine(
        answers={**BUILT, "info --format {{.MemTotal}}": (0, f"{2 * 2**30}\n", "")}
    )
    settings = settings_of(project, "acme/flowers")
    with pytest.raises(UserError) as raised:
        distributed.train(engine, settings, target_of(settings), workers="5")
    assert str(raised.value) == (
        "--workers 5: each worker needs at least 512 MiB and the engine has 2.0 GiB, room for 4 at most; "
        "ask for fewer, or train on a cluster (`invoke k8s`)"
    )
    assert engine.actions == []


def test_a_training_that_runs_already_is_refused(project):
    settings = settings_of(project, "acme/flowers")
    engine = RecordingEngine(
        answers={
            **BUILT,
            " {{.Id}} acme-flowers-train-1": (0, f"running {project_id(settings)}\n", ""),
        }
    )
    with pytest.raises(
        UserError, match="^a training already runs in acme-flowers-train-1; wait for it"
    ):
        distributed.train(engine, settings, target_of(settings), workers="2")
    assert engine.actions == []


def test_without_the_image_nothing_starts(project):
    engine = RecordingEngine()
    settings = settings_of(project, "acme/flowers")
    with pytest.raises(
        UserError, match=r"^there is no image acme/flowers:latest; `invoke build` makes it"
    ):
        distributed.train(engine, settings, target_of(settings))
    assert engine.actions == []


def test_dry_prints_the_network_and_every_worker_and_starts_nothing(project, capsys):
    engine = RecordingEngine(dry=True)
    settings = settings_of(project, "acme/flowers")
    distributed.train(
        engine, settings, target_of(settings), workers="2", cmd="python -m app.train --epochs 5"
    )
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" --")[0] for line in printed] == ["docker run", "docker run"]
    assert printed[1].endswith("acme/flowers:latest python -m app.train --epochs 5")
    assert engine.actions == [
        f"docker network create --label {project_label(settings)} acme-flowers-train",
        "docker network rm acme-flowers-train",
    ]


class ScriptedWorkers(RecordingEngine):
    """Each worker a shell script instead of a container: `scripts` by worker index."""

    def __init__(self, scripts: dict[int, str], project_id: str, *, listening: bool = True) -> None:
        answers = {
            **BUILT,
            "network inspect": (0, f"{project_id}\n", ""),
            "container inspect": (0, f"exited {project_id} from-a-crash\n", ""),
            # Each worker's TensorFlow server, as MultiWorkerMirroredStrategy starts it; or none.
            "cat /proc/net/tcp /proc/net/tcp6": (0, PROC_NET_TCP if listening else "", ""),
        }
        super().__init__(answers=answers, run_leaves="exited")
        self.scripts = scripts

    def _start_process(self, argv):
        self.log.append(("start", " ".join(argv)))
        self.remember(argv)
        index = int(argv[argv.index("--name") + 1].rsplit("-", 1)[1])
        return Engine._start_process(self, ["sh", "-c", self.scripts[index]])


def run_scripted(project, scripts: dict[int, str], *, listening: bool = True):
    settings = settings_of(project, "acme/flowers")
    engine = ScriptedWorkers(scripts, project_id(settings), listening=listening)
    distributed.train(engine, settings, target_of(settings), workers=str(len(scripts)))
    return engine


def test_each_workers_lines_show_under_its_name_and_nothing_is_left(project, capsys):
    engine = run_scripted(
        project, {0: "echo chief one; sleep 0.3; echo chief two", 1: "echo other; sleep 0.1"}
    )
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("acme-flowers-train-0")] == [
        "acme-flowers-train-0 | chief one",
        "acme-flowers-train-0 | chief two",
    ]
    assert "acme-flowers-train-1 | other" in out
    assert engine.actions[0] == (
        "docker container rm --force acme-flowers-train-0 acme-flowers-train-1"
    ), "what a crash of this project's left goes first"
    assert engine.actions[-2:] == [
        "docker container rm --force id-of-acme-flowers-train-0 id-of-acme-flowers-train-1",
        "docker network rm acme-flowers-train",
    ]


@pytest.mark.parametrize(
    ("scripts", "message"),
    [
        (
            {0: "sleep 30", 1: "echo working; exit 137"},
            "worker 1, acme-flowers-train-1 failed with exit status 137: killed (SIGKILL",
        ),
        (
            {0: "echo 'error: no dataset at data/iris.csv'; exit 1", 1: "sleep 30"},
            "worker 0 (the chief), acme-flowers-train-0 failed with exit status 1: error: no dataset at data/iris.csv",
        ),
        (
            {0: "sleep 30", 1: "echo a; echo b; exit 3"},
            "worker 1, acme-flowers-train-1 failed with exit status 3: b",
        ),
    ],
)
def test_the_first_worker_that_fails_is_named_with_why_and_the_others_are_stopped(
    project, scripts, message
):
    with pytest.raises(UserError) as raised:
        run_scripted(project, scripts)
    assert str(raised.value).startswith(message)
    name = message.split(", ")[1].split(" ")[0]
    assert str(raised.value).endswith(
        f"; its whole output is above, under '{name} |'; the other workers were stopped and removed"
    )


def test_once_the_chief_has_ended_the_others_get_a_grace_period(project, monkeypatch, capsys):
    monkeypatch.setattr(distributed, "GRACE_SECONDS", 0.5)
    engine = run_scripted(project, {0: "exit 0", 1: "sleep 30"})
    assert (
        "the chief has ended, and acme-flowers-train-1 still ran 0.5 s later: stopped"
        in capsys.readouterr().err
    )
    assert engine.ran(
        "docker container rm --force id-of-acme-flowers-train-0 id-of-acme-flowers-train-1"
    )


def test_a_worker_that_fails_after_the_chief_is_a_warning_not_a_failure(project, capsys):
    run_scripted(project, {0: "exit 0", 1: "sleep 0.3; echo 'error: late'; exit 2"})
    assert (
        "warning: worker 1, acme-flowers-train-1 ended with exit status 2 after the chief: error: late"
        in capsys.readouterr().err
    )


def test_sigterm_stops_every_worker_and_says_so(project, capsys):
    # The chief's script signals invoke (this test's process), as `kill` or a cancelled CI job would.
    # Worker 1 ends first, as a worker stopped by docker does; the chief still gets its time to clean up.
    scripts = {
        0: f"kill -TERM {os.getpid()}; sleep 1; echo cleaned up; exit 130",
        1: "sleep 0.2; exit 143",
    }
    settings = settings_of(project, "acme/flowers")
    engine = ScriptedWorkers(scripts, project_id(settings))
    with pytest.raises(
        UserError, match="^stopped on SIGTERM; every worker was stopped and removed$"
    ):
        distributed.train(engine, settings, target_of(settings), workers="2")
    assert engine.ran("docker stop acme-flowers-train-0 acme-flowers-train-1")
    assert "acme-flowers-train-0 | cleaned up" in capsys.readouterr().out
    assert engine.ran(
        "docker container rm --force id-of-acme-flowers-train-0 id-of-acme-flowers-train-1"
    )


def test_the_engine_starts_a_process_whose_output_and_errors_share_one_pipe():
    process = Engine("docker")._start_process(["sh", "-c", "echo out; echo err >&2"])
    assert sorted(process.stdout.read().splitlines()) == ["err", "out"]
    assert process.wait() == 0
    assert isinstance(process, subprocess.Popen)


def test_workers_that_never_open_their_tensorflow_port_are_a_failure_not_n_trainings(project):
    with pytest.raises(UserError) as raised:
        run_scripted(project, {0: "echo trained alone", 1: "echo trained alone"}, listening=False)
    assert str(raised.value) == (
        "the 2 workers never formed one cluster: none opened its TensorFlow port 2222, so each "
        "trained alone (the command never read TF_CONFIG); train with the template's "
        "distributed_training (README: Beyond one machine), or with --workers 1"
    )


def test_one_worker_is_never_asked_for_its_port(project):
    engine = run_scripted(project, {0: "sleep 0.3; echo trained"}, listening=False)
    assert not any("/proc/net/tcp" in line for _, line in engine.log)


def test_the_workers_are_asked_for_their_port_until_one_listens(project):
    engine = run_scripted(project, {0: "sleep 1.5", 1: "sleep 1.5"})
    probes = [line for _, line in engine.log if "/proc/net/tcp" in line]
    assert probes == ["docker exec acme-flowers-train-0 cat /proc/net/tcp /proc/net/tcp6"]


def test_the_ports_listened_on_are_read_from_proc_net_tcp():
    assert distributed.listening_ports(PROC_NET_TCP) == {0xA1F3, 2222}
    assert distributed.listening_ports("") == set()


# What a Python program prints as it dies of model.fit under MultiWorkerMirroredStrategy: the frames,
# an exception whose message holds a tensor dump, then TensorFlow's C++ side logging at exit.
PER_REPLICA_FAILURE = """\
Epoch 1/3
Traceback (most recent call last):
  File "/app/data/mine.py", line 30, in <module>
    model.fit(features, target, epochs=3)
  File "/opt/venv/lib/python3.11/site-packages/keras/src/utils/traceback_utils.py", line 122, in error_handler
    raise e.with_traceback(filtered_tb) from None
ValueError: Attempt to convert a value (PerReplica:{
  0: <tf.Tensor: shape=(16, 1), dtype=float32, numpy=
array([[0.1],
       [0.2]], dtype=float32)>
}) with an unsupported type (<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor.
W0000 00:00:1733330000.000000      12 grpc_server_lib.cc:123] shutting down
"""


@pytest.mark.parametrize(
    ("status", "output", "reason"),
    [
        (
            1,
            PER_REPLICA_FAILURE,
            "ValueError: Attempt to convert a value (PerReplica:{ … }) with an unsupported type "
            "(<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor.",
        ),
        (
            1,
            "Traceback (most recent call last):\n  File \"a.py\", line 1\nKeyError: 'x'\n\n"
            "During handling of the above exception, another exception occurred:\n\n"
            'Traceback (most recent call last):\n  File "a.py", line 3\n'
            "    raise RuntimeError('no data')\nRuntimeError: no data\n",
            "RuntimeError: no data",
        ),
        (1, "epoch 1\nerror: no dataset at data/x.csv\nbye\n", "error: no dataset at data/x.csv"),
        (
            1,
            'Traceback (most recent call last):\n  File "lib.py", line 1\nOSError: retried\n'
            "epoch 1\nerror: training stopped on worker 1 of 2: peer gone\n",
            "error: training stopped on worker 1 of 2: peer gone",
        ),
        (3, "a\nb\n", "b"),
        (1, "", "no output"),
        (137, PER_REPLICA_FAILURE, "killed (SIGKILL: `docker kill`, or out of memory)"),
        (1, "ValueError: " + "x" * 400, "ValueError: " + "x" * 287 + "…"),
    ],
)
def test_a_failed_workers_reason_is_the_exception_it_died_of_in_one_line(status, output, reason):
    assert distributed.failure_reason(status, output.splitlines()) == reason
