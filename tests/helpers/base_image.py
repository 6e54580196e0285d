"""BASE_IMAGE as registries describe it, for the engine-free tests: the digests of its manifests, the
answers of `docker manifest inspect --verbose` and `podman manifest inspect`, and the record that
`invoke lock` writes of them."""

from __future__ import annotations

import json
from pathlib import Path

from devkit import baseimage
from devkit.platforms import AMD64, ARM64

AMD64_DIGEST = "sha256:" + "a" * 64
ARM64_DIGEST = "sha256:" + "b" * 64
# The index's own digest: what `docker image inspect` RepoDigests names for an image pulled by tag.
INDEX_DIGEST = "sha256:" + "c" * 64
DIGESTS = {AMD64: AMD64_DIGEST, ARM64: ARM64_DIGEST}


def _platform(name: str, variant: str | None = None) -> dict[str, str]:
    system, architecture = name.split("/")
    return {"architecture": architecture, "os": system, **({"variant": variant} if variant else {})}


def docker_index(image: str, digests: dict[str, str] = DIGESTS) -> str:
    """`docker manifest inspect --verbose` of a multi-platform image, as Docker Hub's official
    images are: arm64 with its variant, and an attestation (unknown/unknown) beside each."""
    entries = []
    for platform, digest in digests.items():
        variant = "v8" if platform == ARM64 else None
        entries.append(
            {
                "Ref": f"{image}@{digest}",
                "Descriptor": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": 1234,
                    "platform": _platform(platform, variant),
                },
                "SchemaV2Manifest": {"schemaVersion": 2, "layers": []},
            }
        )
        entries.append(
            {
                "Ref": f"{image}@sha256:{'d' * 64}",
                "Descriptor": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{'d' * 64}",
                    "platform": _platform("unknown/unknown"),
                },
            }
        )
    return json.dumps(entries)


def docker_single(image: str, platform: str = AMD64, digest: str = AMD64_DIGEST) -> str:
    """`docker manifest inspect --verbose` of an image of one platform: one entry, not a list."""
    return json.dumps(
        {
            "Ref": image,
            "Descriptor": {"digest": digest, "size": 529, "platform": _platform(platform)},
            "SchemaV2Manifest": {"schemaVersion": 2, "layers": []},
        }
    )


def podman_index(digests: dict[str, str] = DIGESTS) -> str:
    """`podman manifest inspect` of a multi-platform image: the index, as a Docker manifest list."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": [
                {"digest": digest, "size": 529, "platform": _platform(platform)}
                for platform, digest in digests.items()
            ],
        }
    )


# `podman manifest inspect` of an image of one platform: its manifest, re-serialized, no digest.
PODMAN_SINGLE = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"digest": "sha256:" + "e" * 64},
        "layers": [],
    }
)


def write_record(
    project: Path, image: str = "python:3.11-slim", digests: dict[str, str] = DIGESTS
) -> Path:
    """The record `invoke lock` writes in `project`, pinning `image` at `digests`."""
    path = project / baseimage.RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(baseimage.Pins(image, digests).text())
    return path
