"""Ctrl-C in the middle of `invoke build` and `invoke lock`: what was there before is still there.

A terminal sends SIGINT to the whole foreground process group (invoke and the docker CLI it runs),
so the tests start each task in a session of its own and signal that group. Ctrl-C during
`invoke run` is in test_run.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers.engine import docker, host_platform
from helpers.lock_files import snapshot
from helpers.project import project_copy

# The platform of the CPU image that `invoke build` makes here.
HOST_PLATFORM = host_platform()


def interrupt(process: subprocess.Popen[str]) -> str:
    """Ctrl-C as a terminal sends it; the task's output, once it has ended."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the task did not end within 2 minutes of SIGINT")
    return output


def lock_containers(invoke) -> list[str]:
    """The containers of `invoke lock`: those that mount its pip cache volume."""
    volume = f"{invoke.image_name}-lock-cache"
    return docker("ps", "--all", "--quiet", "--filter", f"volume={volume}").stdout.split()


def start_lock(invoke, project: Path) -> subprocess.Popen[str]:
    """`invoke lock --upgrade` of this platform's CPU lock, in a session of its own."""
    return invoke.popen(
        "lock",
        "--upgrade",
        "--platform",
        HOST_PLATFORM,
        cwd=project,
        start_new_session=True,
        stderr=subprocess.STDOUT,
    )


def image_id(image: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


# SIGINT to the whole group, as a terminal's Ctrl-C; or to invoke alone, as an IDE's stop button.
@pytest.mark.parametrize("whom", ["group", "invoke alone"])
def test_ctrl_c_during_build_keeps_the_previous_image(invoke, cpu_image, whom):
    before = image_id(cpu_image)
    process = invoke.popen("build", "--no-cache", start_new_session=True, stderr=subprocess.STDOUT)
    # Until pip is at work in a step of the new build.
    for line in process.stdout:
        if "install-lock" in line and "RUN" in line:
            break
    else:
        pytest.fail(f"the build ended before pip started (exit {process.wait()})")
    time.sleep(3)
    output = interrupt(process) if whom == "group" else signal_invoke_alone(process, signal.SIGINT)
    assert process.returncode != 0, output[-2000:]
    assert image_id(cpu_image) == before, (
        "an interrupted build must leave the tag on the previous image"
    )


def test_ctrl_c_during_lock_keeps_every_lock_and_leaves_no_container(invoke, tmp_path):
    project = project_copy(tmp_path)
    before = snapshot(project)
    assert lock_containers(invoke) == []
    process = start_lock(invoke, project)

    def compiling() -> bool:
        return any(
            "pip-compile" in docker("top", container, check=False).stdout
            for container in lock_containers(invoke)
        )

    deadline = time.monotonic() + 180
    while not compiling():
        assert process.poll() is None, (
            f"invoke lock ended before pip-compile started:\n{process.stdout.read()}"
        )
        assert time.monotonic() < deadline, "pip-compile did not start within 3 minutes"
        time.sleep(0.5)
    output = interrupt(process)
    assert process.returncode != 0, output
    assert (
        output.strip()
        .splitlines()[-1]
        .startswith("error: pip-compile failed for requirements.txt; every lock is unchanged")
    )
    assert "Traceback" not in output
    assert snapshot(project) == before, "an interrupted lock must leave every lock as it was"
    deadline = time.monotonic() + 30
    while lock_containers(invoke):
        assert time.monotonic() < deadline, "the lock container outlived the interrupted task"
        time.sleep(0.5)


# --- a signal to invoke alone (an IDE's stop button, CI, `kill`): not to the docker CLI --------


def signal_invoke_alone(process: subprocess.Popen[str], number: int) -> str:
    """`number` to the invoke process only (its session holds no terminal); its output after."""
    process.send_signal(number)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"the task did not end within 60 s of {signal.Signals(number).name}")
    return output


def test_sigint_to_invoke_alone_stops_the_host_tools_lock_with_every_lock_as_it_was(
    invoke, tmp_path
):
    project = project_copy(tmp_path)
    before = snapshot(project)
    process = invoke.popen(
        "lock", "--dev", "--upgrade", cwd=project, start_new_session=True, stderr=subprocess.STDOUT
    )
    time.sleep(4)
    assert process.poll() is None, f"invoke lock ended within 4 s:\n{process.stdout.read()}"
    output = signal_invoke_alone(process, signal.SIGINT)
    assert process.returncode != 0, output
    assert "Traceback" not in output
    assert snapshot(project) == before, "an interrupted lock must leave every lock as it was"


def test_sigterm_to_invoke_alone_stops_the_lock_container(invoke, tmp_path):
    project = project_copy(tmp_path)
    before = snapshot(project)
    process = start_lock(invoke, project)
    deadline = time.monotonic() + 180
    while not lock_containers(invoke):
        assert process.poll() is None, f"invoke lock ended early:\n{process.stdout.read()}"
        assert time.monotonic() < deadline, "the lock container did not start within 3 minutes"
        time.sleep(0.2)
    output = signal_invoke_alone(process, signal.SIGTERM)
    assert process.returncode != 0, output
    assert "Traceback" not in output
    assert lock_containers(invoke) == [], "no lock container outlives the task"
    assert snapshot(project) == before
