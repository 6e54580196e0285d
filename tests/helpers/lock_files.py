"""The project's lock files, as the engine tests read and edit them."""

import uuid
from pathlib import Path

from devkit import locks
from helpers.project import PROJECT_DIR

IMAGE_LOCKS = ("requirements.txt", "requirements-arm64.txt", "requirements-gpu.txt")
# JupyterLab's, compiled against the CPU locks: a new CPU lock makes them stale, and `invoke lock` recompiles them.
NOTEBOOK_LOCKS = ("requirements-notebook.txt", "requirements-notebook-arm64.txt")
# Every lock, in the order `invoke lock` makes them (the host tools' locks last).
ALL_LOCKS = tuple(lock.output for lock in locks.ALL)


def snapshot(project: Path) -> dict[str, bytes]:
    """Every lock of `project`, byte for byte."""
    return {name: (project / name).read_bytes() for name in ALL_LOCKS}


def add_to_image_lock(project: Path, lock: str, package: str = "iniconfig") -> None:
    """Add the host tools' hashed pin of `package` (small, pure Python) to the image lock `lock` of
    `project`, and write its halves in docker/locks/ as `invoke lock` would, the packages half with a
    line that no earlier run wrote, so that BuildKit cannot have cached it."""
    entry = locks.LockFile.read(PROJECT_DIR / "requirements-dev.txt").get(package)
    image_lock = next(each for each in locks.IMAGE_LOCKS if each.output == lock)
    body = locks.lock_body((project / lock).read_text()) + entry.requirement()
    (project / lock).write_text(locks.with_footer(project, image_lock, body))
    tensorflow_half, packages_half = image_lock.layer_files()
    for name, text in locks.layer_texts(image_lock, body).items():
        unique = f"# test {uuid.uuid4().hex}\n" if name == packages_half else ""
        (project / name).write_text(text + unique)
