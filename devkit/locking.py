"""`invoke lock`: pip-compile each chosen `.in` file inside BASE_IMAGE for its platform (the host
tools on this machine), check what it made, then replace every compiled lock together, or none."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from devkit import baseimage, runtime
from devkit.baseimage import Pins
from devkit.containers import mount_spec
from devkit.engine import Engine, Outcome
from devkit.errors import UserError
from devkit.host import container_user, proxies
from devkit.locks import (
    ALL,
    PIP_COMPILE_OPTIONS,
    Entry,
    Lock,
    changes,
    held_packages,
    is_current,
    missing_requirements,
    stale_layer_files,
    tool_requirements,
    what_holds,
    with_footer,
)
from devkit.runtime import ContainerSpec
from devkit.settings import Settings
from devkit.targets import project_id

# Inside the lock container: the project (read-only), and a folder with what this run brings.
LOCK_SOURCE_DIR = "/src"
LOCK_WORK_DIR = "/lock"
# Scratch paths inside the throwaway lock container, which nothing else shares.
_TOOLS_VENV = "/tmp/tools"  # noqa: S108
_COMPILED_LOCK = "/tmp/lock.txt"  # noqa: S108
# The cache volume's mount point: pip's and pip-tools' caches ($XDG_CACHE_HOME/pip, .../pip-tools).
# /var/tmp because Docker gives a new volume the owner and mode of the folder it is first mounted
# on, and there that is everyone-may-write (1777): whichever uid the container runs as can fill it.
LOCK_CACHE_DIR = "/var/tmp"  # noqa: S108


def lock_spec(
    settings: Settings,
    lock: Lock,
    *,
    work_dir: Path,
    cache_volume: str,
    upgrade: bool = False,
    upgrade_packages: tuple[str, ...] = (),
    proxies: tuple[str, ...] = (),
    staged: tuple[str, ...] = (),
    user: str | None = None,
    image: str | None = None,
) -> ContainerSpec:
    """The container of pip-compile in BASE_IMAGE for the lock's platform, so the pins fit the
    container: `image`, BASE_IMAGE by the digest `invoke lock` pinned, where given.

    The project is mounted read-only: pip-compile works on a copy of the current lock (to keep its
    pins) and prints the result, which the task writes only when every chosen lock compiled.
    work_dir holds tools.txt (pip-tools and its dependencies, hash-pinned, from
    requirements-dev.txt),
    current.txt, and the locks compiled earlier in this run (`staged`), mounted over the project's
    own, since a later lock is constrained by them. The container has the least privilege of the
    project's others: no capability, no-new-privileges, and `user` (the caller) where it is given.
    """
    compile_args = [*PIP_COMPILE_OPTIONS]
    if lock.constraint is not None:
        compile_args += ["--constraint", lock.constraint]
    if upgrade:
        compile_args.append("--upgrade")
    for package in upgrade_packages:
        compile_args += ["--upgrade-package", package]
    install_tools = (
        f"{_TOOLS_VENV}/bin/python -m pip install --quiet --disable-pip-version-check"
        " --require-hashes --no-deps"
    )
    script = " && ".join(
        [
            "set -eu",
            f"python -m venv {_TOOLS_VENV}",
            f"{install_tools} -r {LOCK_WORK_DIR}/tools.txt",
            f"if [ -f {LOCK_WORK_DIR}/current.txt ]; "
            f"then cp {LOCK_WORK_DIR}/current.txt {_COMPILED_LOCK}; fi",
            f"{_TOOLS_VENV}/bin/pip-compile {shlex.join(compile_args)} "
            f"--output-file {_COMPILED_LOCK} {shlex.quote(lock.source)} >&2",
            f"cat {_COMPILED_LOCK}",
        ]
    )
    # --init: Ctrl-C reaches pip-compile and ends the container. The init (tini) passes signals to
    # the shell's whole process group: to the shell alone, they would wait for pip-compile to
    # finish.
    mounts = [mount_spec(settings.project_dir, LOCK_SOURCE_DIR, readonly=True)]
    mounts += [
        mount_spec(work_dir / "staged" / name, f"{LOCK_SOURCE_DIR}/{name}", readonly=True)
        for name in staged
    ]
    mounts.append(mount_spec(work_dir, LOCK_WORK_DIR, readonly=True))
    # pip's cache in a named volume: a repeated lock downloads nothing it has seen.
    mounts.append(f"type=volume,source={cache_volume},target={LOCK_CACHE_DIR}")
    env = ["TINI_KILL_PROCESS_GROUP=1", f"XDG_CACHE_HOME={LOCK_CACHE_DIR}"]
    env.append("CUSTOM_COMPILE_COMMAND=invoke lock")
    if settings.build_ca_bundle is not None:
        mounts.append(mount_spec(settings.build_ca_bundle, "/run/secrets/ca_bundle", readonly=True))
        env.append("PIP_CERT=/run/secrets/ca_bundle")
    # By name: docker reads the values (index URLs may hold credentials) from the task's
    # environment.
    env += [*proxies, *settings.package_index]
    return ContainerSpec(
        image=image or settings.base_image,
        name=f"{cache_volume.removesuffix('-cache')}-{secrets.token_hex(3)}",
        project=project_id(settings),
        command=("sh", "-c", script),
        platform=str(lock.platform),
        user=user,
        mounts=tuple(mounts),
        env=tuple(env),
        workdir=LOCK_SOURCE_DIR,
    )


def host_lock_command(
    python: str, lock: Lock, output: Path, *, upgrade: bool, packages: tuple[str, ...]
) -> list[str]:
    """pip-compile on this machine, for the host tools, which run here."""
    argv = [python, "-m", "piptools", "compile", *PIP_COMPILE_OPTIONS]
    argv += ["--upgrade"] if upgrade else []
    argv += [arg for package in packages for arg in ("--upgrade-package", package)]
    return [*argv, "--output-file", str(output), lock.source]


def pip_compile_reason(stderr: str) -> str:
    """The line or two of pip-compile's error output that say why, without its traceback."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [
        line
        for line in lines
        if line.startswith("ERROR:") and not line.startswith("ERROR: Ignored")
    ]
    reasons = []
    if errors:
        reasons.append(_shorten(errors[-1]))
    if lines:
        # The last line of a traceback:
        # `pip._internal.exceptions.DistributionNotFound: No matching ...`.
        last = re.sub(
            r"^[\w.]+(?:Error|Exception|NotFound|Impossible|Conflict\w*): ", "", lines[-1]
        )
        if last not in reasons and not last.startswith("ERROR:"):
            reasons.append(_shorten(last))
    return "\n".join(reasons) or "no message"


