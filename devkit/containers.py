"""The project's containers: what each gets (user, mounts, privileges), and the tasks that start,
test, stop and remove them (`invoke run`, `shell`, `container-test`, `stop`, `clean`)."""

from __future__ import annotations

import csv
import io
import os
import shlex
import sys
import tempfile
from pathlib import Path
from platform import system as host_system

from devkit.engine import Engine, Outcome, first_line
from devkit.errors import UserError
from devkit.host import container_user, require_free_port, require_writable_by, user_ids
from devkit.locks import pinned_tensorflow, tool_requirements
from devkit.settings import Settings
from devkit.targets import Target

# Where DATA_DIR appears inside the container.
CONTAINER_DATA_DIR = "/app/data"

# Inside the container test's container: the project's tests and pytest, both mounted read-only,
# so nothing for testing is installed in the image that users ship.
CONTAINER_TESTS_DIR = "/app/tests"
CONTAINER_TEST_TOOLS_DIR = "/opt/test-tools"
# The folders of tests/ that run inside the image: the template's own, and the example's where it is.
CONTAINER_TEST_FOLDERS = ("container", "example/container")


def parse_command(value: str) -> list[str]:
    """The words of `invoke run --cmd`, split as a POSIX shell would."""
    try:
        words = shlex.split(value)
    except ValueError as error:
        raise UserError(f"--cmd {value!r}: {error}", "quote it as a shell would, e.g. --cmd \"python -c 'print(1)'\"") from None
    if not words:
        raise UserError("--cmd is empty", 'give a command, e.g. --cmd "python -m app.train"')
    return words


def mount_spec(source: Path, target: str, *, readonly: bool = False) -> str:
    """A `--mount` bind of `source` at `target`: CSV, so a path with a comma or a quote is quoted."""
    buffer = io.StringIO()
    fields = ["type=bind", f"source={source}", f"target={target}"] + (["readonly"] if readonly else [])
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def container_options(settings: Settings, target: Target, user: str | None) -> list[str]:
    """What every container of the project gets: platform, data mount, port, user, app keys, GPUs."""
    argv = ["--rm", "--init", "--platform", target.platform]
    # Least privilege: the app needs no Linux capability, and nothing in it may gain privileges
    # (setuid binaries included).
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    argv += ["--mount", mount_spec(settings.data_dir, CONTAINER_DATA_DIR)]
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
    argv += container_options(settings, target, user)
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
    argv += container_options(settings, target, user)
    return [*argv, target.image, "bash"]


def container_test_command(
    settings: Settings,
    target: Target,
    *,
    user: str | None,
    tools_dir: Path,
    tensorflow_version: str,
) -> list[str]:
    """`docker run` of the container test in the image `invoke run` serves, with its mounts and user."""
    tests_dir = settings.project_dir / "tests"
    argv = [settings.docker, "run", "--name", target.container_test_container]
    argv += container_options(settings, target, user)
    argv += ["--mount", mount_spec(tests_dir, CONTAINER_TESTS_DIR, readonly=True)]
    argv += ["--mount", mount_spec(tools_dir, CONTAINER_TEST_TOOLS_DIR, readonly=True)]
    argv += ["--env", f"PYTHONPATH=/app/src:{CONTAINER_TESTS_DIR}:{CONTAINER_TEST_TOOLS_DIR}"]
    argv += ["--env", f"EXPECTED_TENSORFLOW_VERSION={tensorflow_version}"]
    argv += ["--env", f"EXPECTED_PLATFORM={target.platform}"]
    if target.gpu:
        argv += ["--env", "EXPECT_GPU=1"]
    folders = [f"{CONTAINER_TESTS_DIR}/{folder}" for folder in CONTAINER_TEST_FOLDERS if (tests_dir / folder).is_dir()]
    # -p no:cacheprovider: the tests folder is read-only; -rA: a line per test in the report.
    pytest = ["python", "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--rootdir", CONTAINER_TESTS_DIR, *folders]
    return [*argv, target.image, *pytest]


