"""`invoke build` with BUILD_CACHE against the real engine and the local registry: `--export-cache`
sends the layer cache there, and a rebuild on an engine that has neither the image nor its build
cache takes its layers from the registry instead of building them.

The engine's build cache is shared by everything on this machine, and pruning it is not ours to do.
So the test builds on a base image of its own: BASE_IMAGE plus one layer with a random nonce, pushed
under the test's own namespace. Every cache record of the test's builds then descends from that
layer's record, and exactly those are removed (by id, leaves first); nothing anyone else built is
touched. The classic `docker build` here exports the inline cache (the final stage's layers, in the
image pushed to BUILD_CACHE); buildx on a docker-container builder exports every stage (mode=max).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid

import pytest

from devkit.platforms import arch
from helpers.engine import docker, host_platform
from helpers.project import project_copy
from helpers.registry import Repository

# The platform of the CPU image that `invoke build` makes here.
HOST_PLATFORM = host_platform()


def build_cache_records() -> dict[str, dict]:
    """The engine's build cache records by id (`docker system df --verbose`), each with its parent's id."""
    listing = json.loads(
        docker("system", "df", "--verbose", "--format", "{{json .BuildCache}}").stdout or "[]"
    )
    return {record["ID"].rstrip("*"): record for record in listing}


# The first step of the stage every image has: what marks a tree of records as a build of this project.
ENVIRONMENT_STEP = "useradd --create-home --uid 1000"


def own_records(before: set[str]) -> list[str]:
    """The records of this test's builds, leaves first: the trees that grew after `before` was taken on
    the test's own base layer, a record made for it by the build (`from local`, `pulled from`) or taken
    from the registry cache (described by the layer's history: `COPY nonce /etc/build-cache-test-nonce`),
    and that hold a build of the project (its environment stage's step). Records of anyone else's
    builds are in none of those trees: their layers descend from other bases."""
    records = build_cache_records()
    new = {
        key: record
        for key, record in records.items()
        if key not in before and record["CacheType"] == "regular"
    }
    roots = [
        key
        for key, record in new.items()
        if record["Parent"] not in new
        and (
            record["Description"].strip() == "from local"
            or record["Description"].startswith("pulled from")
            or NONCE_FILE in record["Description"]
        )
    ]
    owned: list[str] = []
    for root in roots:
        tree, pending = [], [root]
        while pending:
            key = pending.pop()
            tree.append(key)
            pending += [child for child, record in records.items() if record["Parent"] == key]
        if any(ENVIRONMENT_STEP in records[key]["Description"] for key in tree):
            owned += tree
    return list(reversed(owned))


def prune_own_records(before: set[str]) -> None:
    """Remove this test's records from the engine's build cache, one id at a time, leaves first."""
    for key in own_records(before):
        docker("builder", "prune", "--force", "--filter", f"id={key}", check=False)
    left = own_records(before)
    assert not left, f"build cache records of this test could not be removed: {left}"


def steps_of(output: str) -> dict[str, bool]:
    """Each step of a BuildKit build's plain output and whether it came from a cache."""
    titles = dict(re.findall(r"^#(\d+) (\[.+)$", output, re.MULTILINE))
    cached = set(re.findall(r"^#(\d+) CACHED$", output, re.MULTILINE))
    return {title: number in cached for number, title in titles.items()}


# The file of the test's own base layer: its content is a nonce, so no one else has that layer.
NONCE_FILE = "/etc/build-cache-test-nonce"


@pytest.fixture
def own_base(registry, tmp_path):
    """A base image of the test's own in the registry: BASE_IMAGE and a layer with a nonce."""
    before = set(build_cache_records())
    nonce = uuid.uuid4().hex[:12]
    namespace = f"tft-it-cache-{nonce}"
    base = f"{registry}/{namespace}/python:3.11-slim"
    context = tmp_path / "base"
    context.mkdir()
    (context / "nonce").write_text(nonce)
    (context / "Dockerfile").write_text(
        f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nCOPY nonce {NONCE_FILE}\n"
    )
    upstream = os.environ.get("BASE_IMAGE", "python:3.11-slim")
    docker(
        "build",
        "--quiet",
        "--platform",
        HOST_PLATFORM,
        "--build-arg",
        f"BASE_IMAGE={upstream}",
        "--tag",
        base,
        str(context),
    )
    docker("push", "--quiet", base)
    docker("image", "rm", base)
    repositories = [Repository(registry, "", f"{namespace}/{name}") for name in ("python", "cache")]
    try:
        yield base, f"{registry}/{namespace}/cache", namespace, before
    finally:
        docker("image", "rm", "--force", base, check=False)  # as `invoke build` pulled it
        prune_own_records(before)
        for repository in repositories:
            repository.delete_all()


def test_a_rebuild_takes_its_layers_from_the_registry_cache(invoke, own_base, tmp_path, capsys):
    base, cache, namespace, before = own_base
    image_name = f"{invoke.image_name}-cache-{namespace.rsplit('-', 1)[1]}"
    image = f"{image_name}:latest"
    env = {"BASE_IMAGE": base, "BUILD_CACHE": cache, "IMAGE_NAME": image_name}
    project = project_copy(tmp_path)
    try:
        started = time.monotonic()
        cold = invoke("build", "--export-cache", cwd=project, env=env)
        cold_seconds = time.monotonic() - started
        assert cold.returncode == 0, cold.stderr[-3000:]
        assert f"layer cache pushed to {cache}:{arch(HOST_PLATFORM)}" in cold.stderr
        cold_steps = steps_of(cold.stdout + cold.stderr)
        assert not any(cached for title, cached in cold_steps.items() if "install-lock" in title), (
            "the cold build used a cache"
        )
        layers = docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout

        # As on a fresh CI machine: neither the image nor any of its build cache is left here.
        docker("image", "rm", image)
        prune_own_records(before)

        started = time.monotonic()
        warm = invoke("build", cwd=project, env=env)
        warm_seconds = time.monotonic() - started
        assert warm.returncode == 0, warm.stderr[-3000:]
        output = warm.stdout + warm.stderr
        assert f"importing cache manifest from {cache}:{arch(HOST_PLATFORM)}" in output
        steps = steps_of(output)
        # Not FROM: the base by its digest is pulled, never built, and BuildKit marks none CACHED.
        final = {
            title: cached
            for title, cached in steps.items()
            if title.startswith(("[runtime", "[environment")) and "] FROM " not in title
        }
        assert len(final) >= 5, f"the image's steps are not in the output:\n{output[-3000:]}"
        assert all(final.values()), (
            f"a step of the image was rebuilt instead of taken from {cache}: {final}"
        )
        assert (
            docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout
            == layers
        )
        with capsys.disabled():
            print(
                f"\nbuild cache: cold build {cold_seconds:.0f} s; after removing the image and its build cache, {warm_seconds:.0f} s from {cache}"
            )
    finally:
        docker("image", "rm", "--force", image, check=False)


def test_export_without_build_cache_is_refused(invoke):
    result = invoke("build", "--export-cache", env={"BUILD_CACHE": ""})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: --export-cache: BUILD_CACHE is not set; set it to a registry repository, e.g. BUILD_CACHE=ghcr.io/acme/my-project-cache"
    )
