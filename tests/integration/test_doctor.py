"""`invoke doctor` against the real engine: a healthy machine, then each part broken in turn."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from helpers.engine import DOCKER
from helpers.project import project_copy


def report(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each check's line, by subject (the second column)."""
    assert "Traceback" not in result.stdout + result.stderr
    return {line[6:20].strip(): line for line in result.stdout.splitlines() if line.strip()}


def cli_without_buildx(tmp_path: Path) -> str:
    """The real CLI, but as a release from 23 on without the buildx plugin, which cannot build with BuildKit."""
    cli = tmp_path / "docker"
    cli.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        "  buildx*) echo \"docker: 'buildx' is not a docker command.\" >&2; exit 1 ;;\n"
        '  "version --format {{.Client.Version}}") echo 28.2.2 ;;\n'
        f'  *) exec {DOCKER} "$@" ;;\n'
        "esac\n"
    )
    cli.chmod(0o755)
    return str(cli)


def test_a_healthy_machine(invoke):
    result = invoke("doctor")
    lines = report(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(lines) == [".env", "CLI", "engine", "BuildKit", "NVIDIA", "architecture", "port", "DATA_DIR", "disk", "base image"]
    assert all(line.split()[0] in ("ok", "warn") for line in lines.values()), result.stdout
    assert lines["engine"].startswith("ok    engine        running, version ")


@pytest.mark.parametrize(
    ("env", "dotenv", "subject", "says"),
    [
        ({"DOCKER": "/nonexistent/docker"}, None, "CLI", "DOCKER='/nonexistent/docker': no such command; fix: install Docker"),
        ({"DOCKER_HOST": "unix:///nonexistent.sock"}, None, "engine", "the container engine is not running or not reachable ("),
        ({"DOCKER": "without buildx"}, None, "BuildKit", "(CLI 28.2.2) needs the buildx plugin to build with BuildKit, and has none"),
        ({}, "HOST_PORT=8888\nnot a setting\n", ".env", ".env line 2: cannot parse 'not a setting'"),
        (
            {"BASE_IMAGE": "127.0.0.1:5000/no-such-image:1"},
            None,
            "base image",
            "BASE_IMAGE 127.0.0.1:5000/no-such-image:1 cannot be pulled",
        ),
    ],
)
def test_each_broken_part_is_named_with_a_fix(invoke, tmp_path, env, dotenv, subject, says):
    if env.get("DOCKER") == "without buildx":
        env = {"DOCKER": cli_without_buildx(tmp_path)}
    project = project_copy(tmp_path, dotenv)
    result = invoke("doctor", cwd=project, env=env)
    assert result.returncode == 1, result.stdout
    line = report(result)[subject]
    assert line.startswith("FAIL"), result.stdout
    assert says in line
    assert "; fix: " in line
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 check failed")


def test_a_port_in_use_and_gpu_use_without_nvidia(invoke):
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", int(invoke.env["HOST_PORT"])))
        squatter.listen()
        result = invoke("doctor", "--gpu")
    lines = report(result)
    assert result.returncode == 1
    assert lines["port"].startswith(f"FAIL  port          HOST_PORT {invoke.env['HOST_PORT']} on 127.0.0.1 is already in use; fix:")
    assert lines["NVIDIA"].startswith("FAIL  NVIDIA        no NVIDIA runtime")
