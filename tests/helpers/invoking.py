"""`invoke` run as a user runs it: in the project folder, or as another (non-root) user of this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers.project import PROJECT_DIR


@dataclass
class Invoke:
    """Runs `invoke` in the project folder as a user would, with settings in the environment."""

    env: dict[str, str]

    def __call__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: Path = PROJECT_DIR,
        timeout: float = 1800,
        **kwargs,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def popen(
        self, *args: str, cwd: Path = PROJECT_DIR, env: dict[str, str] | None = None, **kwargs
    ) -> subprocess.Popen[str]:
        options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
        return subprocess.Popen(
            [sys.executable, "-m", "invoke", *args],
            cwd=cwd,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            text=True,
            **options,
        )

    @property
    def image_name(self) -> str:
        return self.env["IMAGE_NAME"]


@dataclass
class Caller:
    """How to run invoke as a non-root user: the command, where, with what environment, and the uid."""

    command: list[str]
    cwd: Path
    env: dict[str, str]
    uid: int
    data: Path

    def folder(self, name: str) -> Path:
        """Another folder of the caller's, beside their DATA_DIR (where they may enter it)."""
        folder = self.data.parent / name
        folder.mkdir()
        os.chown(folder, self.uid, -1)
        return folder


def run_as(
    invoke: Invoke, caller: Caller, *args: str, data: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """invoke, run by `caller` with the suite's settings and the caller's own DATA_DIR (or `data`)."""
    env = {**invoke.env, **caller.env, "DATA_DIR": str(data or caller.data)}
    return subprocess.run(
        [*caller.command, *args],
        cwd=caller.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