def remove_container_command(settings: Settings, container: str) -> list[str]:
    """Stop and remove a container (`--rm` alone would leave a stopped one on a crash)."""
    return [settings.docker, "rm", "--force", container]


def remove_containers_command(settings: Settings, containers: list[str]) -> list[str]:
    return [settings.docker, "container", "rm", "--force", *containers]


def remove_images_command(settings: Settings, images: list[str]) -> list[str]:
    """Remove these tags; an image goes with its last one, its build cache stays for the next build."""
    return [settings.docker, "image", "rm", *images]


# --- the pipelines ----------------------------------------------------------------------------


def require_engine_for(engine: Engine, target: Target) -> None:
    """An engine, for the GPU image its NVIDIA runtime, for another architecture's image emulation:
    checked before anything is created."""
    engine.require_running()
    if target.gpu:
        engine.require_nvidia_runtime()
    if not target.native and engine.image_exists(target.image):
        engine.require_platform_support(target.image, target.platform)


def prepare_data_dir(engine: Engine, settings: Settings, user: str | None) -> None:
    """DATA_DIR exists, and the container's user can write it: a folder made here is made theirs."""
    data_dir = settings.data_dir
    if not data_dir.exists():
        engine.change(f"create {data_dir} for uid {user_ids(user)[0]}", lambda: _make_data_dir(data_dir, user))
    if host_system() == "Linux" and data_dir.exists():
        engine.require(require_writable_by, data_dir, *user_ids(user))


