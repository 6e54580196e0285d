"""`invoke tensorboard` against the real engine: TensorBoard from the built image over DATA_DIR/logs,
as the caller, with the least privilege of `invoke run`; `invoke stop --tensorboard` and Ctrl-C end it.

The logs are written here by tf.summary inside the image, through `invoke run --cmd`, in the layout
training uses (logs/<model>/<version>/train and validation), so the test needs no example app.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import time
import urllib.request

import pytest

from devkit.targets import PROJECT_LABEL
from helpers.engine import containers_named, docker, free_port
from helpers.invoking import Invoke, run_as

RUNS = ("iris/1/train", "iris/1/validation")
WRITE_LOGS = """
import tensorflow as tf
for run in ("train", "validation"):
    with tf.summary.create_file_writer("/app/data/logs/iris/1/" + run).as_default():
        for step in range(3):
            tf.summary.scalar("epoch_loss", 1.0 / (step + 1), step=step)
"""


def get(url: str, timeout: float = 120) -> tuple[int, bytes]:
    """GET `url` until something answers; its status and body."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a local test URL)
                return response.status, response.read()
        except OSError as error:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{url} did not answer within {timeout:.0f} s: {error}"
                ) from None
            time.sleep(1)


@pytest.fixture
def board(invoke) -> Invoke:
    """The suite's settings with a TensorBoard port of this test's own; the container is removed after."""
    yield Invoke({**invoke.env, "TENSORBOARD_PORT": str(free_port())})
    docker("rm", "--force", f"{invoke.image_name}-tensorboard", check=False)


def write_logs(board: Invoke, caller) -> None:
    written = run_as(board, caller, "run", "--cmd", shlex.join(["python", "-c", WRITE_LOGS]))
    assert written.returncode == 0, written.stderr[-2000:]
    for run in RUNS:
        assert any((caller.data / "logs" / run).glob("events.out.tfevents.*")), (
            f"no event file in logs/{run}"
        )


def test_tensorboard_serves_the_runs_as_the_caller_and_stop_removes_it(
    board, cpu_image, non_root_caller
):
    write_logs(board, non_root_caller)
    port = board.env["TENSORBOARD_PORT"]
    container = f"{board.image_name}-tensorboard"

    started = run_as(board, non_root_caller, "tensorboard", "--detach")
    assert started.returncode == 0, started.stderr
    assert f"TensorBoard on http://127.0.0.1:{port}" in started.stderr
    assert (
        f"{container} runs in the background; `invoke stop --tensorboard` stops it"
        in started.stderr
    )

    status, page = get(f"http://127.0.0.1:{port}/")
    assert status == 200
    assert b"<html" in page.lower()
    _, runs = get(f"http://127.0.0.1:{port}/data/runs")
    assert sorted(json.loads(runs)) == sorted(RUNS)

    (info,) = json.loads(docker("container", "inspect", container).stdout)
    uid, gid = non_root_caller.uid, os.stat(non_root_caller.data).st_gid
    assert info["Config"]["User"] == f"{uid}:{gid}"
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in info["HostConfig"]["SecurityOpt"]
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["HostConfig"]["PortBindings"] == {
        "6006/tcp": [{"HostIp": "127.0.0.1", "HostPort": port}]
    }
    assert info["HostConfig"]["Init"] is True

    again = run_as(board, non_root_caller, "tensorboard", "--detach")
    assert again.returncode == 1
    assert (
        again.stderr.strip()
        == f"error: {container} is already running; `invoke stop --tensorboard` stops it"
    )

    stopped = run_as(board, non_root_caller, "stop", "--tensorboard")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr.strip() == f"stopped and removed {container}"
    assert containers_named(container) == []


def test_ctrl_c_stops_and_removes_a_foreground_tensorboard(board, cpu_image, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    port = board.env["TENSORBOARD_PORT"]
    # A terminal sends SIGINT to the whole foreground process group: invoke and the docker CLI.
    process = board.popen("tensorboard", env={"DATA_DIR": str(data)}, start_new_session=True)
    try:
        try:
            status, _ = get(f"http://127.0.0.1:{port}/")
        except AssertionError as error:
            if process.poll() is not None:
                pytest.fail(
                    f"invoke tensorboard ended before it served: {error}\n{process.communicate()[1]}"
                )
            raise
        assert status == 200
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"invoke tensorboard did not end on SIGINT:\n{process.communicate()[1]}")
    assert process.returncode == 0, stderr
    assert f"{data / 'logs'} does not exist yet" in stderr
    assert containers_named(f"{board.image_name}-tensorboard") == []


def test_a_busy_tensorboard_port_is_one_line(board, cpu_image):
    port = int(board.env["TENSORBOARD_PORT"])
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = board("tensorboard", "--detach")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"error: TENSORBOARD_PORT {port} on 127.0.0.1 is already in use; stop what uses it, or set TENSORBOARD_PORT in .env"
    )
    assert containers_named(f"{board.image_name}-tensorboard") == []


def test_another_projects_container_of_tensorboards_name_is_left_alone(board, cpu_image):
    name = f"{board.image_name}-tensorboard"
    # Another project's: the label that the image gives its containers names another folder.
    docker("create", "--name", name, "--label", f"{PROJECT_LABEL}=0123456789abcdef", cpu_image)
    created = docker("container", "inspect", "--format", "{{.Id}}", name).stdout.strip()
    result = board("tensorboard", "--detach")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        f"error: {name} is a container of the same name that is not this project's"
    ), result.stderr
    assert f"rm --force {name}` removes it" in result.stderr
    assert docker("container", "inspect", "--format", "{{.Id}}", name).stdout.strip() == created
