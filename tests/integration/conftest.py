"""Engine tests: the real invoke tasks against the real container engine.

The images are built under a test-only name (`<project>-it`), so a run of the suite never replaces
the images a user built; BuildKit's cache makes a rebuild of unchanged sources take seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.config import default_image_name

PROJECT_DIR = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("DOCKER", "docker")


def _engine_problem() -> str | None:
    if shutil.which(DOCKER) is None:
        return f"no container CLI {DOCKER!r} on this machine"
    result = subprocess.run([DOCKER, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, check=False)
    return None if result.returncode == 0 else f"no engine answers {DOCKER}: {result.stderr.strip()}"


def pytest_collection_modifyitems(config, items):
    problem = _engine_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        # CI always has an engine: a missing one is a broken set-up, never a pass.
        pytest.exit(f"engine tests cannot run in CI: {problem}", returncode=1)
    for item in items:
        item.add_marker(pytest.mark.skip(reason=f"engine tests need a container engine: {problem}"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, check=check)


@dataclass
class Invoke:
    """Runs `invoke` in the project folder as a user would, with settings in the environment."""

    env: dict[str, str]

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, cwd: Path = PROJECT_DIR, timeout: float = 1800, **kwargs
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def popen(self, *args: str, **kwargs) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", *args],
            cwd=PROJECT_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    @property
    def image_name(self) -> str:
        return self.env["IMAGE_NAME"]


def project_copy(tmp_path: Path, dotenv: str | None = None) -> Path:
    """A copy of the project, without .git, caches, data/ or .env: tests edit it, never the real one."""
    copy = tmp_path / "project"
    ignore = shutil.ignore_patterns(".git", ".nox", "data", ".env", "__pycache__", ".pytest_cache", ".ruff_cache")
    shutil.copytree(PROJECT_DIR, copy, ignore=ignore)
    if dotenv is not None:
        (copy / ".env").write_text(dotenv)
    return copy


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    # A space in the path, as on many laptops ("My Drive", "Data Science").
    folder = tmp_path_factory.mktemp("host") / "data dir with spaces"
    folder.mkdir()
    folder.chmod(0o777)  # the container's user may be another uid than this test's
    return folder


@pytest.fixture(scope="session")
def invoke(data_dir) -> Invoke:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(
        IMAGE_NAME=f"{default_image_name(PROJECT_DIR)}-it",
        IMAGE_TAG="latest",
        HOST_PORT=str(free_port()),
        DATA_DIR=str(data_dir),
    )
    # Not from a developer's own .env: that file is read too, but the environment wins.
    env.pop("PLATFORM", None)
    return Invoke(env)


def ensure_built(invoke: Invoke, *args: str) -> None:
    result = invoke("build", *args)
    assert result.returncode == 0, f"invoke build {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="session")
def cpu_image(invoke) -> str:
    ensure_built(invoke)
    return f"{invoke.image_name}:latest"


@pytest.fixture(scope="session")
def gpu_image(invoke) -> str:
    ensure_built(invoke, "--gpu")
    return f"{invoke.image_name}:latest-gpu"


def containers_named(name: str) -> list[str]:
    return docker("ps", "--all", "--filter", f"name=^/{name}$", "--format", "{{.Names}} {{.Status}}").stdout.splitlines()


def wait_for_json(url: str, timeout: float = 120) -> dict:
    """GET `url` until it answers 200, then its JSON body."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a local test URL)
                return json.load(response)
        except OSError as error:
            last_error = error
            time.sleep(1)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s: {last_error}")
