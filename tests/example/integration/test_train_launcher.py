"""`invoke train`: N containers of the built image train one model together; a failed worker stops them all.

Each test has a DATA_DIR of its own holding the Iris dataset; what a training leaves there is checked,
and so is what it leaves in the engine: no container, no network.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time

import pytest

from example.iris import SETOSA
from helpers.engine import docker, free_port
from helpers.http_client import predict, wait_for_json
from helpers.project import PROJECT_DIR, project_copy

# Seconds a worker waits for the others in one exchange: the killed worker's peer gives up within it.
COLLECTIVE_TIMEOUT = 30


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    folder.chmod(0o777)  # the containers' user may be another uid than this test's
    shutil.copy(PROJECT_DIR / "data" / "iris.csv", folder)
    return folder


def versions(data) -> list[str]:
    folder = data / "models" / "iris"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def metrics_of(data, version: str) -> dict:
    return json.loads((data / "models" / "iris" / version / "metrics.json").read_text())


def leftovers(invoke) -> tuple[str, str]:
    """The training's containers and network that still exist."""
    prefix = f"{invoke.image_name}-train"
    return (
        docker(
            "ps", "--all", "--format", "{{.Names}}", "--filter", f"name=^{prefix}"
        ).stdout.strip(),
        docker(
            "network", "ls", "--format", "{{.Name}}", "--filter", f"name=^{prefix}$"
        ).stdout.strip(),
    )


def one_error_line(result) -> str:
    assert result.returncode != 0, f"expected a failure:\n{result.stdout}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    return lines[-1]


def test_two_workers_train_one_model_as_well_as_one_and_leave_nothing(invoke, cpu_image, data):
    single = invoke("train", env={"DATA_DIR": str(data)})
    assert single.returncode == 0, single.stderr[-3000:]
    assert (
        f"{invoke.image_name}-train-0 | one worker: the default strategy, 1 replica in sync, global batch 16"
        in single.stdout
    )
    assert versions(data) == ["1"]
    double = invoke("train", "--workers", "2", env={"DATA_DIR": str(data)})
    assert double.returncode == 0, double.stderr[-3000:]
    for index in range(2):
        name = f"{invoke.image_name}-train-{index}"
        strategy = [
            line
            for line in double.stdout.splitlines()
            if line.startswith(f"{name} | ") and "MultiWorkerMirroredStrategy" in line
        ]
        assert strategy == [f"{name} | worker {index} of 2 ({'the chief' if index == 0 else 'not the chief'}): "
                            "MultiWorkerMirroredStrategy over 2 workers, 2 replicas in sync, global batch 32"]  # fmt: skip
    assert f"{invoke.image_name}-train-0 | trained iris version 2: " in double.stdout
    assert versions(data) == ["1", "2"], "exactly one new version"
    one, two = metrics_of(data, "1"), metrics_of(data, "2")
    assert (one["workers"], one["replicas"], two["workers"], two["replicas"]) == (1, 1, 2, 2)
    assert abs(two["accuracy"] - one["accuracy"]) <= 0.1, (one, two)
    assert leftovers(invoke) == ("", "")
    # The version the two workers made serves as any other: the newest, loaded by `invoke run`.
    port = str(free_port())
    served = invoke("run", "--detach", env={"DATA_DIR": str(data), "HOST_PORT": port})
    assert served.returncode == 0, served.stderr
    try:
        assert wait_for_json(f"http://127.0.0.1:{port}/health")["version"] == 2
        status, body = predict(f"http://127.0.0.1:{port}", [SETOSA])
        assert status == 200, body
        assert max(range(3), key=body["predictions"][0].__getitem__) == 0, "a setosa"
    finally:
        invoke("stop", env={"DATA_DIR": str(data), "HOST_PORT": port})


def training_under_way(invoke, data, **options):
    """`invoke train --workers 2` of a training that would run for hours, once its chief has trained 10 epochs;
    the process, the lines of its output so far (and to come), and the thread that reads them."""
    process = invoke.popen(
        "train",
        "--workers",
        "2",
        "--cmd",
        "python -m app.train --epochs 100000",
        env={"DATA_DIR": str(data)},
        **options,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while not any("epoch 10/100000" in line for line in lines):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(
                f"no training step within 300 s:\n{''.join(lines)}\n{process.stderr.read()}"
            )
        time.sleep(0.2)
    return process, lines, reader


def ended(process, reader, timeout: float) -> str:
    """Its error output, once invoke has ended (its output is read by `reader` to the end)."""
    process.wait(timeout=timeout)
    reader.join(timeout=30)
    return process.stderr.read()


def test_a_killed_worker_fails_the_training_naming_it_and_nothing_is_published_or_left(
    invoke, cpu_image, data, tmp_path
):
    project = project_copy(tmp_path, dotenv=f"TRAIN_COLLECTIVE_TIMEOUT={COLLECTIVE_TIMEOUT}\n")
    process, _, reader = training_under_way(invoke, data, cwd=project)
    try:
        docker("kill", f"{invoke.image_name}-train-1")
        killed = time.monotonic()
        stderr = ended(process, reader, COLLECTIVE_TIMEOUT + 60)
        took = time.monotonic() - killed
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert took < COLLECTIVE_TIMEOUT + 30, f"invoke train took {took:.0f} s to end after the kill"
    last = stderr.strip().splitlines()[-1]
    assert last == (
        f"error: worker 1, {invoke.image_name}-train-1 failed with exit status 137: killed (SIGKILL: `docker kill`, or out of memory); "
        f"its whole output is above, under '{invoke.image_name}-train-1 |'; the other workers were stopped and removed"
    )
    assert versions(data) == [], "no version published"
    assert leftovers(invoke) == ("", "")


def test_sigterm_stops_every_worker_which_leaves_nothing_half_written(invoke, cpu_image, data):
    process, lines, reader = training_under_way(invoke, data)
    try:
        process.send_signal(signal.SIGTERM)
        stderr = ended(process, reader, 60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    assert (
        stderr.strip().splitlines()[-1]
        == "error: stopped on SIGTERM; every worker was stopped and removed"
    )
    for index in range(2):
        assert (
            f"{invoke.image_name}-train-{index} | error: interrupted; no model version was published\n"
            in lines
        ), "".join(lines[-20:])
    assert versions(data) == []
    assert list((data / "logs" / "iris").iterdir()) == [], (
        "no TensorBoard run of a version that never appeared"
    )
    assert leftovers(invoke) == ("", "")


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_no_workers_is_one_line_and_nothing_starts(invoke, data, workers):
    result = invoke("train", f"--workers={workers}", env={"DATA_DIR": str(data)})
    assert (
        one_error_line(result)
        == f"error: --workers {workers}: expected a whole number from 1 to 1000"
    )
    assert result.stderr.count("\n") == 1
    assert leftovers(invoke) == ("", "")


def test_more_workers_than_the_engine_holds_is_one_line_and_nothing_starts(invoke, cpu_image, data):
    result = invoke("train", "--workers", "1000", env={"DATA_DIR": str(data)})
    assert one_error_line(result).startswith(
        "error: --workers 1000: each worker needs at least 512 MiB and the engine has "
    )
    assert result.stderr.count("\n") == 1
    assert leftovers(invoke) == ("", "")
