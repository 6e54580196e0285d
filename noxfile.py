"""The project's checks. `nox` runs the fast sessions (minutes); `nox -s integration` the engine
suite; `nox -l` lists them all; `nox -s NAME` runs one."""

import hashlib
import json
import logging
import re
from pathlib import Path

import nox

nox.options.error_on_missing_interpreters = True
# The standard library's venv, named. nox still probes for uv whenever it makes a venv; its
# "uv binary not found." is noise for a project that does not use uv.
nox.options.default_venv_backend = "venv"
logging.getLogger("nox").addFilter(lambda record: record.getMessage() != "uv binary not found.")

# The pinned host tools: every session that needs packages installs them from this lock,
# hash-checked.
DEV_LOCK = "requirements-dev.txt"
# Kept in a session's venv: the sha256 of the dev lock installed there.
DEV_LOCK_MARK = "dev-lock.sha256"
DOCKERFILES = ("Dockerfile", "Dockerfile.gpu")
# What GitHub Actions and the Dev Containers clients read, where the spec puts them.
WORKFLOWS = sorted(str(path) for path in Path(".github/workflows").glob("*.y*ml"))
DEVCONTAINERS = sorted(
    [
        *Path(".devcontainer").glob("devcontainer.json"),
        *Path(".devcontainer").glob("*/devcontainer.json"),
    ]
)
# A string (kept) or a comment (dropped) of JSON with comments, as devcontainer.json is written.
_JSONC_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)


def with_example(folder: str) -> list[str]:
    """A test folder of the template, and its counterpart in tests/example/ while the example is
    there."""
    example = Path("tests", "example", Path(folder).name)
    return [folder, *([str(example)] if example.is_dir() else [])]


def dev_lock_step(installed: str | None, wanted: str) -> str | None:
    """What a session's venv needs, from the sha256 of the dev lock installed there (None: nothing
    yet) and of the lock at hand: "install" into a new venv, "sync" a venv whose lock changed
    (pip-sync also removes what the lock dropped), or None: the venv is the lock's."""
    if installed is None:
        return "install"
    return None if installed == wanted else "sync"


def install_dev_lock(session: nox.Session) -> None:
    """The dev lock in the session's venv, which nox keeps between runs (reuse_venv): installed
    once, synced when the lock changes, untouched (no pip at all) while it does not."""
    mark = Path(session.virtualenv.location, DEV_LOCK_MARK)
    wanted = hashlib.sha256(Path(DEV_LOCK).read_bytes()).hexdigest()
    step = dev_lock_step(mark.read_text().strip() if mark.is_file() else None, wanted)
    if step == "install":
        session.install("-r", DEV_LOCK)
    elif step == "sync":
        session.run("pip-sync", "--quiet", DEV_LOCK)
    else:
        session.log(f"{DEV_LOCK} unchanged: the venv is reused as it is")
        return
    mark.write_text(wanted + "\n")


@nox.session(venv_backend="none")
def container_test(session: nox.Session) -> None:
    """The container test in the image, built first (`-- --gpu`, `-- --platform linux/arm64`)."""
    # Only drives Docker, through the invoke that runs nox: `invoke container-test` builds the
    # image (seconds when it is up to date), then runs tests/container (and tests/example/container)
    # in it.
    session.run("invoke", "container-test", *session.posargs, external=True)


@nox.session(reuse_venv=True)
def tests(session: nox.Session) -> None:
    """Host-side tests of tasks.py and the configuration (and the example's); no engine, seconds."""
    install_dev_lock(session)
    session.run("pytest", *with_example("tests/unit"), *session.posargs)


@nox.session(reuse_venv=True)
def lint(session: nox.Session) -> None:
    """ruff, hadolint on both Dockerfiles, the CI workflow and the dev containers; offline."""
    install_dev_lock(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("hadolint", *DOCKERFILES)
    if WORKFLOWS:
        # GitHub's workflow schema, and a timeout on every job (both bundled with check-jsonschema),
        # then actionlint: expressions and their contexts, the actions' inputs, the jobs' needs.
        session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS)
        session.run(
            "check-jsonschema",
            "--builtin-schema",
            "custom.github-workflows-require-timeout",
            *WORKFLOWS,
        )
        session.run("actionlint", *WORKFLOWS)
    for path in DEVCONTAINERS:
        _check_devcontainer(session, path)


def _check_devcontainer(session: nox.Session, path: Path) -> None:
    """check-jsonschema bundles no schema for devcontainer.json: it must parse, and build a stage
    that exists."""
    text = _JSONC_TOKEN.sub(
        lambda token: token[0] if token[0].startswith('"') else "", path.read_text(encoding="utf-8")
    )
    try:
        build = json.loads(text).get("build", {})
    except json.JSONDecodeError as error:
        session.error(f"{path}: not JSON with comments: {error}")
    dockerfile = path.parent / build.get("dockerfile", "Dockerfile")
    if not dockerfile.is_file():
        session.error(f"{path}: its build.dockerfile {dockerfile} is missing")
    target = build.get("target")
    if target and not re.search(
        rf"^FROM\s.+\sAS\s+{re.escape(target)}\s*$",
        dockerfile.read_text(encoding="utf-8"),
        re.I | re.M,
    ):
        session.error(f"{path}: {dockerfile} has no stage {target!r} (build.target)")
    session.log(f"{path}: parses; builds the {target or 'last'} stage of {dockerfile}")


@nox.session(reuse_venv=True)
def manifests(session: nox.Session) -> None:
    """Every rendering of `invoke k8s` against Kubernetes' own schemas, offline and strict.

    CPU and GPU, 1 and 3 workers."""
    install_dev_lock(session)
    session.run("pytest", "tests/manifests", *session.posargs)


@nox.session(reuse_venv=True)
def lock_check(session: nox.Session) -> None:
    """`invoke lock --check`: every lock matches its .in files (no resolving, milliseconds)."""
    install_dev_lock(session)
    session.run("invoke", "lock", "--check")


@nox.session(default=False, reuse_venv=True)
def integration(session: nox.Session) -> None:
    """The engine suite, not in `nox`: the images built and run for real through the tasks."""
    install_dev_lock(session)
    # -rs: the reason of any skip is printed (only where no engine exists; in CI a missing engine
    # fails). --durations=10: the ten slowest tests, to see where the suite's time goes.
    session.run(
        "pytest", *with_example("tests/integration"), "-rs", "--durations=10", *session.posargs
    )


@nox.session(default=False, reuse_venv=True)
def bench(session: nox.Session) -> None:
    """Not in `nox`: our image against a tutorial's, serving figures, arm64 under emulation.

    Ratios and goals against the plain tutorial Dockerfile."""
    install_dev_lock(session)
    # Several minutes: cold builds of both images, then medians of rebuilds, imports and requests.
    session.run("python", "-m", "benchmarks.images", *session.posargs)
    if Path("src/app/server.py").is_file():
        session.run("python", "-m", "benchmarks.serving")
    else:
        session.log(
            "benchmarks.serving skipped: it measures the example's server,"
            " and src/app/server.py is gone"
        )
    # On x86-64: what building and testing the arm64 image under emulation costs against native.
    session.run("python", "-m", "benchmarks.emulation")
