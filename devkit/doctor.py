"""`invoke doctor`: is this machine ready to build and run the images? One finding per check.

Each check answers with a verdict, what it saw, and how to fix what is wrong. Checks that need an
earlier one (the engine needs the CLI) are skipped when it failed, and say so. The tasks raise the
same errors one at a time; the doctor asks every question at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from devkit import baseimage, capabilities, host
from devkit.engine import CDI_NVIDIA_FIX, CDI_SPEC_DIRS, NVIDIA_FIX, Engine, cdi_nvidia_spec
from devkit.errors import UserError
from devkit.platforms import AMD64, ARM64
from devkit.settings import Settings, load_settings
from devkit.targets import resolve_target

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"

# Free space the engine needs, measured here: the CPU image is 1.3 GB and its build keeps about as
# much again in BuildKit's cache; the GPU image is 6.4 GB, its CUDA wheels 3.3 GB in pip's cache,
# and its build snapshots as much again.
CPU_BUILD_BYTES = 5 * 1000**3
GPU_BUILD_BYTES = 20 * 1000**3


@dataclass(frozen=True)
class Finding:
    verdict: str
    subject: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.verdict:<4}  {self.subject:<12}  {self.detail}"
        return f"{text}; fix: {self.fix}" if self.fix else text


@dataclass(frozen=True)
class Machine:
    """What the doctor is told about the host, so that every check is testable without one."""

    project_dir: Path
    environ: Mapping[str, str]
    host: str  # the platform Python sees, e.g. linux/amd64
    container_ids: Callable[
        [Settings], tuple[int, int] | None
    ]  # uid, gid of `invoke run`; None: mapped by Docker Desktop


def examine(machine: Machine, *, gpu: bool) -> Iterator[Finding]:
    """Every check, in order; a check whose prerequisite failed is skipped."""
    settings_finding, settings = check_settings(machine.project_dir, machine.environ)
    yield settings_finding
    engine = Engine(settings.docker if settings else (machine.environ.get("DOCKER") or "docker"))

    cli = check_cli(engine)
    yield cli
    engine_finding = (
        check_engine(engine) if cli.verdict == OK else skipped("engine", "needs the CLI")
    )
    yield engine_finding
    engine_up = engine_finding.verdict == OK
    yield check_buildkit(engine) if engine_up else skipped("BuildKit", "needs the engine")
    if engine.dialect.init_is_separate:
        yield check_init(engine) if engine_up else skipped("init", "needs the engine")
    # A project generated without the GPU image has no use for the NVIDIA runtime.
    if capabilities.present(machine.project_dir, "gpu"):
        yield check_nvidia(engine, gpu=gpu) if engine_up else skipped("NVIDIA", "needs the engine")
    engine_platform = engine.server_platform() if engine_up else None
    yield check_architecture(machine.host, engine_platform, gpu=gpu)
    if settings is None:
        for subject in ("port", "DATA_DIR", "disk", "base image", "base digest"):
            yield skipped(subject, "needs a valid .env")
        return
    # The CPU image as `invoke run` would start it: its platform and its container's name.
    cpu = resolve_target(
        settings, gpu=False, platform_flag=None, host=engine_platform or machine.host
    )
    yield check_port(settings, cpu.container, engine if engine_up else None)
    yield check_data_dir(settings, machine.container_ids(settings))
    yield check_disk(engine, gpu=gpu) if engine_up else skipped("disk", "needs the engine")
    platform = AMD64 if gpu else cpu.platform
    if not engine_up:
        yield skipped("base image", "needs the engine")
        yield skipped("base digest", "needs the engine")
        return
    # What a build starts from: BASE_IMAGE by the digest `invoke lock` pinned, where it did.
    base = baseimage.pinned(machine.project_dir, settings.base_image, platform)
    yield check_base_image(engine, base.reference if base else settings.base_image, platform)
    yield check_base_digest(engine, machine.project_dir, settings.base_image)


def report(machine: Machine, *, gpu: bool) -> int:
    """Print every finding as it comes; the number of failed checks."""
    broken = 0
    for finding in examine(machine, gpu=gpu):
        print(finding.line(), flush=True)
        broken += finding.verdict == FAIL
    return broken


def skipped(subject: str, reason: str) -> Finding:
    return Finding(SKIP, subject, f"not checked: {reason}")


def failed(subject: str, error: UserError) -> Finding:
    return Finding(FAIL, subject, error.problem, error.fix)


def check_settings(
    project_dir: Path, environ: Mapping[str, str]
) -> tuple[Finding, Settings | None]:
    dotenv = project_dir / ".env"
    try:
        settings = load_settings(project_dir, environ)
    except UserError as error:
        return Finding(
            FAIL, ".env", str(error), "correct it; .env.example explains every key"
        ), None
    if not dotenv.exists():
        return Finding(
            OK, ".env", "none: the defaults apply (copy .env.example to .env to change them)"
        ), settings
    keys = len(settings.app_env)
    return Finding(
        OK, ".env", f"read; every setting valid; {keys} key{'s' * (keys != 1)} for the app"
    ), settings


def check_cli(engine: Engine) -> Finding:
    try:
        found = engine.require_cli()
    except UserError as error:
        return failed("CLI", error)
    return Finding(OK, "CLI", f"{found}, version {engine.client_version() or 'unknown'}")


def check_engine(engine: Engine) -> Finding:
    try:
        version = engine.version()
    except UserError as error:
        return failed("engine", error)
    return Finding(OK, "engine", f"running, version {version}")


def check_buildkit(engine: Engine) -> Finding:
    try:
        buildx = engine.uses_buildx()
    except UserError as error:
        return failed("BuildKit", error)
    if engine.dialect.builder is not None:
        return Finding(OK, "BuildKit", engine.dialect.builder)
    if buildx:
        return Finding(OK, "BuildKit", "the buildx plugin builds with BuildKit")
    return Finding(
        OK, "BuildKit", "`docker build` with DOCKER_BUILDKIT=1, which `invoke build` sets"
    )


def check_init(engine: Engine) -> Finding:
    """The engine's `run --init` needs an init (catatonit), which not every package of it brings."""
    init = f"`{Path(engine.docker).name} run --init`"
    if (
        engine.query(
            [engine.docker, "info", "--format", "{{.Host.ServiceIsRemote}}"]
        ).stdout.strip()
        == "true"
    ):
        return Finding(
            OK,
            "init",
            f"a remote {engine.dialect.name} (a machine): its VM brings catatonit for --init",
        )
    paths = engine.dialect.init_paths()
    found = next((path for path in paths if Path(path).is_file()), None) or shutil.which(
        "catatonit"
    )
    if found is None:
        fix = (
            "install catatonit (Debian, Ubuntu: `sudo apt install catatonit`; "
            "Fedora: `sudo dnf install catatonit`)"
        )
        return Finding(
            FAIL,
            "init",
            f"no catatonit: {init}, which every task's container uses, cannot start",
            fix,
        )
    return Finding(OK, "init", f"{found}: the init of {init}")