def _shorten(line: str, limit: int = 240) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


def cache_volume(settings: Settings) -> str:
    """The named volume that keeps pip's and pip-tools' downloads between locks."""
    return f"{settings.image_name.replace('/', '-')}-lock-cache"


def lock(
    engine: Engine,
    settings: Settings,
    chosen: tuple[Lock, ...],
    *,
    upgrade: bool,
    packages: tuple[str, ...],
    python: str,
) -> None:
    """Compile every chosen lock whose inputs changed (or all, to upgrade), check each, then replace
    them together and say what changed in each, and which locks it left out of date.

    A lock constrained by another (the GPU lock by the amd64 one) is compiled against that one's new
    text. When any compile fails, or a compiled lock lacks a pinned, hashed entry for something its
    `.in` files require, no lock is replaced.

    First, for the image locks, BASE_IMAGE's digest for each platform (baseimage.RECORD): kept where
    the record pins BASE_IMAGE, else (or to upgrade) asked of its registry; the locks compile in
    BASE_IMAGE by that digest, and the record is replaced with them.
    """
    project_dir = settings.project_dir
    platforms = [entry.platform for entry in chosen if entry.platform is not None]
    pins, old_pins = (
        baseimage.for_lock(engine, project_dir, settings.base_image, platforms, upgrade=upgrade)
        if platforms
        else (None, None)
    )
    native = engine.native_platform()
    staged: dict[str, str] = {}
    # Per lock: why each package that --upgrade-package asked to move stayed where it was.
    held: dict[str, list[str]] = {}
    for entry in chosen:
        if not (upgrade or packages) and is_current(project_dir, entry, staged):
            print(f"{entry.output} is up to date", file=sys.stderr)
            continue
        emulated = entry.platform is not None and entry.platform != native
        slow = (
            f" under emulation: this engine runs {native}, so every step of Python goes through"
            " QEMU; expect minutes"
            if emulated
            else ""
        )
        print(f"locking {entry.describe()}{slow}", file=sys.stderr)
        with Ticker(f"locking {entry.output}"):
            body = compile_lock(
                engine,
                settings,
                entry,
                staged,
                upgrade=upgrade,
                packages=packages,
                python=python,
                pins=pins,
            )
        engine.require(require_complete, project_dir, entry, body)
        held[entry.output] = [
            f"{package.name} stays at {package.version}: "
            + what_holds(
                package,
                _ask_for_newer(engine, settings, entry, staged, package, python, native, pins),
            )
            for package in held_packages(_text(project_dir / entry.output), body, packages)
        ]
        staged[entry.output] = with_footer(project_dir, entry, body, staged)
    # What the Dockerfiles install, from the locks as they will be (under --dry, as they are; no
    # lock was compiled), rewritten where they differ.
    layers = {
        name: text
        for entry in chosen
        for name, text in stale_layer_files(
            project_dir, entry, {} if engine.dry else staged
        ).items()
    }
    # The record of BASE_IMAGE's digests, where it changes (its text, or one that did not pin it).
    record = (
        {baseimage.RECORD: pins.text()}
        if pins is not None and _text(project_dir / baseimage.RECORD) != pins.text()
        else {}
    )
    if pins is not None and not (record or upgrade):
        print(f"{baseimage.RECORD} is up to date", file=sys.stderr)
    if staged or layers or record:
        old = {name: _text(project_dir / name) for name in staged}
        written = {**staged, **layers, **record}
        files = {project_dir / name: text for name, text in written.items()}
        engine.change(f"replace {', '.join(written)}", lambda: _replace(files))
        if layers:
            engine.report(f"wrote what the Dockerfiles install: {', '.join(layers)}")
        for name, text in staged.items():
            engine.report("; ".join([f"{name}: {changes(old[name], text)}", *held[name]]))
    if pins is not None and (record or upgrade):
        engine.report(baseimage.changes(old_pins, pins))
    report_stale(engine, project_dir)


