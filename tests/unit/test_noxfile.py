"""The noxfile: what nox prints around the sessions, which sessions `nox` runs, and when a session's
venv gets the dev lock installed."""

import logging
import os
import re
from pathlib import Path
from types import SimpleNamespace

import nox.registry
import pytest
import yaml

import noxfile  # importing it sets nox's options and its log filter, and registers the sessions


def test_nox_says_nothing_of_uv_which_this_project_does_not_use():
    probe = logging.LogRecord("nox", logging.INFO, __file__, 0, "uv binary not found.", None, None)
    assert logging.getLogger("nox").filter(probe) is False
    other = logging.LogRecord("nox", logging.INFO, __file__, 0, "Running session tests", None, None)
    assert logging.getLogger("nox").filter(other) is not False


# --- which sessions `nox` runs, and how they keep their venvs ----------------------------------

FAST_SESSIONS = {"lint", "tests", "manifests", "lock_check", "container_test"}


def test_nox_alone_runs_the_fast_sessions_and_leaves_the_engine_suite_and_bench_to_be_asked_for():
    sessions = nox.registry.get()
    # manifests is no session of a project generated without Kubernetes (copier.yml).
    kubernetes = (Path(noxfile.__file__).parent / "deploy" / "k8s").is_dir()
    fast = FAST_SESSIONS if kubernetes else FAST_SESSIONS - {"manifests"}
    # With CI set, checkov and copier's generation tests too, where the project has them.
    slow = {"checkov", "template"} & set(sessions) if os.environ.get("CI") else set()
    assert {name for name, func in sessions.items() if func.default} == fast | slow
    assert not sessions["integration"].default
    assert not sessions["bench"].default


def test_the_dev_lock_sessions_run_with_the_host_tools_that_are_it_or_else_keep_a_venv():
    sessions = nox.registry.get()
    for name in ("tests", "lint", "lock_check", "integration", "bench", "pip_audit"):
        if noxfile.HOST_TOOLS_DIFFER:
            assert sessions[name].venv_backend is None, name
            assert sessions[name].reuse_venv is True, name
        else:
            assert sessions[name].venv_backend == "none", name
    if "checkov" in sessions:  # its own lock: a venv of its own, kept between runs
        assert sessions["checkov"].venv_backend is None
        assert sessions["checkov"].reuse_venv is True


def test_a_lock_is_installed_once_synced_when_it_changes_and_else_left_alone():
    assert noxfile.lock_step(None, "abc") == "install"
    assert noxfile.lock_step("abc", "abc") is None
    assert noxfile.lock_step("abc", "def") == "sync"


class RecordingSession:
    """What a session does with its venv: pip installs, commands run, lines logged."""

    def __init__(self, venv: Path):
        self.virtualenv = SimpleNamespace(location=str(venv), bin=str(venv / "bin"))
        self.venv_backend = "venv"
        self.posargs: list[str] = []
        self.done: list[tuple[str, ...]] = []

    def install(self, *args: str) -> None:
        self.done.append(("install", *args))

    def run(self, *args: str, **_: object) -> None:
        self.done.append(("run", *args))

    def log(self, *_: object) -> None:
        pass


