"""The docker command lines of the tasks, as argument lists: pure functions, checked without an engine."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from devkit.config import Settings
from devkit.errors import UserError
from devkit.locks import PIP_COMPILE_OPTIONS, Lock, pinned_versions
from devkit.platforms import arch
from devkit.targets import Target

# Where DATA_DIR appears inside the container.
CONTAINER_DATA_DIR = "/app/data"

# Docker's predefined build arguments for proxies: passed by name, so the value comes from the
# environment, and kept out of the image history unless a Dockerfile declares them.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy", "all_proxy")


def command_line(argv: list[str]) -> str:
    """One string for the shell that invoke runs commands in (cmd.exe on Windows, sh elsewhere)."""
    return subprocess.list2cmdline(argv) if os.name == "nt" else shlex.join(argv)


def pinned_tensorflow(lock_text: str) -> str:
    """The TensorFlow version a lock pins (`tensorflow`, `tensorflow-cpu` or with extras), or `unknown`."""
    pins = pinned_versions(lock_text)
    return pins.get("tensorflow-cpu") or pins.get("tensorflow") or "unknown"


def parse_build_args(values: Iterable[str]) -> dict[str, str]:
    """The `NAME=VALUE` pairs of `invoke build --build-arg`, checked (a value may be empty)."""
    pairs = {}
    for value in values:
        name, equals, content = value.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UserError(f"--build-arg {value!r}: expected NAME=VALUE, e.g. KEEP_TF_HEADERS=1")
        pairs[name] = content
    return pairs


def build_command(
    settings: Settings,
    target: Target,
    *,
    buildx: bool,
    no_cache: bool = False,
    labels: dict[str, str] | None = None,
    proxies: tuple[str, ...] = (),
    build_args: dict[str, str] | None = None,
    pip_config_file: Path | None = None,
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
    for name, value in (build_args or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    if settings.build_ca_bundle is not None:
        # A BuildKit secret: mounted for the pip install only, never in a layer or the history.
        argv += ["--secret", f"id=ca_bundle,src={settings.build_ca_bundle}"]
    if pip_config_file is not None:
        # The package index and its credentials, as a pip.conf that the pip installs mount as a secret.
        argv += ["--secret", f"id=pip_conf,src={pip_config_file}"]
    if no_cache:
        argv.append("--no-cache")
    argv.append(str(settings.project_dir))
    return argv


# The non-root user the Dockerfiles create, and that a container runs as where no other is chosen.
IMAGE_USER = (1000, 1000)


def run_as_user(
    system: str,
    uid: int,
    gid: int,
    *,
    sudo_caller: tuple[int, int] | None = None,
    data_dir_owner: tuple[int, int] | None = None,
) -> str | None:
    """The `--user` for a container on this host, or None for the image's own non-root user.

    On Linux, bind-mounted files keep their numeric owner, so the container runs as the caller and
    what it writes to DATA_DIR belongs to the caller. A root caller gets the user behind `sudo`, else
    the owner of DATA_DIR when that is not root: root outside is no reason for root inside. Only
    where both are root does the container run as root, as only root can write such a DATA_DIR, and
    then without any capability (see `_container_options`). Docker Desktop (macOS, Windows) maps
    ownership itself, so the image's own user serves there.
    """
    if system != "Linux":
        return None
    for ids in (sudo_caller, data_dir_owner) if uid == 0 else ():
        if ids is not None and ids[0] != 0:
            return f"{ids[0]}:{ids[1]}"
    return f"{uid}:{gid}"


def user_ids(user: str | None) -> tuple[int, int]:
    """The uid and gid a container runs as, for a `run_as_user` answer."""
    if user is None:
        return IMAGE_USER
    uid, _, gid = user.partition(":")
    return int(uid), int(gid)


def parse_command(value: str) -> list[str]:
    """The words of `invoke run --cmd`, split as a POSIX shell would."""
    try:
        words = shlex.split(value)
    except ValueError as error:
        raise UserError(f"--cmd {value!r}: {error}", "quote it as a shell would, e.g. --cmd \"python -c 'print(1)'\"") from None
    if not words:
        raise UserError("--cmd is empty", 'give a command, e.g. --cmd "python -m app.train"')
    return words


def pip_config(package_index: dict[str, str]) -> str:
    """A pip.conf that sets PIP_INDEX_URL and PIP_EXTRA_INDEX_URL (pip reads it raw: no interpolation)."""
    options = {"PIP_INDEX_URL": "index-url", "PIP_EXTRA_INDEX_URL": "extra-index-url"}
    return "[global]\n" + "".join(f"{options[key]} = {value}\n" for key, value in package_index.items())


def _mount_spec(source: Path, target: str, *, readonly: bool = False) -> str:
    # --mount takes CSV: a path with a comma or a quote is quoted; spaces need nothing.
    buffer = io.StringIO()
    fields = ["type=bind", f"source={source}", f"target={target}"] + (["readonly"] if readonly else [])
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def _container_options(settings: Settings, target: Target, user: str | None) -> list[str]:
    """What every container of the project gets: platform, data mount, port, user, app keys, GPUs."""
    argv = ["--rm", "--init", "--platform", target.platform]
    # Least privilege: the app needs no Linux capability, and nothing in it may gain privileges
    # (setuid binaries included).
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
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
    read_only: bool = False,
    command: list[str] | None = None,
) -> list[str]:
    """`docker run` of the image: named, published on HOST_ADDRESS:HOST_PORT, removed when it stops."""
    argv = [settings.docker, "run", "--name", target.container]
    if detach:
        argv.append("--detach")
    elif tty:
        argv += ["--interactive", "--tty"]
    argv += _container_options(settings, target, user)
    if read_only:
        # Writable: DATA_DIR (mounted) and /tmp, in memory; HOME is /tmp where --user is given.
        argv += ["--read-only", "--tmpfs", "/tmp"]  # noqa: S108
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


def stop_command(settings: Settings, container: str) -> list[str]:
    """Stop and remove a container (`--rm` alone would leave a stopped one on a crash)."""
    return [settings.docker, "rm", "--force", container]


def registry_image(settings: Settings, target: Target) -> str:
    """Where `invoke push` publishes one image: `<REGISTRY>/<IMAGE_NAME>:<IMAGE_TAG>-<arch>` for a CPU image
    (the multi-architecture tag lists these), `...:<IMAGE_TAG>-gpu` for the GPU image."""
    suffix = "-gpu" if target.gpu else f"-{arch(target.platform)}"
    return f"{multi_arch_image(settings)}{suffix}"


def multi_arch_image(settings: Settings) -> str:
    """`<REGISTRY>/<IMAGE_NAME>:<IMAGE_TAG>`: the one name that Macs and Linux servers pull alike."""
    if settings.registry is None:
        raise UserError("REGISTRY is not set, so there is nowhere to push", "set it in .env, e.g. REGISTRY=ghcr.io/acme")
    return f"{settings.registry}/{settings.image_name}:{settings.image_tag}"


def tag_command(settings: Settings, image: str, name: str) -> list[str]:
    return [settings.docker, "tag", image, name]


def push_command(settings: Settings, name: str) -> list[str]:
    return [settings.docker, "push", name]


def untag_command(settings: Settings, name: str) -> list[str]:
    """Remove one name of an image: the image itself stays under its other tags."""
    return [settings.docker, "image", "rm", name]


def manifest_commands(settings: Settings, name: str, images: list[str], *, insecure: bool) -> list[list[str]]:
    """Publish `name` as a manifest list of the pushed `images`, one per architecture.

    `docker manifest` (in every docker CLI since 20.10, no buildx needed) keeps a local draft of the
    list: `rm` drops one that an interrupted push left, whose entries `create` would reuse instead
    of reading the registry; `push --purge` publishes the list and deletes the draft.
    """
    insecure_flag = ["--insecure"] if insecure else []
    return [
        [settings.docker, "manifest", "rm", name],
        [settings.docker, "manifest", "create", *insecure_flag, name, *images],
        [settings.docker, "manifest", "push", "--purge", *insecure_flag, name],
    ]


def remove_containers_command(settings: Settings, containers: list[str]) -> list[str]:
    return [settings.docker, "container", "rm", "--force", *containers]


def remove_images_command(settings: Settings, images: list[str]) -> list[str]:
    """Remove these tags; an image goes with its last one, its build cache stays for the next build."""
    return [settings.docker, "image", "rm", *images]


# Inside the lock container: the project (read-only), and a folder with what this run brings.
LOCK_SOURCE_DIR = "/src"
LOCK_WORK_DIR = "/lock"
# Scratch paths inside the throwaway lock container, which nothing else shares.
_TOOLS_VENV = "/tmp/tools"  # noqa: S108
_COMPILED_LOCK = "/tmp/lock.txt"  # noqa: S108


def lock_command(
    settings: Settings,
    lock: Lock,
    *,
    work_dir: Path,
    cache_volume: str,
    upgrade: bool = False,
    upgrade_packages: tuple[str, ...] = (),
    proxies: tuple[str, ...] = (),
) -> list[str]:
    """`docker run` of pip-compile in BASE_IMAGE for the lock's platform, so the pins fit the container.

    The project is mounted read-only: pip-compile works on a copy of the current lock (to keep its
    pins) and prints the result, which the task writes only when it succeeded. work_dir holds
    tools.txt (pip-tools and its dependencies, hash-pinned, from requirements-dev.txt) and current.txt.
    """
    compile_args = [*PIP_COMPILE_OPTIONS]
    if upgrade:
        compile_args.append("--upgrade")
    for package in upgrade_packages:
        compile_args += ["--upgrade-package", package]
    install_tools = f"{_TOOLS_VENV}/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps"
    script = " && ".join(
        [
            "set -eu",
            f"python -m venv {_TOOLS_VENV}",
            f"{install_tools} -r {LOCK_WORK_DIR}/tools.txt",
            f"if [ -f {LOCK_WORK_DIR}/current.txt ]; then cp {LOCK_WORK_DIR}/current.txt {_COMPILED_LOCK}; fi",
            f"{_TOOLS_VENV}/bin/pip-compile {shlex.join(compile_args)} --output-file {_COMPILED_LOCK} {shlex.quote(lock.source)} >&2",
            f"cat {_COMPILED_LOCK}",
        ]
    )
    # --init: Ctrl-C reaches pip-compile and ends the container. The init (tini) passes signals to
    # the shell's whole process group: to the shell alone, they would wait for pip-compile to finish.
    argv = [settings.docker, "run", "--rm", "--init", "--env", "TINI_KILL_PROCESS_GROUP=1", "--platform", str(lock.platform)]
    argv += ["--mount", _mount_spec(settings.project_dir, LOCK_SOURCE_DIR, readonly=True), "--workdir", LOCK_SOURCE_DIR]
    argv += ["--mount", _mount_spec(work_dir, LOCK_WORK_DIR, readonly=True)]
    # pip's cache in a named volume: a repeated lock downloads nothing it has seen.
    argv += ["--mount", f"type=volume,source={cache_volume},target=/root/.cache/pip"]
    argv += ["--env", "CUSTOM_COMPILE_COMMAND=invoke lock"]
    if settings.build_ca_bundle is not None:
        argv += ["--mount", _mount_spec(settings.build_ca_bundle, "/run/secrets/ca_bundle", readonly=True)]
        argv += ["--env", "PIP_CERT=/run/secrets/ca_bundle"]
    # By name: docker reads the values (index URLs may hold credentials) from the task's environment.
    for name in (*proxies, *settings.package_index):
        argv += ["--env", name]
    return [*argv, settings.base_image, "sh", "-c", script]


def pip_compile_reason(stderr: str) -> str:
    """The line or two of pip-compile's error output that say why, without its traceback."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:") and not line.startswith("ERROR: Ignored")]
    reasons = []
    if errors:
        reasons.append(_shorten(errors[-1]))
    if lines:
        # The last line of a traceback: `pip._internal.exceptions.DistributionNotFound: No matching ...`.
        last = re.sub(r"^[\w.]+(?:Error|Exception|NotFound|Impossible|Conflict\w*): ", "", lines[-1])
        if last not in reasons and not last.startswith("ERROR:"):
            reasons.append(_shorten(last))
    return "\n".join(reasons) or "no message"


