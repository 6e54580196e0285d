"""What of the project an image is made from (src/ and the image's lock), as digests: the build
records them in the image's labels, and `invoke run`, `shell` and `train` compare them with the
project as it is now, to say when the image is older than what it would be built from.

Content, not modification times: a `git checkout`, a copy or an editor's save touch a file without
changing it, and a rebuild of unchanged sources is a cache hit that keeps the image's old date.
"""

from __future__ import annotations

import hashlib
from fnmatch import fnmatchcase
from pathlib import Path

from devkit.engine import Engine

# The labels: one digest per input, so that the line about a stale image names which changed.
SOURCE_LABEL = "org.tensorflow-template.src-digest"
LOCK_LABEL = "org.tensorflow-template.lock-digest"

SOURCE_DIR = "src"


def _ignored_names(project_dir: Path) -> list[str]:
    """The names .dockerignore keeps out at any depth (its `**/NAME` lines), which never reach the
    image's src/: bytecode, caches, local secrets."""
    path = project_dir / ".dockerignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [line.strip()[3:] for line in lines if line.strip().startswith("**/")]


def source_digest(project_dir: Path) -> str:
    """A digest of the files under src/ that the build sends, their paths and their contents."""
    ignored = _ignored_names(project_dir)
    root = project_dir / SOURCE_DIR
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if not path.is_file() or any(fnmatchcase(p, n) for p in parts for n in ignored):
            continue
        digest.update(
            f"{'/'.join(parts)}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\0".encode()
        )
    return digest.hexdigest()


def lock_digest(lock: Path) -> str:
    return hashlib.sha256(lock.read_bytes() if lock.exists() else b"").hexdigest()


def digest_labels(project_dir: Path, lock: Path) -> dict[str, str]:
    """The labels that `invoke build` gives the image it makes from src/ and `lock`."""
    return {SOURCE_LABEL: source_digest(project_dir), LOCK_LABEL: lock_digest(lock)}


def changed_since_build(
    engine: Engine, image: str, project_dir: Path, lock: Path, *, source: bool = True
) -> list[str]:
    """What changed in the project since `image` was built: `src/`, the lock's name, both or
    neither (`source` False: src/ is mounted, not the image's). Neither where the image has no
    labels to compare (one built before they were recorded) or is not there."""
    layout = (
        f'{{{{index .Config.Labels "{SOURCE_LABEL}"}}}} {{{{index .Config.Labels "{LOCK_LABEL}"}}}}'
    )
    answer = engine.query([engine.docker, "image", "inspect", "--format", layout, image])
    built = answer.stdout.split() if answer.returncode == 0 else []
    if len(built) != 2:
        return []
    now = [source_digest(project_dir) if source else built[0], lock_digest(lock)]
    return [
        name
        for name, then, current in zip((f"{SOURCE_DIR}/", lock.name), built, now, strict=True)
        if then != current
    ]


def stale_line(image: str, changed: list[str], build_hint: str) -> str:
    """The one line that says the image is older than the project."""
    return (
        f"warning: {' and '.join(changed)} changed since {image} was built, which still has the "
        f"old {'ones' if len(changed) > 1 else 'one'}; {build_hint} rebuilds it"
    )
