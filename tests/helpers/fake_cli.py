"""Stand-in container CLIs for the engine-free tests."""

import stat
from pathlib import Path


def fake_cli(tmp_path: Path, script: str) -> str:
    """A `docker` that answers by `case "$*"` in `script`."""
    cli = tmp_path / "docker"
    cli.write_text(
        f'#!/bin/sh\ncase "$*" in\n{script}\n*) echo "unexpected: $*" >&2; exit 99 ;;\nesac\n'
    )
    cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
    return str(cli)
