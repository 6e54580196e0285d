"""The locks: which `.in` compiles into which lock for which platform, what a lock holds, and
whether a lock is stale.

pip-compile's text is read here alone: `LockFile.parse` turns a lock into its entries (name,
version, hashes, markers, what pulls each in), and every other reader (the checks, `invoke lock`'s
report, the tools a container installs, the Dockerfiles' layer files) works from those.

A lock ends with a footer line that records a digest of what made it: the text of its `.in` file,
of every file that one includes or is constrained by (`-r`, `-c`), and of the lock's own body. A
changed input, or a hand-edited lock, no longer matches, so `invoke lock --check` tells a stale lock
in milliseconds, without resolving anything.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
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
    # Another lock this one is compiled against (pip-compile --constraint): shared packages keep
    # its pins.
    constraint: str | None = None
    # An image lock: the names (fnmatch patterns) of the entries that its image installs in a layer
    # of their own, TensorFlow's, which a change to any other package leaves cached.
    tensorflow_layer: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.output} ({self.platform or 'host tools'}{', GPU' if self.gpu else ''})"

    def layer_files(self) -> tuple[str, str]:
        """The files `invoke lock` writes beside an image lock for its Dockerfile: TensorFlow's
        layer, then every other package (docker/locks/requirements-tensorflow.txt, ...)."""
        stem = self.output.removesuffix(".txt")
        return (f"{LAYER_DIR}/{stem}-tensorflow.txt", f"{LAYER_DIR}/{stem}-packages.txt")


# Where `invoke lock` writes the halves of each image lock that the Dockerfiles install.
LAYER_DIR = "docker/locks"

# In the order they must be made: the GPU lock is constrained by the amd64 CPU lock.
_CPU_TENSORFLOW = ("tensorflow", "tensorflow-cpu")
CPU_AMD64 = Lock("requirements-cpu.in", "requirements.txt", AMD64, tensorflow_layer=_CPU_TENSORFLOW)
CPU_ARM64 = Lock(
    "requirements-cpu.in", "requirements-arm64.txt", ARM64, tensorflow_layer=_CPU_TENSORFLOW
)
# The GPU image's TensorFlow layer holds its CUDA libraries too: about 6 GB of nvidia-* wheels.
GPU = Lock(
    "requirements-gpu.in",
    "requirements-gpu.txt",
    AMD64,
    gpu=True,
    tensorflow_layer=("tensorflow", "nvidia-*"),
)
# JupyterLab for `invoke notebook`, installed only by the Dockerfiles' `notebook` stage: one lock
# per CPU lock, compiled against it, so the notebook image runs the packages of the image it
# extends.
NOTEBOOK_AMD64 = Lock(
    "requirements-notebook.in", "requirements-notebook.txt", AMD64, constraint=CPU_AMD64.output
)
NOTEBOOK_ARM64 = Lock(
    "requirements-notebook.in",
    "requirements-notebook-arm64.txt",
    ARM64,
    constraint=CPU_ARM64.output,
)
# The images' SBOM generator (cyclonedx-py), installed only by the Dockerfiles' `sbom` stage: one
# lock for both architectures, as nothing it pins depends on the machine (requirements-sbom.in).
SBOM = Lock("requirements-sbom.in", "requirements-sbom.txt", AMD64)
DEV = Lock("requirements-dev.in", "requirements-dev.txt", None)
# checkov (`nox -s checkov`), ~60 packages of its own: a host-tool lock apart, so that the dev lock
# and every other session stay light.
CHECKOV = Lock("requirements-checkov.in", "requirements-checkov.txt", None)
HOST_LOCKS = (DEV, CHECKOV)
ALL = (CPU_AMD64, CPU_ARM64, GPU, NOTEBOOK_AMD64, NOTEBOOK_ARM64, SBOM, *HOST_LOCKS)
IMAGE_LOCKS = (CPU_AMD64, CPU_ARM64, GPU)

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


@dataclass(frozen=True)
class Entry:
    """One package of a lock, as pip-compile pins it."""

    name: str  # canonical (PEP 503): lower case, runs of -_. as one -
    version: str
    hashes: tuple[str, ...]  # "sha256:...", as pip's --hash takes them
    marker: str | None  # the environment marker, where the requirement has one
    # What pulls it in, from pip-compile's `# via` notes: the packages that require it (canonical
    # names) and the files that ask for it ("-r requirements.in", "-c requirements.txt").
    via: tuple[str, ...]

    def requirement(self) -> str:
        """The entry as pip installs it: pin, marker and hashes, without the notes."""
        pin = f"{self.name}=={self.version}" + (f" ; {self.marker}" if self.marker else "")
        return " \\\n    ".join([pin, *(f"--hash={value}" for value in self.hashes)]) + "\n"


@dataclass(frozen=True)
class LockFile:
    """A lock's content: pip options (`--index-url ...`, rare with our options) and its entries."""

    options: tuple[str, ...]
    entries: tuple[Entry, ...]

    @classmethod
    def parse(cls, text: str) -> LockFile:
        """pip-compile's format: a requirement at the start of a line, its `--hash` options on
        continuation lines, then its `# via` notes indented below it; comments at the start of a
        line (the header, the footer, "unsafe packages") belong to no entry."""
        options: list[str] = []
        blocks: list[list[str]] = []
        for line in re.sub(r"\\\n", " ", text).splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("-"):
                options.append(line.strip())
            elif not line[0].isspace():
                blocks.append([line])
            elif blocks and line.lstrip().startswith("#"):
                blocks[-1].append(line.strip())
        return cls(tuple(options), tuple(_entry(block) for block in blocks))

    @classmethod
    def read(cls, path: Path) -> LockFile:
        return cls.parse(path.read_text(encoding="utf-8"))

    def versions(self) -> dict[str, str]:
        """{canonical name: pinned version}."""
        return {entry.name: entry.version for entry in self.entries}

    def get(self, name: str) -> Entry | None:
        name = canonicalize_name(name)
        return next((entry for entry in self.entries if entry.name == name), None)

    def requirements(self, entries: Iterable[Entry]) -> str:
        """A requirements file of `entries` (hashed pins, which pip installs with --require-hashes),
        after the lock's own options."""
        return "".join(
            [*(f"{option}\n" for option in self.options)] + [e.requirement() for e in entries]
        )

    def with_dependencies(self, root: str) -> list[Entry]:
        """`root`'s entry and, by the `# via` notes, everything it pulls in, in the lock's order;
        empty when the lock does not pin `root`."""
        needed = {canonicalize_name(root)}
        grew = True
        while grew:
            grew = False
            for entry in self.entries:
                if entry.name not in needed and needed & set(entry.via):
                    needed.add(entry.name)
                    grew = True
        return [entry for entry in self.entries if entry.name in needed]


