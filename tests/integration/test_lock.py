"""`invoke lock` against the real engine: pip-compile inside BASE_IMAGE for every target platform.

The linux/arm64 lock compiles under emulation here (minutes); pip's cache lives in a named volume,
so a repeated run downloads nothing it has seen.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devkit.locks import pinned_versions
from helpers.lock_files import ALL_LOCKS, IMAGE_LOCKS, snapshot
from helpers.project import project_copy


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project: the tests edit its requirements, never the real ones."""
    return project_copy(tmp_path)


def test_committed_locks_pass_the_check(invoke):
    result = invoke("lock", "--check")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"up to date: {', '.join(ALL_LOCKS)}"


def test_a_misspelt_requirement_changes_no_lock(invoke, project):
    before = snapshot(project)
    with (project / "requirements.in").open("a") as file:
        file.write("tensorflw-addons-typo\n")
    result = invoke("lock", cwd=project)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "locking requirements.txt (linux/amd64)"
    assert lines[1].startswith("error: pip-compile failed for requirements.txt; every lock is unchanged: ")
    assert "tensorflw-addons-typo" in lines[1]
    assert len(lines) == 2, result.stderr
    assert snapshot(project) == before


def test_a_new_package_reaches_every_lock_with_hashes_and_other_pins_stay(invoke, project):
    before = {name: pinned_versions((project / name).read_text()) for name in IMAGE_LOCKS}
    with (project / "requirements.in").open("a") as file:
        file.write("tabulate\n")

    check = invoke("lock", "--check", cwd=project)
    assert check.returncode == 1
    assert check.stderr.strip() == f"error: out of date: {', '.join(IMAGE_LOCKS)}; run `invoke lock` to compile them"

    locked = invoke("lock", cwd=project)
    assert locked.returncode == 0, locked.stderr
    for name in IMAGE_LOCKS:
        text = (project / name).read_text()
        after = pinned_versions(text)
        assert "tabulate" in after, f"{name} lacks the new package"
        block = text[text.index("tabulate==") :].split("\n    # via", 1)[0]
        assert "--hash=sha256:" in block, f"{name}: tabulate has no hash"
        assert {key: value for key, value in after.items() if key != "tabulate"} == before[name], f"{name}: other pins moved"
        assert (project / name).stat().st_uid == os.getuid(), f"{name} is not owned by the caller"
    assert invoke("lock", "--check", cwd=project).returncode == 0

    # Deterministic: compiling again (forced by --upgrade-package) gives the same bytes.
    first = (project / "requirements.txt").read_bytes()
    again = invoke("lock", "--platform", "linux/amd64", "--upgrade-package", "tabulate", cwd=project)
    assert again.returncode == 0, again.stderr
    assert (project / "requirements.txt").read_bytes() == first
