"""The project's checks. `nox` runs the fast sessions (minutes); `nox -s integration` the engine
suite; `nox -l` lists them all; `nox -s NAME` runs one."""

import hashlib
import json
import logging
import os
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

import nox
import yaml
from packaging.utils import canonicalize_name

nox.options.error_on_missing_interpreters = True
# The standard library's venv, named. nox still probes for uv whenever it makes a venv; its
# "uv binary not found." is noise for a project that does not use uv.
nox.options.default_venv_backend = "venv"
logging.getLogger("nox").addFilter(lambda record: record.getMessage() != "uv binary not found.")

# The pinned host tools: every session that needs packages runs them from this lock, hash-checked.
DEV_LOCK = "requirements-dev.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)


def differences(lock_text: str, installed: dict[str, str]) -> list[str]:
    """How the packages `installed` ({name: version}) differ from the lock's pins, one
    "name installed (lock: pinned)" each; [] when they are the lock, no more and no less."""
    pinned = {canonicalize_name(name): version for name, version in _PIN.findall(lock_text)}
    installed = {canonicalize_name(name): version for name, version in installed.items()}
    return [
        f"{name} {installed.get(name, 'absent')} (lock: {pinned.get(name, 'absent')})"
        for name in sorted(pinned.keys() | installed.keys())
        if installed.get(name) != pinned.get(name)
    ]


# The host tools that run nox are the dev lock exactly, as the README's set-up and .ci/run install
# them: the sessions that need only that lock run with them, no venv of their own (each venv costs
# 20 to 50 s of pip on a first run). Anything else (nox from pipx, a package added or moved): each
# of those sessions makes its own venv from the lock, as nox does.
HOST_TOOLS_DIFFER = differences(
    Path(DEV_LOCK).read_text(encoding="utf-8"),
    {dist.metadata["Name"]: dist.version for dist in metadata.distributions()},
)
if HOST_TOOLS_DIFFER:
    DEV_VENV: dict = {"reuse_venv": True}
else:
    DEV_VENV = {"venv_backend": "none"}
    # Their commands (pytest, ruff, invoke...) are the ones beside the interpreter running nox.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
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


# The slower checks of what a team changes rarely (checkov over the manifests, copier's generation
# of projects from the template): in every CI run (CI set), not in a plain `nox` on a laptop.
IN_CI = bool(os.environ.get("CI"))


def only_with(path: str, **options):
    """nox.session(**options) for a session that exists only where `path` does: a capability's
    (copier.yml's questions leave it out of a project), or the template's own."""
    return nox.session(**options) if Path(path).exists() else (lambda function: function)


def with_example(folder: str) -> list[str]:
    """A test folder of the template, and its counterpart in tests/example/ while the example is
    there."""
    example = Path("tests", "example", Path(folder).name)
    return [folder, *([str(example)] if example.is_dir() else [])]


def lock_step(installed: str | None, wanted: str) -> str | None:
    """What a session's venv needs, from the sha256 of the lock installed there (None: nothing yet)
    and of the lock at hand: "install" into a new venv, "sync" a venv whose lock changed (pip-sync
    also removes what the lock dropped), or None: the venv is the lock's."""
    if installed is None:
        return "install"
    return None if installed == wanted else "sync"


def install_lock(session: nox.Session, lock: str) -> None:
    """`lock` in the session's venv, which nox keeps between runs (reuse_venv): installed once,
    synced when the lock changes, untouched (no pip at all) while it does not. Under `nox
    --no-venv` there is no venv: the tools on PATH run, and nothing is installed."""
    if session.venv_backend == "none":
        if lock == DEV_LOCK and not HOST_TOOLS_DIFFER:
            session.log(f"the host tools that run nox are {lock}: no venv, nothing to install")
        else:
            session.log(f"no venv (--no-venv): {lock} is not installed, the tools on PATH run")
        return
    mark = Path(session.virtualenv.location, f"{lock}.sha256")
    wanted = hashlib.sha256(Path(lock).read_bytes()).hexdigest()
    step = lock_step(mark.read_text().strip() if mark.is_file() else None, wanted)
    if step == "install":
        if lock == DEV_LOCK and HOST_TOOLS_DIFFER:
            said = ", ".join(HOST_TOOLS_DIFFER[:3]) + (", ..." if HOST_TOOLS_DIFFER[3:] else "")
            session.log(f"a venv of its own: the host tools that run nox are not {lock} ({said})")
        session.install("-r", lock)
    elif step == "sync":
        # The pip-sync of the host tools that run nox, on the venv's interpreter.
        python = str(Path(session.virtualenv.bin, "python"))
        session.run("pip-sync", "--quiet", "--python-executable", python, lock, external=True)
    else:
        session.log(f"{lock} unchanged: the venv is reused as it is")
        return
    mark.write_text(wanted + "\n")