def check_nvidia(engine: Engine, *, gpu: bool) -> Finding:
    if engine.dialect.gpus_by_cdi:
        return check_cdi(gpu=gpu)
    found = engine.runtimes()
    if "nvidia" not in found:
        needed = (
            "the GPU image cannot run here"
            if gpu
            else "only the GPU image needs it (`invoke doctor --gpu` to require it)"
        )
        detail = f"no NVIDIA runtime (runtimes: {', '.join(found) or 'none'}): {needed}"
        return Finding(FAIL if gpu else WARN, "NVIDIA", detail, NVIDIA_FIX)
    return Finding(OK, "NVIDIA", "the NVIDIA runtime is set up: the GPU image can run here")


def check_cdi(*, gpu: bool, spec_dirs: tuple[Path, ...] = CDI_SPEC_DIRS) -> Finding:
    """GPUs as CDI devices (`--device nvidia.com/gpu=all`) need the toolkit's CDI spec."""
    spec = cdi_nvidia_spec(spec_dirs)
    if spec is None:
        needed = (
            "the GPU image cannot run here"
            if gpu
            else "only the GPU image needs it (`invoke doctor --gpu` to require it)"
        )
        folders = " or ".join(str(folder) for folder in spec_dirs)
        detail = f"no CDI spec of NVIDIA GPUs in {folders}: {needed}"
        return Finding(FAIL if gpu else WARN, "NVIDIA", detail, CDI_NVIDIA_FIX)
    return Finding(
        OK,
        "NVIDIA",
        f"{spec} names the NVIDIA GPUs: the GPU image can run here (--device nvidia.com/gpu=all)",
    )


def check_architecture(host: str, engine_platform: str | None, *, gpu: bool) -> Finding:
    if engine_platform is not None and engine_platform != host:
        return Finding(
            WARN,
            "architecture",
            f"Python runs as {host} but the engine as {engine_platform}: "
            "the CPU image follows the engine",
            "use a Python built for this machine (on Apple Silicon: not under Rosetta)",
        )
    native = engine_platform or host
    if native == ARM64:
        detail = (
            f"{native}: the CPU image (tensorflow) runs natively; "
            f"the GPU image is {AMD64} only and cannot run here"
        )
        if gpu:
            return Finding(
                FAIL,
                "architecture",
                detail,
                "build the GPU image here if you like, "
                "and run it on a Linux x86-64 host with an NVIDIA GPU",
            )
        return Finding(OK, "architecture", detail)
    return Finding(
        OK,
        "architecture",
        f"{native}: the CPU image (tensorflow-cpu) and the GPU image both run natively",
    )


