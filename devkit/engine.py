"""The one door to the container engine, git and every other program the tasks start.

A *query* reads and always runs, `invoke --dry` included: what images and containers exist, which
platform the engine runs. An *action* changes something (a build, a container, a push, a file the
tasks write) and under `invoke --dry` is printed instead of run. A *precondition* (`require_*`)
refuses, in one line, what cannot work; `--dry` shows the commands as they would run once it holds,
so preconditions are not checked there. Unit tests replace `_query_process`, `_action_process` and
`_start_process` to script the engine's answers and record what a pipeline ran.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from invoke import Local

from devkit.errors import UserError
from devkit.host import Signalled, signals_interrupt
from devkit.platforms import host_platform, platform_of_machine

# The first docker CLI release whose `docker build` needs the buildx plugin for BuildKit.
_BUILDX_REQUIRED_FROM = 23

NVIDIA_FIX = (
    "install the NVIDIA driver and the NVIDIA Container Toolkit, "
    "then `sudo nvidia-ctk runtime configure --runtime=docker` and restart Docker"
)
# Podman reaches GPUs through CDI: a device spec that the NVIDIA Container Toolkit writes.
CDI_NVIDIA_FIX = (
    "install the NVIDIA driver and the NVIDIA Container Toolkit, "
    "then `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`"
)
# Where Podman packages put catatonit, the init that `podman run --init` starts (every container of
# the tasks asks for one).
CATATONIT_PATHS = (
    "/usr/libexec/podman/catatonit",
    "/usr/local/libexec/podman/catatonit",
    "/usr/lib/podman/catatonit",
)
# Where Podman looks for CDI specs (the toolkit writes to either).
CDI_SPEC_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
# The CDI name of every NVIDIA GPU, as `podman run --device` takes it.
CDI_NVIDIA_GPUS = "nvidia.com/gpu=all"

T = TypeVar("T")


# What cmd.exe acts on in a command line, even inside double quotes in the case of `%`.
_CMD_EXE_SPECIAL = re.compile(r'([()%!^"<>&|])')


def command_line(argv: list[str]) -> str:
    """One string for the shell that invoke runs commands in (cmd.exe on Windows, sh elsewhere)."""
    return cmd_exe_line(argv) if os.name == "nt" else shlex.join(argv)


def cmd_exe_line(argv: list[str]) -> str:
    """A command line for cmd.exe: each word quoted for the program (the C runtime's rules), then,
    where it holds a character cmd.exe acts on (`& | ^ % < > ( ) ! "`), each such character escaped
    with `^`. cmd.exe expands `%NAME%` before it reads escapes: `^%NAME^%` names an unset variable,
    which it leaves as it is, and then drops the carets."""
    line = []
    for word in argv:
        quoted = subprocess.list2cmdline([word])
        # Only such words: the plain quotes around a word with a space must stay quotes to cmd.exe.
        line.append(
            _CMD_EXE_SPECIAL.sub(r"^\1", quoted) if _CMD_EXE_SPECIAL.search(word) else quoted
        )
    return " ".join(line)


def first_line(text: str) -> str:
    """The first line of a command's error output that says anything: the reason, without the
    noise below it."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")


@dataclass(frozen=True)
class Outcome:
    """How an action ended: its exit status and, where it was captured, its output."""

    exited: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exited == 0

    @property
    def failed(self) -> bool:
        return not self.ok


def is_podman(cli: str) -> bool:
    """DOCKER names Podman (`podman`, `podman-remote`, or a path to either), whose CLI spells a few
    things its own way."""
    return Path(cli).name.lower().startswith("podman")