@nox.session(venv_backend="none")
def container_test(session: nox.Session) -> None:
    """The container test in the image, built first (`-- FLAGS`: those of invoke container-test)."""
    # Only drives Docker, through the invoke that runs nox: `invoke container-test` builds the
    # image (seconds when it is up to date), then runs tests/container (and tests/example/container)
    # in it.
    session.run("invoke", "container-test", *session.posargs, external=True)


@nox.session(**DEV_VENV)
def tests(session: nox.Session) -> None:
    """Host-side tests of tasks.py and the configuration; no engine, seconds."""
    install_lock(session, DEV_LOCK)
    session.run("pytest", *with_example("tests/unit"), *session.posargs)


@nox.session(**DEV_VENV)
def lint(session: nox.Session) -> None:
    """ruff, hadolint, and the schemas of the project's configuration files; offline."""
    install_lock(session, DEV_LOCK)
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


@only_with("deploy/k8s", **DEV_VENV)
def manifests(session: nox.Session) -> None:
    """Every rendering of `invoke k8s` against Kubernetes' schemas (1.29 on); offline, strict."""
    install_lock(session, DEV_LOCK)
    session.run("pytest", "tests/manifests", *session.posargs)


# checkov and its ~60 dependencies, hash-pinned in a lock of their own: other sessions stay light.
CHECKOV_LOCK = "requirements-checkov.txt"
# The findings that the manifests accept, each with its reason: the one list of them.
CHECKOV_ACCEPTED = Path("deploy/k8s/checkov-accepted.yaml")
# Every kind of rendering of `invoke k8s`, from a copy of the project whose .env holds one app key.
K8S_RENDERINGS = {
    "cpu": [],
    "cpu-3-workers": ["--workers", "3"],
    "gpu-3-workers": ["--gpu", "--workers", "3"],
    "kserve": ["--kserve", "--model", "model"],
    "kserve-gpu": ["--kserve", "--model", "model", "--gpu"],
    "cluster-flags": [
        *("--namespace", "ml", "--pull-secret", "registry", "--service-account", "trainer"),
        *("--storage-class", "standard", "--workers", "2", "--app-secret"),
    ],
    "gpu-by-digest": ["--gpu"],  # last: after a record of `invoke push`
}
K8S_REGISTRY = "registry.example.com/team"
K8S_BY_DIGEST = "gpu-by-digest"
PUSHED = {f"{K8S_REGISTRY}/project:latest-gpu": "sha256:" + "0" * 64}


@only_with("deploy/k8s", reuse_venv=True, default=IN_CI)
def checkov(session: nox.Session) -> None:
    """checkov, offline, over every rendering of `invoke k8s`: no finding but the accepted ones."""
    install_lock(session, CHECKOV_LOCK)
    accepted = yaml.safe_load(CHECKOV_ACCEPTED.read_text(encoding="utf-8"))
    if not isinstance(accepted, dict) or not all(
        isinstance(reason, str) and reason.strip() for reason in accepted.values()
    ):
        session.error(f"{CHECKOV_ACCEPTED}: expected CHECK_ID: reason, a reason for each")
    tmp = Path(session.create_tmp())
    project, renderings = tmp / "project", tmp / "renderings"
    shutil.rmtree(project, ignore_errors=True)
    shutil.rmtree(renderings, ignore_errors=True)
    shutil.copytree(
        ".",
        project,
        # Without .push-digests.json: the images are named by tag, as before any `invoke push`.
        ignore=shutil.ignore_patterns(
            ".git", ".nox", "data", ".env", "*cache*", ".push-digests.json"
        ),
    )
    (project / ".env").write_text("APP_TOKEN=not-a-real-token\n", encoding="utf-8")
    renderings.mkdir()
    for name, flags in K8S_RENDERINGS.items():
        if name == K8S_BY_DIGEST:
            # What `invoke push` records: from here on the images are named by digest.
            (project / ".push-digests.json").write_text(json.dumps(PUSHED), encoding="utf-8")
        with (
            (renderings / f"{name}.yaml").open("w", encoding="utf-8") as output,
            session.chdir(project),
        ):
            # The invoke that runs nox (the dev lock's), not a package of the checkov lock.
            session.run(
                *(sys.executable, "-m", "invoke", "k8s", *flags),
                env={"REGISTRY": K8S_REGISTRY, "IMAGE_NAME": "project", "IMAGE_TAG": "latest"},
                external=True,
                stdout=output,
                stderr=None,
            )
    checkov_run = ("checkov", "--directory", str(renderings), "--framework", "kubernetes")
    offline = ("--skip-download", "--quiet", "--compact")
    session.run(*checkov_run, *offline, "--skip-check", ",".join(accepted))
    # The accepted list stays true: each of its checks still fails somewhere, or it goes.
    reports = tmp / "reports"
    session.run(
        *checkov_run,
        *offline,
        *("--check", ",".join(accepted), "--output", "json", "--output-file-path", str(reports)),
        silent=True,
        success_codes=[0, 1],
    )
    results = json.loads((reports / "results_json.json").read_text(encoding="utf-8"))
    failed = [
        check
        for result in (results if isinstance(results, list) else [results])
        for check in result["results"]["failed_checks"]
    ]
    fired = {check["check_id"] for check in failed}
    by_digest = {
        check["check_id"] for check in failed if K8S_BY_DIGEST in Path(check["file_path"]).stem
    }
    if "CKV_K8S_43" in by_digest:
        session.error(f"the {K8S_BY_DIGEST} rendering names an image by tag (CKV_K8S_43)")
    if stale := sorted(set(accepted) - fired):
        session.error(f"{CHECKOV_ACCEPTED} accepts {', '.join(stale)}, which no rendering fails")
    session.log(f"accepted, with the reasons in {CHECKOV_ACCEPTED}: {', '.join(sorted(fired))}")


