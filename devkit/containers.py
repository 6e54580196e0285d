"""The project's containers: what each gets (platform, user, mounts, app keys), and the tasks that
start, test, follow, stop and remove them (`invoke run`, `shell`, `container-test`, `logs`, `stop`,
`clean`). How a container is started is runtime.py's."""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import shlex
import signal
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from platform import system as host_system

from devkit import runtime, sources
from devkit.engine import Engine, Outcome, command_line, first_line
from devkit.errors import UserError
from devkit.host import container_user, remove_orphaned_folders, require_writable_by, user_ids
from devkit.locks import pinned_tensorflow, tool_requirements
from devkit.runtime import ContainerSpec, Port
from devkit.settings import Settings
from devkit.targets import PROJECT_LABEL, Target, project_id, project_label

# Where DATA_DIR appears inside the container.
CONTAINER_DATA_DIR = "/app/data"
# Where the Dockerfile copies src/, which `invoke run --dev` mounts over (read-only).
CONTAINER_SOURCE_DIR = "/app/src"

# Inside the container test's container: the project's tests and pytest, both mounted read-only,
# so nothing for testing is installed in the image that users ship.
CONTAINER_TESTS_DIR = "/app/tests"
CONTAINER_TEST_TOOLS_DIR = "/opt/test-tools"
# The folders of tests/ that run inside the image: the template's own, and the example's where it
# is.
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
    """A `--mount` bind of `source` at `target`: CSV, so a path with a comma or a quote is
    quoted."""
    buffer = io.StringIO()
    fields = ["type=bind", f"source={source}", f"target={target}"] + (
        ["readonly"] if readonly else []
    )
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def parse_publish(values: list[str], container_port: int) -> list[tuple[int, int]]:
    """The ports of `invoke run --cmd ... --publish`: `HOST_PORT` (to the app's CONTAINER_PORT) or
    `HOST_PORT:CONTAINER_PORT`."""
    ports = []
    for value in values:
        match = re.fullmatch(r"([0-9]{1,5})(?::([0-9]{1,5}))?", value)
        host, inner = (int(match[1]), int(match[2] or container_port)) if match else (0, 0)
        if not (1 <= host <= 65535 and 1 <= inner <= 65535):
            raise UserError(
                f"--publish {value!r}: expected HOST_PORT or HOST_PORT:CONTAINER_PORT, "
                "each 1-65535",
                "e.g. --publish 9000",
            )
        ports.append((host, inner))
    return ports


def one_off_name(target: Target, kind: str = "run") -> str:
    """A container of its own for a one-off command or a shell: several may run beside the
    server."""
    return f"{target.container}-{kind}-{secrets.token_hex(3)}"


def container_spec(
    settings: Settings,
    target: Target,
    *,
    name: str,
    user: str | None,
    command: list[str] | tuple[str, ...] = (),
    app_keys: bool = True,
) -> ContainerSpec:
    """What every container of the project's images gets: its platform, DATA_DIR, the caller as
    its user, the app's port and (with `app_keys`) its `.env` keys, the GPUs of the GPU image."""
    return ContainerSpec(
        image=target.image,
        name=name,
        project=project_id(settings),
        command=tuple(command),
        platform=target.platform,
        user=user,
        mounts=(mount_spec(settings.data_dir, CONTAINER_DATA_DIR),),
        env=(f"PORT={settings.container_port}",),
        secret_env=dict(settings.app_env) if app_keys else {},
        gpu=target.gpu,
    )


def run_spec(
    settings: Settings,
    target: Target,
    *,
    name: str,
    user: str | None,
    ports: list[tuple[int, int]],
    read_only: bool = False,
    command: list[str] | None = None,
    dev: bool = False,
) -> ContainerSpec:
    """`invoke run`'s container: the server, or a one-off command, published on HOST_ADDRESS;
    with `dev`, the project's src/ mounted read-only over the image's."""
    spec = container_spec(settings, target, name=name, user=user, command=command or ())
    published = tuple(Port(settings.host_address, host, inner) for host, inner in ports)
    source = settings.project_dir / sources.SOURCE_DIR
    mounts = (mount_spec(source, CONTAINER_SOURCE_DIR, readonly=True),) if dev else ()
    return replace(spec, ports=published, read_only=read_only, mounts=(*spec.mounts, *mounts))


