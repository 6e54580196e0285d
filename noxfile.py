"""The project's checks. `nox` runs every session; `nox -l` lists them; `nox -s NAME` runs one."""

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

# The pinned host tools: every session that needs packages installs them from this lock, hash-checked.
DEV_LOCK = "requirements-dev.txt"
# Dockerfile.gpu is absent from a project generated without the GPU image (copier.yml).
DOCKERFILES = [name for name in ("Dockerfile", "Dockerfile.gpu") if Path(name).is_file()]
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


def only_with(path: str, **options):
    """nox.session(**options) for a session that exists only where `path` does: a capability's
    (copier.yml's questions leave it out of a project), or the template's own."""
    return nox.session(**options) if Path(path).exists() else (lambda function: function)


def with_example(folder: str) -> list[str]:
    """A test folder of the template, and its counterpart in tests/example/ while the example is there."""
    example = Path("tests", "example", Path(folder).name)
    return [folder, *([str(example)] if example.is_dir() else [])]


@nox.session(venv_backend="none")
def container_test(session: nox.Session) -> None:
    """The container test (tests/container) inside the image `invoke build` makes (`-- --gpu`, `-- --platform linux/arm64`)."""
    # Only drives Docker, through the invoke that runs nox: the image is built first (in seconds when
    # it is up to date), then tests/container (and tests/example/container) runs inside it with pytest
    # mounted, not installed.
    session.run("invoke", "build", *session.posargs, external=True)
    session.run("invoke", "container-test", *session.posargs, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Host-side tests of tasks.py and the configuration (and of the example's plain-Python parts); no engine, seconds."""
    session.install("-r", DEV_LOCK)
    session.run("pytest", *with_example("tests/unit"), *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on all Python, hadolint on both Dockerfiles, the CI workflow and the dev containers; offline."""
    session.install("-r", DEV_LOCK)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("hadolint", *DOCKERFILES)
    if WORKFLOWS:
        # GitHub's workflow schema, and a timeout on every job (both bundled with check-jsonschema), then
        # actionlint: expressions and their contexts, the actions' inputs, the jobs' needs.
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
    """check-jsonschema bundles no schema for devcontainer.json: it must parse, and build a stage that exists."""
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


@only_with("deploy/k8s")
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
    # The template's own engine test (a generated project builds and serves), in the template only.
    generated = [folder for folder in ["tests/template/integration"] if Path(folder).is_dir()]
    # -rs: the reason of any skip is printed (only where no engine exists; in CI a missing engine fails).
    session.run("pytest", *with_example("tests/integration"), *generated, "-rs", *session.posargs)


@only_with("copier.yml")
def template(session: nox.Session) -> None:
    """The template's own: copier generates projects (their tests and lint pass) and updates them.

    Never in a project made from the template: copier.yml leaves it and tests/template out.
    """
    session.install("-r", DEV_LOCK)
    session.run("pytest", "tests/template", "--ignore=tests/template/integration", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Performance against the plain tutorial Dockerfile (ratios and goals), serving figures, arm64 under emulation; not in `nox`."""
    session.install("-r", DEV_LOCK)
    # Several minutes: cold builds of both images, then medians of rebuilds, imports and requests.
    session.run("python", "-m", "benchmarks.images", *session.posargs)
    if Path("src/app/server.py").is_file():
        session.run("python", "-m", "benchmarks.serving")
    else:
        session.log(
            "benchmarks.serving skipped: it measures the example's server, and src/app/server.py is gone"
        )
    # On x86-64: what building and testing the arm64 image under emulation costs against native.
    session.run("python", "-m", "benchmarks.emulation")