def report_stale(engine: Engine, project_dir: Path) -> None:
    """The last word of a lock: the locks it left out of date (compiled against one that moved, or
    stale from an earlier change), and the command that compiles them."""
    stale = [
        entry
        for entry in ALL
        if (project_dir / entry.source).is_file() and not _matches_inputs(project_dir, entry)
    ]
    if not stale:
        return
    if all(entry.gpu for entry in stale):
        command = "invoke lock --gpu"
    elif all(entry.platform is None for entry in stale):
        command = "invoke lock --dev"
    elif len({entry.platform for entry in stale}) == 1 and not any(e.gpu for e in stale):
        command = f"invoke lock --platform {stale[0].platform}"
    else:
        command = "invoke lock"
    engine.report(
        f"left out of date: {', '.join(entry.output for entry in stale)}; `{command}` compiles"
        f" {'it' if len(stale) == 1 else 'them'}"
    )


def _matches_inputs(project_dir: Path, entry: Lock) -> bool:
    """The lock, and the layer files beside it, are what its inputs make (False where one is
    missing)."""
    try:
        return is_current(project_dir, entry) and not stale_layer_files(project_dir, entry)
    except UserError:
        return False


def _ask_for_newer(
    engine: Engine,
    settings: Settings,
    entry: Lock,
    staged,
    package: Entry,
    python: str,
    native,
    pins: Pins | None,
) -> str | None:
    """pip-compile's error output when asked for a version of `package` newer than its pin (it names
    the requirement that holds it), or None: under emulation (that would take minutes), under --dry,
    or where a newer version resolves after all."""
    if engine.dry or entry.platform not in (None, native):
        return None
    print(f"asking pip-compile what holds {package.name} at {package.version}", file=sys.stderr)
    newer = (f"{package.name}>{package.version}",)
    with Ticker(f"asking about {package.name}"):
        result, _ = _compile(engine, settings, entry, staged, False, newer, python, pins)
    return result.stderr if result.failed else None


