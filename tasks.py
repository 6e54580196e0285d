"""Build and run the project's TensorFlow images. `invoke --list` shows the tasks, `invoke --help TASK` one.

Settings come from `.env` (see `.env.example`); invoke's own `--dry` prints the commands without
running them, e.g. `invoke --dry build --gpu`.
"""

from __future__ import annotations

import datetime
import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from platform import system as host_system

from invoke import Exit, task

from devkit import doctor as doctor_checks
from devkit import engine
from devkit.commands import (
    PROXY_VARIABLES,
    build_command,
    command_line,
    lock_command,
    manifest_commands,
    multi_arch_image,
    parse_build_args,
    parse_command,
    pinned_tensorflow,
    pip_compile_reason,
    pip_config,
    push_command,
    registry_image,
    remove_containers_command,
    remove_images_command,
    run_as_user,
    run_command,
    shell_command,
    smoke_test_command,
    stop_command,
    tag_command,
    untag_command,
    user_ids,
)
from devkit.config import Settings, load_settings
from devkit.errors import UserError
from devkit.locks import PIP_COMPILE_OPTIONS, Lock, is_current, select_locks, tool_requirements, with_footer
from devkit.platforms import host_platform, normalize_platform
from devkit.targets import Target, every_target, resolve_target

PROJECT_DIR = Path(__file__).resolve().parent

_HELP_GPU = "the GPU image (Dockerfile.gpu, tag <IMAGE_TAG>-gpu, linux/amd64) instead of the CPU image"
_HELP_PLATFORM = "linux/amd64 or linux/arm64; default: PLATFORM from .env, else this host's own"


def _one_line_errors(body):
    """Turn a UserError into one line on stderr and exit status 1, never a traceback."""

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        try:
            return body(c, *args, **kwargs)
        except UserError as error:
            raise Exit(f"error: {error}", code=1) from None

    return wrapper


def _dry(c) -> bool:
    return bool(c.config.run.dry)


def _settings_and_target(gpu: bool, platform_flag: str | None) -> tuple[Settings, Target]:
    settings = load_settings(PROJECT_DIR)
    return settings, resolve_target(settings, gpu=gpu, platform_flag=platform_flag, host=engine.native_platform(settings.docker))


def _docker(c, argv: list[str], *, env: dict[str, str] | None = None, stdin: bool = False, tty: bool = False, hide: bool = False):
    """Run a docker command through invoke (so `--dry` prints it), never raising on failure.

    stdin: forward our input to it (a shell). Otherwise none is mirrored, so that invoke's Ctrl-C
    forwarding has an open pipe to write to even where our own stdin is closed (CI, nohup, an IDE).
    tty: run it in a pseudo-terminal, as `docker run --tty` needs.
    """
    return c.run(command_line(argv), env=env or {}, pty=tty, in_stream=None if stdin or tty else False, hide=hide, warn=True)