@pytest.fixture
def lock_at_hand(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    lock = tmp_path / noxfile.DEV_LOCK
    lock.write_text("pytest==1.0 --hash=sha256:00\n")
    (tmp_path / "venv").mkdir()
    return lock


def test_a_reused_venv_installs_nothing_while_the_dev_lock_is_unchanged(lock_at_hand, tmp_path):
    first, second = RecordingSession(tmp_path / "venv"), RecordingSession(tmp_path / "venv")
    noxfile.tests(first)
    noxfile.tests(second)
    assert first.done[0] == ("install", "-r", noxfile.DEV_LOCK)
    assert [step for step in second.done if step[0] == "install"] == []
    assert second.done == [("run", "pytest", "tests/unit", *second.done[0][3:])]


def test_a_changed_dev_lock_is_synced_into_the_reused_venv(lock_at_hand, tmp_path):
    noxfile.manifests(RecordingSession(tmp_path / "venv"))
    lock_at_hand.write_text("pytest==2.0 --hash=sha256:11\n")
    changed, after = RecordingSession(tmp_path / "venv"), RecordingSession(tmp_path / "venv")
    noxfile.lock_check(changed)
    noxfile.lock_check(after)
    python = str(tmp_path / "venv" / "bin" / "python")
    assert changed.done[0] == (
        "run", "pip-sync", "--quiet", "--python-executable", python, noxfile.DEV_LOCK
    )  # fmt: skip
    assert after.done == [("run", "invoke", "lock", "--check")]


def test_the_engine_suite_names_its_ten_slowest_tests(lock_at_hand, tmp_path):
    session = RecordingSession(tmp_path / "venv")
    noxfile.integration(session)
    (pytest_run,) = [step for step in session.done if step[:2] == ("run", "pytest")]
    assert "--durations=10" in pytest_run


def test_ci_runs_every_session_that_nox_runs_and_the_engine_suite():
    """`.ci/run` runs `nox` then `nox -s integration`; the workflow a job for each of those sessions."""
    project = Path(noxfile.__file__).parent
    commands = [
        line.strip() for line in (project / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("nox")
    ]  # fmt: skip
    assert commands == ["nox", "nox -s integration"]
    if not (project / ".github" / "workflows").is_dir():
        pytest.skip("no .github/workflows: a project made without GitHub Actions")
    workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    matrix = set(workflow["jobs"]["nox"]["strategy"]["matrix"]["session"])
    sessions = nox.registry.get()
    assert {name for name, func in sessions.items() if func.default} | {"integration"} <= matrix


def test_the_pre_commit_hooks_run_what_the_lint_session_and_the_lock_check_run(
    monkeypatch, tmp_path
):
    """Each command of `nox -s lint` and `nox -s lock_check`, less the files it is given, is the entry
    of a local pre-commit hook that runs the dev lock's tool (language: system), nothing else."""
    project = Path(noxfile.__file__).parent
    monkeypatch.chdir(project)
    session = RecordingSession(tmp_path)
    noxfile.lint(session)
    noxfile.lock_check(session)
    files = {".", *noxfile.DOCKERFILES, *noxfile.WORKFLOWS}
    commands = {
        " ".join(arg for arg in step[1:] if arg not in files)
        for step in session.done
        if step[0] == "run"
    }
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    # A hook whose files are absent never runs: the workflows' in a project generated without them.
    present = [path.name for path in project.iterdir()] + noxfile.WORKFLOWS
    hooks = [
        hook
        for hook in hooks
        if "files" not in hook or any(re.search(hook["files"], name) for name in present)
    ]
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    assert {hook["language"] for hook in hooks} == {"system"}
    entries = {hook["entry"].replace(" --force-exclude", "") for hook in hooks}
    assert entries == commands


def test_no_venv_installs_nothing_and_leaves_the_tools_on_path(tmp_path):
    """`nox --no-venv` (as the template's generation tests run a generated project's sessions)."""
    session = RecordingSession(tmp_path / "venv")
    session.venv_backend = "none"
    session.virtualenv = SimpleNamespace()  # nox's PassthroughEnv has no location
    noxfile.install_lock(session, "requirements-dev.txt")
    assert session.done == []


LOCK = """\
nox==2026.10.20 \\
    --hash=sha256:00
    # via -r requirements-dev.in
Pytest==9.2.0 \\
    --hash=sha256:11
"""


def test_host_tools_that_are_the_lock_exactly_differ_in_nothing():
    assert noxfile.differences(LOCK, {"nox": "2026.10.20", "pytest": "9.2.0"}) == []


def test_host_tools_differ_by_a_moved_missing_or_extra_package():
    installed = {"Nox": "2025.1.1", "jupyterlab": "4.0"}
    assert noxfile.differences(LOCK, installed) == [
        "jupyterlab 4.0 (lock: absent)",
        "nox 2025.1.1 (lock: 2026.10.20)",
        "pytest absent (lock: 9.2.0)",
    ]