def _entry(block: list[str]) -> Entry:
    """An entry from its requirement line (continuations joined) and its comment lines."""
    pin, *hashes = re.split(r"\s+--hash[=\s]", block[0].strip())
    try:
        requirement = Requirement(pin)
    except InvalidRequirement as error:
        raise UserError(f"a lock holds a line that is no requirement: {pin} ({error})") from None
    pinned = [spec.version for spec in requirement.specifier if spec.operator == "=="]
    via: list[str] = []
    for note in block[1:]:
        note = note.lstrip("#").strip()
        if note.startswith("via"):
            note = note[len("via") :].strip()
        if note:  # "via" alone: the names follow, one a line
            via.append(note if note.startswith("-") else canonicalize_name(note))
    return Entry(
        name=canonicalize_name(requirement.name),
        version=pinned[0] if len(pinned) == 1 else "",
        hashes=tuple(value.strip() for value in hashes),
        marker=str(requirement.marker) if requirement.marker else None,
        via=tuple(via),
    )


def select_locks(*, gpu: bool, platform: str | None, dev: bool) -> tuple[Lock, ...]:
    """The locks a command line asks for: all of them by default; --gpu, --platform or --dev
    narrow it."""
    if dev:
        if gpu or platform:
            raise UserError("--dev locks the host tools; it does not go with --gpu or --platform")
        return HOST_LOCKS
    if gpu:
        if platform not in (None, AMD64):
            raise UserError(
                f"the GPU lock is {AMD64} only (TensorFlow's CUDA wheels are x86-64 only);"
                f" --platform asks for {platform}"
            )
        return (GPU,)
    if platform is not None:
        return tuple(lock for lock in ALL if lock.platform == platform and not lock.gpu)
    return ALL


def image_lock(*, gpu: bool, platform: str) -> Lock:
    """The lock that the image of this variant and platform installs (as its Dockerfile picks
    it)."""
    return next(lock for lock in IMAGE_LOCKS if lock.gpu == gpu and lock.platform == platform)


def notebook_lock(platform: str) -> Lock:
    """The lock of the notebook stage for the image of this platform (the GPU image's is
    linux/amd64)."""
    return NOTEBOOK_ARM64 if platform == ARM64 else NOTEBOOK_AMD64


def _read(project_dir: Path, name: str, staged: Mapping[str, str]) -> str:
    """A project file's text, or the new text of a lock compiled in this run and not yet written."""
    return staged[name] if name in staged else (project_dir / name).read_text(encoding="utf-8")


def input_files(
    project_dir: Path, source: str, staged: Mapping[str, str] | None = None
) -> list[str]:
    """`source` and, recursively, every file it includes or is constrained by, relative to the
    project."""
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
    pinned = {
        entry.name for entry in LockFile.parse(lock_text).entries if entry.version and entry.hashes
    }
    return [name for name in required_names(project_dir, lock) if name not in pinned]


