"""`invoke push` against a real registry: both CPU architectures under one multi-architecture tag.

What is pushed is read back from the registry's own HTTP API, not from the docker CLI that pushed it.
Each test pushes under a namespace of its own and deletes its tags afterwards.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import yaml

from devkit.platforms import arch
from devkit.publishing import PUSH_DIGESTS
from helpers.engine import docker, free_port, platform_of
from helpers.project import PROJECT_DIR
from helpers.registry import IMAGE_MANIFESTS, MANIFEST_LIST, OCI_INDEX, Repository


@pytest.fixture
def repository(invoke, registry) -> Iterator[Repository]:
    namespace = f"{registry}/tft-it-{uuid.uuid4().hex[:8]}"
    repository = Repository(
        registry, namespace, f"{namespace.split('/', 1)[1]}/{invoke.image_name}"
    )
    # The project's record of what `invoke push` published, as the developer left it.
    record = PROJECT_DIR / PUSH_DIGESTS
    before = record.read_bytes() if record.exists() else None
    yield repository
    repository.delete_all()
    if before is None:
        record.unlink(missing_ok=True)
    else:
        record.write_bytes(before)


def diff_ids(image: str) -> list[str]:
    """The image's layers by content, the same in the engine's store and the registry's config blob."""
    return json.loads(
        docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout
    )


def local_names_under(namespace: str) -> list[str]:
    return docker(
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        f"reference={namespace}/*",
    ).stdout.split()


def test_both_cpu_architectures_go_out_as_one_multi_architecture_tag(
    invoke, amd64_image, arm64_image, repository
):
    published = f"{repository.namespace}/{invoke.image_name}:latest"
    result = invoke(
        "push",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        env={"REGISTRY": repository.namespace},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        result.stderr.strip().splitlines()[-1] == f"pushed {published} for linux/amd64, linux/arm64"
    )
    assert repository.tags() == ["latest", "latest-amd64", "latest-arm64"]

    index, _ = repository.manifest("latest")
    assert index["mediaType"] in (MANIFEST_LIST, OCI_INDEX)
    listed = {
        f"{entry['platform']['os']}/{entry['platform']['architecture']}": entry["digest"]
        for entry in index["manifests"]
    }
    assert sorted(listed) == ["linux/amd64", "linux/arm64"]
    for platform, image in (("linux/amd64", amd64_image), ("linux/arm64", arm64_image)):
        manifest, digest = repository.manifest(f"latest-{arch(platform)}")
        assert listed[platform] == digest, (
            f"the list's {platform} entry is the image pushed as latest-{arch(platform)}"
        )
        config = repository.config(manifest)
        assert f"{config['os']}/{config['architecture']}" == platform
        assert config["rootfs"]["diff_ids"] == diff_ids(image), (
            f"the registry's {platform} image is {image}, layer for layer"
        )
    # The registry's names were only lent to the images for the push.
    assert local_names_under(repository.namespace) == []

    # A Mac and a Linux server pull the same name, and each gets its own architecture.
    for platform in ("linux/arm64", "linux/amd64"):
        try:
            docker("pull", "--quiet", "--platform", platform, published)
            assert platform_of(published) == platform
        finally:
            # The tag, and the digest reference a pull leaves on an image that has other names.
            digests = docker(
                "image",
                "ls",
                "--digests",
                "--format",
                "{{.Repository}}@{{.Digest}}",
                "--filter",
                f"reference={published}",
            )
            docker("image", "rm", published, *digests.stdout.split(), check=False)
    assert (
        docker("image", "ls", "--quiet", "--filter", f"reference={repository.namespace}/*").stdout
        == ""
    )


def test_the_gpu_image_goes_out_under_its_gpu_tag(invoke, gpu_image, repository):
    result = invoke("push", "--gpu", env={"REGISTRY": repository.namespace})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"pushed {repository.namespace}/{invoke.image_name}:latest-gpu"
    )
    assert repository.tags() == ["latest-gpu"]
    manifest, _ = repository.manifest("latest-gpu")
    assert manifest["mediaType"] in IMAGE_MANIFESTS
    config = repository.config(manifest)
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["rootfs"]["diff_ids"] == diff_ids(gpu_image)
    assert local_names_under(repository.namespace) == []


