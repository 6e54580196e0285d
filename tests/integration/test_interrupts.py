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


def image_id(image: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()


def test_ctrl_c_during_build_keeps_the_previous_image(invoke, cpu_image):
    before = image_id(cpu_image)
    process = invoke.popen("build", "--no-cache", start_new_session=True, stderr=subprocess.STDOUT)
    # Until pip is at work in a step of the new build.
    for line in process.stdout:
        if "install-lock" in line and "RUN" in line:
            break
    else:
        pytest.fail(f"the build ended before pip started (exit {process.wait()})")
    time.sleep(3)
    output = interrupt(process)
    assert process.returncode != 0, output[-2000:]
    assert image_id(cpu_image) == before, (
        "an interrupted build must leave the tag on the previous image"
    )


def test_ctrl_c_during_lock_keeps_every_lock_and_leaves_no_container(invoke, tmp_path):
    project = project_copy(tmp_path)
    before = snapshot(project)
    cache_volume = f"{invoke.image_name}-lock-cache"

    def lock_containers() -> list[str]:
        return docker("ps", "--all", "--quiet", "--filter", f"volume={cache_volume}").stdout.split()

    assert lock_containers() == []
    process = invoke.popen(
        "lock",
        "--upgrade",
        "--platform",
        HOST_PLATFORM,
        cwd=project,
        start_new_session=True,
        stderr=subprocess.STDOUT,
    )

    def compiling() -> bool:
        return any(
            "pip-compile" in docker("top", container, check=False).stdout
            for container in lock_containers()
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
    while lock_containers():
        assert time.monotonic() < deadline, "the lock container outlived the interrupted task"
        time.sleep(0.5)
