"""Questions to the container engine and the host, each answered or turned into one clear error."""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import shlex
import shutil
import socket
import stat
import subprocess
from pathlib import Path

from devkit.errors import UserError
from devkit.platforms import arch, host_platform, platform_of_machine

# The first docker CLI release whose `docker build` needs the buildx plugin for BuildKit.
_BUILDX_REQUIRED_FROM = 23


def _query(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise _no_cli(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise UserError(f"`{' '.join(argv[:3])}` did not answer in {timeout:.0f} s", "restart the engine if it hangs") from None


def _no_cli(docker: str) -> UserError:
    return UserError(f"DOCKER={docker!r}: no such command", "install Docker, or set DOCKER to the path of a docker CLI")


def first_line(text: str) -> str:
    """The first line of a command's error output that says anything: the reason, without the noise below it."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")


def require_cli(docker: str) -> str:
    """The container CLI exists; its path."""
    found = shutil.which(docker)
    if found is None:
        raise _no_cli(docker)
    return found


def require_engine(docker: str) -> str:
    """The CLI reaches a running engine; its version."""
    require_cli(docker)
    result = _query([docker, "version", "--format", "{{.Server.Version}}"])
    if result.returncode != 0 or not result.stdout.strip():
        raise UserError(
            f"the container engine is not running or not reachable ({first_line(result.stderr)})",
            "start Docker Desktop, or `sudo systemctl start docker` on Linux",
        )
    return result.stdout.strip()


def client_version(docker: str) -> str:
    return _query([docker, "version", "--format", "{{.Client.Version}}"]).stdout.strip()


def server_platform(docker: str) -> str | None:
    """The platform the engine runs natively, e.g. linux/arm64 for Docker Desktop on Apple Silicon
    even when asked by an x86-64 Python under Rosetta; None where it does not say or is no Linux."""
    answer = _query([docker, "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"]).stdout.strip()
    system, _, machine = answer.partition("/")
    try:
        return platform_of_machine(machine) if system == "linux" else None
    except UserError:
        return None


def native_platform(docker: str) -> str:
    """The platform whose images run natively here: the engine's own where it answers, else Python's view.

    They differ where Python itself is emulated, as an x86-64 Python under Rosetta on Apple Silicon
    is: Docker Desktop still runs linux/arm64 there, and the containers are what must run natively.
    Without an answer (no CLI, engine stopped, `--dry`), the machine Python runs on decides.
    """
    try:
        answer = server_platform(docker)
    except UserError:
        answer = None
    return host_platform(answer)


def uses_buildx(docker: str) -> bool:
    """True where the buildx plugin exists; False where the classic `docker build` does BuildKit.

    Refuses a CLI that has neither: from version 23 on, `docker build` with BuildKit needs buildx.
    """
    if _query([docker, "buildx", "version"]).returncode == 0:
        return True
    version = client_version(docker)
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) >= _BUILDX_REQUIRED_FROM:
        raise UserError(
            f"{docker} (CLI {version}) needs the buildx plugin to build with BuildKit, and has none",
            "install it (Debian/Ubuntu: docker-buildx-plugin; Docker Desktop ships it), or set DOCKER to a CLI that has it",
        )
    return False


def require_nvidia_runtime(docker: str) -> None:
    """The engine can start GPU containers (`--gpus all`): the NVIDIA Container Toolkit is set up."""
    found = runtimes(docker)
    if "nvidia" not in found:
        raise UserError(f"--gpu: this engine has no NVIDIA runtime (runtimes: {', '.join(found) or 'none'})", NVIDIA_FIX)


NVIDIA_FIX = (
    "install the NVIDIA driver and the NVIDIA Container Toolkit, then `sudo nvidia-ctk runtime configure --runtime=docker` "
    "and restart Docker"
)


def runtimes(docker: str) -> list[str]:
    """The container runtimes the engine offers (`runc`; `nvidia` once the NVIDIA toolkit is set up)."""
    result = _query([docker, "info", "--format", "{{json .Runtimes}}"])
    try:
        return sorted(json.loads(result.stdout or "{}") or {})
    except json.JSONDecodeError:
        return []


def storage_dir(docker: str) -> str | None:
    """Where the engine keeps images and build cache (a path on the engine's machine)."""
    return _query([docker, "info", "--format", "{{.DockerRootDir}}"]).stdout.strip() or None


def container_state(docker: str, name: str) -> str | None:
    """`running`, `exited`, ... for the container called `name`, or None when there is none."""
    result = _query([docker, "container", "inspect", "--format", "{{.State.Status}}", name])
    return result.stdout.strip() or None if result.returncode == 0 else None


def image_exists(docker: str, image: str) -> bool:
    """The engine holds an image under this reference."""
    return image_platform(docker, image) is not None


def image_platform(docker: str, image: str) -> str | None:
    """`linux/arm64`, ... for a local image; None when there is no such image."""
    result = _query([docker, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image])
    return result.stdout.strip() if result.returncode == 0 else None


def registry_is_insecure(docker: str, registry: str) -> bool:
    """The engine reaches `registry` over plain HTTP, as it does loopback registries and those it lists
    as insecure: `docker manifest` must then be told so, where `docker push` knows it by itself."""
    config = _query([docker, "info", "--format", "{{json .RegistryConfig}}"]).stdout
    try:
        registry_config = json.loads(config or "{}") or {}
    except json.JSONDecodeError:
        registry_config = {}
    return _insecure_by_config(registry.split("/", 1)[0], registry_config)


def _insecure_by_config(host: str, registry_config: dict) -> bool:
    """What the engine decides for `host` (name[:port]) from its RegistryConfig (`docker info`)."""
    index = (registry_config.get("IndexConfigs") or {}).get(host)
    if index is not None:
        return not index.get("Secure", True)
    name = host.partition(":")[0]  # REGISTRY's form (config.py): a name or IPv4 address, and a port
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    cidrs = registry_config.get("InsecureRegistryCIDRs") or []
    return address.is_loopback or any(address in ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def require_free_port(address: str, port: int) -> None:
    """Nothing listens on address:port yet, so publishing it will not fail half-way."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As servers (and Docker's port proxy) bind: a port that only has connections in TIME_WAIT
        # (from a container stopped a moment ago) is free; one that something listens on is not.
        # Not on Windows, where this option would let the probe share a port in use.
        if os.name != "nt":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(f"HOST_PORT {port} on {address} is already in use", "stop what uses it, or set HOST_PORT in .env") from None
            raise UserError(f"cannot publish {address}:{port}: {error.strerror}") from None


def require_writable_by(path: Path, uid: int, gid: int) -> None:
    """The container's user (uid:gid) may create files in the host folder `path` (a bind mount keeps numeric owners)."""
    info = path.stat()
    if info.st_uid == uid:
        needed = stat.S_IWUSR | stat.S_IXUSR
    elif info.st_gid == gid:
        needed = stat.S_IWGRP | stat.S_IXGRP
    else:
        needed = stat.S_IWOTH | stat.S_IXOTH
    if info.st_mode & needed != needed:
        raise UserError(
            f"DATA_DIR {path} belongs to uid {info.st_uid}, and the container's user (uid {uid}) cannot write it",
            f"`sudo chown -R {uid}:{gid} {shlex.quote(str(path))}`, or set DATA_DIR to a folder that user can write",
        )


def require_platform_support(docker: str, image: str, platform: str) -> None:
    """The engine runs `platform` programs, natively or emulated (QEMU registered with binfmt_misc),
    as building or running an image for another architecture needs; `image` is one for `platform`."""
    probe = _query([docker, "run", "--rm", "--platform", platform, "--entrypoint", "true", image], timeout=120)
    if probe.returncode != 0 and "exec format error" in probe.stderr:
        raise UserError(
            f"this engine cannot run {platform} programs, so it can neither build nor run a {platform} image",
            f"enable emulation once: `docker run --privileged --rm tonistiigi/binfmt --install {arch(platform)}` "
            "(Docker Desktop has it built in)",
        )


def pull_base_image(docker: str, image: str, platform: str) -> None:
    """Make the local `image` tag the variant for `platform`, as `docker run --platform` needs.

    An engine that cannot pull (an image only built locally, no network) may still have it.
    """
    pulled = _query([docker, "pull", "--quiet", "--platform", platform, image], timeout=600)
    if pulled.returncode == 0:
        return
    local = _query([docker, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image])
    if local.returncode != 0 or local.stdout.strip() != platform:
        raise UserError(
            f"BASE_IMAGE {image} cannot be pulled for {platform} ({first_line(pulled.stderr)})", "check the name and your registry access"
        )