def _git(*args: str) -> str:
    try:
        result = subprocess.run(["git", "-C", str(PROJECT_DIR), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _proxies() -> tuple[str, ...]:
    """The proxy variables set here, to pass on by name."""
    return tuple(name for name in PROXY_VARIABLES if os.environ.get(name))


def _source_date() -> str:
    """The time of the checked-out commit, as reproducible builds date an image (SOURCE_DATE_EPOCH).

    Not the wall clock: a rebuild of unchanged sources then yields the very same image, instead of
    a new one that leaves the previous as an untagged `<none>` image on every build.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or _git("log", "-1", "--format=%ct")
    moment = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch.isdigit() else datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _image_labels(target: Target) -> dict[str, str]:
    """Build arguments behind the image's OCI labels: source, revision, creation time, TensorFlow."""
    return {
        "TENSORFLOW_VERSION": pinned_tensorflow((PROJECT_DIR / target.lock.output).read_text(encoding="utf-8")),
        "SOURCE_URL": _git("config", "--get", "remote.origin.url"),
        "REVISION": _git("rev-parse", "HEAD"),
        "CREATED": _source_date(),
    }


@task(
    iterable=["build_arg"],
    help={
        "gpu": _HELP_GPU,
        "platform": _HELP_PLATFORM + " (the GPU image: linux/amd64 only)",
        "no-cache": "rebuild every layer (the pip download cache is kept)",
        "build-arg": "NAME=VALUE for the Dockerfile, repeatable: KEEP_TF_HEADERS=1 keeps TensorFlow's C++ headers, "
        "STRIP_TF_LIBRARIES=0 its symbol tables",
    },
)
@_one_line_errors
def build(c, gpu=False, platform=None, no_cache=False, build_arg=None):
    """Build the CPU image from Dockerfile, or the GPU image from Dockerfile.gpu, with BuildKit."""
    settings, target = _settings_and_target(gpu, platform)
    build_args = parse_build_args(build_arg or [])
    if not _dry(c):
        engine.require_engine(settings.docker)
    try:
        buildx = engine.uses_buildx(settings.docker)
    except UserError:
        # `--dry` only prints; with no usable CLI it shows the classic form.
        if not _dry(c):
            raise
        buildx = False
    if not (PROJECT_DIR / target.lock.output).exists():
        raise UserError(f"{target.lock.output} is missing: {target.image} installs it; run `invoke lock`")
    if not _dry(c):
        # Here rather than in the middle of the build's output: a misspelt or unreachable BASE_IMAGE is one line.
        engine.pull_base_image(settings.docker, settings.base_image, target.platform)
    if not _dry(c) and not target.native:
        engine.require_platform_support(settings.docker, settings.base_image, target.platform)
        print(f"building {target.image} for {target.platform}: not this host's platform, so it runs under emulation", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="invoke-build-") as secrets:
        pip_config_file = None
        if settings.package_index:
            pip_config_file = Path(secrets) / "pip.conf"
            pip_config_file.touch(mode=0o600)
            pip_config_file.write_text(pip_config(settings.package_index), encoding="utf-8")
        argv = build_command(
            settings,
            target,
            buildx=buildx,
            no_cache=no_cache,
            labels=_image_labels(target),
            proxies=_proxies(),
            build_args=build_args,
            pip_config_file=pip_config_file,
        )
        result = _docker(c, argv, env={"DOCKER_BUILDKIT": "1"})
    if result.failed:
        raise UserError(f"building {target.image} failed (exit {result.exited}); the build's output above says why")


@task(
    help={
        "gpu": _HELP_GPU + "; needs the NVIDIA Container Toolkit",
        "platform": _HELP_PLATFORM,
        "detach": "run in the background; `invoke stop` stops it",
        "cmd": 'a command instead of the image\'s default, e.g. --cmd "python -m app.train"',
        "read-only": "a read-only root filesystem: only DATA_DIR and an in-memory /tmp are writable",
    }
)
@_one_line_errors
def run(c, gpu=False, platform=None, detach=False, cmd=None, read_only=False):
    """Run the image: HOST_PORT published, DATA_DIR at /app/data, the app's .env keys; Ctrl-C stops and removes it.

    The container runs as you (as root only where you and DATA_DIR's owner both are), without Linux
    capabilities and with no-new-privileges.
    """
    settings, target = _settings_and_target(gpu, platform)
    command = parse_command(cmd) if cmd is not None else None
    tty = sys.stdin.isatty() and not detach
    user = _container_user(settings)
    argv = run_command(settings, target, user=user, detach=detach, tty=tty, read_only=read_only, command=command)
    if not _dry(c):
        _require_engine_for(settings, target)
        _require_not_running(settings, target)
        engine.require_free_port(settings.host_address, settings.host_port)
        _prepare_data_dir(settings, user)
        print(
            f"serving {target.image} on http://{settings.host_address}:{settings.host_port} (DATA_DIR {settings.data_dir})", file=sys.stderr
        )
    try:
        result = _docker(c, argv, env=settings.app_env, tty=tty)
    finally:
        # A container that did not start, or was interrupted half-way, is removed all the same.
        if not _dry(c) and not detach:
            _remove_container(settings, target.container)
    if result.failed:
        if detach:
            _remove_container(settings, target.container)
        # 130: the container ended on Ctrl-C, which is how a foreground run is meant to stop.
        if result.exited != 130:
            raise UserError(f"{target.container} exited with status {result.exited}; its output above says why")
    elif detach:
        print(f"{target.container} runs in the background; `invoke stop{' --gpu' if gpu else ''}` stops it", file=sys.stderr)


def _container_user(settings: Settings) -> str | None:
    """The `--user` of the project's containers: the caller, or for root the user behind sudo or DATA_DIR's owner (see `run_as_user`)."""
    if not hasattr(os, "getuid"):
        return None  # Windows: Docker Desktop maps ownership
    sudo = (os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", ""))
    owner = settings.data_dir.stat() if settings.data_dir.is_dir() else None
    return run_as_user(
        host_system(),
        os.getuid(),
        os.getgid(),
        sudo_caller=(int(sudo[0]), int(sudo[1])) if all(part.isdigit() for part in sudo) else None,
        data_dir_owner=(owner.st_uid, owner.st_gid) if owner else None,
    )


def _container_ids(settings: Settings) -> tuple[int, int] | None:
    """uid and gid that files written by the container get on this host; None where Docker Desktop maps them."""
    return user_ids(_container_user(settings)) if host_system() == "Linux" else None


def _prepare_data_dir(settings: Settings, user: str | None) -> None:
    """DATA_DIR exists, and the container's user can write it: a folder made here is made theirs."""
    missing = not settings.data_dir.exists()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if host_system() != "Linux":
        return
    ids = user_ids(user)
    if missing and os.geteuid() == 0:
        os.chown(settings.data_dir, *ids)
    engine.require_writable_by(settings.data_dir, *ids)


def _require_engine_for(settings: Settings, target: Target) -> None:
    """An engine, for the GPU image its NVIDIA runtime, for another architecture's image emulation:
    checked before anything is created."""
    engine.require_engine(settings.docker)
    if target.gpu:
        engine.require_nvidia_runtime(settings.docker)
    if not target.native and engine.image_exists(settings.docker, target.image):
        engine.require_platform_support(settings.docker, target.image, target.platform)


def _require_not_running(settings: Settings, target: Target) -> None:
    """No container of this name runs; a stopped leftover of a crash is removed."""
    state = engine.container_state(settings.docker, target.container)
    if state == "running":
        raise UserError(f"{target.container} is already running; `invoke stop{' --gpu' if target.gpu else ''}` stops it")
    if state is not None:
        _remove_container(settings, target.container)


def _remove_container(settings: Settings, container: str) -> None:
    if engine.container_state(settings.docker, container) is not None:
        subprocess.run(stop_command(settings, container), capture_output=True, check=False)


@task(help={"gpu": "stop the GPU image's container", "platform": _HELP_PLATFORM})
@_one_line_errors
def stop(c, gpu=False, platform=None):
    """Stop and remove the container that `invoke run --detach` started."""
    settings, target = _settings_and_target(gpu, platform)
    if not _dry(c):
        engine.require_engine(settings.docker)
        if engine.container_state(settings.docker, target.container) is None:
            print(f"{target.container} is not running", file=sys.stderr)
            return
    result = _docker(c, stop_command(settings, target.container), hide=True)
    if result.failed:
        raise UserError(f"could not remove {target.container}: {result.stderr.strip()}")
    if not _dry(c):
        print(f"stopped and removed {target.container}", file=sys.stderr)


@task(help={"gpu": _HELP_GPU + "; needs the NVIDIA Container Toolkit", "platform": _HELP_PLATFORM})
@_one_line_errors
def smoke_test(c, gpu=False, platform=None):
    """Run the TensorFlow smoke test (tests/container) inside the built image; `nox -s container_test` builds first.

    pytest is mounted into the container for the run, never installed in the image.
    """
    settings, target = _settings_and_target(gpu, platform)
    expected = pinned_tensorflow((PROJECT_DIR / target.lock.output).read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="invoke-smoke-test-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o755)  # the container's user reads the tools
        tools_dir = work_dir / "site-packages"
        pytest_lock = work_dir / "pytest.txt"
        pytest_lock.write_text(tool_requirements((PROJECT_DIR / "requirements-dev.txt").read_text(encoding="utf-8"), root="pytest"))
        install = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--require-hashes", "--no-deps"]
        install += ["--only-binary=:all:", "--target", str(tools_dir), "-r", str(pytest_lock)]
        installed = c.run(command_line(install), env=settings.package_index, hide=True, warn=True, in_stream=False)
        if installed.failed:
            raise UserError(f"cannot install pytest for the container: {pip_compile_reason(installed.stderr)}")
        argv = smoke_test_command(
            settings,
            target,
            user=_container_user(settings),
            tests_dir=PROJECT_DIR / "tests" / "container",
            tools_dir=tools_dir,
            tensorflow_version=expected,
        )
        if not _dry(c):
            _require_engine_for(settings, target)
            if not engine.image_exists(settings.docker, target.image):
                raise UserError(f"there is no image {target.image}; `invoke build{' --gpu' if gpu else ''}` makes it")
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            result = _docker(c, argv, env=settings.app_env)
        finally:
            if not _dry(c):
                _remove_container(settings, target.test_container)
    if result.failed:
        raise UserError(f"the smoke test failed in {target.image} (exit {result.exited}); its report above says which test and why")


@task(help={"gpu": _HELP_GPU, "platform": _HELP_PLATFORM})
@_one_line_errors
def shell(c, gpu=False, platform=None):
    """Open a bash shell in the image, with DATA_DIR at /app/data and the app's .env keys."""
    settings, target = _settings_and_target(gpu, platform)
    tty = sys.stdin.isatty()
    user = _container_user(settings)
    argv = shell_command(settings, target, user=user, tty=tty)
    if not _dry(c):
        _require_engine_for(settings, target)
        _prepare_data_dir(settings, user)
    result = _docker(c, argv, env=settings.app_env, stdin=True, tty=tty)
    if result.failed:
        # The shell's own exit status (or docker's, when it could not start), for scripts that pipe into it.
        raise Exit(code=result.exited)


@task(
    iterable=["platform"],
    help={
        "gpu": "push the GPU image, as <REGISTRY>/<IMAGE_NAME>:<IMAGE_TAG>-gpu",
        "platform": "a CPU image to push, repeatable: `--platform linux/amd64 --platform linux/arm64` publishes both "
        "under one multi-architecture tag; default: PLATFORM from .env, else this host's own",
    },
)
@_one_line_errors
def push(c, gpu=False, platform=None):
    """Push the built images to REGISTRY: the CPU images as one multi-architecture <IMAGE_TAG>, or the GPU image.

    Each CPU image also goes out as <IMAGE_TAG>-<arch>, which the multi-architecture tag lists: a Mac
    and a Linux server pull the same name and each gets its own. Run `docker login` first where the
    registry asks for credentials.
    """
    settings = load_settings(PROJECT_DIR)
    published = multi_arch_image(settings)
    host = engine.native_platform(settings.docker)
    requested = [resolve_target(settings, gpu=gpu, platform_flag=name, host=host) for name in platform or [None]]
    targets = list({target.image: target for target in requested}.values())
    if not _dry(c):
        # Every image is checked before the first goes out: no half-published set.
        engine.require_engine(settings.docker)
        for target in targets:
            _require_image_for(settings, target)
    pushed = [_push_image(c, settings, target) for target in targets]
    if not gpu:
        _publish_manifest_list(c, settings, published, pushed)
    if not _dry(c):
        what = pushed[0] if gpu else f"{published} for {', '.join(target.platform for target in targets)}"
        print(f"pushed {what}", file=sys.stderr)


def _push_image(c, settings: Settings, target: Target) -> str:
    """Push one image under its name in REGISTRY; that name."""
    name = registry_image(settings, target)
    _docker(c, tag_command(settings, target.image, name), hide=True)
    try:
        result = _docker(c, push_command(settings, name))
    finally:
        # Only the registry's name goes: the image keeps its own tag.
        _docker(c, untag_command(settings, name), hide=True)
    if result.failed:
        login = f"`docker login {settings.registry.split('/')[0]}` if it needs credentials"
        raise UserError(f"pushing {name} failed: {engine.first_line(result.stderr)}", login)
    return name


def _publish_manifest_list(c, settings: Settings, published: str, images: list[str]) -> None:
    """`published` becomes a manifest list of the pushed per-architecture `images`."""
    try:
        insecure = engine.registry_is_insecure(settings.docker, settings.registry)
    except UserError:
        if not _dry(c):
            raise
        insecure = False  # `--dry` without a CLI: shown for a registry served over TLS
    drop_draft, create, publish = manifest_commands(settings, published, images, insecure=insecure)
    _docker(c, drop_draft, hide=True)  # fails where there is no draft, as there should not be
    for argv in (create, publish):
        result = _docker(c, argv, hide=True)
        if result.failed:
            raise UserError(
                f"publishing {published} failed: {engine.first_line(result.stderr)}",
                "the per-architecture tags went out; run `invoke push` again",
            )


def _require_image_for(settings: Settings, target: Target) -> None:
    """The image is built, and for its own platform (a `docker run --platform` elsewhere may re-point a tag)."""
    found = engine.image_platform(settings.docker, target.image)
    rebuild = f"`invoke build{' --gpu' if target.gpu else ''}{'' if target.native else f' --platform {target.platform}'}`"
    if found is None:
        raise UserError(f"there is no image {target.image}", f"{rebuild} makes it")
    if found != target.platform:
        raise UserError(f"{target.image} is a {found} image, not {target.platform}", f"{rebuild} rebuilds it")


@task
@_one_line_errors
def clean(c):
    """Remove the project's containers and images: <IMAGE_NAME>:<IMAGE_TAG>, its -gpu and other-architecture tags.

    Never DATA_DIR, the locks, or BuildKit's cache, so the next build is fast again
    (`docker builder prune` empties that cache).
    """
    settings = load_settings(PROJECT_DIR)
    targets = every_target(settings, host=engine.native_platform(settings.docker))
    containers = [name for target in targets for name in (target.container, target.test_container)]
    images = [target.image for target in targets]
    if not _dry(c):
        engine.require_engine(settings.docker)
        containers = [name for name in containers if engine.container_state(settings.docker, name) is not None]
        images = [image for image in images if engine.image_exists(settings.docker, image)]
    commands = [remove_containers_command(settings, containers)] if containers else []
    commands += [remove_images_command(settings, images)] if images else []
    for argv in commands:
        result = _docker(c, argv, hide=True)
        if result.failed:
            raise UserError(f"could not remove everything: {engine.first_line(result.stderr)}")
    if not _dry(c):
        removed = [*containers, *images]
        print(f"removed {', '.join(removed)}" if removed else "nothing to remove", file=sys.stderr)


@task(help={"gpu": "also require what the GPU image needs to run: the NVIDIA runtime, an x86-64 host, more disk"})
@_one_line_errors
def doctor(c, gpu=False):
    """Check this machine for `invoke build` and `invoke run`: one line per check, with a fix for what is wrong.

    Exits 1 when something they need is broken; warnings (no NVIDIA runtime for a CPU project) do not count.
    """
    machine = doctor_checks.Machine(project_dir=PROJECT_DIR, environ=os.environ, host=host_platform(), container_ids=_container_ids)
    broken = 0
    for finding in doctor_checks.examine(machine, gpu=gpu):
        print(finding.line(), flush=True)
        broken += finding.verdict == doctor_checks.FAIL
    if broken:
        raise UserError(f"{broken} check{'s' * (broken > 1)} failed", "fix what the lines marked FAIL say, then run `invoke doctor` again")


@task(
    iterable=["upgrade_package"],
    help={
        "gpu": "only the GPU lock (requirements-gpu.txt)",
        "platform": "only the CPU lock of this platform: linux/amd64 (requirements.txt) or linux/arm64 (requirements-arm64.txt)",
        "dev": "only the host tools' lock (requirements-dev.txt), compiled on this machine",
        "upgrade": "let every package move to its newest allowed version (default: keep the pins, add what is new)",
        "upgrade-package": "let this package move to its newest allowed version; repeat for more, or NAME==VERSION",
        "check": "change nothing; exit 1 naming every lock that no longer matches its .in files",
    },
)
@_one_line_errors
def lock(c, gpu=False, platform=None, dev=False, upgrade=False, upgrade_package=None, check=False):
    """Compile the .in files into hash-pinned locks, each inside BASE_IMAGE for its platform.

    Only locks whose inputs changed are compiled, unless --upgrade or --upgrade-package asks for more.
    A failed compile leaves every lock as it was.
    """
    chosen = select_locks(gpu=gpu, platform=normalize_platform(platform) if platform else None, dev=dev)
    if check:
        stale = [entry.output for entry in chosen if not is_current(PROJECT_DIR, entry)]
        if stale:
            raise UserError(f"out of date: {', '.join(stale)}; run `invoke lock` to compile them")
        print(f"up to date: {', '.join(entry.output for entry in chosen)}", file=sys.stderr)
        return
    settings = load_settings(PROJECT_DIR)
    packages = tuple(upgrade_package or ())
    for entry in chosen:
        if not (upgrade or packages) and is_current(PROJECT_DIR, entry):
            print(f"{entry.output} is up to date", file=sys.stderr)
            continue
        print(f"locking {entry.describe()}", file=sys.stderr)
        text = _compile_lock(c, settings, entry, upgrade=upgrade, packages=packages)
        if text is not None:
            _write_atomically(PROJECT_DIR / entry.output, with_footer(PROJECT_DIR, entry, text))


def _compile_lock(c, settings: Settings, entry: Lock, *, upgrade: bool, packages: tuple[str, ...]) -> str | None:
    """pip-compile's output for `entry`, or None under --dry; a failure is one UserError."""
    current = PROJECT_DIR / entry.output
    with tempfile.TemporaryDirectory(prefix="invoke-lock-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o755)  # the lock container's user reads it
        if current.exists():
            (work_dir / "current.txt").write_bytes(current.read_bytes())
        if entry.platform is None:
            result, text = _compile_on_host(c, entry, work_dir / "current.txt", upgrade=upgrade, packages=packages)
        else:
            result, text = _compile_in_base_image(c, settings, entry, work_dir, upgrade=upgrade, packages=packages)
    if result.failed:
        reason = pip_compile_reason(result.stderr).replace("\n", "; ")
        raise UserError(f"pip-compile failed for {entry.output}; every lock is unchanged: {reason}")
    return None if _dry(c) else text


def _compile_on_host(c, entry: Lock, output: Path, *, upgrade: bool, packages: tuple[str, ...]):
    """The host tools fit the host: pip-compile runs here, on a copy of the lock."""
    argv = [sys.executable, "-m", "piptools", "compile", *PIP_COMPILE_OPTIONS]
    argv += ["--upgrade"] if upgrade else []
    argv += [arg for package in packages for arg in ("--upgrade-package", package)]
    argv += ["--output-file", str(output), entry.source]
    with c.cd(str(PROJECT_DIR)):
        result = c.run(command_line(argv), env={"CUSTOM_COMPILE_COMMAND": "invoke lock"}, hide=True, warn=True, in_stream=False)
    return result, output.read_text(encoding="utf-8") if result.ok and output.exists() else None


def _compile_in_base_image(c, settings: Settings, entry: Lock, work_dir: Path, *, upgrade: bool, packages: tuple[str, ...]):
    """pip-compile in BASE_IMAGE for the lock's platform; the lock comes back on stdout."""
    (work_dir / "tools.txt").write_text(tool_requirements((PROJECT_DIR / "requirements-dev.txt").read_text(encoding="utf-8")))
    argv = lock_command(
        settings,
        entry,
        work_dir=work_dir,
        cache_volume=f"{settings.image_name.replace('/', '-')}-pip-cache",
        upgrade=upgrade,
        upgrade_packages=packages,
        proxies=_proxies(),
    )
    if not _dry(c):
        engine.require_engine(settings.docker)
        engine.pull_base_image(settings.docker, settings.base_image, str(entry.platform))
    result = c.run(command_line(argv), env=settings.package_index, hide=True, warn=True, in_stream=False)
    return result, result.stdout


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` in one step, so an interrupted write never leaves half a lock."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8", newline="\n")
    os.replace(partial, path)


@task(
    help={
        "workers": "training pods that train one model together (default 1)",
        "gpu": "the GPU image (<IMAGE_TAG>-gpu) and a GPU (nvidia.com/gpu) per pod",
        "kserve": "also a KServe InferenceService for the SavedModels on the data volume (needs KServe on the cluster)",
    }
)
@_one_line_errors
def k8s(c, workers="1", gpu=False, kserve=False):
    """Print the Kubernetes manifests (deploy/k8s/) for the image `invoke push` publishes: `invoke k8s | kubectl apply -f -`.

    An Indexed Job of N training workers and its headless Service, the data volume, the serving
    Deployment with its Service, autoscaler and disruption budget.
    """
    from devkit import kubernetes

    sys.stdout.write(kubernetes.manifests(load_settings(PROJECT_DIR), workers=workers, gpu=gpu, kserve=kserve))