# Every lock: the images', the notebook's and the host tools' (checkov's too).
LOCKS = sorted(str(path) for path in Path(".").glob("requirements*.txt"))


@nox.session(default=False, **DEV_VENV)
def pip_audit(session: nox.Session) -> None:
    """pip-audit over every lock's pins (OSV's vulnerability data, online): CI runs it."""
    if not os.environ.get("CI"):
        # Each pin is looked up online: outside CI this session says it did not audit, and passes.
        session.skip(
            "did not audit: pip-audit looks every pin up in OSV's online database; CI runs this "
            "session (CI set), or run `CI=1 nox -s pip_audit` on a machine that reaches api.osv.dev"
        )
    install_lock(session, DEV_LOCK)
    pins = Path(session.create_tmp()) / "pins"
    pins.mkdir(exist_ok=True)
    for lock in LOCKS:
        # Every pin, whatever platform its marker names (pip-audit would skip an arm64-only pin on
        # an x86-64 runner). The locks are complete: nothing to resolve, nothing to install.
        text = Path(lock).read_text(encoding="utf-8")
        (pins / lock).write_text(re.sub(r"^(\S+==\S+) ;[^\\\n]*", r"\1 ", text, flags=re.M))
        session.log(f"{lock}: every pin, markers left out")
        session.run(
            *("pip-audit", "--requirement", str(pins / lock), "--no-deps", "--disable-pip"),
            *("--vulnerability-service", "osv", "--progress-spinner", "off"),
            *session.posargs,
        )


@nox.session(**DEV_VENV)
def lock_check(session: nox.Session) -> None:
    """`invoke lock --check`: every lock matches its .in files (no resolving, milliseconds)."""
    install_lock(session, DEV_LOCK)
    session.run("invoke", "lock", "--check")


@nox.session(default=False, **DEV_VENV)
def integration(session: nox.Session) -> None:
    """The engine suite, not in `nox`: the images built and run for real through the tasks."""
    install_lock(session, DEV_LOCK)
    # The template's own engine test (a generated project builds and serves), in the template only.
    generated = [folder for folder in ["tests/template/integration"] if Path(folder).is_dir()]
    # -rs: the reason of any skip is printed (only where no engine exists; in CI a missing engine
    # fails). --durations=10: the ten slowest tests, to see where the suite's time goes.
    session.run(
        "pytest",
        *with_example("tests/integration"),
        *generated,
        "-rs",
        "--durations=10",
        *session.posargs,
    )


@only_with("copier.yml", default=IN_CI, **DEV_VENV)
def template(session: nox.Session) -> None:
    """The template's own: copier generates projects (their tests and lint pass) and updates them.

    Never in a project made from the template: copier.yml leaves it and tests/template out.
    """
    install_lock(session, DEV_LOCK)
    # -n auto: a pytest worker per core (pytest-xdist); each generated project's checks take one.
    session.run(
        "pytest",
        "tests/template",
        "--ignore=tests/template/integration",
        "-n",
        "auto",
        *session.posargs,
    )


@nox.session(default=False, **DEV_VENV)
def bench(session: nox.Session) -> None:
    """Not in `nox`: our image against a tutorial's, the app's figures, arm64 under emulation.

    Ratios and goals against the plain tutorial Dockerfile."""
    serving = Path("src/app/server.py").is_file()
    # The serving benchmark's load generator, checked before the long runs: wrk, from the system's
    # packages (`apt-get install wrk` on Debian and Ubuntu, `brew install wrk` on macOS).
    if serving and shutil.which("wrk") is None:
        session.error("benchmarks.serving needs wrk: `apt-get install wrk` or `brew install wrk`")
    install_lock(session, DEV_LOCK)
    # Several minutes: cold builds of both images, then medians of rebuilds, imports and requests.
    session.run("python", "-m", "benchmarks.images", *session.posargs)
    if serving:
        session.run("python", "-m", "benchmarks.serving")
    else:
        session.log(
            "benchmarks.serving skipped: it measures the example's server,"
            " and src/app/server.py is gone"
        )
    # On x86-64: what building and testing the arm64 image under emulation costs against native.
    session.run("python", "-m", "benchmarks.emulation")
