"""`invoke lock` against the real engine: pip-compile inside BASE_IMAGE for every target platform.

The linux/arm64 lock compiles under emulation here (minutes); pip's cache lives in a named volume,
so a repeated run downloads nothing it has seen.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

from devkit.baseimage import RECORD
from devkit.locks import LockFile, pinned_versions
from helpers.engine import docker, host_platform
from helpers.lock_files import ALL_LOCKS, IMAGE_LOCKS, snapshot
from helpers.project import PROJECT_DIR, project_copy

# The platform of the CPU image that `invoke build` makes here.
HOST_PLATFORM = host_platform()


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the project: the tests edit its requirements, never the real ones."""
    return project_copy(tmp_path)


def test_committed_locks_pass_the_check(invoke):
    result = invoke("lock", "--check")
    assert result.returncode == 0, result.stderr
    # The template ships no record of the base's digests (they are the team's registry's).
    pinned = (PROJECT_DIR / RECORD).is_file()
    assert result.stderr.splitlines()[-1] == (
        f"up to date: {', '.join([*ALL_LOCKS, RECORD] if pinned else ALL_LOCKS)}"
    )
    assert pinned or f"{RECORD} is not written yet" in result.stderr


@pytest.mark.platform("linux/amd64")  # the first lock `invoke lock` compiles
def test_a_misspelt_requirement_changes_no_lock(invoke, project):
    before = snapshot(project)
    with (project / "requirements.in").open("a") as file:
        file.write("tensorflw-addons-typo\n")
    result = invoke("lock", cwd=project)
    assert result.returncode == 1
    # Without the progress lines of a long compile, which may come between.
    lines = [
        line for line in result.stderr.strip().splitlines() if not line.startswith("still locking ")
    ]
    assert lines[0].startswith("locking requirements.txt (linux/amd64)")
    assert lines[1].startswith(
        "error: pip-compile failed for requirements.txt; every lock is unchanged: "
    )
    assert "tensorflw-addons-typo" in lines[1]
    assert len(lines) == 2, result.stderr
    assert snapshot(project) == before


@pytest.mark.platform(HOST_PLATFORM)
def test_a_new_package_reaches_a_platforms_lock_hashed_and_the_lock_names_what_it_left(
    invoke, project
):
    """A package added to requirements.in makes every image lock out of date. `--platform P`
    compiles that platform's locks: the package comes in with its hashes, no other pin moves, and
    the run ends naming the locks it left out of date and the command that compiles them; a package
    that --upgrade-package could not move is said to stay, with the requirement that holds it
    (TensorFlow's on h5py, where TensorFlow caps it). Compiling again gives the same bytes. Every
    platform's lock, the emulated one too, is test_adoption's."""
    lock, notebook = (
        ("requirements.txt", "requirements-notebook.txt")
        if HOST_PLATFORM == "linux/amd64"
        else ("requirements-arm64.txt", "requirements-notebook-arm64.txt")
    )
    before = pinned_versions((project / lock).read_text())
    with (project / "requirements.in").open("a") as file:
        file.write("tabulate\n")
    check = invoke("lock", "--check", cwd=project)
    assert check.returncode == 1
    assert check.stderr.splitlines()[-1] == (
        f"error: out of date: {', '.join(IMAGE_LOCKS)}; run `invoke lock` to compile them"
    )

    result = invoke("lock", "--platform", HOST_PLATFORM, "--upgrade-package", "h5py", cwd=project)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    text = (project / lock).read_text()
    after = pinned_versions(text)
    tabulate = after["tabulate"]
    said = [line for line in lines if line.startswith((f"{lock}: ", f"{notebook}: "))]
    assert len(said) == 2, result.stderr
    assert re.fullmatch(
        rf"{re.escape(lock)}: added tabulate {re.escape(tabulate)}; h5py stays at"
        rf" {re.escape(before['h5py'])}: (tensorflow|tensorflow-cpu|keras) \S+ requires h5py\S*<\S+",
        said[0],
    ), result.stderr
    # JupyterLab's lock is compiled again too, against the new CPU lock; it needs no tabulate.
    assert said[1] == f"{notebook}: unchanged"
    hashes = LockFile.parse(text).get("tabulate").hashes
    assert {value.split(":")[0] for value in hashes} == {"sha256"}, f"{lock}: tabulate has no hash"
    assert {name: version for name, version in after.items() if name != "tabulate"} == before, (
        f"{lock}: other pins moved"
    )
    assert (project / lock).stat().st_uid == os.getuid(), f"{lock} is not owned by the caller"
    stale = [name for name in IMAGE_LOCKS if name != lock]
    assert lines[-1] == f"left out of date: {', '.join(stale)}; `invoke lock` compiles them"
    check = invoke("lock", "--check", cwd=project)
    assert check.stderr.splitlines()[-1] == (
        f"error: out of date: {', '.join(stale)}; run `invoke lock` to compile them"
    )

    # Deterministic: compiling again (forced by --upgrade-package) gives the same bytes, and
    # tabulate, asked to move, stays: pip-compile, asked for a newer one, says why.
    first = (project / lock).read_bytes()
    again = invoke(
        "lock", "--platform", HOST_PLATFORM, "--upgrade-package", "tabulate", cwd=project
    )
    assert again.returncode == 0, again.stderr
    assert (project / lock).read_bytes() == first
    (unchanged,) = [line for line in again.stderr.splitlines() if line.startswith(f"{lock}: ")]
    assert unchanged.startswith(f"{lock}: unchanged; tabulate stays at {tabulate}: "), again.stderr


def test_the_lock_container_runs_as_the_caller_and_fills_its_cache(invoke, project):
    """No capability, no-new-privileges, the caller's uid (as root: the one behind sudo), and pip's
    cache still written: the cache volume is writable by whichever uid the lock runs as."""
    env = {"IMAGE_NAME": f"{invoke.image_name}-lock-{uuid.uuid4().hex[:8]}"}
    if os.getuid() == 0:
        env.update(SUDO_UID="4321", SUDO_GID="4321")  # as `sudo invoke lock` run by uid 4321
    caller = int(env.get("SUDO_UID", os.getuid()))
    volume = f"{env['IMAGE_NAME']}-lock-cache"
    with (project / "requirements.in").open("a") as file:
        file.write("tabulate\n")
    try:
        result = invoke("lock", "--platform", "linux/amd64", cwd=project, env=env)
        assert result.returncode == 0, result.stderr
        assert "tabulate" in pinned_versions((project / "requirements.txt").read_text())
        base_image = invoke.env.get("BASE_IMAGE", "python:3.11-slim")
        # pip-tools' cache folder, made by the caller's uid; pip's own beside it once the index sends
        # cacheable answers (this machine's TLS-intercepting proxy strips Cache-Control, so it stays empty).
        found = docker(
            "run", "--rm", "--mount", f"type=volume,source={volume},target=/cache", base_image,
            "stat", "--format", "%u %a %n", "/cache", "/cache/pip-tools",
        ).stdout  # fmt: skip
        assert found == f"0 1777 /cache\n{caller} 755 /cache/pip-tools\n", (
            "a cache volume that every uid may write in, and the caller did"
        )
    finally:
        docker("volume", "rm", "--force", volume, check=False)