def _make_data_dir(data_dir: Path, user: str | None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if host_system() == "Linux" and os.geteuid() == 0:
        os.chown(data_dir, *user_ids(user))


def require_image(engine: Engine, target: Target) -> None:
    """The image is built, and for its own platform (a `docker run --platform` elsewhere may re-point a tag)."""
    found = engine.image_platform(target.image)
    if found is None:
        raise UserError(f"there is no image {target.image}", f"{target.build_hint()} makes it")
    if found != target.platform:
        raise UserError(f"{target.image} is a {found} image, not {target.platform}", f"{target.build_hint()} rebuilds it")


def remove_container(engine: Engine, settings: Settings, container: str) -> None:
    """Remove the container where it exists; quietly, as clean-up after a run."""
    if engine.container_state(container) is not None:
        engine.run(remove_container_command(settings, container), hide=True)


def _require_not_running(engine: Engine, settings: Settings, target: Target) -> None:
    """No container of this name runs; a stopped leftover of a crash is removed."""
    state = engine.container_state(target.container)
    if state == "running":
        raise UserError(f"{target.container} is already running; `invoke stop{' --gpu' if target.gpu else ''}` stops it")
    if state is not None:
        remove_container(engine, settings, target.container)


def run(
    engine: Engine,
    settings: Settings,
    target: Target,
    *,
    detach: bool = False,
    tty: bool = False,
    read_only: bool = False,
    cmd: str | None = None,
) -> None:
    """`invoke run`: everything checked before the container is created; a foreground one removed after."""
    command = parse_command(cmd) if cmd is not None else None
    user = container_user(settings)
    argv = run_command(settings, target, user=user, detach=detach, tty=tty, read_only=read_only, command=command)
    require_engine_for(engine, target)
    _require_not_running(engine, settings, target)
    engine.require(require_free_port, settings.host_address, settings.host_port)
    prepare_data_dir(engine, settings, user)
    print(f"serving {target.image} on http://{settings.host_address}:{settings.host_port} (DATA_DIR {settings.data_dir})", file=sys.stderr)
    try:
        result = engine.run(argv, env=settings.app_env, tty=tty)
    finally:
        # A container that did not start, or was interrupted half-way, is removed all the same.
        if not detach:
            remove_container(engine, settings, target.container)
    if result.failed:
        if detach:
            remove_container(engine, settings, target.container)
        # 130: the container ended on Ctrl-C, which is how a foreground run is meant to stop.
        if result.exited != 130:
            raise UserError(f"{target.container} exited with status {result.exited}; its output above says why")
    elif detach:
        print(f"{target.container} runs in the background; `invoke stop{' --gpu' if target.gpu else ''}` stops it", file=sys.stderr)


def shell(engine: Engine, settings: Settings, target: Target, *, tty: bool) -> Outcome:
    """`invoke shell`: a bash shell in the image; its outcome, whose exit status the task passes on."""
    user = container_user(settings)
    argv = shell_command(settings, target, user=user, tty=tty)
    require_engine_for(engine, target)
    prepare_data_dir(engine, settings, user)
    return engine.run(argv, env=settings.app_env, stdin=True, tty=tty)


def stop(engine: Engine, settings: Settings, target: Target) -> None:
    """`invoke stop`: remove the container that `invoke run --detach` started."""
    engine.require_running()
    if engine.container_state(target.container) is None:
        print(f"{target.container} is not running", file=sys.stderr)
        return
    result = engine.run(remove_container_command(settings, target.container), hide=True)
    if result.failed:
        raise UserError(f"could not remove {target.container}: {result.stderr.strip()}")
    print(f"stopped and removed {target.container}", file=sys.stderr)


def container_test(engine: Engine, settings: Settings, target: Target, *, python: str) -> None:
    """`invoke container-test`: tests/container (and the example's) run inside the built image.

    pytest comes from the host tools' lock, hash-checked, installed with `python` into a temporary
    folder and mounted read-only for the run: it never enters the image.
    """
    project_dir = settings.project_dir
    expected = pinned_tensorflow((project_dir / target.lock.output).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="invoke-container-test-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o755)  # the container's user reads the tools
        tools_dir = work_dir / "site-packages"
        pytest_lock = work_dir / "pytest.txt"
        pytest_lock.write_text(tool_requirements((project_dir / "requirements-dev.txt").read_text(encoding="utf-8"), root="pytest"))
        install = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--require-hashes", "--no-deps"]
        install += ["--only-binary=:all:", "--target", str(tools_dir), "-r", str(pytest_lock)]
        installed = engine.run(install, env=settings.package_index, hide=True)
        if installed.failed:
            raise UserError(f"cannot install pytest for the container: {first_line(installed.stderr)}")
        argv = container_test_command(settings, target, user=container_user(settings), tools_dir=tools_dir, tensorflow_version=expected)
        require_engine_for(engine, target)
        engine.require(require_image, engine, target)
        if not settings.data_dir.exists():
            engine.change(f"create {settings.data_dir}", lambda: settings.data_dir.mkdir(parents=True, exist_ok=True))
        try:
            result = engine.run(argv, env=settings.app_env)
        finally:
            remove_container(engine, settings, target.container_test_container)
    if result.failed:
        raise UserError(f"the container test failed in {target.image} (exit {result.exited}); its report above says which test and why")


def clean(engine: Engine, settings: Settings, targets: list[Target]) -> None:
    """`invoke clean`: the containers and images of these targets that exist; never DATA_DIR."""
    engine.require_running()
    containers = [name for target in targets for name in (target.container, target.container_test_container)]
    containers = [name for name in containers if engine.container_state(name) is not None]
    images = [target.image for target in targets if engine.image_exists(target.image)]
    commands = [remove_containers_command(settings, containers)] if containers else []
    commands += [remove_images_command(settings, images)] if images else []
    for argv in commands:
        result = engine.run(argv, hide=True)
        if result.failed:
            raise UserError(f"could not remove everything: {first_line(result.stderr)}")
    removed = [*containers, *images]
    print(f"removed {', '.join(removed)}" if removed else "nothing to remove", file=sys.stderr)
