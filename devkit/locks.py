"""The locks: which `.in` compiles into which lock for which platform, and whether a lock is stale.

A lock ends with a footer line that records a digest of what made it: the text of its `.in` file,
of every file that one includes or is constrained by (`-r`, `-c`), and of the lock's own body. A
changed input, or a hand-edited lock, no longer matches, so `invoke lock --check` tells a stale lock
in milliseconds, without resolving anything.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from devkit.errors import UserError
from devkit.platforms import AMD64, ARM64

FOOTER_PREFIX = "# invoke lock: inputs and lock digest sha256:"

# pip-compile's options for every lock: hashes for every file, pip and setuptools pinned too (so a
# --require-hashes install finds every package), no local index or wheel folder written into a lock.
PIP_COMPILE_OPTIONS = (
    "--quiet",
    "--generate-hashes",
    "--allow-unsafe",
    "--strip-extras",
    "--no-emit-index-url",
    "--no-emit-find-links",
    "--newline=LF",
)


@dataclass(frozen=True)
class Lock:
    """One lock file and how it is made."""

    source: str
    output: str
    # The platform whose base image compiles it; None for the host tools, compiled on the host.
    platform: str | None
    gpu: bool = False
    # Another lock this one is compiled against (pip-compile --constraint): shared packages keep its pins.
    constraint: str | None = None

    def describe(self) -> str:
        return f"{self.output} ({self.platform or 'host tools'}{', GPU' if self.gpu else ''})"


# In the order they must be made: the GPU lock is constrained by the amd64 CPU lock.
CPU_AMD64 = Lock("requirements-cpu.in", "requirements.txt", AMD64)
CPU_ARM64 = Lock("requirements-cpu.in", "requirements-arm64.txt", ARM64)
GPU = Lock("requirements-gpu.in", "requirements-gpu.txt", AMD64, gpu=True)
# JupyterLab for `invoke notebook`, installed only by the Dockerfiles' `notebook` stage: one lock per
# CPU lock, compiled against it, so the notebook image runs the packages of the image it extends.
NOTEBOOK_AMD64 = Lock(
    "requirements-notebook.in", "requirements-notebook.txt", AMD64, constraint=CPU_AMD64.output
)
NOTEBOOK_ARM64 = Lock(
    "requirements-notebook.in",
    "requirements-notebook-arm64.txt",
    ARM64,
    constraint=CPU_ARM64.output,
)
DEV = Lock("requirements-dev.in", "requirements-dev.txt", None)
# checkov (`nox -s checkov`), ~60 packages of its own: a host-tool lock apart, so that the dev lock
# and every other session stay light.
CHECKOV = Lock("requirements-checkov.in", "requirements-checkov.txt", None)
HOST_LOCKS = (DEV, CHECKOV)
ALL = (CPU_AMD64, CPU_ARM64, GPU, NOTEBOOK_AMD64, NOTEBOOK_ARM64, *HOST_LOCKS)
IMAGE_LOCKS = (CPU_AMD64, CPU_ARM64, GPU)

_PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)[\s=]+(\S+)", re.MULTILINE)
_REQUIREMENT_FILE = re.compile(r"^\s*(?:-r|--requirement)[\s=]+(\S+)", re.MULTILINE)

# What environment markers see in the container of each platform (`platform_machine == "x86_64"`).
_MARKER_ENVIRONMENT = {
    AMD64: {
        "platform_machine": "x86_64",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
    },
    ARM64: {
        "platform_machine": "aarch64",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
    },
}


def select_locks(*, gpu: bool, platform: str | None, dev: bool) -> tuple[Lock, ...]:
    """The locks a command line asks for: all of them by default; --gpu, --platform or --dev narrow it."""
    if dev:
        if gpu or platform:
            raise UserError("--dev locks the host tools; it does not go with --gpu or --platform")
        return HOST_LOCKS
    if gpu:
        if platform not in (None, AMD64):
            raise UserError(
                f"the GPU lock is {AMD64} only (TensorFlow's CUDA wheels are x86-64 only); --platform asks for {platform}"
            )
        return (GPU,)
    if platform is not None:
        return tuple(lock for lock in ALL if lock.platform == platform and not lock.gpu)
    return ALL


def image_lock(*, gpu: bool, platform: str) -> Lock:
    """The lock that the image of this variant and platform installs (as its Dockerfile picks it)."""
    return next(lock for lock in IMAGE_LOCKS if lock.gpu == gpu and lock.platform == platform)


def notebook_lock(platform: str) -> Lock:
    """The lock of the notebook stage for the image of this platform (the GPU image's is linux/amd64)."""
    return NOTEBOOK_ARM64 if platform == ARM64 else NOTEBOOK_AMD64


def _read(project_dir: Path, name: str, staged: Mapping[str, str]) -> str:
    """A project file's text, or the new text of a lock compiled in this run and not yet written."""
    return staged[name] if name in staged else (project_dir / name).read_text(encoding="utf-8")


def input_files(
    project_dir: Path, source: str, staged: Mapping[str, str] | None = None
) -> list[str]:
    """`source` and, recursively, every file it includes or is constrained by, relative to the project."""
    staged = staged or {}
    found: list[str] = []
    pending = [source]
    while pending:
        name = pending.pop(0)
        if name in found:
            continue
        if name not in staged and not (project_dir / name).is_file():
            raise UserError(f"{name} is missing (read by {found[-1] if found else 'invoke lock'})")
        found.append(name)
        pending.extend(_INCLUDE.findall(_read(project_dir, name, staged)))
    return found


def required_names(project_dir: Path, lock: Lock) -> list[str]:
    """The packages that the lock's `.in` file and those it includes (`-r`, recursively) ask for, as
    pip names them; a requirement whose marker does not hold for the lock's platform is left out.

    Markers on anything but the platform (python_version, ...) are judged by this machine's Python.
    """
    environment = {**default_environment(), **_MARKER_ENVIRONMENT.get(lock.platform, {})}
    names: list[str] = []
    pending, seen = [lock.source], set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        text = (project_dir / name).read_text(encoding="utf-8")
        pending.extend(_REQUIREMENT_FILE.findall(text))
        for line in re.sub(r"\\\n", "", text).splitlines():
            line = re.sub(r"(^|\s)#.*", "", line).strip()
            if not line or line.startswith("-"):
                continue  # an option: -r is followed above; -c constrains, and requires nothing
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue  # a path or URL without a name: pip-compile says what it makes of it
            if requirement.marker is None or requirement.marker.evaluate(environment):
                names.append(canonicalize_name(requirement.name))
    return list(dict.fromkeys(names))


def missing_requirements(project_dir: Path, lock: Lock, lock_text: str) -> list[str]:
    """The required packages (`required_names`) that `lock_text` does not pin with a hash."""
    pinned = set()
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock_text):
        match = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==\S", block)
        if match and "--hash=sha256:" in block:
            pinned.add(canonicalize_name(match.group(1)))
    return [name for name in required_names(project_dir, lock) if name not in pinned]