def check_port(settings: Settings, container: str, engine: Engine | None) -> Finding:
    where = f"HOST_PORT {settings.host_port} on {settings.host_address}"
    try:
        warning = host.probe_port(settings.host_address, settings.host_port)
    except UserError as error:
        if engine is not None and engine.container_state(container) == "running":
            return Finding(
                OK, "port", f"{where}: served by this project's running container {container}"
            )
        return failed("port", error)
    if warning is not None:
        return Finding(WARN, "port", warning)
    return Finding(OK, "port", f"{where}: free")


def check_data_dir(settings: Settings, ids: tuple[int, int] | None) -> Finding:
    path = settings.data_dir
    if not path.exists():
        return Finding(OK, "DATA_DIR", f"{path}: `invoke run` creates it")
    if ids is None:
        return Finding(OK, "DATA_DIR", f"{path}: exists; Docker Desktop maps its owner")
    try:
        host.require_writable_by(path, *ids)
    except UserError as error:
        return failed("DATA_DIR", error)
    return Finding(OK, "DATA_DIR", f"{path}: the container's user (uid {ids[0]}) can write it")


def check_disk(engine: Engine, *, gpu: bool) -> Finding:
    root = engine.storage_dir()
    if root is None or not Path(root).is_dir():
        return Finding(
            WARN,
            "disk",
            "the engine keeps its images off this machine (a VM or a remote host): not measured",
            "check the engine's disk size (Docker Desktop: Settings > Resources)",
        )
    free = shutil.disk_usage(root).free
    needed = GPU_BUILD_BYTES if gpu else CPU_BUILD_BYTES
    detail = (
        f"{free / 1000**3:.1f} GB free in {root}; "
        f"a {'GPU' if gpu else 'CPU'} build needs about {needed / 1000**3:.0f} GB"
    )
    if free < needed:
        return Finding(
            FAIL,
            "disk",
            detail,
            "free space: `docker image prune` and `docker builder prune` "
            "remove what no image needs",
        )
    return Finding(OK, "disk", detail)


def check_base_digest(engine: Engine, project_dir: Path, base_image: str) -> Finding:
    """The record pins BASE_IMAGE, and its tag still names the digests pinned (read only, as
    above); a tag that moved is a warning: builds keep the pinned digest until `invoke lock
    --upgrade`."""
    subject = "base digest"
    reason = baseimage.stale_reason(project_dir, base_image)
    if reason == baseimage.MISSING:
        return Finding(
            WARN,
            subject,
            f"{baseimage.RECORD} is not written yet: builds take the digest its registry names at"
            " the time",
            "`invoke lock` pins it (commit the file)",
        )
    if reason is not None:
        return Finding(
            WARN,
            subject,
            f"{baseimage.RECORD} does not pin BASE_IMAGE ({reason}): builds take the digest its"
            " registry names at the time",
            "`invoke lock` pins it",
        )
    pins, _ = baseimage.read(project_dir)
    if "@" in base_image:
        return Finding(OK, subject, f"BASE_IMAGE {base_image} is given by digest")
    try:
        now = baseimage.resolve(engine, base_image, may_pull=False)
    except UserError as error:
        return Finding(WARN, subject, f"not checked whether {base_image} moved: {error.problem}")
    if not now:
        return skipped(
            subject, "Podman names the digest of an image of one platform only once it is pulled"
        )
    moved = [
        f"{platform} {baseimage.short(digest)} -> {baseimage.short(now[platform])}"
        for platform, digest in sorted(pins.digests.items())
        if platform in now and now[platform] != digest
    ]
    if moved:
        return Finding(
            WARN,
            subject,
            f"{base_image} has moved since `invoke lock` ({', '.join(moved)}); builds keep the"
            " pinned digest",
            "`invoke lock --upgrade` takes the new one (and every package's newest)",
        )
    return Finding(
        OK,
        subject,
        f"{base_image} pinned for {', '.join(sorted(pins.digests))}; the tag has not moved",
    )


def check_base_image(engine: Engine, base_image: str, platform: str) -> Finding:
    """Read only: the engine's own image, else the registry's manifest. Never a pull, which on a
    shared engine would re-point a tag that others use."""
    local = engine.image_platform(base_image)
    if local == platform:
        return Finding(OK, "base image", f"{base_image} for {platform}: pulled")
    fix = (
        "check the name and your registry access (`docker login`), "
        "or set BASE_IMAGE in .env (a mirror your network reaches)"
    )
    try:
        platforms = engine.registry_platforms(base_image)
    except UserError as error:
        return Finding(FAIL, "base image", f"BASE_IMAGE {error.problem}", fix)
    if platforms and platform not in platforms:
        return Finding(
            FAIL,
            "base image",
            f"BASE_IMAGE {base_image} has no {platform} variant (only {', '.join(platforms)})",
            fix,
        )
    here = f" (the engine has its {local} variant)" if local else ""
    return Finding(
        WARN,
        "base image",
        f"{base_image} for {platform}: not pulled yet{here}; `invoke build` pulls it",
    )