def _replace(files: dict[Path, str]) -> None:
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
    replace_together(files)


def require_complete(project_dir: Path, entry: Lock, body: str) -> None:
    """A compiled lock pins, with hashes, every requirement of its .in files: checked before any
    lock moves."""
    missing = missing_requirements(project_dir, entry, body)
    if missing:
        raise UserError(
            f"pip-compile left no pinned, hashed entry in {entry.output} for {', '.join(missing)};"
            " every lock is unchanged"
        )


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


class Ticker:
    """Shows, while a long step runs, that it is alive and how long it has taken: on a terminal a
    spinner on one line, redrawn every second (or `every`, if sooner); elsewhere (CI logs, a pipe)
    a plain line every `every` seconds. A daemon thread that only writes: Ctrl-C still reaches the
    step in the main thread, and ends the ticker with it."""

    def __init__(self, what: str, *, stream: TextIO | None = None, every: float = 10.0) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = min(every, 1.0) if self.tty else every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._started = time.monotonic()
        self._drawn = False

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        if self.tty and self._drawn:
            self.stream.write("\r\033[K")  # the spinner's line, cleared for what follows
            self.stream.flush()

    def _tick(self) -> None:
        frames = itertools.cycle("|/-\\")
        while not self._done.wait(self.every):
            elapsed = int(time.monotonic() - self._started)
            clock = f"{elapsed // 60}:{elapsed % 60:02d}"
            if self.tty:
                self.stream.write(f"\r{next(frames)} {self.what}: {clock}")
                self._drawn = True
            else:
                self.stream.write(f"still {self.what}: {clock} so far\n")
            self.stream.flush()


def check(project_dir: Path, chosen: tuple[Lock, ...], base_image: str) -> None:
    """`invoke lock --check`: refuse, naming them, the locks that no longer match their inputs, and
    with the image locks the record of BASE_IMAGE's digests where it does not pin BASE_IMAGE. A
    project without a record yet (the template's state: its digests are those of the team's
    registry) passes, and a line says that builds are not pinned."""
    stale = [entry.output for entry in chosen if not is_current(project_dir, entry)]
    stale += [name for entry in chosen for name in stale_layer_files(project_dir, entry)]
    checked = [entry.output for entry in chosen]
    if any(entry.platform is not None for entry in chosen):
        reason = baseimage.stale_reason(project_dir, base_image)
        if reason == baseimage.MISSING:
            print(baseimage.NOT_PINNED_YET, file=sys.stderr)
        elif reason is not None:
            stale.append(f"{baseimage.RECORD} ({reason})")
        else:
            checked.append(baseimage.RECORD)
    if stale:
        raise UserError(f"out of date: {', '.join(stale)}; run `invoke lock` to compile them")
    print(f"up to date: {', '.join(checked)}", file=sys.stderr)


def compile_lock(
    engine: Engine,
    settings: Settings,
    entry: Lock,
    staged: dict[str, str],
    *,
    upgrade: bool,
    packages: tuple[str, ...],
    python: str,
    pins: Pins | None,
) -> str:
    """pip-compile's output for `entry`, in BASE_IMAGE by the digest `pins` holds for its platform
    (None: as it is, under `--dry`); a failure is one UserError, with every lock as it was."""
    result, text = _compile(engine, settings, entry, staged, upgrade, packages, python, pins)
    if result.failed:
        reason = pip_compile_reason(result.stderr).replace("\n", "; ")
        raise UserError(f"pip-compile failed for {entry.output}; every lock is unchanged: {reason}")
    return text


