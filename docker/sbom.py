"""sbom.py BASE_IMAGE ARCH OUTPUT LOCK...: the image's CycloneDX SBOM, written by the Dockerfiles'
`sbom` stage (bind-mounted for the one RUN, run with the generator's Python; never in the image that
runs, which gets OUTPUT alone).

- Every package of the image's lock (the halves of docker/locks/ that the image installs), as
  cyclonedx-py reads a requirements file: its name, version, purl (pkg:pypi/...) and the hashes of
  its files. No timestamp and no random serial number, so that a rebuild of the same locks makes
  the same file, and the build's layer cache holds.
- The base image (BASE_IMAGE, as the build was given it), a component of type container with its
  purl (pkg:oci/...): by digest where the reference names one (`name@sha256:...`); where it names
  only a tag, the component says so, as its version is then the tag, which may move.

The document is checked against CycloneDX's JSON schema before it is written: the build fails on an
invalid one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

SPEC_VERSION = SchemaVersion.V1_6
BASE_IMAGE_REF = "base-image"
# The namespace of this template's properties (its labels' too).
PROPERTY = "org.tensorflow-template"


def split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of an image reference, the repository as the engine pulls it:
    `python:3.11-slim` is docker.io/library/python, `127.0.0.1:5000/python@sha256:...` is on that
    registry. The first part of the name is a registry where it holds a `.` or a `:` or is
    `localhost`, as Docker reads it."""
    name, _, digest = reference.partition("@")
    path, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:  # no tag, or the colon was a registry's port
        path, tag = name, ""
    first, slash, rest = path.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        first, rest = "docker.io", path if slash else f"library/{path}"
    # Neither tag nor digest: the engine pulls `latest`.
    return f"{first}/{rest}", tag or (None if digest else "latest"), digest or None


def base_image_component(reference: str, arch: str) -> dict:
    """The base image as a CycloneDX component: by digest where the reference names one, else by
    tag, and the component says so."""
    repository, tag, digest = split_reference(reference)
    qualifiers = {"repository_url": repository, "arch": arch, **({"tag": tag} if tag else {})}
    purl = PackageURL(
        type="oci",
        name=repository.rsplit("/", 1)[-1].lower(),
        version=digest,
        qualifiers=qualifiers,
    )
    pinned = "digest" if digest else "tag"
    described = (
        f"the base image (BASE_IMAGE {reference}), by digest"
        if digest
        else f"the base image (BASE_IMAGE {reference}), by tag only: the reference names no "
        "digest, so which build of the tag the image was made on is not recorded"
    )
    return {
        "type": "container",
        "bom-ref": BASE_IMAGE_REF,
        "name": repository,
        "version": digest or tag,
        "description": described,
        "purl": purl.to_string(),
        "properties": [
            {"name": f"{PROPERTY}:base-image", "value": reference},
            {"name": f"{PROPERTY}:base-image-pinned-by", "value": pinned},
        ],
    }


def lock_sbom(locks: list[Path]) -> dict:
    """cyclonedx-py's SBOM of the locks' packages, read as one requirements file."""
    requirements = "".join(lock.read_text(encoding="utf-8") for lock in locks)
    made = subprocess.run(  # noqa: S603 (a fixed argument list: cyclonedx-py over the locks)
        [
            sys.executable,
            "-m",
            "cyclonedx_py",
            "requirements",
            "--spec-version",
            SPEC_VERSION.to_version(),
            "--output-reproducible",
            # Validated once, below, with the base image in: each validation takes seconds.
            "--no-validate",
            "-",
        ],
        input=requirements,
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        sys.exit(f"cyclonedx-py failed: {made.stderr.strip()}")
    return json.loads(made.stdout)


def with_base_image(document: dict, component: dict) -> dict:
    """The SBOM with the base image among its components and its dependencies."""
    return {
        **document,
        "components": [component, *document.get("components", [])],
        "dependencies": [{"ref": component["bom-ref"]}, *document.get("dependencies", [])],
    }


def main(base_image: str, arch: str, output: str, *locks: str) -> None:
    base = base_image_component(base_image, arch)
    document = with_base_image(lock_sbom([Path(lock) for lock in locks]), base)
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    error = JsonStrictValidator(SPEC_VERSION).validate_str(text)
    if error is not None:
        version = SPEC_VERSION.to_version()
        sys.exit(f"the SBOM is not valid CycloneDX {version}: {error.data.message}")
    Path(output).write_text(text, encoding="utf-8")
    pinned = base["properties"][-1]["value"]
    print(f"{output}: {len(document['components']) - 1} packages, the base image by {pinned}")


if __name__ == "__main__":
    main(*sys.argv[1:])
