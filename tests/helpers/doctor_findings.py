"""`invoke doctor`'s findings against a stand-in CLI, for the tests of its checks."""

import os
from pathlib import Path

import pytest

from devkit import doctor
from devkit.doctor import Finding, Machine
from helpers.base_image import AMD64_DIGEST, docker_index
from helpers.engine import free_port

HEALTHY_ENGINE = "\n".join(
    [
        '"version --format {{.Client.Version}}") echo 20.10.24 ;;',
        '"version --format {{.Server.Version}}") echo 20.10.24 ;;',
        '"version --format {{.Server.Os}}/{{.Server.Arch}}") echo linux/amd64 ;;',
        '"buildx version") exit 1 ;;',
        '"info --format {{json .Runtimes}}") echo \'{"runc":{}}\' ;;',
        '"info --format {{.DockerRootDir}}") echo "$DOCKER_ROOT" ;;',  # set by findings() below
        '"image inspect --format {{.Os}}/{{.Architecture}} python:3.11-slim") echo linux/amd64 ;;',
        # The base image as a build pulls it, by the digest of a record (helpers.base_image).
        '"image inspect --format {{.Os}}/{{.Architecture}} '
        f'python:3.11-slim@{AMD64_DIGEST}") echo linux/amd64 ;;',
        f"\"manifest inspect --verbose python:3.11-slim\") echo '{docker_index('python:3.11-slim')}' ;;",
        '"container inspect --format {{.State.Status}} project") exit 1 ;;',
    ]
)


def machine(project: Path, **environ: str) -> Machine:
    return Machine(
        project_dir=project,
        environ=environ,
        host="linux/amd64",
        container_ids=lambda settings: (os.getuid(), os.getgid()),
    )


def findings(
    project: Path, cli: str, gpu: bool = False, docker_root: str | None = None, **environ: str
) -> dict[str, Finding]:
    """Every finding by subject; the stand-in CLI says the engine keeps its data in `docker_root` (default: the project)."""
    environ = {"DOCKER": cli, "HOST_PORT": str(free_port()), **environ}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_ROOT", docker_root or str(project))
        return {
            finding.subject: finding
            for finding in doctor.examine(machine(project, **environ), gpu=gpu)
        }
