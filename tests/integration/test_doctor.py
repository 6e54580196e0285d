"""`invoke doctor` against the real engine: a healthy machine, then each part broken in turn."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.baseimage import RECORD
from helpers.engine import DOCKER, docker
from helpers.project import PROJECT_DIR, project_copy
from helpers.registry import Repository


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
    assert list(lines) == [
        ".env",
        "CLI",
        "engine",
        "BuildKit",
        "NVIDIA",
        "architecture",
        "port",
        "DATA_DIR",
        "disk",
        "base image",
        "base digest",
    ]
    assert all(line.split()[0] in ("ok", "warn") for line in lines.values()), result.stdout
    # The template ships no record of the base's digests (they are the team's registry's).
    assert lines["base digest"].startswith(
        "ok    base digest   "
        if (PROJECT_DIR / RECORD).is_file()
        else f"warn  base digest   {RECORD} is not written yet: "
    ), result.stdout
    assert lines["engine"].startswith("ok    engine        running, version ")


@pytest.mark.parametrize(
    ("env", "dotenv", "subject", "says"),
    [
        (
            {"DOCKER": "/nonexistent/docker"},
            None,
            "CLI",
            "DOCKER='/nonexistent/docker': no such command; fix: install Docker",
        ),
        (
            {"DOCKER_HOST": "unix:///nonexistent.sock"},
            None,
            "engine",
            "the container engine is not running or not reachable (",
        ),
        (
            {"DOCKER": "without buildx"},
            None,
            "BuildKit",
            "(CLI 28.2.2) needs the buildx plugin to build with BuildKit, and has none",
        ),
        (
            {},
            "HOST_PORT=8888\nnot a setting\n",
            ".env",
            ".env line 2: cannot parse a line without KEY= (not shown",
        ),
        # An unclosed quote: the token is in the statement that does not parse, and never shown.
        (
            {},
            'PIP_INDEX_URL="https://ci:canary-token@pypi.example.com/simple\n',
            ".env",
            ".env line 1: cannot parse the line of PIP_INDEX_URL",
        ),
        # Both passed every check ("ok ... the container's user can write it"); docker then
        # refused `::1:8888:8888` ("too many colons"), and the app wrote into the host's root.
        (
            {"DATA_DIR": "root-link"},
            None,
            ".env",
            "DATA_DIR='root-link' (from environment): it is / (",
        ),
        ({}, "HOST_ADDRESS=::1\n", ".env", "HOST_ADDRESS='::1' (from .env): an IPv6 address; "),
        (
            {"BASE_IMAGE": "127.0.0.1:5000/no-such-image:1"},
            None,
            "base image",
            "BASE_IMAGE 127.0.0.1:5000/no-such-image:1 is neither on this engine nor in its registry (",
        ),
    ],
)
def test_each_broken_part_is_named_with_a_fix(invoke, tmp_path, env, dotenv, subject, says):
    if env.get("DOCKER") == "without buildx":
        env = {"DOCKER": cli_without_buildx(tmp_path)}
    project = project_copy(tmp_path, dotenv)
    (project / "root-link").symlink_to("/")
    result = invoke("doctor", cwd=project, env=env)
    assert result.returncode == 1, result.stdout
    line = report(result)[subject]
    assert line.startswith("FAIL"), result.stdout
    assert says in line
    assert "; fix: " in line
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 check failed")
    assert "canary" not in result.stdout + result.stderr


@pytest.fixture
def pushed_base(invoke, registry) -> Iterator[Repository]:
    """BASE_IMAGE (this host's platform) pushed as the tag `doctor` of a repository of the test's
    own, and not pulled here under that name; every manifest of the repository removed after."""
    base_image = invoke.env.get("BASE_IMAGE", "python:3.11-slim")
    repository = Repository(registry, registry, f"tft-it-{uuid.uuid4().hex[:8]}/python")
    unpulled = f"{registry}/{repository.path}:doctor"
    docker("tag", base_image, unpulled)
    try:
        docker("push", unpulled)
    finally:
        docker("image", "rm", unpulled)  # the name only: the image stays under BASE_IMAGE
    pushed = repository.manifest("doctor")[1]
    try:
        yield repository
    finally:
        for digest in {pushed, repository.manifest("doctor")[1]}:
            delete = urllib.request.Request(
                f"http://{registry}/v2/{repository.path}/manifests/{digest}", method="DELETE"
            )  # noqa: S310
            with contextlib.suppress(OSError):  # a registry without deletes keeps it
                urllib.request.urlopen(delete, timeout=30).close()  # noqa: S310 (a local registry)


def test_a_base_image_not_pulled_yet_is_a_warning_and_stays_unpulled(invoke, pushed_base):
    """The doctor reads the registry's manifest; a pull would re-point a tag that others on the engine use."""
    unpulled = f"{pushed_base.registry}/{pushed_base.path}:doctor"
    result = invoke("doctor", env={"BASE_IMAGE": unpulled})
    line = report(result)["base image"]
    assert line.startswith(f"warn  base image    {unpulled} for "), result.stdout
    assert line.endswith(": not pulled yet; `invoke build` pulls it")
    assert docker("image", "inspect", unpulled, check=False).returncode != 0, "the doctor pulled it"


def test_a_base_image_tag_that_moved_since_the_lock_is_a_warning(invoke, pushed_base, tmp_path):
    """`invoke lock` pins the tag of a registry reached over plain HTTP; the tag then moves (the same
    manifest, written anew: another digest) and the doctor says so, while the lock stays current."""
    base_image = f"{pushed_base.registry}/{pushed_base.path}:doctor"
    manifest, digest = pushed_base.manifest("doctor")
    config = pushed_base.config(manifest)
    platform = f"{config['os']}/{config['architecture']}"  # the one platform of the image pushed
    project = project_copy(tmp_path)
    env = {"BASE_IMAGE": base_image}
    # The locks are current: only the base image is resolved.
    locked = invoke("lock", "--platform", platform, cwd=project, env=env)
    assert locked.returncode == 0, locked.stderr
    assert locked.stderr.splitlines()[-1] == (
        f"docker/locks/base-image.txt: pinned {base_image}: {platform} {digest[:19]}"
    )
    assert f"{base_image} {platform} {digest}\n" in (project / RECORD).read_text()

    body = json.dumps(manifest, indent=1).encode()
    moved = urllib.request.Request(
        f"http://{pushed_base.registry}/v2/{pushed_base.path}/manifests/doctor",
        data=body,
        headers={"Content-Type": manifest["mediaType"]},
        method="PUT",
    )  # noqa: S310
    urllib.request.urlopen(moved, timeout=30).close()  # noqa: S310 (a local registry)
    now = pushed_base.manifest("doctor")[1]
    assert now != digest

    result = invoke("doctor", cwd=project, env=env)
    line = report(result)["base digest"]
    assert line == (
        f"warn  base digest   {base_image} has moved since `invoke lock` ({platform}"
        f" {digest[:19]} -> {now[:19]}); builds keep the pinned digest; fix: `invoke lock"
        " --upgrade` takes the new one (and every package's newest)"
    ), result.stdout
    assert invoke("lock", "--check", cwd=project, env=env).returncode == 0, (
        "a moved tag is no stale lock"
    )


@pytest.mark.needs("gpu")
def test_a_port_in_use_and_gpu_use_without_nvidia(invoke):
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", int(invoke.env["HOST_PORT"])))
        squatter.listen()
        result = invoke("doctor", "--gpu")
    lines = report(result)
    assert result.returncode == 1
    assert lines["port"].startswith(
        f"FAIL  port          HOST_PORT {invoke.env['HOST_PORT']} on 127.0.0.1 is already in use; fix:"
    )
    assert lines["NVIDIA"].startswith("FAIL  NVIDIA        no NVIDIA runtime")
