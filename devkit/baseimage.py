"""The base image by digest. `invoke lock` records BASE_IMAGE and, for each platform the images are
built for, the digest of its manifest as the registry names it, in docker/locks/base-image.txt;
every build starts from BASE_IMAGE@that digest and says so in its labels
(org.opencontainers.image.base.name and .base.digest). A tag that moves (python:3.11-slim is
rebuilt for every Debian security fix) then changes no image until `invoke lock --upgrade` takes
its new digest, and every image names the very base it was built on.

The record ends with a footer line, as a lock does: a digest of the lines above it. A record edited
by hand, or one that pins another BASE_IMAGE than the settings name, is stale: `invoke lock
--check` says so, `invoke lock` resolves the digests again, and `invoke build` meanwhile builds on
the digest the registry names at that moment, saying so. The template ships without a record (the
digests are those the team's registry serves): until the first `invoke lock` writes one, builds
say in a line that they are not pinned, and `invoke lock --check` says so and passes.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devkit.engine import Engine, is_digest
from devkit.errors import UserError
from devkit.locks import FOOTER_PREFIX, LAYER_DIR, lock_body
from devkit.platforms import SUPPORTED

RECORD = f"{LAYER_DIR}/base-image.txt"
NAME_LABEL = "org.opencontainers.image.base.name"
DIGEST_LABEL = "org.opencontainers.image.base.digest"

_HEADER = (
    "# Written by `invoke lock`: BASE_IMAGE and the digest of its manifest for each platform,\n"
    "# which every build starts from. `invoke lock --upgrade` takes the newest; never edit this\n"
    "# file: `invoke lock --check` tells.\n"
)
_FIX = "check the name and your network and registry access (`docker login`)"
MISSING = "missing"
NOT_PINNED_YET = (
    f"{RECORD} is not written yet: builds start from the digest BASE_IMAGE's registry names at the"
    " time; `invoke lock` pins it (commit the file)"
)


@dataclass(frozen=True)
class Pins:
    """What the record holds: BASE_IMAGE as the settings gave it, {platform: manifest digest}."""

    image: str
    digests: Mapping[str, str]

    def text(self) -> str:
        """The record's text: a line per platform, `IMAGE PLATFORM DIGEST`, and the footer."""
        body = _HEADER + "".join(
            f"{self.image} {platform} {self.digests[platform]}\n"
            for platform in sorted(self.digests)
        )
        return f"{body}{FOOTER_PREFIX}{_sha256(body)}\n"


@dataclass(frozen=True)
class Base:
    """The base of one build: BASE_IMAGE, the digest of its manifest for the build's platform."""

    image: str
    digest: str

    @property
    def reference(self) -> str:
        """What the build starts from: a BASE_IMAGE given by digest as it is, else BASE_IMAGE@digest
        (the tag stays for people to read; the digest alone decides what is pulled)."""
        return self.image if "@" in self.image else f"{self.image}@{self.digest}"

    def labels(self) -> dict[str, str]:
        return {NAME_LABEL: qualified_name(self.image), DIGEST_LABEL: self.digest}


def qualified_name(image: str) -> str:
    """`image` with the registry and namespace Docker assumes written out, as the OCI annotation
    base.name asks for: python:3.11-slim is docker.io/library/python:3.11-slim."""
    first, slash, rest = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if slash else f"docker.io/library/{image}"


def read(project_dir: Path) -> tuple[Pins | None, str | None]:
    """The record and None, or None and why it cannot be used: missing, or edited by hand (its
    footer no longer matches, or a line is not one that `invoke lock` writes)."""
    path = project_dir / RECORD
    if not path.is_file():
        return None, MISSING
    text = path.read_text(encoding="utf-8")
    body = lock_body(text)
    footers = [line for line in text.splitlines() if line.startswith(FOOTER_PREFIX)]
    if footers != [f"{FOOTER_PREFIX}{_sha256(body)}"]:
        return None, "edited by hand"
    rows = [line.split() for line in body.splitlines() if line and not line.startswith("#")]
    images = {row[0] for row in rows}
    if (
        len(images) != 1
        or any(len(row) != 3 or not is_digest(row[2]) for row in rows)
        or len({row[1] for row in rows}) != len(rows)
    ):
        return None, "edited by hand"
    return Pins(images.pop(), {platform: digest for _, platform, digest in rows}), None


def stale_reason(project_dir: Path, image: str) -> str | None:
    """Why the record does not pin `image` (BASE_IMAGE), or None where it does."""
    pins, problem = read(project_dir)
    if pins is None:
        return problem
    if pins.image != image:
        return f"it pins {pins.image}, not BASE_IMAGE {image}"
    return None


def resolve(engine: Engine, image: str, *, may_pull: bool = True) -> dict[str, str]:
    """{platform: digest} of `image`'s manifests for the platforms the images are built for, as its
    registry names them now. Where the engine names the digest of an image of one platform only
    once it holds it, it is pulled, where `may_pull`, else none is found. A UserError where the
    registry cannot be reached or has none of those platforms."""
    try:
        found = engine.manifest_digests(image)
        if not found and engine.dialect.platform_digest_needs_pull and may_pull:
            found = engine.pulled_digest(image)
    except UserError as error:
        raise UserError(f"cannot resolve BASE_IMAGE {image} to a digest ({error})", _FIX) from None
    pinned = {platform: digest for platform, digest in found.items() if platform in SUPPORTED}
    if found and not pinned:
        raise UserError(
            f"BASE_IMAGE {image} has no {' or '.join(SUPPORTED)} variant"
            f" (only {', '.join(sorted(found))})",
            "set BASE_IMAGE to an image of one of them",
        )
    return pinned


