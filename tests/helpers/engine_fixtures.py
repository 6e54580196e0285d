"""The fixtures of the engine tests (tests/integration, tests/example/integration): a pytest plugin that
pyproject's addopts loads (`-p helpers.engine_fixtures`), so both folders share one instance of each.

The images are built under a test-only name (`<project>-it`), so a run of the suite never replaces the
images a user built; BuildKit's cache makes a rebuild of unchanged sources take seconds. The suite leaves
the machine as it found it: at the end of the session, every container, image, volume and network named
`<project>-it...` is removed, and so is the user `tft-it` when the suite made it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dotenv as dotenv_package
import invoke as invoke_package
import packaging as packaging_package
import pytest

from devkit.platforms import ARM64
from devkit.settings import default_image_name
from helpers.engine import docker, engine_problem, free_port, host_platform, remove_everything_named
from helpers.invoking import Caller, Invoke
from helpers.project import PROJECT_DIR, copy_shipped_data


@pytest.fixture(scope="session")
def engine() -> None:
    """An engine answers; where none does, the test is skipped with the reason, and in CI the run fails.

    Each engine-test folder's conftest.py asks for it in an autouse fixture, before any other."""
    problem = engine_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        # CI always has an engine: a missing one is a broken set-up, never a pass.
        pytest.exit(f"engine tests cannot run in CI: {problem}", returncode=1)
    pytest.skip(f"engine tests need a container engine: {problem}")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    # A space in the path, as on many laptops ("My Drive", "Data Science").
    folder = tmp_path_factory.mktemp("host") / "data dir with spaces"
    folder.mkdir()
    folder.chmod(0o777)  # the container's user may be another uid than this test's
    # As a fresh clone's DATA_DIR holds it: the app may need its seed data to become ready.
    copy_shipped_data(folder)
    return folder


@pytest.fixture(scope="session")
def invoke(data_dir) -> Iterator[Invoke]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.update(
        IMAGE_NAME=f"{default_image_name(PROJECT_DIR)}-it",
        IMAGE_TAG="latest",
        HOST_PORT=str(free_port()),
        DATA_DIR=str(data_dir),
    )
    # Not from a developer's own .env: that file is read too, but the environment wins.
    env.pop("PLATFORM", None)
    yield Invoke(env)
    # Torn down after every fixture that uses it: the suite's images go only at the very end.
    remove_everything_named(env["IMAGE_NAME"])


def ensure_built(invoke: Invoke, *args: str) -> None:
    result = invoke("build", *args)
    assert result.returncode == 0, (
        f"invoke build {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )


@pytest.fixture(scope="session")
def cpu_image(invoke) -> str:
    ensure_built(invoke)
    return f"{invoke.image_name}:latest"


@pytest.fixture(scope="session")
def arm64_image(invoke) -> str:
    """The linux/arm64 CPU image: built under emulation on an x86-64 host (minutes), natively on an ARM one."""
    ensure_built(invoke, "--platform", ARM64)
    return (
        f"{invoke.image_name}:latest"
        if host_platform() == ARM64
        else f"{invoke.image_name}:latest-arm64"
    )


@pytest.fixture(scope="session")
def amd64_image(invoke) -> str:
    """The linux/amd64 CPU image: the native one on an x86-64 host, built under emulation on an ARM one."""
    ensure_built(invoke, "--platform", "linux/amd64")
    return (
        f"{invoke.image_name}:latest-amd64"
        if host_platform() == ARM64
        else f"{invoke.image_name}:latest"
    )


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
        pytest.fail(
            f"no registry on 127.0.0.1:5000, and none could be started: {started.stderr.strip()}"
        )
    try:
        deadline = time.monotonic() + 60
        while not _registry_answers(address):
            if time.monotonic() > deadline:
                pytest.fail(f"the registry container {name} did not answer on {address}")
            time.sleep(0.5)
        yield address
    finally:
        docker("rm", "--force", name, check=False)


# --- a non-root caller: what the container writes into DATA_DIR must belong to them -------------

CALLER_NAME = "tft-it"


def _uid_taken(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    return (
        subprocess.run(["getent", "group", name], capture_output=True, check=False).returncode == 0
    )


def _runs_as(user: str, python: str) -> bool:
    return (
        subprocess.run(
            ["runuser", "-u", user, "--", python, "-c", "pass"], capture_output=True, check=False
        ).returncode
        == 0
    )


@pytest.fixture(scope="session")
def system_user() -> Iterator[pwd.struct_passwd]:
    """The user `tft-it` in the `docker` group, so it may use the engine; made for the session (as root) and
    removed with its group at the end, unless it was there before."""
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.fail("running as root, with no useradd or runuser to make a non-root caller")
    made = not _user_exists(CALLER_NAME)
    if made:
        uid = next(uid for uid in range(2000, 60000) if not _uid_taken(uid))
        groups = ["--groups", "docker"] if _group_exists("docker") else []
        subprocess.run(
            [
                "useradd",
                "--no-create-home",
                "--uid",
                str(uid),
                "--user-group",
                *groups,
                CALLER_NAME,
            ],
            check=True,
        )
    try:
        yield pwd.getpwnam(CALLER_NAME)
    finally:
        if made:
            subprocess.run(["userdel", CALLER_NAME], capture_output=True, check=False)
            if _group_exists(CALLER_NAME):  # where userdel keeps a user's own group
                subprocess.run(["groupdel", CALLER_NAME], capture_output=True, check=False)


@pytest.fixture(scope="session")
def non_root_caller(request, tmp_path_factory) -> Iterator[Caller]:
    """A non-root caller of invoke and a DATA_DIR of theirs.

    Run as root (as in CI), the caller is the user `tft-it`, and gets a world-readable folder with what
    `invoke run` needs (tasks.py, devkit, and the pure-Python invoke, python-dotenv and packaging): the checkout and
    this test's interpreter may sit in folders other users cannot enter.
    """
    if os.getuid() != 0:
        data = tmp_path_factory.mktemp("caller") / "owned data"
        data.mkdir()
        yield Caller([sys.executable, "-m", "invoke"], PROJECT_DIR, {}, os.getuid(), data)
        return
    user = request.getfixturevalue("system_user")
    python = next(
        (py for py in (sys.executable, "/usr/bin/python3") if _runs_as(user.pw_name, py)), None
    )
    if python is None:
        pytest.fail(f"no Python interpreter that user {user.pw_name} may run")

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
            Path(packaging_package.__file__).parent,
            *site.glob("invoke-*.dist-info"),
        ]
        for folder in copies:
            shutil.copytree(
                folder, project / folder.name, ignore=shutil.ignore_patterns("__pycache__")
            )
        data = shared / "owned data"
        data.mkdir()
        os.chown(data, user.pw_uid, user.pw_gid)
        command = ["runuser", "-u", user.pw_name, "--", python, "-m", "invoke"]
        yield Caller(
            command, project, {"PYTHONPATH": str(project), "HOME": "/tmp"}, user.pw_uid, data
        )
    finally:
        shutil.rmtree(shared, ignore_errors=True)
