"""Where a container is started: a ContainerSpec (what the container is) becomes the one `docker
run` command line here, and `start` runs it, in the foreground, detached or as a one-off whose
output is captured. `start` owns what every container of the project needs around it: the
preconditions (its name free of another project's container, its ports free, its image there), the
file with its secret environment, a stop on a signal, the clean-up, and the sentence that says how
it ended. The tasks' modules (containers, workbench, distributed, locking) only build specs.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devkit.engine import Engine, Outcome, command_line, first_line
from devkit.errors import UserError
from devkit.host import private_folder, require_free_port
from devkit.targets import PROJECT_LABEL

# Which start made a container: a new value each time, so that the clean-up after a failed start
# removes the container that this start made, never one of the same name that another made.
START_LABEL = "org.tensorflow-template.start"
# How long a detached container is watched after it started: one that ends in this time (a bad
# app key, a missing module) is reported with its last lines instead of as running.
DETACHED_WATCH_SECONDS = 5.0
# How many of its last lines a container that ended at once is shown with.
LAST_LINES = 15


@dataclass(frozen=True)
class Port:
    """A port published on the host: `address:host` to the container's `container`; `setting` is
    the key that moves it, for the line that says it is taken."""

    address: str
    host: int
    container: int
    setting: str = "HOST_PORT"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.host}"


@dataclass(frozen=True)
class ContainerSpec:
    """One container of the project: everything `docker run` is told about it.

    project: the project's id, which its label carries (`targets.project_id`). env: `NAME=VALUE`
    (on the command line: nothing secret), or `NAME` alone, whose value docker takes from the
    environment it runs in. secret_env: values that only a file may carry (the app's keys, a
    token), written for the start into a folder only this user can enter and removed after.
    """

    image: str
    name: str
    project: str
    command: tuple[str, ...] = ()
    platform: str | None = None
    user: str | None = None
    mounts: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    secret_env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    gpu: bool = False
    read_only: bool = False
    init: bool = True
    network: str | None = None
    hostname: str | None = None
    network_alias: str | None = None
    workdir: str | None = None
    start_id: str = field(default_factory=lambda: secrets.token_hex(4))


def command(
    engine: Engine,
    spec: ContainerSpec,
    *,
    detach: bool = False,
    interactive: bool = False,
    tty: bool = False,
    env_file: Path | None = None,
) -> list[str]:
    """The `docker run` of `spec`, the only one there is.

    Every container gets the project's label and the least privilege: no Linux capability, and
    nothing in it may gain privileges (setuid binaries included). One that runs in the foreground
    is removed when it ends (`--rm`); a detached one is kept once ended, so that `invoke logs`
    still shows why (`invoke stop` and the next start remove it). `--pull never` (Docker and
    Podman spell it alike): only a local image runs, never one of the same name from a registry
    (Docker Hub's, for a common IMAGE_NAME) where the project's is missing.
    """
    argv = [engine.docker, "run", "--name", spec.name]
    if detach:
        argv.append("--detach")
    else:
        # A terminal goes with input: Ctrl-C typed into it reaches the container.
        argv += ["--interactive"] if interactive or tty else []
        argv += ["--tty"] if tty else []
        argv.append("--rm")
    argv += ["--init"] if spec.init else []
    argv += [
        "--label",
        f"{PROJECT_LABEL}={spec.project}",
        "--label",
        f"{START_LABEL}={spec.start_id}",
    ]
    argv += ["--platform", spec.platform] if spec.platform else []
    argv += ["--pull", "never"]
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for mount in spec.mounts:
        argv += ["--mount", mount]
    for variable in spec.env:
        argv += ["--env", variable]
    if spec.user is not None:
        # A uid without an entry in the image's /etc/passwd has no home; give it a writable one.
        argv += ["--user", spec.user, "--env", "HOME=/tmp"]
    if env_file is not None:
        # Secret values from a file only this user can read: never in the command line, the
        # process list, `invoke --dry` or the docker CLI's own environment (where DOCKER_HOST
        # would steer it).
        argv += ["--env-file", str(env_file)]
    argv += engine.dialect.gpu_options() if spec.gpu else []
    if spec.read_only:
        # Writable: the mounts and /tmp, in memory; HOME is /tmp where --user is given.
        argv += ["--read-only", "--tmpfs", "/tmp"]  # noqa: S108
    if spec.network is not None:
        argv += ["--network", spec.network]
    argv += ["--hostname", spec.hostname] if spec.hostname else []
    argv += ["--network-alias", spec.network_alias] if spec.network_alias else []
    argv += ["--workdir", spec.workdir] if spec.workdir else []
    for port in spec.ports:
        argv += ["--publish", f"{port.address}:{port.host}:{port.container}"]
    return [*argv, spec.image, *spec.command]


# --- what is there -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A container that exists: its name, its state, the project and the start its labels name,
    its id (empty where the engine did not say)."""

    name: str
    state: str
    project: str
    start_id: str
    id: str


def inspect(engine: Engine, name: str) -> Found | None:
    """The container called `name`, or None where there is none."""
    labels = " ".join(
        f'{{{{index .Config.Labels "{label}"}}}}' for label in (PROJECT_LABEL, START_LABEL)
    )
    result = engine.query(
        [
            engine.docker,
            "container",
            "inspect",
            "--format",
            f"{{{{.State.Status}}}} {labels} {{{{.Id}}}}",
            name,
        ]
    )
    if result.returncode != 0 or not result.stdout.strip():
        return None
    state, project, start_id, container_id = (result.stdout.strip().split(" ") + ["", "", ""])[:4]
    return Found(name, state, project, start_id, container_id)


def foreign_line(engine: Engine, name: str, what: str = "container") -> str:
    """Why a container (network, image) of the project's name but without its label is left alone,
    and how to remove it."""
    remove = {
        "container": ["rm", "--force"],
        "network": ["network", "rm"],
        "image": ["image", "rm"],
    }
    fix = command_line([engine.docker, *remove[what], name])
    return (
        f"{name} is a{'n' * (what == 'image')} {what} of the same name that is not this project's "
        f"(no {PROJECT_LABEL} label of this folder); `{fix}` removes it"
    )


def require_free_name(engine: Engine, spec: ContainerSpec, stop_hint: str) -> Found | None:
    """No container of the spec's name runs, and none of another project's has it: a stopped one
    of this project's (what a crash or a detached run left) is returned, to be removed once nothing
    else can refuse the start."""
    found = inspect(engine, spec.name)
    if found is None:
        return None
    if found.project != spec.project:
        raise UserError(
            foreign_line(engine, spec.name), "or set IMAGE_NAME in .env to another name"
        )
    # `created`: another start made it a moment ago, and is about to start it.
    if found.state in ("created", "running", "restarting", "paused"):
        raise UserError(f"{spec.name} is already running; {stop_hint} stops it")
    return found


def require_free_network(engine: Engine, network: str, project: str) -> bool:
    """No network of this name is another project's; True where this project's is there (a
    leftover, removed before a new one is made)."""
    labels = f'{{{{index .Labels "{PROJECT_LABEL}"}}}}'
    result = engine.query([engine.docker, "network", "inspect", "--format", labels, network])
    if result.returncode != 0:
        return False
    if result.stdout.strip() != project:
        raise UserError(
            foreign_line(engine, network, "network"), "or set IMAGE_NAME in .env to another name"
        )
    return True


def remove(engine: Engine, *found: Found | None) -> None:
    """Remove containers that exist (quietly: clean-up), by their ids where known."""
    there = [each.id or each.name for each in found if each is not None]
    if there:
        engine.run([engine.docker, "container", "rm", "--force", *there], hide=True)


def remove_started(engine: Engine, *specs: ContainerSpec) -> None:
    """Remove the containers that these starts made, where they made one and it is still there;
    another of the same name (a second `invoke run` that won the name) is never touched."""
    found = [(spec, inspect(engine, spec.name)) for spec in specs]
    remove(engine, *(there for spec, there in found if there and there.start_id == spec.start_id))


def require_image(engine: Engine, image: str, platform: str, build_hint: str) -> None:
    """The image is there, and for its platform (a `docker run --platform` elsewhere may re-point a
    tag)."""
    found = engine.image_platform(image)
    if found is None:
        raise UserError(f"there is no image {image}", f"{build_hint} makes it")
    if found != platform:
        raise UserError(f"{image} is a {found} image, not {platform}", f"{build_hint} rebuilds it")


def require_platform_support(engine: Engine, image: str, platform: str) -> None:
    """The engine runs `platform` programs, natively or emulated (QEMU registered with
    binfmt_misc), as building or running an image for another architecture needs; `image` is one
    for `platform`. A probe, printed under `--dry`."""
    probe = [engine.docker, "run", "--rm", "--pull", "never", "--platform", platform]
    probe += ["--entrypoint", "true", image]
    result = engine.run(probe, hide=True)
    if result.failed and "exec format error" in result.stderr:
        arch = platform.rsplit("/", 1)[-1]
        raise UserError(
            f"this engine cannot run {platform} programs, so it can neither build nor run a "
            f"{platform} image",
            f"enable emulation once: `docker run --privileged --rm tonistiigi/binfmt --install "
            f"{arch}` (Docker Desktop has it built in)",
        )


# --- the lifecycle -------------------------------------------------------------------------------


class StopOnSignal:
    """While the named containers run, a signal that tells invoke to stop stops them too.

    SIGTERM (a cancelled CI job, `timeout`, `kill`), SIGHUP (the terminal closed) and SIGINT
    (Ctrl-C where no terminal passes it on: an IDE, CI, `kill -INT`) each run `docker stop` (the
    container's stop signal, SIGKILL 10 s later); `--rm` removes what stopped. With a terminal
    (`tty`), SIGINT is left to invoke, which types it into the container as Ctrl-C. The stop runs
    in a thread of its own and again every second until the block ends, so a container created
    just after the signal stops too. One object for all the containers of a task (`invoke train`
    starts several).
    """

    def __init__(self, engine: Engine, names: list[str], *, tty: bool = False) -> None:
        self._engine = engine
        self._argv = [engine.docker, "stop", *names]
        hangup = (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()
        self._signals = (signal.SIGTERM, *hangup, *(() if tty else (signal.SIGINT,)))
        self._previous: dict[int, object] = {}
        self._ended = threading.Event()
        self._stopper: threading.Thread | None = None
        self.received: signal.Signals | None = None

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
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


@dataclass(frozen=True)
class Ended:
    """How a start ended: the command's outcome, and the signal that stopped it, if one did."""

    outcome: Outcome
    signal: signal.Signals | None = None


def start(
    engine: Engine,
    spec: ContainerSpec,
    *,
    detach: bool = False,
    interactive: bool = False,
    tty: bool = False,
    capture: bool = False,
    cli_env: Mapping[str, str] | None = None,
    stop_hint: str = "",
    build_hint: str | None = None,
    prepare: Callable[[], None] | None = None,
) -> Ended:
    """Check, start and see to the end of one container.

    Checked first, in this order: its name (another project's container of that name is left
    alone and refuses the start; a running one of this project's too), its ports, its image (where
    `build_hint` says how to build it); then `prepare` (folders it mounts) runs, and a stopped
    leftover of this project's goes. In the foreground (`capture`: output captured, as a one-off's
    result), the container is removed when it ends, on a signal too; a detached one is watched
    for DETACHED_WATCH_SECONDS and reported as failed, with its last lines, if it ends in that
    time. A start that fails removes the container it made, never another of the same name.
    """
    leftover = require_free_name(engine, spec, stop_hint)
    for port in spec.ports:
        engine.require(require_free_port, port.address, port.host, port.setting)
    if build_hint is not None:
        engine.require(require_image, engine, spec.image, spec.platform, build_hint)
    if prepare is not None:
        prepare()
    # Only now, when nothing can refuse the start any more: a refused start changes nothing.
    remove(engine, leftover)
    with StopOnSignal(engine, [spec.name], tty=tty) as stopped, env_file_of(spec) as env_file:
        argv = command(
            engine, spec, detach=detach, interactive=interactive, tty=tty, env_file=env_file
        )
        try:
            outcome = engine.run(
                argv, env=dict(cli_env or {}), tty=tty, stdin=interactive, hide=detach or capture
            )
        finally:
            if not detach or stopped.received is not None:
                remove_started(engine, spec)
    if stopped.received is not None:
        engine.report(f"stopped and removed {spec.name} on {stopped.received.name}")
        return Ended(outcome, stopped.received)
    if detach and outcome.failed:
        remove_started(engine, spec)
        raise UserError(f"{spec.name} did not start: {first_line(outcome.stderr)}")
    if detach and not engine.dry:
        _watch_detached(engine, spec, outcome.stdout.strip() or spec.name)
    return Ended(outcome)


def env_file_of(spec: ContainerSpec):
    """The spec's secret environment as a `--env-file`, for as long as the block lasts (None where
    it has none)."""
    if not spec.secret_env:
        return _Nothing()
    return _SecretEnvFile(spec.secret_env)


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info) -> None:
        return None


class _SecretEnvFile:
    """`NAME=VALUE` lines in a file only this user can read, in a folder of its own, removed after
    (on an error or a signal too; what SIGKILL leaves, the next start removes)."""

    def __init__(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            if "\n" in value or "\r" in value:
                raise UserError(
                    f"the app key {key} has a value of several lines, which docker's --env-file "
                    "cannot pass",
                    "put it on one line",
                )
        self._values = values
        self._folder = private_folder("app-env")

    def __enter__(self) -> Path:
        path = self._folder.__enter__() / "app.env"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(os.open(path, flags, 0o600), "w", encoding="utf-8") as stream:
            stream.writelines(f"{key}={value}\n" for key, value in self._values.items())
        return path

    def __exit__(self, *exc_info):
        return self._folder.__exit__(*exc_info)


def _watch_detached(engine: Engine, spec: ContainerSpec, container_id: str) -> None:
    """A detached container that ends within DETACHED_WATCH_SECONDS (before its healthcheck says
    healthy) failed to start or, as a one-off, already did its work: said with its last lines, and
    removed. `container_id`: what `docker run --detach` printed, which never reaches the console."""
    layout = (
        "{{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{end}}"
    )
    deadline = time.monotonic() + DETACHED_WATCH_SECONDS
    while True:
        answer = engine.query(
            [engine.docker, "container", "inspect", "--format", layout, container_id]
        )
        state, status, health = (answer.stdout.split() + ["", "", ""])[:3]
        if answer.returncode != 0:
            raise UserError(f"{spec.name} ended at once, and is gone")
        if state in ("exited", "dead"):
            break
        if health == "healthy" or time.monotonic() > deadline:
            return
        time.sleep(0.25)
    tail = engine.query([engine.docker, "logs", "--tail", str(LAST_LINES), container_id])
    lines = "\n".join(part.rstrip() for part in (tail.stdout, tail.stderr) if part.strip())
    engine.run([engine.docker, "rm", "--force", container_id], hide=True)
    if status == "0":
        engine.report(f"{spec.name} ended at once (exit 0); its last lines:\n{lines or '(none)'}")
        return
    print(lines or "(no output)", file=sys.stderr)
    raise UserError(f"{spec.name} exited at once with status {status}; its last lines are above")
