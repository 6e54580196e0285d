"""A signal to invoke alone, not to its process group: an IDE's stop button, a cancelled CI job,
`timeout`, `kill`. The container must stop and go, as it does on Ctrl-C in a terminal (which signals
the whole group, docker CLI included: test_run.py). Each task runs in a session of its own, so the
signal reaches nothing but the invoke process."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from helpers.engine import containers_named, docker
from helpers.http_client import wait_until_healthy


def end_of(process: subprocess.Popen[str], timeout: float = 90) -> str:
    """The stderr of `process` once it has ended; it is killed if it does not."""
    try:
        return process.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(
            f"invoke did not end within {timeout:.0f} s of the signal:\n{process.communicate()[1]}"
        )


@pytest.fixture
def leftovers():
    """Names of containers that a failing test may leave behind: removed after it."""
    names: list[str] = []
    yield names
    docker("rm", "--force", *names, check=False)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_invoke_alone_stops_and_removes_a_foreground_run(
    invoke, cpu_image, number, leftovers
):
    name = invoke.image_name
    leftovers.append(name)
    process = invoke.popen("run", start_new_session=True)
    try:
        wait_until_healthy(f"http://127.0.0.1:{invoke.env['HOST_PORT']}/health")
    except AssertionError:
        process.kill()
        raise
    process.send_signal(number)
    stderr = end_of(process)
    assert containers_named(name) == []
    assert process.returncode == 0, stderr
    assert (
        stderr.strip().splitlines()[-1]
        == f"stopped and removed {name} on {signal.Signals(number).name}"
    )


def test_sigterm_to_invoke_stops_and_removes_the_container_test(invoke, cpu_image, leftovers):
    name = f"{invoke.image_name}-container-test"
    leftovers.append(name)
    process = invoke.popen("container-test", start_new_session=True)
    deadline = time.monotonic() + 180
    while (
        "running"
        not in docker(
            "container", "inspect", "--format", "{{.State.Status}}", name, check=False
        ).stdout
    ):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the container test did not start:\n{process.communicate()[1]}")
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stderr = end_of(process)
    assert containers_named(name) == []
    assert process.returncode == 1, stderr
    assert (
        stderr.strip().splitlines()[-1]
        == f"error: the container test was stopped on SIGTERM; {name} is removed"
    )