def test_push_refuses_in_one_line_and_pushes_nothing(invoke, cpu_image, amd64_image, repository):
    wrong = f"{invoke.image_name}-wrong"
    docker(
        "tag", amd64_image, f"{wrong}:latest-arm64"
    )  # an amd64 image under the arm64 image's tag
    unreachable = f"127.0.0.1:{free_port()}/acme"
    cases = [
        (
            (),
            {"REGISTRY": ""},
            "error: REGISTRY is not set, so there is nowhere to push; set it in .env, e.g. REGISTRY=ghcr.io/acme",
        ),
        (
            (),
            {"REGISTRY": "not a registry"},
            "error: REGISTRY='not a registry' (from environment): expected a registry",
        ),
        (
            ("--platform", "linux/amd64"),
            {"REGISTRY": repository.namespace, "IMAGE_TAG": "never-built"},
            f"error: there is no image {invoke.image_name}:",
        ),
        (
            ("--platform", "linux/arm64"),
            {"REGISTRY": repository.namespace, "IMAGE_NAME": wrong},
            f"error: {wrong}:latest-arm64 is a linux/amd64 image, not linux/arm64; `invoke build --platform linux/arm64` rebuilds it",
        ),
        (
            ("--gpu", "--platform", "linux/arm64"),
            {"REGISTRY": repository.namespace},
            "error: the GPU image is linux/amd64 only",
        ),
        (
            ("--platform", "linux/s390x"),
            {"REGISTRY": repository.namespace},
            "error: unknown platform 'linux/s390x'",
        ),
        (
            (),
            {"REGISTRY": unreachable},
            f"error: pushing {unreachable}/{invoke.image_name}:latest-",
        ),
    ]
    try:
        for args, env, message in cases:
            result = invoke("push", *args, env=env)
            lines = result.stderr.strip().splitlines()
            assert result.returncode == 1, (args, env, result.stderr[-2000:])
            assert "Traceback" not in result.stderr
            assert lines[-1].startswith(message), (args, env, lines[-1])
            if env["REGISTRY"] == unreachable:
                assert lines[-1].endswith(
                    f"; `docker login {unreachable.split('/')[0]}` if it needs credentials"
                )
                assert local_names_under(unreachable) == [], (
                    "a failed push leaves no registry name behind"
                )
            else:
                assert len(lines) == 1, lines
    finally:
        docker("image", "rm", f"{wrong}:latest-arm64", check=False)
    assert repository.tags() == []


def test_after_push_invoke_k8s_names_the_image_by_the_digest_the_registry_holds(
    invoke, cpu_image, repository
):
    env = {"REGISTRY": repository.namespace}
    before = invoke("k8s", env=env)
    assert before.returncode == 0, before.stderr[-3000:]
    tagged = f"{repository.namespace}/{invoke.image_name}:latest"
    assert before.stderr.splitlines() == [
        f"`invoke push` recorded no digest of {tagged} in {PUSH_DIGESTS}: the pods pull it by its "
        "tag"
    ]
    assert images_in(before.stdout) == {tagged}

    pushed = invoke("push", env=env)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    _, digest = repository.manifest("latest")  # the list's digest: Docker-Content-Digest
    assert digest.startswith("sha256:")

    after = invoke("k8s", env=env)
    assert after.returncode == 0, after.stderr[-3000:]
    assert after.stderr == ""
    assert images_in(after.stdout) == {f"{repository.namespace}/{invoke.image_name}@{digest}"}

    # The cluster pulls exactly that: the registry answers the digest reference with the list.
    index, same = repository.manifest(digest)
    assert same == digest
    assert index["mediaType"] in (MANIFEST_LIST, OCI_INDEX)


def images_in(text: str) -> set[str]:
    return {
        container["image"]
        for document in yaml.safe_load_all(text)
        if document["kind"] in ("Job", "Deployment")
        for container in document["spec"]["template"]["spec"]["containers"]
    }
