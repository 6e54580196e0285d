"""The project's checks. `nox` runs every session; `nox -l` lists them; `nox -s NAME` runs one."""

import logging

import nox

nox.options.error_on_missing_interpreters = True
# The standard library's venv, named. nox still probes for uv whenever it makes a venv; its
# "uv binary not found." is noise for a project that does not use uv.
nox.options.default_venv_backend = "venv"
logging.getLogger("nox").addFilter(lambda record: record.getMessage() != "uv binary not found.")

# The pinned host tools: every session that needs packages installs them from this lock, hash-checked.
DEV_LOCK = "requirements-dev.txt"
DOCKERFILES = ("Dockerfile", "Dockerfile.gpu")


@nox.session(venv_backend="none")
def container_test(session: nox.Session) -> None:
    """The container test (tests/container) inside the image `invoke build` makes (`-- --gpu`, `-- --platform linux/arm64`)."""
    # Only drives Docker, through the invoke that runs nox: the image is built first (in seconds when
    # it is up to date), then tests/container runs inside it with pytest mounted, not installed.
    session.run("invoke", "build", *session.posargs, external=True)
    session.run("invoke", "container-test", *session.posargs, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Host-side tests of tasks.py and the configuration; no engine needed, seconds."""
    session.install("-r", DEV_LOCK)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) on all Python, hadolint on both Dockerfiles."""
    session.install("-r", DEV_LOCK)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("hadolint", *DOCKERFILES)


@nox.session
def manifests(session: nox.Session) -> None:
    """Every rendering of `invoke k8s` (CPU and GPU, 1 and 3 workers) against Kubernetes' own schemas, offline and strict."""
    session.install("-r", DEV_LOCK)
    session.run("pytest", "tests/manifests", *session.posargs)


@nox.session
def lock_check(session: nox.Session) -> None:
    """`invoke lock --check`: every lock still matches its .in files (no resolving, milliseconds)."""
    session.install("-r", DEV_LOCK)
    session.run("invoke", "lock", "--check")


@nox.session
def integration(session: nox.Session) -> None:
    """Build and run the images for real through the invoke tasks: ports, volumes, ownership, stop, errors."""
    session.install("-r", DEV_LOCK)
    # -rs: the reason of any skip is printed (only where no engine exists; in CI a missing engine fails).
    session.run("pytest", "tests/integration", "-rs", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Performance against the plain tutorial Dockerfile (ratios and goals), serving figures, arm64 under emulation; not in `nox`."""
    session.install("-r", DEV_LOCK)
    # Several minutes: cold builds of both images, then medians of rebuilds, imports and requests.
    session.run("python", "benchmarks/images.py", *session.posargs)
    session.run("python", "benchmarks/serving.py")
    # On x86-64: what building and testing the arm64 image under emulation costs against native.
    session.run("python", "benchmarks/emulation.py")