@dataclass(frozen=True)
class Dialect:
    """How the container CLI spells what differs between Docker and Podman: the one place that
    knows, so that the command builders ask instead of testing the CLI's name themselves."""

    cli: str

    @property
    def podman(self) -> bool:
        return is_podman(self.cli)

    @property
    def name(self) -> str:
        """The engine's name, for a line about it."""
        return "Podman" if self.podman else "Docker"

    @property
    def gpus_by_cdi(self) -> bool:
        """GPUs reach containers as CDI devices (Podman), not through an NVIDIA runtime (Docker)."""
        return self.podman

    @property
    def init_is_separate(self) -> bool:
        """`run --init` needs an init the engine's package may lack (Podman's catatonit); Docker
        ships its own."""
        return self.podman

    @property
    def builder(self) -> str | None:
        """What builds where BuildKit does not: Podman builds with Buildah; None for BuildKit."""
        return (
            "Podman builds with Buildah (RUN --mount and build secrets), in the docker image format"
            if self.podman
            else None
        )

    @property
    def platform_digest_needs_pull(self) -> bool:
        """The digest of an image of one platform is known only once it is pulled: Podman's
        `manifest inspect` shows that manifest re-serialized, without its digest."""
        return self.podman

    def init_paths(self) -> tuple[str, ...]:
        """Where the engine's packages put the init of `run --init`."""
        return CATATONIT_PATHS if self.podman else ()

    def gpu_options(self) -> list[str]:
        """Every NVIDIA GPU for a container. Podman has no --gpus: it takes them as CDI devices."""
        return ["--device", CDI_NVIDIA_GPUS] if self.podman else ["--gpus", "all"]

    def build_options(self) -> list[str]:
        """What a build needs beside the common flags. Podman's default OCI image format has no
        HEALTHCHECK: it would drop the Dockerfile's with a warning."""
        return ["--format", "docker"] if self.podman else []

    @property
    def layer_cache_in_repository(self) -> bool:
        """The builder keeps one tag per cached layer in a repository (Podman's Buildah: `--layers
        --cache-from REPO`), rather than BuildKit's cache exports."""
        return self.podman

    def digest_file_options(self, path: str) -> list[str]:
        """A push writes the digest it pushed to `path`: Podman's pushes print none, docker's print
        it (`docker push`: `<tag>: digest: sha256:...`, `docker manifest push`: `sha256:...`)."""
        return ["--digestfile", path] if self.podman else []

    def manifest_commands(
        self, name: str, images: list[str], *, insecure: bool, digest_file: str
    ) -> list[list[str]]:
        """Drop a stale local draft of the list `name`, make it of the pushed `images`, push it
        (its digest to `digest_file`, where the CLI writes one there).

        `docker manifest` (in every docker CLI since 20.10, no buildx needed) keeps a local draft
        of the list: `rm` drops one that an interrupted push left, whose entries `create` would
        reuse instead of reading the registry; `push --purge` publishes the list and deletes the
        draft. Podman's lists are local images: made from the pushed images in the registry
        (`docker://`), pushed to it, then removed (`--rm`); registries.conf tells it which
        registries are plain HTTP.
        """
        cli = self.cli
        if self.podman:
            remote = [f"docker://{image}" for image in images]
            return [
                [cli, "manifest", "rm", name],
                [cli, "manifest", "create", name, *remote],
                [
                    cli,
                    "manifest",
                    "push",
                    "--rm",
                    *self.digest_file_options(digest_file),
                    name,
                    f"docker://{name}",
                ],
            ]
        insecure_flag = ["--insecure"] if insecure else []
        return [
            [cli, "manifest", "rm", name],
            [cli, "manifest", "create", *insecure_flag, name, *images],
            [cli, "manifest", "push", "--purge", *insecure_flag, name],
        ]


def cdi_nvidia_spec(spec_dirs: tuple[Path, ...] = CDI_SPEC_DIRS) -> Path | None:
    """The CDI spec that names NVIDIA GPUs (`nvidia.com/gpu`), where one exists on this machine."""
    for folder in spec_dirs:
        for spec in sorted(folder.glob("*.*")) if folder.is_dir() else ():
            try:
                if spec.suffix in (".yaml", ".yml", ".json") and "nvidia.com/gpu" in spec.read_text(
                    encoding="utf-8"
                ):
                    return spec
            except (OSError, UnicodeDecodeError):
                continue
    return None


def _no_cli(docker: str) -> UserError:
    return UserError(
        f"DOCKER={docker!r}: no such command",
        "install Docker, or set DOCKER to the path of a docker CLI",
    )


class ForwardingLocal(Local):
    """invoke's runner, passing on to the command the signal that interrupted invoke.

    invoke answers Ctrl-C by typing `\x03` into the command's input, which only a terminal (pty)
    turns into SIGINT: with a pipe, a signal to invoke alone (an IDE's stop button, CI, `kill -INT`)
    never reached the command, which ran on and counted as a success. Here the signal itself is
    sent: SIGINT, or SIGTERM and SIGHUP, which `host.signals_interrupt` turns into interrupts.
    """

    def send_interrupt(self, interrupt: KeyboardInterrupt) -> None:
        number = interrupt.number if isinstance(interrupt, Signalled) else signal.SIGINT
        if self.using_pty and number == signal.SIGINT:
            super().send_interrupt(interrupt)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.get_pid(), number)