def _compile(
    engine: Engine, settings: Settings, entry: Lock, staged, upgrade, packages, python, pins
) -> tuple[Outcome, str]:
    """pip-compile for `entry`, in BASE_IMAGE or on the host: its outcome, and the lock it
    printed."""
    current = settings.project_dir / entry.output
    with tempfile.TemporaryDirectory(prefix="invoke-lock-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o755)  # the lock container's user reads it
        if current.exists():
            _write_readable(work_dir / "current.txt", current.read_text(encoding="utf-8"))
        if entry.platform is None:
            return _compile_on_host(
                engine, settings, entry, work_dir / "current.txt", upgrade, packages, python
            )
        base = (
            baseimage.Base(settings.base_image, pins.digests[entry.platform])
            if pins is not None
            else None  # under --dry, where the registry did not answer
        )
        result = _compile_in_base_image(
            engine, settings, entry, work_dir, staged, upgrade, packages, base
        )
        return result, result.stdout


def _compile_on_host(
    engine: Engine, settings: Settings, entry: Lock, output: Path, upgrade, packages, python
) -> tuple[Outcome, str]:
    """The host tools fit the host: pip-compile runs here, on a copy of the lock."""
    argv = host_lock_command(python, entry, output, upgrade=upgrade, packages=packages)
    result = engine.run(
        argv,
        env={"CUSTOM_COMPILE_COMMAND": "invoke lock"},
        hide=True,
        cwd=str(settings.project_dir),
    )
    return result, output.read_text(encoding="utf-8") if result.ok and output.exists() else ""


def _compile_in_base_image(
    engine: Engine,
    settings: Settings,
    entry: Lock,
    work_dir: Path,
    staged,
    upgrade,
    packages,
    base: baseimage.Base | None,
) -> Outcome:
    """pip-compile in BASE_IMAGE by the digest of `base` (as it is, where None) for the lock's
    platform; the lock comes back on stdout."""
    dev_lock = (settings.project_dir / "requirements-dev.txt").read_text(encoding="utf-8")
    _write_readable(work_dir / "tools.txt", tool_requirements(dev_lock))
    (work_dir / "staged").mkdir()
    (work_dir / "staged").chmod(0o755)
    for name, text in staged.items():
        _write_readable(work_dir / "staged" / name, text)
    spec = lock_spec(
        settings,
        entry,
        work_dir=work_dir,
        cache_volume=cache_volume(settings),
        upgrade=upgrade,
        upgrade_packages=packages,
        proxies=proxies(),
        staged=tuple(staged),
        user=container_user(settings),
        image=base.reference if base is not None else None,
    )
    engine.require_running()
    baseimage.pull(engine, base, settings.base_image, str(entry.platform))
    ended = runtime.start(engine, spec, capture=True, cli_env=settings.package_index)
    if ended.signal is not None:
        return Outcome(ended.outcome.exited or 1, "", f"stopped on {ended.signal.name}")
    return ended.outcome


def _write_readable(path: Path, text: str) -> None:
    """A file for the lock container, readable by its user whatever this process's umask."""
    path.write_text(text, encoding="utf-8", newline="\n")
    path.chmod(0o644)


def replace_together(files: dict[Path, str]) -> None:
    """Give every file its new text, or none: each new text goes to a temporary file of its own
    beside its file (two runs never share one), flushed to disk; then the renames follow one another
    with Ctrl-C held until they are done, and a rename that fails puts back the files already
    replaced."""
    partials: dict[Path, str] = {}
    try:
        for path, text in files.items():
            partials[path] = _partial(path, text)
        old = {path: path.read_bytes() for path in files if path.is_file()}
        replaced: list[Path] = []
        with _interrupts_held():
            for path, partial in partials.items():
                try:
                    os.replace(partial, path)
                except OSError as error:
                    for done in replaced:
                        if done in old:
                            done.write_bytes(old[done])
                        else:
                            done.unlink()
                    raise UserError(
                        f"cannot replace {path}: {error.strerror}; every lock is as it was"
                    ) from None
                replaced.append(path)
    except OSError as error:
        raise UserError(
            f"cannot write {error.filename}: {error.strerror}; every lock is as it was"
        ) from None
    finally:
        for partial in partials.values():
            Path(partial).unlink(missing_ok=True)


def _partial(path: Path, text: str) -> str:
    """`text` in a new file beside `path`, flushed to disk, with `path`'s permissions."""
    descriptor, partial = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".partial", dir=path.parent
    )
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
    os.chmod(partial, path.stat().st_mode & 0o777 if path.exists() else 0o644)
    return partial


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C (SIGINT) waits until the block is done, then interrupts as usual."""
    caught = []
    try:
        previous = signal.signal(signal.SIGINT, lambda number, frame: caught.append(number))
    except ValueError:  # not the main thread, which alone receives signals
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
