"""DOCKER=podman against a real Podman: `invoke doctor`, and `invoke build` keeping the HEALTHCHECK.

Starting containers is tested where Podman can start them; where it cannot (a sandbox that refuses
the rlimits its runtimes set), those tests are skipped with Podman's own reason. Every Podman
command line is unit-tested in tests/unit/test_podman.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from devkit.engine import first_line
from helpers.engine import free_port, host_platform
from helpers.http_client import status_of
from helpers.invoking import Invoke
from helpers.registry import served_digests

# The platform of the CPU image that `invoke build` makes here.
HOST_PLATFORM = host_platform()

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="no podman on this machine")


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, check=check, timeout=600
    )


@pytest.fixture(scope="module")
def with_podman(invoke) -> Invoke:
    return Invoke({**invoke.env, "DOCKER": "podman"})


@pytest.fixture(scope="module")
def podman_image(with_podman) -> str:
    """The CPU image, built by `invoke build` with Podman (in Podman's own storage); removed after the module."""
    result = with_podman("build")
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    image = f"localhost/{with_podman.image_name}:latest"
    yield image
    podman("image", "rm", image, check=False)


def test_doctor_passes_with_podman(with_podman):
    result = with_podman("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert lines["engine"].startswith("ok")
    assert "Buildah" in lines["BuildKit"]
    assert lines["init"].startswith("ok"), "catatonit, for --init"
    assert "nvidia-ctk cdi generate" in lines["NVIDIA"] or lines["NVIDIA"].startswith("ok")


def test_build_with_podman_keeps_the_healthcheck(podman_image, with_podman):
    (config,) = json.loads(podman("image", "inspect", podman_image).stdout)
    assert config["Os"] + "/" + config["Architecture"] == HOST_PLATFORM
    assert config["ManifestType"] == "application/vnd.docker.distribution.manifest.v2+json", (
        "--format docker"
    )
    healthcheck = config.get("Healthcheck")
    assert healthcheck, f"no HEALTHCHECK in {podman_image}: built in the OCI format?"
    assert healthcheck["Test"] == ["CMD", "python", "-I", "/opt/healthcheck.py"]
    assert config["Config"]["User"] == "1000:1000"
    assert config["Labels"]["org.tensorflow.version"]
    # The base, by the digest its registry (plain HTTP, by registries.conf) serves for the platform.
    _, served = served_digests(with_podman.env.get("BASE_IMAGE", "python:3.11-slim"))
    assert config["Labels"]["org.opencontainers.image.base.digest"] == served[HOST_PLATFORM]


@pytest.fixture(scope="module")
def podman_runs(podman_image) -> None:
    """Skips what needs a running container where this Podman cannot start one, with its reason."""
    probe = podman(
        "run", "--rm", "--init", "--platform", HOST_PLATFORM, podman_image, "true", check=False
    )
    if probe.returncode != 0:
        # Podman logs noise (healthcheck timers without systemd) before the error that says why.
        errors = [line for line in probe.stderr.splitlines() if line.startswith("Error:")]
        pytest.skip(
            f"this Podman cannot start containers here: {errors[-1] if errors else first_line(probe.stderr)}"
        )


def test_the_container_test_passes_under_podman(with_podman, podman_image, podman_runs):
    result = with_podman("container-test")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_tensorboard_serves_under_podman(with_podman, podman_image, podman_runs, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    port = free_port()
    started = with_podman(
        "tensorboard", "--detach", env={"DATA_DIR": str(data), "TENSORBOARD_PORT": str(port)}
    )
    try:
        assert started.returncode == 0, started.stderr
        assert status_of(f"http://127.0.0.1:{port}/") == 200
    finally:
        with_podman("stop", "--tensorboard")
