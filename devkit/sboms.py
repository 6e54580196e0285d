"""`invoke sbom`: the CycloneDX SBOM that the build puts in every image (the Dockerfiles' `sbom`
stage: every package of the image's lock with its version, purl and hashes, and the base image),
read out of the image `invoke build` made and written to the host."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from devkit import runtime
from devkit.containers import one_off_name, warn_if_stale
from devkit.engine import Engine, first_line
from devkit.errors import UserError
from devkit.platforms import arch
from devkit.runtime import ContainerSpec
from devkit.settings import Settings
from devkit.targets import Target, project_id

# Where the release stage of both Dockerfiles puts the SBOM.
IMAGE_SBOM_PATH = "/usr/share/doc/app/sbom.cdx.json"
# Where `invoke sbom` writes it by default: a folder of the project that git ignores.
SBOM_DIR = "sbom"
# The base image's component in the SBOM (docker/sbom.py), and its properties: the reference the
# build was given, and how it pins the image (`digest`, or `tag` alone).
BASE_IMAGE_REF = "base-image"
BASE_IMAGE = "org.tensorflow-template:base-image"
PINNED_BY = "org.tensorflow-template:base-image-pinned-by"


def default_output(settings: Settings, target: Target) -> Path:
    """sbom/<IMAGE_NAME>-<IMAGE_TAG>-<amd64, arm64 or gpu>.cdx.json in the project: one file per
    image, named the same on every machine (an amd64 one is `-amd64` on an x86-64 host too)."""
    variant = "gpu" if target.gpu else arch(target.platform)
    name = settings.image_name.replace("/", "-")
    return settings.project_dir / SBOM_DIR / f"{name}-{settings.image_tag}-{variant}.cdx.json"


def read_spec(settings: Settings, target: Target) -> ContainerSpec:
    """A container of the image that prints its SBOM and does nothing else: no network, a
    read-only root filesystem, no GPU (reading a file needs none, so a GPU image's SBOM is read on
    any machine), none of the app's keys or folders."""
    return ContainerSpec(
        image=target.image,
        name=one_off_name(target, "sbom"),
        project=project_id(settings),
        command=("cat", IMAGE_SBOM_PATH),
        platform=target.platform,
        network="none",
        read_only=True,
    )


def base_image_by_tag(document: dict) -> str | None:
    """The base image's reference where the SBOM records it by tag alone (no digest); else None."""
    for component in document.get("components", []):
        if component.get("bom-ref") != BASE_IMAGE_REF:
            continue
        properties = {each["name"]: each["value"] for each in component.get("properties", [])}
        if properties.get(PINNED_BY) == "tag":
            return properties.get(BASE_IMAGE, component["name"])
    return None


def write(engine: Engine, settings: Settings, target: Target, output: Path | None) -> Path | None:
    """Write the SBOM of the target's built image to `output` (default: `default_output`); its path,
    or None under `--dry`, which writes nothing.

    Only the image `invoke build` made is read, never one pulled: a missing image is one line that
    says which `invoke build` makes it, and an image older than its lock gets the line `invoke run`
    gives it (its SBOM lists the lock it was built from).
    """
    path = (output or default_output(settings, target)).absolute()
    spec = read_spec(settings, target)
    engine.require_running()
    if not target.native and engine.image_exists(target.image):
        runtime.require_platform_support(engine, target.image, target.platform)
    ended = runtime.start(
        engine,
        spec,
        capture=True,
        build_hint=target.build_hint(),
        prepare=lambda: warn_if_stale(engine, settings, target, source=False),
    )
    if ended.signal is not None:
        raise UserError(f"reading the SBOM of {target.image} was stopped on {ended.signal.name}")
    outcome = ended.outcome
    if outcome.failed:
        if "No such file" in outcome.stderr:
            raise UserError(
                f"{target.image} holds no SBOM at {IMAGE_SBOM_PATH}: it was built before the "
                "images carried one",
                f"{target.build_hint()} rebuilds it",
            )
        raise UserError(
            f"could not read the SBOM out of {target.image}: {first_line(outcome.stderr)}"
        )
    engine.require(require_cyclonedx, target, outcome.stdout)
    engine.change(
        f"write the SBOM of {target.image} to {path}", lambda: _write(path, outcome.stdout)
    )
    if engine.dry:
        return None
    by_tag = base_image_by_tag(json.loads(outcome.stdout))
    if by_tag is not None:
        print(
            f"note: the SBOM names the base image by its tag alone ({by_tag}), not by digest: "
            "which build of the tag the image was made on is not recorded",
            file=sys.stderr,
        )
    return path


def require_cyclonedx(target: Target, text: str) -> None:
    """What the image holds at IMAGE_SBOM_PATH is a CycloneDX document in JSON."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"the SBOM in {target.image} is not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise UserError(f"{IMAGE_SBOM_PATH} in {target.image} is no CycloneDX document")


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror}") from None
