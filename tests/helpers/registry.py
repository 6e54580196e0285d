"""A repository of the test registry, read through the registry's own HTTP API."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import urllib.request
from dataclasses import dataclass

from helpers.engine import docker

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


def _on_this_machine(registry: str) -> bool:
    host = registry.rpartition(":")[0] or registry
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def served_digests(reference: str) -> tuple[str, dict[str, str]]:
    """What the registry serves under the tag `reference`: the digest of that manifest, and
    {platform: digest} of each platform's manifest (where it is an index; else its own platform).

    Read over the registry's HTTP API where the registry is on this machine (the test registry,
    CI's stand-in base image), each digest the sha256 of the bytes served, independently of the
    engine; elsewhere (Docker Hub's python:3.11-slim) as `docker manifest inspect --verbose` says."""
    registry, _, rest = reference.partition("/")
    if not _on_this_machine(registry):
        entries = json.loads(docker("manifest", "inspect", "--verbose", reference).stdout)
        entries = entries if isinstance(entries, list) else [entries]
        digests = {}
        for entry in entries:
            platform = entry["Descriptor"].get("platform") or {}
            digests.setdefault(
                f"{platform.get('os')}/{platform.get('architecture')}",
                entry["Descriptor"]["digest"],
            )
        return "", digests
    path, _, tag = rest.rpartition(":")

    def fetch(what: str) -> tuple[dict, str]:
        request = urllib.request.Request(
            f"http://{registry}/v2/{path}/manifests/{what}",
            headers={"Accept": ", ".join((MANIFEST_LIST, OCI_INDEX, *IMAGE_MANIFESTS))},
        )  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (this machine)
            body = response.read()
        return json.loads(body), f"sha256:{hashlib.sha256(body).hexdigest()}"

    manifest, digest = fetch(tag)
    if "manifests" in manifest:
        return digest, {
            f"{entry['platform']['os']}/{entry['platform']['architecture']}": entry["digest"]
            for entry in manifest["manifests"]
        }
    request = urllib.request.Request(
        f"http://{registry}/v2/{path}/blobs/{manifest['config']['digest']}"
    )  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (this machine)
        config = json.load(response)
    return digest, {f"{config['os']}/{config['architecture']}": digest}