def shell_spec(settings: Settings, target: Target, *, name: str, user: str | None) -> ContainerSpec:
    """An interactive shell in the image, with the mounts and environment of `invoke run`."""
    return container_spec(settings, target, name=name, user=user, command=["bash"])


def container_test_spec(
    settings: Settings,
    target: Target,
    *,
    user: str | None,
    tools_dir: Path,
    tensorflow_version: str,
) -> ContainerSpec:
    """The container test in the image `invoke run` serves, with its mounts and user."""
    tests_dir = settings.project_dir / "tests"
    folders = [
        f"{CONTAINER_TESTS_DIR}/{folder}"
        for folder in CONTAINER_TEST_FOLDERS
        if (tests_dir / folder).is_dir()
    ]
    # -p no:cacheprovider: the tests folder is read-only. -ra: a line for each test that did not
    # pass, and no output of those that did; warnings stay in pytest's summary, grouped, counted.
    # --import-mode=importlib: as pyproject.toml sets it on the host (the container has none).
    pytest = ["python", "-m", "pytest", "-p", "no:cacheprovider", "-ra", "--import-mode=importlib"]
    pytest += ["--rootdir", CONTAINER_TESTS_DIR, *folders]
    spec = container_spec(
        settings, target, name=target.container_test_container, user=user, command=pytest
    )
    return replace(
        spec,
        mounts=(
            *spec.mounts,
            mount_spec(tests_dir, CONTAINER_TESTS_DIR, readonly=True),
            mount_spec(tools_dir, CONTAINER_TEST_TOOLS_DIR, readonly=True),
        ),
        env=(
            *spec.env,
            f"PYTHONPATH=/app/src:{CONTAINER_TESTS_DIR}:{CONTAINER_TEST_TOOLS_DIR}",
            f"EXPECTED_TENSORFLOW_VERSION={tensorflow_version}",
            f"EXPECTED_PLATFORM={target.platform}",
            *(["EXPECT_GPU=1"] if target.gpu else []),
        ),
    )


def remove_containers_command(settings: Settings, containers: list[str]) -> list[str]:
    return [settings.docker, "container", "rm", "--force", *containers]


def remove_images_command(settings: Settings, images: list[str]) -> list[str]:
    """Remove these tags and untagged images; an image goes with its last tag."""
    return [settings.docker, "image", "rm", *images]


def logs_command(settings: Settings, container: str, *, follow: bool) -> list[str]:
    return [settings.docker, "logs", *(["--follow"] if follow else []), container]


def prune_build_cache_command(settings: Settings) -> list[str]:
    """BuildKit's unused build cache, the engine's whole (it is not kept per project); never what a
    build uses."""
    return [settings.docker, "builder", "prune", "--force"]


# --- the pipelines ----------------------------------------------------------------------------


def require_engine_for(engine: Engine, target: Target) -> None:
    """An engine, for the GPU image its NVIDIA runtime, for another architecture's image emulation:
    checked before anything is created."""
    engine.require_running()
    if target.gpu:
        engine.require_nvidia_runtime()
    if not target.native and engine.image_exists(target.image):
        runtime.require_platform_support(engine, target.image, target.platform)


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
    """The target's image is built, for its own platform."""
    runtime.require_image(engine, target.image, target.platform, target.build_hint())


def warn_if_stale(
    engine: Engine, settings: Settings, target: Target, *, source: bool = True
) -> None:
    """One line on stderr where src/ (unless `source` is False: mounted) or the image's lock
    changed since the image was built. A warning, not a build: the run starts with what is built
    (a lock's change can mean minutes of building, an edit in src/ `invoke run --dev` serves)."""
    lock = settings.project_dir / target.lock.output
    changed = sources.changed_since_build(
        engine, target.image, settings.project_dir, lock, source=source
    )
    if changed:
        print(sources.stale_line(target.image, changed, target.build_hint()), file=sys.stderr)


def _inspect_container(engine: Engine, settings: Settings, name: str) -> tuple[str, bool] | None:
    """The state of the container `name` and whether it is this project's (carries its label);
    None if there is none."""
    found = runtime.inspect(engine, name)
    return None if found is None else (found.state, found.project == project_id(settings))


