"""The project's containers: what each gets (label, user, mounts, privileges, app keys), and the tasks
that start, test, follow, stop and remove them (`invoke run`, `shell`, `container-test`, `logs`,
`stop`, `clean`)."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import secrets
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from platform import system as host_system

from devkit.engine import CDI_NVIDIA_GPUS, Engine, Outcome, command_line, first_line, is_podman
from devkit.errors import UserError
from devkit.host import container_user, require_free_port, require_writable_by, user_ids
from devkit.locks import pinned_tensorflow, tool_requirements
from devkit.settings import Settings
from devkit.targets import PROJECT_LABEL, Target, project_id, project_label

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
        raise UserError(
            f"--cmd {value!r}: {error}",
            "quote it as a shell would, e.g. --cmd \"python -c 'print(1)'\"",
        ) from None
    if not words:
        raise UserError("--cmd is empty", 'give a command, e.g. --cmd "python -m app.train"')
    return words


def mount_spec(source: Path, target: str, *, readonly: bool = False) -> str:
    """A `--mount` bind of `source` at `target`: CSV, so a path with a comma or a quote is quoted."""
    buffer = io.StringIO()
    fields = ["type=bind", f"source={source}", f"target={target}"] + (
        ["readonly"] if readonly else []
    )
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def parse_publish(values: list[str], container_port: int) -> list[tuple[int, int]]:
    """The ports of `invoke run --cmd ... --publish`: `HOST_PORT` (to the app's CONTAINER_PORT) or `HOST_PORT:CONTAINER_PORT`."""
    ports = []
    for value in values:
        match = re.fullmatch(r"([0-9]{1,5})(?::([0-9]{1,5}))?", value)
        host, inner = (int(match[1]), int(match[2] or container_port)) if match else (0, 0)
        if not (1 <= host <= 65535 and 1 <= inner <= 65535):
            raise UserError(
                f"--publish {value!r}: expected HOST_PORT or HOST_PORT:CONTAINER_PORT, each 1-65535",
                "e.g. --publish 9000",
            )
        ports.append((host, inner))
    return ports


def one_off_name(target: Target, kind: str = "run") -> str:
    """A container of its own for a one-off command or a shell: several may run beside the server."""
    return f"{target.container}-{kind}-{secrets.token_hex(3)}"


def container_options(
    settings: Settings, target: Target, user: str | None, env_file: Path | None
) -> list[str]:
    """What every container of the project gets: label, platform, data mount, user, app keys, GPUs."""
    argv = ["--rm", "--init", "--label", project_label(settings), "--platform", target.platform]
    # Least privilege: the app needs no Linux capability, and nothing in it may gain privileges
    # (setuid binaries included).
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    argv += ["--mount", mount_spec(settings.data_dir, CONTAINER_DATA_DIR)]
    argv += ["--env", f"PORT={settings.container_port}"]
    if user is not None:
        # A uid without an entry in the image's /etc/passwd has no home; give it a writable one.
        argv += ["--user", user, "--env", "HOME=/tmp"]
    if env_file is not None:
        # The app's keys, from a file only this user can read: never in the command line, the process
        # list, `invoke --dry` or the docker CLI's own environment (where DOCKER_HOST would steer it).
        argv += ["--env-file", str(env_file)]
    if target.gpu:
        # Podman has no --gpus: it takes the GPUs as CDI devices.
        argv += ["--device", CDI_NVIDIA_GPUS] if is_podman(settings.docker) else ["--gpus", "all"]
    return argv


def run_command(
    settings: Settings,
    target: Target,
    *,
    name: str,
    user: str | None,
    ports: list[tuple[int, int]],
    env_file: Path | None = None,
    detach: bool = False,
    tty: bool = False,
    read_only: bool = False,
    command: list[str] | None = None,
) -> list[str]:
    """`docker run` of the image: named, published on HOST_ADDRESS, removed when it stops."""
    argv = [settings.docker, "run", "--name", name]
    if detach:
        argv.append("--detach")
    elif tty:
        argv += ["--interactive", "--tty"]
    argv += container_options(settings, target, user, env_file)
    if read_only:
        # Writable: DATA_DIR (mounted) and /tmp, in memory; HOME is /tmp where --user is given.
        argv += ["--read-only", "--tmpfs", "/tmp"]  # noqa: S108
    for host_port, container_port in ports:
        argv += ["--publish", f"{settings.host_address}:{host_port}:{container_port}"]
    argv.append(target.image)
    return argv + (command or [])


def shell_command(
    settings: Settings,
    target: Target,
    *,
    name: str,
    user: str | None,
    tty: bool,
    env_file: Path | None = None,
) -> list[str]:
    """An interactive shell in the image, with the mounts and environment of `invoke run`."""
    argv = [settings.docker, "run", "--name", name, "--interactive"]
    if tty:
        argv.append("--tty")
    argv += container_options(settings, target, user, env_file)
    return [*argv, target.image, "bash"]


def container_test_command(
    settings: Settings,
    target: Target,
    *,
    user: str | None,
    tools_dir: Path,
    tensorflow_version: str,
    env_file: Path | None = None,
) -> list[str]:
    """`docker run` of the container test in the image `invoke run` serves, with its mounts and user."""
    tests_dir = settings.project_dir / "tests"
    argv = [settings.docker, "run", "--name", target.container_test_container]
    argv += container_options(settings, target, user, env_file)
    argv += ["--mount", mount_spec(tests_dir, CONTAINER_TESTS_DIR, readonly=True)]
    argv += ["--mount", mount_spec(tools_dir, CONTAINER_TEST_TOOLS_DIR, readonly=True)]
    argv += ["--env", f"PYTHONPATH=/app/src:{CONTAINER_TESTS_DIR}:{CONTAINER_TEST_TOOLS_DIR}"]
    argv += ["--env", f"EXPECTED_TENSORFLOW_VERSION={tensorflow_version}"]
    argv += ["--env", f"EXPECTED_PLATFORM={target.platform}"]
    if target.gpu:
        argv += ["--env", "EXPECT_GPU=1"]
    folders = [
        f"{CONTAINER_TESTS_DIR}/{folder}"
        for folder in CONTAINER_TEST_FOLDERS
        if (tests_dir / folder).is_dir()
    ]
    # -p no:cacheprovider: the tests folder is read-only. -ra: a line for each test that did not
    # pass, and no output of those that did; warnings stay in pytest's summary, grouped, counted.
    # --import-mode=importlib: as pyproject.toml sets it on the host (the container has no pyproject).
    pytest = [
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-ra",
        "--import-mode=importlib",
        "--rootdir",
        CONTAINER_TESTS_DIR,
        *folders,
    ]
    return [*argv, target.image, *pytest]


def remove_container_command(settings: Settings, container: str) -> list[str]:
    """Stop and remove a container (`--rm` alone would leave a stopped one on a crash)."""
    return [settings.docker, "rm", "--force", container]


def remove_containers_command(settings: Settings, containers: list[str]) -> list[str]:
    return [settings.docker, "container", "rm", "--force", *containers]


def remove_images_command(settings: Settings, images: list[str]) -> list[str]:
    """Remove these tags and untagged images; an image goes with its last tag."""
    return [settings.docker, "image", "rm", *images]


def logs_command(settings: Settings, container: str, *, follow: bool) -> list[str]:
    return [settings.docker, "logs", *(["--follow"] if follow else []), container]


def prune_build_cache_command(settings: Settings) -> list[str]:
    """BuildKit's unused build cache, the engine's whole (it is not kept per project); never what a build uses."""
    return [settings.docker, "builder", "prune", "--force"]


@contextlib.contextmanager
def app_env_file(settings: Settings) -> Iterator[Path | None]:
    """The app's `.env` keys as a `docker run --env-file`, in a folder only this user can enter, removed
    after (on a failure or a signal too): so the container gets them, and nothing else does."""
    if not settings.app_env:
        yield None
        return
    for key, value in settings.app_env.items():
        if "\n" in value or "\r" in value:
            raise UserError(
                f"the app key {key} has a value of several lines, which docker's --env-file cannot pass",
                "put it on one line",
            )
    with tempfile.TemporaryDirectory(prefix="invoke-app-env-") as folder:
        path = Path(folder) / "app.env"
        with os.fdopen(
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
        ) as stream:
            stream.writelines(f"{key}={value}\n" for key, value in settings.app_env.items())
        yield path


class StopOnSignal:
    """While the named containers run, a signal that tells invoke to stop stops and removes them too.

    SIGTERM (a cancelled CI job, `timeout`, `kill`), SIGHUP (the terminal closed) and SIGINT (Ctrl-C
    where no terminal passes it on: an IDE, CI, `kill -INT`) each run `docker stop` (the container's
    stop signal, SIGKILL 10 s later); `--rm` removes what stopped. With a terminal (`tty`), SIGINT is
    left to invoke, which types it into the container as Ctrl-C. The stop runs in a thread of its own
    and again every second until the block ends, so a container created just after the signal stops
    too. One object for all the containers of a task (`invoke train` starts several).
    """

    def __init__(
        self, engine: Engine, settings: Settings, names: list[str], *, tty: bool = False
    ) -> None:
        self._engine = engine
        self._argv = [settings.docker, "stop", *names]
        hangup = (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()
        self._signals = (signal.SIGTERM, *hangup, *(() if tty else (signal.SIGINT,)))
        self._previous: dict[int, object] = {}
        self._ended = threading.Event()
        self._stopper: threading.Thread | None = None
        self.received: signal.Signals | None = None

    def __enter__(self) -> StopOnSignal:
        for number in self._signals:
            self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc_info) -> None:
        self._ended.set()
        if self._stopper is not None:
            self._stopper.join()
        for number, previous in self._previous.items():
            signal.signal(number, previous)

    def _on_signal(self, number: int, frame) -> None:
        if self.received is None:
            self.received = signal.Signals(number)
            self._stopper = threading.Thread(target=self._stop, name="stop-containers", daemon=True)
            self._stopper.start()

    def _stop(self) -> None:
        while not self._ended.is_set():
            self._engine.run(self._argv, hide=True)
            self._ended.wait(1)


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
        engine.change(
            f"create {data_dir} for uid {user_ids(user)[0]}", lambda: _make_data_dir(data_dir, user)
        )
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
        raise UserError(
            f"{target.image} is a {found} image, not {target.platform}",
            f"{target.build_hint()} rebuilds it",
        )


def remove_container(engine: Engine, settings: Settings, container: str) -> None:
    """Remove the container where it exists; quietly, as clean-up after a run."""
    if engine.container_state(container) is not None:
        engine.run(remove_container_command(settings, container), hide=True)


def _inspect_container(engine: Engine, settings: Settings, name: str) -> tuple[str, bool] | None:
    """The state of the container `name` and whether it is this project's (carries its label); None if there is none."""
    labels = f'{{{{index .Config.Labels "{PROJECT_LABEL}"}}}}'
    result = engine.query(
        [
            settings.docker,
            "container",
            "inspect",
            "--format",
            f"{{{{.State.Status}}}} {labels}",
            name,
        ]
    )
    if result.returncode != 0 or not result.stdout.strip():
        return None
    state, _, owner = result.stdout.strip().partition(" ")
    return state, owner == project_id(settings)


def _image_is_ours(engine: Engine, settings: Settings, image: str) -> bool | None:
    """Whether the local `image` carries this project's label; None where there is no such image."""
    result = engine.query(
        [
            settings.docker,
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{PROJECT_LABEL}"}}}}',
            image,
        ]
    )
    return result.stdout.strip() == project_id(settings) if result.returncode == 0 else None


def _foreign(settings: Settings, name: str, *, image: bool = False) -> str:
    """Why a container or image of the project's name, but without its label, is left alone; how to remove it."""
    remove = command_line(
        [settings.docker, "image", "rm", name]
        if image
        else [settings.docker, "rm", "--force", name]
    )
    what = "an image" if image else "a container"
    return f"{name} is {what} of the same name that is not this project's (no {PROJECT_LABEL} label of this folder); `{remove}` removes it"


def _require_free_name(engine: Engine, settings: Settings, target: Target) -> bool:
    """No container of the server's name runs; True where a stopped leftover of this project's is to go."""
    found = _inspect_container(engine, settings, target.container)
    if found is None:
        return False
    state, ours = found
    if not ours:
        raise UserError(
            _foreign(settings, target.container), "or set IMAGE_NAME in .env to another name"
        )
    if state == "running":
        raise UserError(
            f"{target.container} is already running; `invoke stop{target.selection}` stops it"
        )
    return True


def run(
    engine: Engine,
    settings: Settings,
    target: Target,
    *,
    detach: bool = False,
    tty: bool = False,
    read_only: bool = False,
    cmd: str | None = None,
    publish: tuple[str, ...] = (),
) -> None:
    """`invoke run`: the server (no `cmd`), or a one-off command in a container of its own beside it.

    Everything is checked before the container is created; a foreground one is removed after.
    """
    command = parse_command(cmd) if cmd is not None else None
    if command is None and publish:
        raise UserError(
            "--publish goes with --cmd; the server publishes HOST_PORT",
            "set HOST_PORT in .env to move it",
        )
    ports = (
        [(settings.host_port, settings.container_port)]
        if command is None
        else parse_publish(list(publish), settings.container_port)
    )
    name = target.container if command is None else one_off_name(target)
    user = container_user(settings)
    require_engine_for(engine, target)
    leftover = command is None and _require_free_name(engine, settings, target)
    for host_port, _ in ports:
        engine.require(require_free_port, settings.host_address, host_port)
    prepare_data_dir(engine, settings, user)
    if leftover:
        # Only now, when nothing can refuse the run any more: a refused run changes nothing.
        remove_container(engine, settings, target.container)
    urls = ", ".join(f"http://{settings.host_address}:{host_port}" for host_port, _ in ports)
    if command is None:
        print(
            f"serving {target.image} as {name} on {urls} (DATA_DIR {settings.data_dir})",
            file=sys.stderr,
        )
    else:
        published = urls or "no port published"
        print(
            f"running `{shlex.join(command)}` in {name} ({target.image}; {published}; DATA_DIR {settings.data_dir})",
            file=sys.stderr,
        )
    with (
        StopOnSignal(engine, settings, [name], tty=tty) as stopped,
        app_env_file(settings) as env_file,
    ):
        options = {"detach": detach, "tty": tty, "read_only": read_only, "command": command}
        argv = run_command(
            settings, target, name=name, user=user, ports=ports, env_file=env_file, **options
        )
        try:
            result = engine.run(argv, tty=tty, hide=detach)
        finally:
            # A container that did not start, or was interrupted half-way, is removed all the same.
            if not detach:
                remove_container(engine, settings, name)
    if stopped.received is not None:
        remove_container(engine, settings, name)
        print(f"stopped and removed {name} on {stopped.received.name}", file=sys.stderr)
    elif result.failed and detach:
        remove_container(engine, settings, name)
        raise UserError(f"{name} did not start: {first_line(result.stderr)}")
    # 130: the container ended on Ctrl-C, which is how a foreground run is meant to stop.
    elif result.failed and result.exited != 130:
        raise UserError(f"{name} exited with status {result.exited}; its output above says why")
    elif detach:
        print(f"{name} runs in the background{f' on {urls}' if urls else ''}", file=sys.stderr)
        if command is None:
            follow, stop_it = (
                f"invoke logs --follow{target.selection}",
                f"invoke stop{target.selection}",
            )
        else:
            follow, stop_it = (
                command_line(logs_command(settings, name, follow=True)),
                command_line([settings.docker, "stop", name]),
            )
        print(f"`{follow}` shows its output; `{stop_it}` stops it", file=sys.stderr)


def shell(engine: Engine, settings: Settings, target: Target, *, tty: bool) -> Outcome:
    """`invoke shell`: a bash shell in the image; its outcome, whose exit status the task passes on."""
    user = container_user(settings)
    name = one_off_name(target, "shell")
    require_engine_for(engine, target)
    prepare_data_dir(engine, settings, user)
    with StopOnSignal(engine, settings, [name], tty=tty), app_env_file(settings) as env_file:
        return engine.run(
            shell_command(settings, target, name=name, user=user, tty=tty, env_file=env_file),
            stdin=True,
            tty=tty,
        )


def stop(engine: Engine, settings: Settings, target: Target) -> None:
    """`invoke stop`: stop (gracefully) and remove the container that `invoke run --detach` started;
    another project's is left alone."""
    engine.require_running()
    found = _inspect_container(engine, settings, target.container)
    if found is None:
        print(f"{target.container} is not running", file=sys.stderr)
        return
    if not found[1]:
        print(f"left alone: {_foreign(settings, target.container)}", file=sys.stderr)
        return
    # SIGTERM first: the app finishes what it is serving (docker's 10 s, then SIGKILL); --rm removes it.
    engine.run([settings.docker, "stop", target.container], hide=True)
    gone = (None, "removing")  # --rm removes what stopped, and may still be at it
    if engine.container_state(target.container) not in gone:
        result = engine.run(remove_container_command(settings, target.container), hide=True)
        if result.failed and engine.container_state(target.container) not in gone:
            raise UserError(f"could not remove {target.container}: {result.stderr.strip()}")
    print(f"stopped and removed {target.container}", file=sys.stderr)


def logs(engine: Engine, settings: Settings, target: Target, *, follow: bool = False) -> None:
    """`invoke logs`: the output of the container that `invoke run --detach` started."""
    engine.require_running()
    found = _inspect_container(engine, settings, target.container)
    if found is None:
        raise UserError(
            f"there is no container {target.container}",
            f"`invoke run --detach{target.selection}` starts it",
        )
    if not found[1]:
        raise UserError(_foreign(settings, target.container))
    result = engine.run(logs_command(settings, target.container, follow=follow))
    # Ctrl-C, the way to end --follow: the CLI ends on SIGINT (-2), or says 130.
    if result.failed and result.exited not in (130, -signal.SIGINT):
        raise UserError(f"could not show the output of {target.container} (exit {result.exited})")


def container_test(engine: Engine, settings: Settings, target: Target, *, python: str) -> None:
    """`invoke container-test`: tests/container (and the example's) run inside the built image.

    pytest comes from the host tools' lock, hash-checked, installed with `python` into a temporary
    folder and mounted read-only for the run: it never enters the image.
    """
    project_dir = settings.project_dir
    name = target.container_test_container
    expected = pinned_tensorflow((project_dir / target.lock.output).read_text(encoding="utf-8"))
    with (
        StopOnSignal(engine, settings, [name]) as stopped,
        tempfile.TemporaryDirectory(prefix="invoke-container-test-") as work,
    ):
        work_dir = Path(work)
        work_dir.chmod(0o755)  # the container's user reads the tools
        tools_dir = work_dir / "site-packages"
        pytest_lock = work_dir / "pytest.txt"
        pytest_lock.write_text(
            tool_requirements(
                (project_dir / "requirements-dev.txt").read_text(encoding="utf-8"), root="pytest"
            )
        )
        install = [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
        ]
        install += ["--only-binary=:all:", "--target", str(tools_dir), "-r", str(pytest_lock)]
        installed = engine.run(install, env=settings.package_index, hide=True)
        if installed.failed:
            raise UserError(
                f"cannot install pytest for the container: {first_line(installed.stderr)}"
            )
        require_engine_for(engine, target)
        engine.require(require_image, engine, target)
        if not settings.data_dir.exists():
            engine.change(
                f"create {settings.data_dir}",
                lambda: settings.data_dir.mkdir(parents=True, exist_ok=True),
            )
        with app_env_file(settings) as env_file:
            argv = container_test_command(
                settings,
                target,
                user=container_user(settings),
                tools_dir=tools_dir,
                tensorflow_version=expected,
                env_file=env_file,
            )
            try:
                result = engine.run(argv)
            finally:
                remove_container(engine, settings, name)
    if stopped.received is not None:
        raise UserError(
            f"the container test was stopped on {stopped.received.name}; {name} is removed"
        )
    if result.failed:
        raise UserError(
            f"the container test failed in {target.image} (exit {result.exited}); its report above says which test and why"
        )


def clean(
    engine: Engine,
    settings: Settings,
    targets: list[Target],
    *,
    cache_volume: str,
    everything: bool = False,
) -> None:
    """`invoke clean`: this project's containers, its images under IMAGE_TAG and its untagged images; with
    `everything`, `cache_volume` (pip's downloads for `invoke lock`) and the engine's unused build cache too.
    Never DATA_DIR, the locks, or anything that lacks the project's label."""
    engine.require_running()
    mine = ["--filter", f"label={project_label(settings)}"]
    containers = engine.query(
        [settings.docker, "container", "ls", "--all", *mine, "--format", "{{.Names}}"]
    ).stdout.split()
    for name in dict.fromkeys(
        name for target in targets for name in (target.container, target.container_test_container)
    ):
        found = _inspect_container(engine, settings, name)
        if found is not None and not found[1]:
            print(f"left alone: {_foreign(settings, name)}", file=sys.stderr)
    images = []
    for image in dict.fromkeys(target.image for target in targets):
        ours = _image_is_ours(engine, settings, image)
        if ours is False:
            print(f"left alone: {_foreign(settings, image, image=True)}", file=sys.stderr)
        elif ours:
            images.append(image)
    untagged = engine.query(
        [
            settings.docker,
            "image",
            "ls",
            "--quiet",
            "--no-trunc",
            "--filter",
            "dangling=true",
            *mine,
        ]
    ).stdout.split()
    untagged = list(dict.fromkeys(untagged))
    volumes = (
        [cache_volume]
        if everything
        and engine.query([settings.docker, "volume", "inspect", cache_volume]).returncode == 0
        else []
    )
    commands = [remove_containers_command(settings, containers)] if containers else []
    commands += [remove_images_command(settings, images + untagged)] if images or untagged else []
    commands += [[settings.docker, "volume", "rm", *volumes]] if volumes else []
    commands += [prune_build_cache_command(settings)] if everything else []
    for argv in commands:
        result = engine.run(argv, hide=True)
        if result.failed:
            raise UserError(f"could not remove everything: {first_line(result.stderr)}")
    removed = (
        [f"container{'s' * (len(containers) > 1)} {', '.join(containers)}"] if containers else []
    )
    removed += [f"image{'s' * (len(images) > 1)} {', '.join(images)}"] if images else []
    removed += [f"{len(untagged)} untagged image{'s' * (len(untagged) > 1)}"] if untagged else []
    removed += [f"the lock cache volume {name}" for name in volumes] + (
        ["the engine's unused build cache"] if everything else []
    )
    print(f"removed {'; '.join(removed)}" if removed else "nothing to remove", file=sys.stderr)
    # No "freed" figure: the engine says none for what `image rm` frees, and `system df` before and
    # after counts the whole engine (other projects' builds, layers the build cache still holds).
    kept = f"kept: what you pushed to a registry, DATA_DIR ({settings.data_dir}), the locks"
    if not everything:
        kept += f", the lock cache volume {cache_volume} and the build cache (`invoke clean --all` removes those)"
    print(kept, file=sys.stderr)
