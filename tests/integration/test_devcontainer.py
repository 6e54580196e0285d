"""The dev container (.devcontainer/devcontainer.json), for real, through the Dev Containers CLI.

The CLI is the npm package pinned in .devcontainer/package-lock.json. It builds the Dockerfile's `dev`
stage from a copy of the project that belongs to a non-root caller, as a developer's checkout does,
starts it with the caller's uid, and runs the in-container tests and the host tools inside. Where node
or npm is missing the tests skip with the reason, except in CI, where they fail.
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.host import IMAGE_USER
from devkit.locks import image_lock, pinned_tensorflow
from helpers.engine import DOCKER, docker, host_platform
from helpers.invoking import Caller
from helpers.project import PROJECT_DIR, project_copy

# The platform of the CPU image that `invoke build` makes here.
HOST_PLATFORM = host_platform()

# The in-container tests, as `invoke container-test` runs them in the image.
CONTAINER_TESTS = "tests/container"
# The CLI's own requirement (package.json "engines").
NODE_MAJOR = 20


def _node_problem() -> str | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node and npm are missing (the Dev Containers CLI is an npm package)"
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if int(version.lstrip("v").split(".")[0] or 0) < NODE_MAJOR:
        return f"node is {version}; the Dev Containers CLI needs {NODE_MAJOR} or newer"
    return None


@pytest.fixture(scope="module")
def node() -> None:
    """Skips (fails in CI) before anything is set up where node or npm is missing."""
    problem = _node_problem()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the dev container test cannot run in CI: {problem}")
        pytest.skip(f"no dev container test here: {problem}")


@pytest.fixture(scope="module")
def cli(node: None, non_root_caller: Caller) -> Path:
    """The pinned CLI, installed by `npm ci` (hash-checked against package-lock.json) where the caller may read it."""
    folder = non_root_caller.folder("devcontainer-cli")
    for name in ("package.json", "package-lock.json"):
        shutil.copy(PROJECT_DIR / ".devcontainer" / name, folder)
    npm = [
        shutil.which("npm"),
        "ci",
        "--prefix",
        str(folder),
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
    ]
    installed = subprocess.run(npm, capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, f"npm ci failed:\n{installed.stderr[-2000:]}"
    return folder / "node_modules" / "@devcontainers" / "cli" / "devcontainer.js"


@dataclass
class DevContainerCLI:
    """`devcontainer` run by the caller (through runuser where the suite runs as root) on one workspace."""

    script: Path
    workspace: Path
    user: list[str]  # the runuser prefix and the caller's own HOME and TMPDIR

    def __call__(
        self, command: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        # The options before the arguments: what follows them in `exec` is the command to run inside.
        argv = [
            *self.user,
            shutil.which("node"),
            str(self.script),
            command,
            "--workspace-folder",
            str(self.workspace),
        ]
        argv += ["--docker-path", shutil.which(DOCKER) or DOCKER, *args]
        if env is None:
            env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="module")
def devcontainer(cli: Path, non_root_caller: Caller) -> Iterator[DevContainerCLI]:
    """`devcontainer up` on a copy of the project that belongs to the caller; removes the container and images it made."""
    # The CLI names its images vsc-<folder>-<hash>: a folder name of this run's own finds them all.
    workspace = project_copy(
        non_root_caller.folder("devcontainer-workspace"), name=f"project-{os.getpid()}"
    )
    (workspace / "data").mkdir()
    user = ["env", f"TMPDIR={non_root_caller.folder('devcontainer-tmp')}"]
    if os.getuid() == 0:
        # The checkout and HOME are the caller's own, as a developer's are.
        account = pwd.getpwuid(non_root_caller.uid)
        subprocess.run(
            ["chown", "-R", f"{account.pw_uid}:{account.pw_gid}", str(workspace)], check=True
        )
        user = [
            "runuser",
            "-u",
            account.pw_name,
            "--",
            *user,
            f"HOME={non_root_caller.folder('home')}",
        ]
    run = DevContainerCLI(cli, workspace, user)
    try:
        up = run("up", timeout=1800)
        lines = up.stdout.strip().splitlines()
        outcome = json.loads(lines[-1]) if lines else {}
        assert outcome.get("outcome") == "success", (
            f"devcontainer up failed:\n{up.stdout[-2000:]}\n{up.stderr[-4000:]}"
        )
        yield run
    finally:
        containers = docker(
            "ps", "--all", "--quiet", "--filter", f"label=devcontainer.local_folder={workspace}"
        ).stdout.split()
        if containers:
            docker("rm", "--force", *containers)
        listing = docker(
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            f"reference=vsc-{workspace.name}-*",
        )
        # Reversed, the image with the caller's uid (-uid) goes before the dev stage's image it was made from.
        images = sorted(listing.stdout.split(), reverse=True)
        if images:
            docker("image", "rm", *images)


def test_the_in_container_tests_pass_in_the_dev_container_as_the_caller(
    devcontainer, non_root_caller
):
    expected = pinned_tensorflow(
        (PROJECT_DIR / image_lock(gpu=False, platform=HOST_PLATFORM).output).read_text()
    )
    result = devcontainer(
        "exec",
        "--remote-env",
        f"EXPECTED_TENSORFLOW_VERSION={expected}",
        "--remote-env",
        f"EXPECTED_PLATFORM={HOST_PLATFORM}",
        "python",
        "-m",
        "pytest",
        CONTAINER_TESTS,
        "-q",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # The report names the uid the tests ran as: on Linux the caller's, which the image's user was given
    # (Docker Desktop maps ownership itself, and the clients leave the user as it is there).
    uid = non_root_caller.uid if platform.system() == "Linux" else IMAGE_USER[0]
    assert f", uid {uid}\n" in result.stdout


def test_the_host_tools_run_in_the_dev_container(devcontainer):
    tasks = devcontainer("exec", "invoke", "--list")
    assert tasks.returncode == 0, tasks.stderr[-2000:]
    assert "build" in tasks.stdout.split()
    sessions = devcontainer("exec", "nox", "--list")
    assert sessions.returncode == 0, sessions.stderr[-2000:]
    assert "container_test" in sessions.stdout


def test_what_the_dev_container_writes_into_the_project_belongs_to_the_caller(
    devcontainer, non_root_caller
):
    result = devcontainer(
        "exec",
        "python",
        "-c",
        "import pathlib; pathlib.Path('data/written-in-the-dev-container').write_text('x')",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        devcontainer.workspace / "data" / "written-in-the-dev-container"
    ).stat().st_uid == non_root_caller.uid


def test_the_dev_image_builds_without_build_ca_bundle(devcontainer):
    """Unset, the secret's default must leave the build valid (a plain `src=` would fail before any step)."""
    image = f"tft-it-devcontainer-without-ca-{os.getpid()}:latest"
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "BUILD_CA_BUNDLE" and not key.startswith("PYTEST_")
    }
    try:
        result = devcontainer("build", "--image-name", image, env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    finally:
        docker("image", "rm", image, check=False)