def pinned(project_dir: Path, image: str, platform: str) -> Base | None:
    """The base the record pins for a build of `image` for `platform`; None where it pins none."""
    pins, _ = read(project_dir)
    if pins is None or pins.image != image or platform not in pins.digests:
        return None
    return Base(image, pins.digests[platform])


def for_build(engine: Engine, project_dir: Path, image: str, platform: str) -> Base | None:
    """The base a build for `platform` starts from: the record's digest where it pins `image`;
    else the one its registry names now, said in a line (the record is stale: `invoke lock`).
    None under `--dry` only, where the registry does not answer (no CLI yet, no network): the
    build is shown on BASE_IMAGE as it is."""
    base = pinned(project_dir, image, platform)
    if base is not None:
        return base
    reason = stale_reason(project_dir, image) or f"it has no digest for {platform}"
    try:
        digests = resolve(engine, image)
    except UserError as error:
        if not engine.dry:
            raise
        engine.report("", would=f"build on the digest of BASE_IMAGE, which is unknown: {error}")
        return None
    if platform not in digests:
        raise UserError(
            f"BASE_IMAGE {image} has no {platform} variant in its registry"
            f" (only {', '.join(sorted(digests)) or 'other platforms'})",
            "set BASE_IMAGE to an image that has one",
        )
    print(
        f"{RECORD} does not pin BASE_IMAGE ({reason}): building on {digests[platform]}, the"
        f" digest its registry names now; `invoke lock` pins it",
        file=sys.stderr,
    )
    return Base(image, digests[platform])


def pull(engine: Engine, base: Base | None, image: str, platform: str) -> str:
    """Pull what a build or a lock for `platform` starts from: `base` by its digest (or BASE_IMAGE
    `image` as it is, where there is none); its reference. Where the registry no longer holds a
    digest the record pins, the line says how to pin the one the tag names now."""
    reference = base.reference if base is not None else image
    try:
        engine.pull_base_image(reference, platform)
    except UserError as error:
        if base is None or "@" in image:
            raise
        raise UserError(
            error.problem,
            f"{error.fix}; where its registry no longer holds {short(base.digest)},"
            " `invoke lock --upgrade` pins the digest its tag names now",
        ) from None
    return reference


def for_lock(
    engine: Engine, project_dir: Path, image: str, platforms: Iterable[str], *, upgrade: bool
) -> tuple[Pins | None, Pins | None]:
    """The record `invoke lock` leaves, with `platforms` (those of the chosen locks) pinned, and the
    record it replaces (None where there was none to trust).

    A record that pins `image` stays as it is, unless `upgrade` asks for the registry's newest
    digests of `platforms` (the others' stay). Otherwise every platform the registry has is
    resolved. Raised before any lock is compiled: where the registry cannot answer, nothing is
    written. Under `--dry`, where it cannot, (None, None): the locks are shown compiled in
    BASE_IMAGE as it is."""
    old, _ = read(project_dir)
    current = old is not None and stale_reason(project_dir, image) is None
    wanted = sorted(set(platforms))
    if current and not upgrade and all(platform in old.digests for platform in wanted):
        return old, old
    try:
        found = resolve(engine, image)
    except UserError as error:
        if engine.dry:
            engine.report("", would=f"pin the digest of BASE_IMAGE, which is unknown: {error}")
            return None, None
        raise UserError(f"{error.problem}; every lock is as it was", error.fix) from None
    missing = [platform for platform in wanted if platform not in found]
    if missing:
        raise UserError(
            f"BASE_IMAGE {image} has no {', '.join(missing)} variant in its registry"
            f" (only {', '.join(sorted(found)) or 'other platforms'}); every lock is as it was",
            "set BASE_IMAGE to an image that has one",
        )
    if current:
        return Pins(image, {**old.digests, **{p: found[p] for p in wanted}}), old
    return Pins(image, found), old if old is not None and old.image == image else None


def changes(old: Pins | None, new: Pins) -> str:
    """What a new record changes, for `invoke lock`'s last lines: the digests it pins or moves, or
    `unchanged`."""
    if old is None:
        pinned = ", ".join(f"{p} {short(d)}" for p, d in sorted(new.digests.items()))
        return f"{RECORD}: pinned {new.image}: {pinned}"
    moved = [
        f"{platform} {short(old.digests[platform]) if platform in old.digests else 'none'}"
        f" -> {short(digest)}"
        for platform, digest in sorted(new.digests.items())
        if old.digests.get(platform) != digest
    ]
    if not moved:
        return f"{RECORD}: unchanged ({new.image} has not moved)"
    return f"{RECORD}: {new.image} moved: {', '.join(moved)}"


def short(digest: str) -> str:
    """A digest as people compare them: its first 12 hexadecimal digits."""
    return digest[: len("sha256:") + 12]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
