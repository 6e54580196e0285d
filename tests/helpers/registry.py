"""A repository of the test registry, read through the registry's own HTTP API."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from dataclasses import dataclass

MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFESTS = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)


@dataclass
class Repository:
    """A repository in the test registry, read through the registry's HTTP API."""

    registry: str
    namespace: str  # what REGISTRY says: the registry and a namespace of this test's own
    path: str  # the repository's path in the registry

    def get(self, path: str, accept: tuple[str, ...] = ()) -> tuple[dict, str]:
        request = urllib.request.Request(
            f"http://{self.registry}/v2/{self.path}/{path}", headers={"Accept": ", ".join(accept)}
        )  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (a local registry)
            return json.load(response), response.headers.get("Docker-Content-Digest", "")

    def manifest(self, tag: str) -> tuple[dict, str]:
        return self.get(f"manifests/{tag}", (MANIFEST_LIST, OCI_INDEX, *IMAGE_MANIFESTS))

    def config(self, manifest: dict) -> dict:
        return self.get(f"blobs/{manifest['config']['digest']}")[0]

    def tags(self) -> list[str]:
        try:
            return sorted(self.get("tags/list")[0].get("tags") or [])
        except OSError:
            return []

    def delete_all(self) -> None:
        for tag in self.tags():
            digest = self.manifest(tag)[1]
            request = urllib.request.Request(
                f"http://{self.registry}/v2/{self.path}/manifests/{digest}", method="DELETE"
            )  # noqa: S310
            # A registry without deletes keeps it; the namespace is this test's own.
            with contextlib.suppress(OSError):
                urllib.request.urlopen(request, timeout=30).close()  # noqa: S310