def _image_is_ours(engine: Engine, settings: Settings, image: str) -> bool | None:
    """Whether the local `image` carries this project's label; None where there is no such image."""
    labels = f'{{{{index .Config.Labels "{PROJECT_LABEL}"}}}}'
    result = engine.query([settings.docker, "image", "inspect", "--format", labels, image])
    return result.stdout.strip() == project_id(settings) if result.returncode == 0 else None


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
    dev: bool = False,
) -> None:
    """`invoke run`: the server (no `cmd`), or a one-off command in a container of its own beside
    it; with `dev`, src/ mounted read-only over the image's.

    Everything is checked before the container is created (the image first: never pulled); a
    foreground one is removed after.
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
    spec = run_spec(
        settings,
        target,
        name=name,
        user=user,
        ports=ports,
        read_only=read_only,
        command=command,
        dev=dev,
    )
    require_engine_for(engine, target)
    urls = ", ".join(port.url for port in spec.ports)
    mounted = f", src/ {settings.project_dir / sources.SOURCE_DIR} read-only" if dev else ""
    if command is None:
        doing = (
            f"serving {target.image} as {name} on {urls} (DATA_DIR {settings.data_dir}{mounted})"
        )
    else:
        published = urls or "no port published"
        doing = (
            f"running `{shlex.join(command)}` in {name} ({target.image}; {published}; "
            f"DATA_DIR {settings.data_dir}{mounted})"
        )
    ended = runtime.start(
        engine,
        spec,
        detach=detach,
        tty=tty,
        stop_hint=f"`invoke stop{target.selection}`",
        build_hint=target.build_hint(),
        prepare=lambda: (
            warn_if_stale(engine, settings, target, source=not dev),
            prepare_data_dir(engine, settings, user),
            engine.report(doing),
        ),
    )
    result = ended.outcome
    # 130: the container ended on Ctrl-C, which is how a foreground run is meant to stop.
    if ended.signal is None and result.failed and result.exited != 130:
        raise UserError(f"{name} exited with status {result.exited}; its output above says why")
    if detach:
        if command is None:
            follow = f"invoke logs --follow{target.selection}"
            stop_it = f"invoke stop{target.selection}"
        else:
            follow = command_line(logs_command(settings, name, follow=True))
            # Kept once it ends, so that its output still says why: removed with it.
            stop_it = command_line([settings.docker, "rm", "--force", name])
        stops = "stops and removes it" if command is not None else "stops it"
        engine.report(
            f"{name} runs in the background{f' on {urls}' if urls else ''}\n"
            f"`{follow}` shows its output; `{stop_it}` {stops}",
            would=f"start {name} in the background{f' on {urls}' if urls else ''}",
        )


def shell(engine: Engine, settings: Settings, target: Target, *, tty: bool) -> Outcome:
    """`invoke shell`: a bash shell in the image; its outcome, whose exit status the task passes
    on."""
    user = container_user(settings)
    spec = shell_spec(settings, target, name=one_off_name(target, "shell"), user=user)
    require_engine_for(engine, target)
    ended = runtime.start(
        engine,
        spec,
        interactive=True,
        tty=tty,
        build_hint=target.build_hint(),
        prepare=lambda: (
            warn_if_stale(engine, settings, target),
            prepare_data_dir(engine, settings, user),
        ),
    )
    return ended.outcome


def stop(engine: Engine, settings: Settings, target: Target) -> None:
    """`invoke stop`: stop (gracefully) and remove the container that `invoke run --detach` started;
    another project's is left alone."""
    engine.require_running()
    found = _inspect_container(engine, settings, target.container)
    if found is None:
        print(f"{target.container} is not running", file=sys.stderr)
        return
    if not found[1]:
        print(f"left alone: {runtime.foreign_line(engine, target.container)}", file=sys.stderr)
        return
    # SIGTERM first: the app finishes what it is serving (docker's 10 s, then SIGKILL); --rm
    # removes it.
    engine.run([settings.docker, "stop", target.container], hide=True)
    gone = (None, "removing")  # --rm removes what stopped, and may still be at it
    if engine.container_state(target.container) not in gone:
        result = engine.run(remove_containers_command(settings, [target.container]), hide=True)
        if result.failed and engine.container_state(target.container) not in gone:
            raise UserError(f"could not remove {target.container}: {result.stderr.strip()}")
    engine.report(
        f"stopped and removed {target.container}", would=f"stop and remove {target.container}"
    )


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
        raise UserError(runtime.foreign_line(engine, target.container))
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
    with tempfile.TemporaryDirectory(prefix="invoke-container-test-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o755)  # the container's user reads the tools
        tools_dir = work_dir / "site-packages"
        pytest_lock = work_dir / "pytest.txt"
        pytest_lock.write_text(
            tool_requirements(
                (project_dir / "requirements-dev.txt").read_text(encoding="utf-8"), root="pytest"
            )
        )
        install = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        install += ["--require-hashes", "--no-deps", "--only-binary=:all:"]
        install += ["--target", str(tools_dir), "-r", str(pytest_lock)]
        installed = engine.run(install, env=settings.package_index, hide=True)
        if installed.failed:
            raise UserError(
                f"cannot install pytest for the container: {first_line(installed.stderr)}"
            )
        spec = container_test_spec(
            settings,
            target,
            user=container_user(settings),
            tools_dir=tools_dir,
            tensorflow_version=expected,
        )
        require_engine_for(engine, target)
        ended = runtime.start(
            engine,
            spec,
            stop_hint=f"`{command_line([settings.docker, 'stop', name])}`",
            build_hint=target.build_hint(),
            prepare=lambda: _make_folder(engine, settings.data_dir),
        )
    if ended.signal is not None:
        raise UserError(f"the container test was stopped on {ended.signal.name}; {name} is removed")
    if ended.outcome.failed:
        raise UserError(
            f"the container test failed in {target.image} (exit {ended.outcome.exited}); "
            "its report above says which test and why"
        )


def _make_folder(engine: Engine, folder: Path) -> None:
    if not folder.exists():
        engine.change(f"create {folder}", lambda: folder.mkdir(parents=True, exist_ok=True))


def clean(
    engine: Engine,
    settings: Settings,
    targets: list[Target],
    *,
    cache_volume: str,
    everything: bool = False,
) -> None:
    """`invoke clean`: this project's containers and networks, its images under IMAGE_TAG and its
    untagged images; with `everything`, `cache_volume` (pip's downloads for `invoke lock`) and the
    engine's unused build cache too.
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
            print(f"left alone: {runtime.foreign_line(engine, name)}", file=sys.stderr)
    images = []
    for image in dict.fromkeys(target.image for target in targets):
        ours = _image_is_ours(engine, settings, image)
        if ours is False:
            print(f"left alone: {runtime.foreign_line(engine, image, 'image')}", file=sys.stderr)
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
    networks = engine.query(
        [settings.docker, "network", "ls", *mine, "--format", "{{.Name}}"]
    ).stdout.split()
    commands = [remove_containers_command(settings, containers)] if containers else []
    commands += [[settings.docker, "network", "rm", *networks]] if networks else []
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
    removed += [f"network{'s' * (len(networks) > 1)} {', '.join(networks)}"] if networks else []
    removed += [f"image{'s' * (len(images) > 1)} {', '.join(images)}"] if images else []
    removed += [f"{len(untagged)} untagged image{'s' * (len(untagged) > 1)}"] if untagged else []
    removed += [f"the lock cache volume {name}" for name in volumes] + (
        ["the engine's unused build cache"] if everything else []
    )
    # What a task killed with SIGKILL left: a folder of secrets (an app's keys, an index's
    # credentials) in the temporary folder, whose process is gone. Quietly: it is no one's.
    engine.change("remove the secret files of tasks that are gone", remove_orphaned_folders)
    what = "; ".join(removed)
    engine.report(
        f"removed {what}" if removed else "nothing to remove",
        would=f"remove {what}" if removed else None,
    )
    if engine.dry:
        return
    # No "freed" figure: the engine says none for what `image rm` frees, and `system df` before
    # and after counts the whole engine (other projects' builds, layers the build cache holds).
    kept = f"kept: what you pushed to a registry, DATA_DIR ({settings.data_dir}), the locks"
    if not everything:
        kept += (
            f", the lock cache volume {cache_volume} and the build cache "
            "(`invoke clean --all` removes those)"
        )
    print(kept, file=sys.stderr)