def changes(old_text: str, new_text: str) -> str:
    """What a new lock changes against the old, by package: added, removed, moved (old -> new), or unchanged."""
    old, new = pinned_versions(old_text), pinned_versions(new_text)
    parts = []
    added = [f"{name} {new[name]}" for name in new if name not in old]
    removed = [f"{name} {old[name]}" for name in old if name not in new]
    moved = [
        f"{name} {old[name]} -> {new[name]}"
        for name in new
        if name in old and old[name] != new[name]
    ]
    for label, entries in (("added", added), ("removed", removed), ("moved", moved)):
        if entries:
            parts.append(f"{label} {', '.join(entries)}")
    if parts:
        return "; ".join(parts)
    return (
        "unchanged"
        if lock_body(old_text) == lock_body(new_text)
        else "the same versions (hashes or notes changed)"
    )


def pinned_versions(lock_text: str) -> dict[str, str]:
    """{package name, lower case: pinned version} of a lock."""
    return {name.lower(): version for name, version in _PIN.findall(lock_text)}


def pinned_tensorflow(lock_text: str) -> str:
    """The TensorFlow version a lock pins (`tensorflow`, `tensorflow-cpu` or with extras), or `unknown`."""
    pins = pinned_versions(lock_text)
    return pins.get("tensorflow-cpu") or pins.get("tensorflow") or "unknown"


def lock_body(text: str) -> str:
    """A lock's text without its footer."""
    return "".join(
        line for line in text.splitlines(keepends=True) if not line.startswith(FOOTER_PREFIX)
    )


def lock_inputs(
    project_dir: Path, lock: Lock, staged: Mapping[str, str] | None = None
) -> list[str]:
    """Every file a lock is made from: its `.in` chain, then the lock it is constrained by, where one is."""
    found = input_files(project_dir, lock.source, staged)
    if lock.constraint is not None:
        found += [
            name for name in input_files(project_dir, lock.constraint, staged) if name not in found
        ]
    return found


def digest(
    project_dir: Path, lock: Lock, body: str, staged: Mapping[str, str] | None = None
) -> str:
    """The digest recorded in the footer: the inputs' names and texts, then the lock body.

    staged: the new texts of locks compiled in the same run, which a later lock is constrained by.
    """
    staged = staged or {}
    sha = hashlib.sha256()
    for name in lock_inputs(project_dir, lock, staged):
        sha.update(f"{name}\n".encode())
        sha.update(_read(project_dir, name, staged).replace("\r\n", "\n").encode())
    sha.update(body.encode())
    return sha.hexdigest()


def with_footer(
    project_dir: Path, lock: Lock, body: str, staged: Mapping[str, str] | None = None
) -> str:
    """The lock text to write: pip-compile's output and the footer that dates it."""
    body = lock_body(body)
    return f"{body}{FOOTER_PREFIX}{digest(project_dir, lock, body, staged)}\n"


def is_current(project_dir: Path, lock: Lock, staged: Mapping[str, str] | None = None) -> bool:
    """The lock exists and was made from the inputs as they are now (or as staged), and not edited since."""
    path = project_dir / lock.output
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    recorded = next(
        (
            line[len(FOOTER_PREFIX) :].strip()
            for line in text.splitlines()
            if line.startswith(FOOTER_PREFIX)
        ),
        None,
    )
    return recorded == digest(project_dir, lock, lock_body(text), staged)


def tool_requirements(dev_lock_text: str, root: str = "pip-tools") -> str:
    """The blocks of the host-tool lock for `root` and, by their `# via` notes, its dependencies: so a
    container installs the same pip-tools (for `invoke lock`) or pytest (for the container test), hash-checked."""
    blocks = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", dev_lock_text):
        match = re.match(r"([A-Za-z0-9._-]+)==", block)
        if match:
            blocks[match.group(1).lower()] = block.rstrip() + "\n"
    needed = {root}
    grew = True
    while grew:
        grew = False
        for name, block in blocks.items():
            users = set(re.findall(r"#\s+(?:via\s+)?([A-Za-z0-9._-]+)\s*$", block, re.MULTILINE))
            if name not in needed and users & needed:
                needed.add(name)
                grew = True
    missing = needed - blocks.keys()
    if missing:
        raise UserError(
            f"requirements-dev.txt does not pin {', '.join(sorted(missing))}; run `invoke lock --dev`"
        )
    return "".join(blocks[name] for name in sorted(needed))
