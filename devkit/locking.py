"""`invoke lock`: pip-compile each chosen `.in` file inside BASE_IMAGE for its platform (the host
tools on this machine), then replace every compiled lock together, or none."""

from __future__ import annotations

import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

from devkit.containers import mount_spec
from devkit.engine import Engine, Outcome
from devkit.errors import UserError
from devkit.host import proxies
from devkit.locks import PIP_COMPILE_OPTIONS, Lock, is_current, tool_requirements, with_footer
from devkit.settings import Settings

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
    staged: tuple[str, ...] = (),
) -> list[str]:
    """`docker run` of pip-compile in BASE_IMAGE for the lock's platform, so the pins fit the container.

    The project is mounted read-only: pip-compile works on a copy of the current lock (to keep its
    pins) and prints the result, which the task writes only when every chosen lock compiled. work_dir
    holds tools.txt (pip-tools and its dependencies, hash-pinned, from requirements-dev.txt),
    current.txt, and the locks compiled earlier in this run (`staged`), mounted over the project's
    own, since a later lock is constrained by them.
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
    argv += ["--mount", mount_spec(settings.project_dir, LOCK_SOURCE_DIR, readonly=True), "--workdir", LOCK_SOURCE_DIR]
    for name in staged:
        argv += ["--mount", mount_spec(work_dir / "staged" / name, f"{LOCK_SOURCE_DIR}/{name}", readonly=True)]
    argv += ["--mount", mount_spec(work_dir, LOCK_WORK_DIR, readonly=True)]
    # pip's cache in a named volume: a repeated lock downloads nothing it has seen.
    argv += ["--mount", f"type=volume,source={cache_volume},target=/root/.cache/pip"]
    argv += ["--env", "CUSTOM_COMPILE_COMMAND=invoke lock"]
    if settings.build_ca_bundle is not None:
        argv += ["--mount", mount_spec(settings.build_ca_bundle, "/run/secrets/ca_bundle", readonly=True)]
        argv += ["--env", "PIP_CERT=/run/secrets/ca_bundle"]
    # By name: docker reads the values (index URLs may hold credentials) from the task's environment.
    for name in (*proxies, *settings.package_index):
        argv += ["--env", name]
    return [*argv, settings.base_image, "sh", "-c", script]


def host_lock_command(python: str, lock: Lock, output: Path, *, upgrade: bool, packages: tuple[str, ...]) -> list[str]:
    """pip-compile on this machine, for the host tools, which run here."""
    argv = [python, "-m", "piptools", "compile", *PIP_COMPILE_OPTIONS]
    argv += ["--upgrade"] if upgrade else []
    argv += [arg for package in packages for arg in ("--upgrade-package", package)]
    return [*argv, "--output-file", str(output), lock.source]


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


def cache_volume(settings: Settings) -> str:
    """The named volume that keeps pip's downloads between locks."""
    return f"{settings.image_name.replace('/', '-')}-pip-cache"


def lock(engine: Engine, settings: Settings, chosen: tuple[Lock, ...], *, upgrade: bool, packages: tuple[str, ...], python: str) -> None:
    """Compile every chosen lock whose inputs changed (or all, to upgrade), then replace them together.

    A lock constrained by another (the GPU lock by the amd64 one) is compiled against that one's new
    text. When any compile fails, no lock is replaced.
    """
    project_dir = settings.project_dir
    staged: dict[str, str] = {}
    for entry in chosen:
        if not (upgrade or packages) and is_current(project_dir, entry, staged):
            print(f"{entry.output} is up to date", file=sys.stderr)
            continue
        print(f"locking {entry.describe()}", file=sys.stderr)
        body = compile_lock(engine, settings, entry, staged, upgrade=upgrade, packages=packages, python=python)
        staged[entry.output] = with_footer(project_dir, entry, body, staged)
    for name, text in staged.items():
        engine.change(f"replace {name}", lambda name=name, text=text: write_atomically(project_dir / name, text))


def check(project_dir: Path, chosen: tuple[Lock, ...]) -> None:
    """`invoke lock --check`: refuse, naming them, the locks that no longer match their inputs."""
    stale = [entry.output for entry in chosen if not is_current(project_dir, entry)]
    if stale:
        raise UserError(f"out of date: {', '.join(stale)}; run `invoke lock` to compile them")
    print(f"up to date: {', '.join(entry.output for entry in chosen)}", file=sys.stderr)


def compile_lock(
    engine: Engine,
    settings: Settings,
    entry: Lock,
    staged: dict[str, str],
    *,
    upgrade: bool,
    packages: tuple[str, ...],
    python: str,
) -> str:
    """pip-compile's output for `entry`; a failure is one UserError, with every lock as it was."""
    current = settings.project_dir / entry.output
    with tempfile.TemporaryDirectory(prefix="invoke-lock-") as work:
        work_dir = Path(work)
        work_dir.chmod(0o755)  # the lock container's user reads it
        if current.exists():
            (work_dir / "current.txt").write_bytes(current.read_bytes())
        if entry.platform is None:
            result, text = _compile_on_host(engine, settings, entry, work_dir / "current.txt", upgrade, packages, python)
        else:
            result = _compile_in_base_image(engine, settings, entry, work_dir, staged, upgrade, packages)
            text = result.stdout
    if result.failed:
        reason = pip_compile_reason(result.stderr).replace("\n", "; ")
        raise UserError(f"pip-compile failed for {entry.output}; every lock is unchanged: {reason}")
    return text


def _compile_on_host(engine: Engine, settings: Settings, entry: Lock, output: Path, upgrade, packages, python) -> tuple[Outcome, str]:
    """The host tools fit the host: pip-compile runs here, on a copy of the lock."""
    argv = host_lock_command(python, entry, output, upgrade=upgrade, packages=packages)
    result = engine.run(argv, env={"CUSTOM_COMPILE_COMMAND": "invoke lock"}, hide=True, cwd=str(settings.project_dir))
    return result, output.read_text(encoding="utf-8") if result.ok and output.exists() else ""


def _compile_in_base_image(engine: Engine, settings: Settings, entry: Lock, work_dir: Path, staged, upgrade, packages) -> Outcome:
    """pip-compile in BASE_IMAGE for the lock's platform; the lock comes back on stdout."""
    dev_lock = (settings.project_dir / "requirements-dev.txt").read_text(encoding="utf-8")
    (work_dir / "tools.txt").write_text(tool_requirements(dev_lock))
    (work_dir / "staged").mkdir()
    for name, text in staged.items():
        (work_dir / "staged" / name).write_text(text, encoding="utf-8", newline="\n")
    argv = lock_command(
        settings,
        entry,
        work_dir=work_dir,
        cache_volume=cache_volume(settings),
        upgrade=upgrade,
        upgrade_packages=packages,
        proxies=proxies(),
        staged=tuple(staged),
    )
    engine.require_running()
    engine.pull_base_image(settings.base_image, str(entry.platform))
    return engine.run(argv, env=settings.package_index, hide=True)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` in one step, so an interrupted write never leaves half a lock: a temporary file
    of its own beside it (two runs never share one), flushed to disk, then renamed over it."""
    descriptor, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(partial, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
