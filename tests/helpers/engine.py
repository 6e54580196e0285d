"""The container engine as the engine tests query it: the CLI, free ports, images and containers.

Nothing here runs at import: the unit tests load the engine fixtures' plugin too and need no engine.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess

from devkit.engine import Engine

DOCKER = os.environ.get("DOCKER", "docker")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, check=check)


def engine_problem() -> str | None:
    """Why no engine test can run here, or None when an engine answers."""
    if shutil.which(DOCKER) is None:
        return f"no container CLI {DOCKER!r} on this machine"
    result = docker("version", "--format", "{{.Server.Version}}", check=False)
    return (
        None if result.returncode == 0 else f"no engine answers {DOCKER}: {result.stderr.strip()}"
    )


@functools.cache
def host_platform() -> str:
    """The platform the CPU image is built for here by default, as the tasks decide it."""
    return Engine(DOCKER).native_platform()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def platform_of(image: str) -> str:
    """`linux/amd64`, ... of a local image: what a `docker run --platform` of it must say."""
    return docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image).stdout.strip()


def image_config(image: str) -> dict:
    return json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)


def containers_named(name: str) -> list[str]:
    return docker(
        "ps", "--all", "--filter", f"name=^/{name}$", "--format", "{{.Names}} {{.Status}}"
    ).stdout.splitlines()


def health_status(container: str) -> str:
    """The engine's verdict of the image's HEALTHCHECK: starting, healthy or unhealthy."""
    return docker("inspect", "--format", "{{.State.Health.Status}}", container).stdout.strip()


def remove_everything_named(prefix: str) -> None:
    """Remove every container, image tag, volume and network named `prefix`, `prefix:TAG` or `prefix-...`."""

    def named(listing: str) -> list[str]:
        ours = [
            name
            for name in listing.split()
            if name == prefix or name.startswith((f"{prefix}-", f"{prefix}:"))
        ]
        return [name for name in ours if not name.endswith(":<none>")]

    containers = named(
        docker("ps", "--all", "--filter", f"name={prefix}", "--format", "{{.Names}}").stdout
    )
    images = named(
        docker(
            "image",
            "ls",
            "--filter",
            f"reference={prefix}*",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ).stdout
    )
    volumes = named(
        docker("volume", "ls", "--filter", f"name={prefix}", "--format", "{{.Name}}").stdout
    )
    networks = named(
        docker("network", "ls", "--filter", f"name={prefix}", "--format", "{{.Name}}").stdout
    )
    if containers:
        docker("rm", "--force", *containers, check=False)
    if images:
        docker("image", "rm", "--force", *images, check=False)
    if volumes:
        docker("volume", "rm", *volumes, check=False)
    if networks:
        docker("network", "rm", *networks, check=False)