class Engine:
    """The container engine behind `docker` (the DOCKER setting), and the door for every command.

    context: invoke's Context, which runs actions (so that `--dry` prints them and Ctrl-C reaches
    them); None for an engine that is only queried (`invoke doctor`, tests).
    """

    def __init__(self, docker: str, context=None) -> None:
        self.docker = docker
        self._context = context

    @property
    def dry(self) -> bool:
        return bool(self._context is not None and self._context.config.run.dry)

    @property
    def dialect(self) -> Dialect:
        return Dialect(self.docker)

    @property
    def podman(self) -> bool:
        return self.dialect.podman

    # --- the door ------------------------------------------------------------------------------

    def query(self, argv: list[str], *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a read-only command and capture its output; it runs under `--dry` too."""
        try:
            return self._query_process(argv, timeout)
        except FileNotFoundError:
            if self.dry:
                # `--dry` shows the commands even where no CLI is installed yet: nothing exists.
                return subprocess.CompletedProcess(argv, 127, "", "")
            raise _no_cli(argv[0]) from None
        except (
            OSError
        ) as error:  # a folder, a file that is not executable, a binary for another machine
            raise UserError(
                f"DOCKER={argv[0]!r}: cannot run it ({error.strerror})",
                "set DOCKER to the docker CLI itself",
            ) from None
        except subprocess.TimeoutExpired:
            raise UserError(
                f"`{' '.join(argv[:3])}` did not answer in {timeout:.0f} s",
                "restart the engine if it hangs",
            ) from None

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        hide: bool = False,
        tty: bool = False,
        stdin: bool = False,
        cwd: str | None = None,
    ) -> Outcome:
        """Run an action, never raising on its failure; under `--dry`, print it and report success.

        hide: capture its output instead of showing it. stdin: forward our input to it (a shell).
        Otherwise none is mirrored, so that invoke's Ctrl-C forwarding has an open pipe to write to
        even where our own stdin is closed (CI, nohup, an IDE). tty: a pseudo-terminal, as
        `docker run --tty` needs.
        """
        return self._action_process(
            argv, {"env": env or {}, "hide": hide, "tty": tty, "stdin": stdin, "cwd": cwd}
        )

    def start(self, argv: list[str]) -> subprocess.Popen[str] | None:
        """Start an action in the background, its output and errors in one pipe that the caller
        reads line by line (several containers at once, each line shown with its name); under
        `--dry`, print it instead."""
        if self.dry:
            print(command_line(argv), flush=True)
            return None
        return self._start_process(argv)

    def require(self, check: Callable[..., object], *args) -> None:
        """A precondition on this host (a free port, a writable folder): checked, except under
        `--dry`."""
        if not self.dry:
            check(*args)

    def report(self, message: str, *, would: str | None = None) -> None:
        """What the actions did, for the user: said, except under `--dry`, where they did nothing;
        there `would` (if given) says what they would do, as `# would ...`."""
        if not self.dry:
            print(message, file=sys.stderr)
        elif would is not None:
            print(f"# would {would}", file=sys.stderr)

    def change(self, what: str, apply: Callable[[], T]) -> T | None:
        """A change on this host (a file written, a folder made): done, or under `--dry` only
        said."""
        if self.dry:
            print(f"# would {what}", file=sys.stderr)
            return None
        return apply()

    def git(self, project_dir, *args: str) -> str:
        """A git query in the project folder; empty where git or the repository is missing."""
        try:
            result = self._query_process(["git", "-C", str(project_dir), *args], 30)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    def _query_process(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def _start_process(self, argv: list[str]) -> subprocess.Popen[str]:
        # stdin closed; in our process group, so that a terminal's Ctrl-C reaches it as it does us.
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def _action_process(self, argv: list[str], options: dict) -> Outcome:
        context = self._context
        if context is None:
            raise RuntimeError(
                "this Engine only answers queries: it was made without invoke's context"
            )
        run = dict(env=options["env"], pty=options["tty"], hide=options["hide"], warn=True)
        run["in_stream"] = None if options["stdin"] or options["tty"] else False
        # A signal to invoke alone (an IDE's stop button, CI, `kill`) reaches the command too.
        context.config.runners.local = ForwardingLocal
        with contextlib.ExitStack() as stack:
            stack.enter_context(signals_interrupt())
            if options["cwd"] is not None:
                stack.enter_context(context.cd(options["cwd"]))
            result = context.run(command_line(argv), **run)
        return Outcome(result.exited, result.stdout, result.stderr)

    # --- queries -------------------------------------------------------------------------------

    def client_version(self) -> str:
        return self.query(
            [self.docker, "version", "--format", "{{.Client.Version}}"]
        ).stdout.strip()

    def server_platform(self) -> str | None:
        """The platform the engine runs natively, e.g. linux/arm64 for Docker Desktop on Apple
        Silicon even when asked by an x86-64 Python under Rosetta; None where it does not say or is
        no Linux."""
        # Podman's version has no Server.Arch: OsArch is both, its machine's for a remote (macOS)
        # Podman.
        layout = "{{.Server.OsArch}}" if self.podman else "{{.Server.Os}}/{{.Server.Arch}}"
        answer = self.query([self.docker, "version", "--format", layout]).stdout.strip()
        system, _, machine = answer.partition("/")
        try:
            return platform_of_machine(machine) if system == "linux" else None
        except UserError:
            return None

    def native_platform(self) -> str:
        """The platform whose images run natively here: the engine's own where it answers, else
        Python's view.

        They differ where Python itself is emulated, as an x86-64 Python under Rosetta on Apple
        Silicon is: Docker Desktop still runs linux/arm64 there, and the containers are what must
        run natively.
        Without an answer (no CLI, engine stopped), the machine Python runs on decides.
        """
        try:
            answer = self.server_platform()
        except UserError:
            answer = None
        return host_platform(answer)

    def uses_buildx(self) -> bool:
        """True where the buildx plugin exists; False where the classic `docker build` does
        BuildKit.

        Refuses a CLI that has neither: from version 23 on, `docker build` with BuildKit needs
        buildx.
        """
        try:
            return self._uses_buildx()
        except UserError:
            if not self.dry:
                raise
            return False  # `--dry` only prints: without a usable CLI it shows the classic form

    def _uses_buildx(self) -> bool:
        if self.podman:
            return (
                False  # `podman build` is Buildah, which has RUN --mount and build secrets itself
            )
        if self.query([self.docker, "buildx", "version"]).returncode == 0:
            return True
        version = self.client_version()
        major = version.split(".", 1)[0]
        if re.fullmatch(r"[0-9]+", major) and int(major) >= _BUILDX_REQUIRED_FROM:
            raise UserError(
                f"{self.docker} (CLI {version}) needs the buildx plugin to build with BuildKit, "
                "and has none",
                "install it (Debian/Ubuntu: docker-buildx-plugin; Docker Desktop ships it), "
                "or set DOCKER to a CLI that has it",
            )
        return False

    def buildx_driver(self) -> str:
        """The driver of buildx's current builder: `docker` (the engine's own BuildKit, which
        exports no registry cache) or `docker-container`, `kubernetes`, `remote` (which do)."""
        answer = self.query([self.docker, "buildx", "inspect"]).stdout
        return next(
            (
                line.split(":", 1)[1].strip()
                for line in answer.splitlines()
                if line.startswith("Driver:")
            ),
            "docker",
        )

    def runtimes(self) -> list[str]:
        """The container runtimes the engine offers (`runc`; `nvidia` once the NVIDIA toolkit is
        set up)."""
        if self.podman:
            # Podman runs one OCI runtime (crun or runc); GPUs come through CDI, not a runtime.
            answer = self.query(
                [self.docker, "info", "--format", "{{.Host.OCIRuntime.Name}}"]
            ).stdout.strip()
            return [answer] if answer else []
        result = self.query([self.docker, "info", "--format", "{{json .Runtimes}}"])
        try:
            return sorted(json.loads(result.stdout or "{}") or {})
        except json.JSONDecodeError:
            return []

    def storage_dir(self) -> str | None:
        """Where the engine keeps images and build cache (a path on the engine's machine)."""
        layout = "{{.Store.GraphRoot}}" if self.podman else "{{.DockerRootDir}}"
        return self.query([self.docker, "info", "--format", layout]).stdout.strip() or None

    def container_state(self, name: str) -> str | None:
        """`running`, `exited`, ... for the container called `name`, or None when there is none."""
        result = self.query(
            [self.docker, "container", "inspect", "--format", "{{.State.Status}}", name]
        )
        return result.stdout.strip() or None if result.returncode == 0 else None

    def image_platform(self, image: str) -> str | None:
        """`linux/arm64`, ... for a local image; None when there is no such image."""
        result = self.query(
            [self.docker, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image]
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def image_exists(self, image: str) -> bool:
        """The engine holds an image under this reference."""
        return self.image_platform(image) is not None

    def registry_is_insecure(self, registry: str) -> bool:
        """The engine reaches `registry` over plain HTTP, as it does loopback registries and those
        it lists as insecure: `docker manifest` must then be told so, where `docker push` knows it
        by itself. Podman decides that from its registries.conf for every command alike: never
        told here."""
        if self.podman:
            return False
        config = self.query([self.docker, "info", "--format", "{{json .RegistryConfig}}"]).stdout
        try:
            registry_config = json.loads(config or "{}") or {}
        except json.JSONDecodeError:
            registry_config = {}
        return insecure_by_config(registry.split("/", 1)[0], registry_config)

    def _manifest_inspect(self, image: str, *options: str) -> subprocess.CompletedProcess[str]:
        """`docker manifest inspect` of `image`, read from its registry without pulling. A reference
        with both a tag and a digest is asked for by its digest: the docker CLI would fetch the
        tag's manifest and refuse it as not matching the digest."""
        name, at, digest = image.partition("@")
        if at and ":" in name.rsplit("/", 1)[-1]:
            image = f"{name.rsplit(':', 1)[0]}@{digest}"
        registry = image.split("/", 1)[0] if "/" in image else ""
        is_registry = (
            "." in registry or ":" in registry or registry == "localhost"
        )  # else a Docker Hub namespace
        insecure = ["--insecure"] if is_registry and self.registry_is_insecure(registry) else []
        argv = [self.docker, "manifest", "inspect", *options, *insecure, image]
        return self.query(argv, timeout=60)

    def registry_platforms(self, image: str) -> list[str]:
        """The platforms `image`'s registry holds it for, read without pulling (`docker manifest
        inspect`); [] for an image of one platform, whose manifest does not say which. A UserError
        where the registry has no such image or cannot be reached."""
        result = self._manifest_inspect(image)
        if result.returncode != 0:
            raise UserError(
                f"{image} is neither on this engine nor in its registry "
                f"({first_line(result.stderr)})"
            )
        try:
            manifests = json.loads(result.stdout).get("manifests") or []
        except (json.JSONDecodeError, AttributeError):
            return []
        # An index may list attestations too, as platform unknown/unknown.
        found = [
            f"{entry['platform'].get('os')}/{entry['platform'].get('architecture')}"
            for entry in manifests
            if entry.get("platform")
        ]
        return [name for name in found if name != "unknown/unknown"]

    def manifest_digests(self, image: str) -> dict[str, str]:
        """{platform: digest of its manifest} of `image` as its registry holds it, read without
        pulling: each platform's own manifest of a multi-platform image (an index), or the one
        manifest of an image of one platform. Never the digest of the index itself, which is what
        `docker image inspect`'s RepoDigests names for an image pulled by its tag. Platforms are
        `os/architecture` (a variant such as arm64's v8 left out); attestations (unknown/unknown)
        are left out.

        Empty for an image of one platform under Podman, whose `manifest inspect` shows that
        manifest re-serialized, without its digest: `pulled_digest` tells it. A UserError, the
        engine's reason, where the registry has no such image or cannot be reached."""
        result = self._manifest_inspect(image, *([] if self.podman else ["--verbose"]))
        if result.returncode != 0:
            raise UserError(first_line(result.stderr))
        try:
            parsed = json.loads(result.stdout)
        except json.JSONDecodeError:
            raise UserError(f"{self.docker} manifest inspect printed no JSON") from None
        if self.podman:
            # The index, as `podman manifest inspect` shows it; a single image's manifest has none.
            descriptors = (parsed.get("manifests") or []) if isinstance(parsed, dict) else []
        else:
            # `--verbose`: one entry per manifest (a list for an index), each with its descriptor.
            entries = parsed if isinstance(parsed, list) else [parsed]
            descriptors = [entry.get("Descriptor") or {} for entry in entries]
        found: dict[str, str] = {}
        for descriptor in descriptors:
            platform = descriptor.get("platform") or {}
            name = f"{platform.get('os')}/{platform.get('architecture')}"
            if platform and name != "unknown/unknown" and is_digest(descriptor.get("digest")):
                found.setdefault(name, descriptor["digest"])
        return found

    # --- preconditions: one line each, not checked under --dry ----------------------------------

    def require_cli(self) -> str:
        """The container CLI exists; its path."""
        found = shutil.which(self.docker)
        if found is None:
            raise _no_cli(self.docker)
        return found

    def version(self) -> str:
        """The running engine's version; one line where the CLI reaches none."""
        self.require_cli()
        result = self.query([self.docker, "version", "--format", "{{.Server.Version}}"])
        if result.returncode != 0 or not result.stdout.strip():
            raise UserError(
                "the container engine is not running or not reachable "
                f"({first_line(result.stderr)})",
                "start Docker Desktop, or `sudo systemctl start docker` on Linux",
            )
        return result.stdout.strip()

    def require_running(self) -> None:
        """The CLI reaches a running engine."""
        if not self.dry:
            self.version()

    def require_nvidia_runtime(self) -> None:
        """The engine can start GPU containers (`--gpus all`; Podman: a CDI spec of the GPUs): the
        NVIDIA Container Toolkit is set up."""
        if self.dry:
            return
        if self.podman:
            if cdi_nvidia_spec() is None:
                folders = " or ".join(str(folder) for folder in CDI_SPEC_DIRS)
                raise UserError(
                    f"--gpu: Podman finds no CDI spec of NVIDIA GPUs (nvidia.com/gpu) in {folders}",
                    CDI_NVIDIA_FIX,
                )
            return
        found = self.runtimes()
        if "nvidia" not in found:
            raise UserError(
                "--gpu: this engine has no NVIDIA runtime "
                f"(runtimes: {', '.join(found) or 'none'})",
                NVIDIA_FIX,
            )

    def pull_base_image(self, image: str, platform: str) -> None:
        """Make the local `image` tag the variant for `platform`, as `docker run --platform` needs.

        An engine that cannot pull (an image only built locally, no network) may still have it.
        """
        pulled = self.run(
            [self.docker, "pull", "--quiet", "--platform", platform, image], hide=True
        )
        if pulled.ok or self.dry:
            return
        if self.image_platform(image) != platform:
            raise UserError(
                f"BASE_IMAGE {image} cannot be pulled for {platform} ({first_line(pulled.stderr)})",
                "check the name and your registry access",
            )

    def pulled_digest(self, image: str) -> dict[str, str]:
        """{platform: manifest digest} of an image of one platform, by pulling it: Podman names the
        digest of such an image only once it holds it (`manifest_digests`). Under `--dry`, what
        this engine already holds, if anything."""
        pulled = self.run([self.docker, "pull", "--quiet", image], hide=True)
        if pulled.failed and not self.dry:
            raise UserError(first_line(pulled.stderr))
        layout = "{{.Os}}/{{.Architecture}} {{.Digest}}"
        answer = self.query([self.docker, "image", "inspect", "--format", layout, image])
        platform, _, digest = answer.stdout.strip().partition(" ")
        return {platform: digest} if answer.returncode == 0 and is_digest(digest) else {}


def is_digest(value: object) -> bool:
    """A sha256 digest as registries name manifests: `sha256:` and 64 hexadecimal digits."""
    return isinstance(value, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", value) is not None


def insecure_by_config(host: str, registry_config: dict) -> bool:
    """What the engine decides for `host` (name[:port]) from its RegistryConfig (`docker info`)."""
    index = (registry_config.get("IndexConfigs") or {}).get(host)
    if index is not None:
        return not index.get("Secure", True)
    name = host.partition(":")[
        0
    ]  # REGISTRY's form (settings.py): a name or IPv4 address, and a port
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    cidrs = registry_config.get("InsecureRegistryCIDRs") or []
    return address.is_loopback or any(
        address in ipaddress.ip_network(cidr, strict=False) for cidr in cidrs
    )