def _shorten(line: str, limit: int = 240) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


# Inside the smoke-test container: the project's tests/ folder and pytest, both mounted read-only, so
# nothing for testing is installed in the image that users ship.
CONTAINER_TESTS_DIR = "/app/tests"
CONTAINER_TEST_TOOLS_DIR = "/opt/test-tools"
# The folders under tests/ that run inside the image: the template's own, and the example's while it is there.
CONTAINER_TEST_FOLDERS = ("container", "example/container")


def smoke_test_command(
    settings: Settings,
    target: Target,
    *,
    user: str | None,
    tests_dir: Path,
    test_folders: Sequence[str],
    tools_dir: Path,
    tensorflow_version: str,
) -> list[str]:
    """`docker run` of the smoke test in the image `invoke run` serves, with its mounts and user: pytest on
    `test_folders` (under `tests_dir`, the project's tests/, mounted whole so that tests/helpers imports)."""
    argv = [settings.docker, "run", "--name", target.test_container]
    argv += _container_options(settings, target, user)
    argv += ["--mount", _mount_spec(tests_dir, CONTAINER_TESTS_DIR, readonly=True)]
    argv += ["--mount", _mount_spec(tools_dir, CONTAINER_TEST_TOOLS_DIR, readonly=True)]
    argv += ["--env", f"PYTHONPATH=/app/src:{CONTAINER_TESTS_DIR}:{CONTAINER_TEST_TOOLS_DIR}"]
    argv += ["--env", f"EXPECTED_TENSORFLOW_VERSION={tensorflow_version}"]
    argv += ["--env", f"EXPECTED_PLATFORM={target.platform}"]
    if target.gpu:
        argv += ["--env", "EXPECT_GPU=1"]
    # -p no:cacheprovider: the tests folder is read-only; -rA: a line per test in the report;
    # --import-mode=importlib: as pyproject.toml sets it on the host (which the container does not get).
    pytest = ["-p", "no:cacheprovider", "-rA", "--import-mode=importlib", "--rootdir", CONTAINER_TESTS_DIR]
    folders = [f"{CONTAINER_TESTS_DIR}/{folder}" for folder in test_folders]
    return [*argv, target.image, "python", "-m", "pytest", *pytest, *folders]
