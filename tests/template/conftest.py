"""The template's own tests (template-only: copier.yml leaves this folder out of every project):
projects generated with `copier copy` from this repository as it is, uncommitted changes included."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import copier
import pytest

from helpers.project import PROJECT_DIR


def copy_template(source: Path | str, destination: Path, vcs_ref: str | None = None, **answers):
    """`copier copy --trust --defaults --data NAME=VALUE... SOURCE DESTINATION`."""
    copier.run_copy(
        str(source),
        destination,
        data=answers,
        defaults=True,
        unsafe=True,
        vcs_ref=vcs_ref,
        quiet=True,
    )
    return destination


@pytest.fixture
def generate(tmp_path) -> Callable[..., Path]:
    """A project from this repository's working tree (copier's --vcs-ref HEAD takes what is not
    committed yet), with the answers given and every other one at its default."""

    def make(name: str = "acme", **answers) -> Path:
        return copy_template(PROJECT_DIR, tmp_path / name, vcs_ref="HEAD", **answers)

    return make


def tools_env() -> dict[str, str]:
    """The environment with this interpreter's host tools (nox, pytest, ruff, ...) first on PATH."""
    folder = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture
def run() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a command in a generated project with these host tools, its output captured."""

    def run_in(project: Path, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=project,
            env=tools_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run_in
