"""Engine tests: the real invoke tasks against the real container engine.

The images are built under a test-only name (`<project>-it`), so a run of the suite never replaces
the images a user built; BuildKit's cache makes a rebuild of unchanged sources take seconds.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dotenv as dotenv_package
import invoke as invoke_package
import pytest

from devkit.engine import Engine
from devkit.platforms import ARM64
from devkit.settings import default_image_name

PROJECT_DIR = Path(__file__).resolve().parents[2]
DOCKER = os.environ.get("DOCKER", "docker")
# The platform the CPU image is built for here by default, as the tasks decide it.
HOST_PLATFORM = Engine(DOCKER).native_platform()


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

    def popen(self, *args: str, cwd: Path = PROJECT_DIR, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen[str]:
        options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", *args],
            cwd=cwd,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            text=True,
            **options,
        )

    @property
    def image_name(self) -> str:
        return self.env["IMAGE_NAME"]


def project_copy(tmp_path: Path, dotenv: str | None = None, name: str = "project") -> Path:
    """A copy of the project, without .git, caches, data/ or .env: tests edit it, never the real one."""
    copy = tmp_path / name
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
    # As a user's own DATA_DIR holds it: the server trains its first model on it.
    shutil.copy(PROJECT_DIR / "data" / "iris.csv", folder)
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
def arm64_image(invoke) -> str:
    """The linux/arm64 CPU image: built under emulation on an x86-64 host (minutes), natively on an ARM one."""
    ensure_built(invoke, "--platform", ARM64)
    return f"{invoke.image_name}:latest" if HOST_PLATFORM == ARM64 else f"{invoke.image_name}:latest-arm64"


@pytest.fixture(scope="session")
def amd64_image(invoke) -> str:
    """The linux/amd64 CPU image: the native one on an x86-64 host, built under emulation on an ARM one."""
    ensure_built(invoke, "--platform", "linux/amd64")
    return f"{invoke.image_name}:latest-amd64" if HOST_PLATFORM == ARM64 else f"{invoke.image_name}:latest"


@pytest.fixture(scope="session")
def gpu_image(invoke) -> str:
    ensure_built(invoke, "--gpu")
    return f"{invoke.image_name}:latest-gpu"


def _registry_answers(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=5):  # noqa: S310 (a local registry)
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def registry() -> Iterator[str]:
    """A registry to push to, on this machine: the one on 127.0.0.1:5000 where it answers (CI's, from
    `../shared/ci/registry-up`), else a `registry:2` container that the suite starts and removes."""
    if _registry_answers("127.0.0.1:5000"):
        yield "127.0.0.1:5000"
        return
    name, address = "tft-it-registry", f"127.0.0.1:{free_port()}"
    started = docker(
        "run", "--detach", "--rm", "--name", name, "--publish", f"{address}:5000",
        "--env", "REGISTRY_STORAGE_DELETE_ENABLED=true", "registry:2", check=False,
    )  # fmt: skip
    if started.returncode != 0:
        pytest.fail(f"no registry on 127.0.0.1:5000, and none could be started: {started.stderr.strip()}")
    try:
        deadline = time.monotonic() + 60
        while not _registry_answers(address):
            if time.monotonic() > deadline:
                pytest.fail(f"the registry container {name} did not answer on {address}")
            time.sleep(0.5)
        yield address
    finally:
        docker("rm", "--force", name, check=False)


def platform_of(image: str) -> str:
    """`linux/amd64`, ... of a local image: what a `docker run --platform` of it must say."""
    return docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image).stdout.strip()


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


# --- a non-root caller: what the container writes into DATA_DIR must belong to them -------------


@dataclass
class Caller:
    """How to run invoke as a non-root user: the command, where, with what environment, and the uid."""

    command: list[str]
    cwd: Path
    env: dict[str, str]
    uid: int
    data: Path

    def folder(self, name: str) -> Path:
        """Another folder of the caller's, beside their DATA_DIR (where they may enter it)."""
        folder = self.data.parent / name
        folder.mkdir()
        os.chown(folder, self.uid, -1)
        return folder


def _uid_taken(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _runs_as(user: str, python: str) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", python, "-c", "pass"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def non_root_caller(tmp_path_factory) -> Iterator[Caller]:
    """A non-root caller of invoke and a DATA_DIR of theirs.

    Run as root (as in CI), the suite makes a user `tft-it` in the `docker` group, so it may use the
    engine, and gives it a world-readable folder with what `invoke run` needs (tasks.py, devkit, and
    the pure-Python invoke and python-dotenv): the checkout and this test's interpreter may sit in
    folders other users cannot enter.
    """
    if os.getuid() != 0:
        data = tmp_path_factory.mktemp("caller") / "owned data"
        data.mkdir()
        yield Caller([sys.executable, "-m", "invoke"], PROJECT_DIR, {}, os.getuid(), data)
        return
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.fail("running as root, with no useradd or runuser to make a non-root caller")
    name = "tft-it"
    try:
        pwd.getpwnam(name)
    except KeyError:
        has_docker_group = subprocess.run(["getent", "group", "docker"], capture_output=True, check=False).returncode == 0
        uid = next(uid for uid in range(2000, 60000) if not _uid_taken(uid))
        groups = ["--groups", "docker"] if has_docker_group else []
        subprocess.run(["useradd", "--no-create-home", "--uid", str(uid), "--user-group", *groups, name], check=True)
    user = pwd.getpwnam(name)
    python = next((py for py in (sys.executable, "/usr/bin/python3") if _runs_as(name, py)), None)
    if python is None:
        pytest.fail(f"no Python interpreter that user {name} may run")

    shared = Path(tempfile.mkdtemp(prefix="tft-it-"))
    try:
        shared.chmod(0o755)
        project = shared / "project"
        project.mkdir()
        shutil.copy(PROJECT_DIR / "tasks.py", project)
        site = Path(invoke_package.__file__).parents[1]
        # The packages, and invoke's metadata, which `python -m invoke` reads for its version.
        copies = [
            PROJECT_DIR / "devkit",
            Path(invoke_package.__file__).parent,
            Path(dotenv_package.__file__).parent,
            *site.glob("invoke-*.dist-info"),
        ]
        for folder in copies:
            shutil.copytree(folder, project / folder.name, ignore=shutil.ignore_patterns("__pycache__"))
        data = shared / "owned data"
        data.mkdir()
        os.chown(data, user.pw_uid, user.pw_gid)
        yield Caller(
            ["runuser", "-u", name, "--", python, "-m", "invoke"], project, {"PYTHONPATH": str(project), "HOME": "/tmp"}, user.pw_uid, data
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def run_as(invoke, caller: Caller, *args: str, data: Path | None = None) -> subprocess.CompletedProcess[str]:
    """invoke, run by `caller` with the suite's settings and the caller's own DATA_DIR (or `data`)."""
    env = {**invoke.env, **caller.env, "DATA_DIR": str(data or caller.data)}
    return subprocess.run([*caller.command, *args], cwd=caller.cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
