"""The project's lock files, as the engine tests read and edit them."""

from pathlib import Path

IMAGE_LOCKS = ("requirements.txt", "requirements-arm64.txt", "requirements-gpu.txt")
# JupyterLab's, compiled against the CPU locks: a new CPU lock makes them stale, and `invoke lock` recompiles them.
NOTEBOOK_LOCKS = ("requirements-notebook.txt", "requirements-notebook-arm64.txt")
ALL_LOCKS = (*IMAGE_LOCKS, *NOTEBOOK_LOCKS, "requirements-dev.txt")


def snapshot(project: Path) -> dict[str, bytes]:
    """Every lock of `project`, byte for byte."""
    return {name: (project / name).read_bytes() for name in ALL_LOCKS}


def lock_entry(lock: Path, name: str) -> str:
    """A package's entry in a pip-compile lock: its line and the indented hashes and comments below."""
    lines = lock.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}=="))
    end = next(
        (i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines)
    )
    return "".join(lines[start:end])
