"""`invoke run --cmd` beside the server, `invoke run --detach` and `invoke logs`: what a newcomer does
on the first afternoon (train while the example serves; read a background server's output)."""

from __future__ import annotations

import re
import shlex
import subprocess
import uuid

import pytest

from helpers.engine import DOCKER, containers_named, docker, free_port
from helpers.http_client import wait_until_healthy


@pytest.fixture
def server(invoke, cpu_image):
    """The server, started with `invoke run --detach`; its stderr. Stopped after the test."""
    started = invoke("run", "--detach")
    assert started.returncode == 0, started.stderr
    try:
        wait_until_healthy(f"http://127.0.0.1:{invoke.env['HOST_PORT']}/health", timeout=300)
        yield started.stderr
    finally:
        invoke("stop")


def line_starting(text: str, prefix: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(prefix))


def test_a_detached_server_says_its_name_url_and_how_to_read_its_output(invoke, server):
    name, port = invoke.image_name, invoke.env["HOST_PORT"]
    assert server.strip().splitlines()[-2:] == [
        f"{name} runs in the background on http://127.0.0.1:{port}",
        "`invoke logs --follow` shows its output; `invoke stop` stops it",
    ]
    wait_until_healthy(f"http://127.0.0.1:{port}/health")
    shown = invoke("logs")
    assert shown.returncode == 0, shown.stderr
    logged = docker("logs", name)
    lines = (shown.stdout + shown.stderr).splitlines()
    # The container's own output, whatever the app (it may have logged more since, as /health is probed).
    assert lines, "the app printed something as it started"
    assert set(lines) <= set((logged.stdout + logged.stderr).splitlines())
    following = invoke.popen("logs", "--follow")
    try:
        assert invoke("stop").returncode == 0
        following.communicate(timeout=60)
    finally:
        following.kill()
    assert following.returncode == 0, "--follow ends when the container does"
    assert (
        invoke("logs").stderr.strip()
        == f"error: there is no container {name}; `invoke run --detach` starts it"
    )


def test_a_one_off_runs_while_the_server_serves(invoke, server, data_dir):
    name, port = invoke.image_name, invoke.env["HOST_PORT"]
    written = data_dir / f"one-off-{uuid.uuid4().hex[:8]}.txt"
    command = f"sh -c 'echo done > /app/data/{written.name}'"
    ran = invoke("run", "--cmd", command)
    assert ran.returncode == 0, ran.stderr[-3000:]
    said = line_starting(ran.stderr, "running ")
    assert re.fullmatch(
        rf"running `{re.escape(command)}` in {name}-run-[0-9a-f]{{6}} \({name}:latest; no port published; .*",
        said,
    )
    assert written.read_text() == "done\n"
    wait_until_healthy(f"http://127.0.0.1:{port}/health")  # the server ran on, untouched
    assert [line.split()[0] for line in containers_named(name)] == [name]
    assert docker("ps", "--all", "--quiet", "--filter", f"name=^/{name}-run-").stdout == "", (
        "the one-off is gone"
    )
    written.unlink()


def test_a_one_off_publishes_only_what_it_asks_for(invoke, server):
    name = invoke.image_name
    port = free_port()
    started = invoke("run", "--detach", "--cmd", "python -m app", "--publish", str(port))
    assert started.returncode == 0, started.stderr
    said, follow = started.stderr.strip().splitlines()[-2:]
    one_off = said.split()[0]
    try:
        assert re.fullmatch(rf"{name}-run-[0-9a-f]{{6}}", one_off)
        assert said == f"{one_off} runs in the background on http://127.0.0.1:{port}"
        assert (
            follow == f"`{DOCKER} logs --follow {one_off}` shows its output; "
            f"`{DOCKER} rm --force {one_off}` stops and removes it"
        )
        wait_until_healthy(f"http://127.0.0.1:{port}/health")
        assert docker("port", one_off).stdout.split() == ["8888/tcp", "->", f"127.0.0.1:{port}"]
        stop_it = shlex.split(follow.split("; ")[1].split("`")[1])
        assert subprocess.run(stop_it, capture_output=True, check=False).returncode == 0
        assert containers_named(one_off) == []
    finally:
        docker("rm", "--force", one_off, check=False)
    unpublished = invoke("run", "--detach", "--cmd", "sleep 60")
    quiet = unpublished.stderr.strip().splitlines()[-2].split()[0]
    try:
        assert docker("port", quiet).stdout == ""
    finally:
        docker("rm", "--force", quiet, check=False)
