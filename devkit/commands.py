"""The docker command lines of the tasks, as argument lists: pure functions, checked without an engine."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import subprocess
from pathlib import Path

from devkit.config import Settings
from devkit.targets import Target

# Where DATA_DIR appears inside the container.
CONTAINER_DATA_DIR = "/app/data"

# Docker's predefined build arguments for proxies: passed by name, so the value comes from the
# environment, and kept out of the image history unless a Dockerfile declares them.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy")

# The lock each image installs, as the Dockerfiles pick it by variant and TARGETARCH.
_LOCKS = {
    (False, "linux/amd64"): "requirements.txt",
    (False, "linux/arm64"): "requirements-arm64.txt",
    (True, "linux/amd64"): "requirements-gpu.txt",
}


def command_line(argv: list[str]) -> str:
    """One string for the shell that invoke runs commands in (cmd.exe on Windows, sh elsewhere)."""
    return subprocess.list2cmdline(argv) if os.name == "nt" else shlex.join(argv)


def lock_file(target: Target) -> str:
    """The lock file that the image of `target` installs."""
    return _LOCKS[(target.gpu, target.platform)]


def pinned_tensorflow(lock_text: str) -> str:
    """The TensorFlow version a lock pins (`tensorflow`, `tensorflow-cpu` or with extras), or `unknown`."""
    match = re.search(r"^tensorflow(?:-cpu)?(?:\[[^\]]*\])?==([^\s;\\]+)", lock_text, re.MULTILINE)
    return match.group(1) if match else "unknown"


def build_command(
    settings: Settings,
    target: Target,
    *,
    buildx: bool,
    no_cache: bool = False,
    labels: dict[str, str] | None = None,
    proxies: tuple[str, ...] = (),
) -> list[str]:
    """`docker buildx build --load` where the buildx plugin exists, else the classic `docker build`
    (which builds with BuildKit when DOCKER_BUILDKIT=1 is in its environment)."""
    argv = [settings.docker, "buildx", "build", "--load"] if buildx else [settings.docker, "build"]
    argv += ["--platform", target.platform]
    argv += ["--file", str(settings.project_dir / target.dockerfile)]
    argv += ["--tag", target.image]
    argv += ["--build-arg", f"BASE_IMAGE={settings.base_image}"]
    argv += ["--build-arg", f"CONTAINER_PORT={settings.container_port}"]
    for name, value in (labels or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    for name in proxies:
        argv += ["--build-arg", name]
    if settings.build_ca_bundle is not None:
        # A BuildKit secret: mounted for the pip install only, never in a layer or the history.
        argv += ["--secret", f"id=ca_bundle,src={settings.build_ca_bundle}"]
    if no_cache:
        argv.append("--no-cache")
    argv.append(str(settings.project_dir))
    return argv


def run_as_user(system: str, uid: int, gid: int) -> str | None:
    """The `--user` for a container on this host, or None for the image's own non-root user.

    On Linux, bind-mounted files keep their numeric owner, so the container runs as the caller and
    what it writes to DATA_DIR belongs to the caller. Docker Desktop (macOS, Windows) maps ownership
    itself. A root caller gets the image's non-root user rather than a root container.
    """
    if system != "Linux" or uid == 0:
        return None
    return f"{uid}:{gid}"


def _mount_spec(source: Path, target: str) -> str:
    # --mount takes CSV: a path with a comma or a quote is quoted; spaces need nothing.
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(["type=bind", f"source={source}", f"target={target}"])
    return buffer.getvalue()


def _container_options(settings: Settings, target: Target, user: str | None) -> list[str]:
    """What every container of the project gets: platform, data mount, port, user, app keys, GPUs."""
    argv = ["--rm", "--init", "--platform", target.platform]
    argv += ["--mount", _mount_spec(settings.data_dir, CONTAINER_DATA_DIR)]
    argv += ["--env", f"PORT={settings.container_port}"]
    if user is not None:
        # A uid without an entry in the image's /etc/passwd has no home; give it a writable one.
        argv += ["--user", user, "--env", "HOME=/tmp"]
    # By name only: docker reads each value from its own environment, so none shows in the
    # command line, the process list or `invoke --dry`.
    for key in settings.app_env:
        argv += ["--env", key]
    if target.gpu:
        argv += ["--gpus", "all"]
    return argv


def run_command(
    settings: Settings,
    target: Target,
    *,
    user: str | None,
    detach: bool = False,
    tty: bool = False,
    command: list[str] | None = None,
) -> list[str]:
    """`docker run` of the image: named, published on HOST_ADDRESS:HOST_PORT, removed when it stops."""
    argv = [settings.docker, "run", "--name", target.container]
    if detach:
        argv.append("--detach")
    elif tty:
        argv += ["--interactive", "--tty"]
    argv += _container_options(settings, target, user)
    argv += ["--publish", f"{settings.host_address}:{settings.host_port}:{settings.container_port}"]
    argv.append(target.image)
    return argv + (command or [])


def shell_command(settings: Settings, target: Target, *, user: str | None, tty: bool) -> list[str]:
    """An interactive shell in the image, with the mounts and environment of `invoke run`."""
    argv = [settings.docker, "run", "--interactive"]
    if tty:
        argv.append("--tty")
    argv += _container_options(settings, target, user)
    return [*argv, target.image, "bash"]


def stop_command(settings: Settings, target: Target) -> list[str]:
    """Stop and remove the container of `target` (`--rm` alone would leave a stopped one on a crash)."""
    return [settings.docker, "rm", "--force", target.container]