def changes(old_text: str, new_text: str) -> str:
    """What a new lock changes against the old, by package: added, removed, moved (old -> new), or
    unchanged."""
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
    """{canonical package name: pinned version} of a lock."""
    return LockFile.parse(lock_text).versions()


def pinned_tensorflow(lock_text: str) -> str:
    """The TensorFlow version a lock pins (`tensorflow` or `tensorflow-cpu`), or `unknown`."""
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
    """Every file a lock is made from: its `.in` chain, then the lock it is constrained by, where
    one is."""
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
    """The lock exists and was made from the inputs as they are now (or as staged), and not edited
    since."""
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
    """The entries of the host-tool lock for `root` and, by their `# via` notes, its dependencies:
    so a container installs the same pip-tools (for `invoke lock`) or pytest (for the container
    test), hash-checked."""
    dev_lock = LockFile.parse(dev_lock_text)
    if dev_lock.get(root) is None:
        raise UserError(f"requirements-dev.txt does not pin {root}; run `invoke lock --dev`")
    return dev_lock.requirements(dev_lock.with_dependencies(root))


def layer_texts(lock: Lock, lock_text: str) -> dict[str, str]:
    """{file: text} of the layer files of an image lock, from the lock's text (see
    Lock.layer_files): what its Dockerfile installs, so that no Dockerfile reads pip-compile's
    format."""
    lock_file = LockFile.parse(lock_text)
    own = [
        entry
        for entry in lock_file.entries
        if any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in lock.tensorflow_layer)
    ]
    if not own:
        raise UserError(f"{lock.output} pins no TensorFlow; run `invoke lock`")
    others = [entry for entry in lock_file.entries if entry not in own]
    tensorflow_file, packages_file = lock.layer_files()
    header = (
        f"# Written by `invoke lock` from {lock.output}: {{}}\n"
        "# Edit the .in files and run `invoke lock`, never this file: `--check` compares them.\n"
    )
    return {
        tensorflow_file: header.format("TensorFlow's layer of the image.")
        + lock_file.requirements(own),
        packages_file: header.format("every other package of the image.")
        + lock_file.requirements(others),
    }


def stale_layer_files(
    project_dir: Path, lock: Lock, staged: Mapping[str, str] | None = None
) -> dict[str, str]:
    """{file: the text it should have} of the layer files of an image lock that are missing or
    differ from what the lock (as staged, or as it is) makes; empty for a lock without them."""
    staged = staged or {}
    if not lock.tensorflow_layer or not (
        lock.output in staged or (project_dir / lock.output).is_file()
    ):
        return {}
    return {
        name: text
        for name, text in layer_texts(lock, _read(project_dir, lock.output, staged)).items()
        if not (project_dir / name).is_file()
        or (project_dir / name).read_text(encoding="utf-8") != text
    }


def held_packages(old_text: str, new_text: str, requested: Iterable[str]) -> list[Entry]:
    """The entries of the new lock, among the packages an upgrade asked for (`name` or
    `name==version`), that stay at the version the old lock pinned."""
    old, new = LockFile.parse(old_text), LockFile.parse(new_text)
    held = []
    for name in dict.fromkeys(canonicalize_name(Requirement(name).name) for name in requested):
        before, after = old.get(name), new.get(name)
        if before is not None and after is not None and before.version == after.version:
            held.append(after)
    return held


# pip's resolver, when no version fits, names each requirement that took part and what asked for it:
# RequirementInformation(requirement=SpecifierRequirement('h5py<3.15.0,>=3.11.0'),
#   parent=LinkCandidate('https://.../tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl'))
_CONFLICT = re.compile(
    r"RequirementInformation\(requirement=\w+\('(?P<requirement>[^']+)'\), "
    r"parent=(?:None|\w+\('(?:[^'/]*/)*(?P<name>[A-Za-z0-9_.]+?)-(?P<version>[0-9][^-/' ]*)[-.])"
)


def what_holds(entry: Entry, pip_compile_stderr: str | None) -> str:
    """Why `entry` stays where it is: what pip-compile said when asked for a newer version (the
    requirements that conflict, or that there is none), else what requires it (`# via`)."""
    if pip_compile_stderr is not None:
        conflicts = [
            f"{canonicalize_name(match['name'])} {match['version']} requires {match['requirement']}"
            if match["name"]
            else "the .in files (or a lock they are compiled against) ask for "
            + match["requirement"]
            for match in _CONFLICT.finditer(pip_compile_stderr)
            if match["requirement"] != f"{entry.name}>{entry.version}"
        ]
        if conflicts:
            return "; ".join(dict.fromkeys(conflicts))
        if "from versions:" in pip_compile_stderr:
            return f"no release newer than {entry.version}"
    if not entry.via:
        return "pinned as it was"
    requirers = [via for via in entry.via if not via.startswith("-")]
    files = [via.split()[-1] for via in entry.via if via.startswith("-")]
    return "required by " + ", ".join([*requirers, *files])
