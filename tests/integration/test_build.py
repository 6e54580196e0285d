"""`invoke build`: both images from this checkout, on BASE_IMAGE, with the contract's platforms."""

import json
import os
import re
import shutil

import pytest

from devkit.baseimage import qualified_name
from devkit.locks import pinned_tensorflow
from helpers.engine import docker, host_platform, image_config, platform_of
from helpers.lock_files import add_to_image_lock
from helpers.project import PROJECT_DIR, project_copy
from helpers.registry import served_digests

# The platform of the CPU image that `invoke build` makes here.
HOST_PLATFORM = host_platform()


def dry(invoke, *args):
    result = invoke("--dry", "build", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("args", "dockerfile", "platform", "tag"),
    [
        ((), "Dockerfile", HOST_PLATFORM, "latest"),
        pytest.param(
            ("--gpu",),
            "Dockerfile.gpu",
            "linux/amd64",
            "latest-gpu",
            marks=pytest.mark.needs("gpu"),
        ),
        (
            ("--platform", "linux/arm64"),
            "Dockerfile",
            "linux/arm64",
            "latest" if HOST_PLATFORM == "linux/arm64" else "latest-arm64",
        ),
    ],
)
def test_dry_build_prints_dockerfile_platform_and_tag(invoke, args, dockerfile, platform, tag):
    command = dry(invoke, *args)
    assert f"--file {PROJECT_DIR / dockerfile} " in command
    assert f"--platform {platform} " in command
    assert f"--tag {invoke.image_name}:{tag} " in command
    # By the digest `invoke lock` pinned for the platform.
    assert f"BASE_IMAGE={os.environ.get('BASE_IMAGE', 'python:3.11-slim')}@sha256:" in command


@pytest.mark.needs("gpu")
def test_gpu_build_refuses_arm64_in_one_line(invoke):
    result = invoke("build", "--gpu", "--platform", "linux/arm64")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: the GPU image is linux/amd64 only (TensorFlow's CUDA wheels are x86-64 only); --platform asks for linux/arm64"
    ]


def base_layers() -> list[str]:
    base = os.environ.get("BASE_IMAGE", "python:3.11-slim")
    docker("pull", "--quiet", "--platform", HOST_PLATFORM, base)
    return json.loads(
        docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", base).stdout
    )


@pytest.mark.parametrize(
    "variant",
    [
        "cpu",
        pytest.param("gpu", marks=[pytest.mark.platform("linux/amd64"), pytest.mark.needs("gpu")]),
    ],
)
def test_image_builds_on_base_image_with_labels(request, variant):
    image = request.getfixturevalue(f"{variant}_image")
    layers = json.loads(
        docker("image", "inspect", "--format", "{{json .RootFS.Layers}}", image).stdout
    )
    base = base_layers()
    assert layers[: len(base)] == base, f"{image} is not built on BASE_IMAGE"

    config = image_config(image)
    lock = "requirements-gpu.txt" if variant == "gpu" else "requirements.txt"
    labels = config["Labels"]
    assert labels["org.tensorflow.version"] == pinned_tensorflow((PROJECT_DIR / lock).read_text())
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"]
    )
    assert "org.opencontainers.image.revision" in labels
    # The base, by the digest its registry serves for the image's platform: that platform's own
    # manifest, not the index that `docker image inspect` names in RepoDigests.
    base_image = os.environ.get("BASE_IMAGE", "python:3.11-slim")
    index, served = served_digests(base_image)
    platform = "linux/amd64" if variant == "gpu" else HOST_PLATFORM
    assert labels["org.opencontainers.image.base.digest"] == served[platform]
    assert labels["org.opencontainers.image.base.digest"] != index
    assert labels["org.opencontainers.image.base.name"] == qualified_name(base_image)
    assert config["User"] == "1000:1000"
    assert config["WorkingDir"] == "/app"
    assert "8888/tcp" in config["ExposedPorts"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-I", "/opt/healthcheck.py"]
    assert "TF_CPP_MIN_LOG_LEVEL=2" in config["Env"]
    if variant == "gpu":
        assert "TF_FORCE_GPU_ALLOW_GROWTH=true" in config["Env"]


def test_ca_bundle_is_in_no_layer_or_history(cpu_image):
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", cpu_image).stdout
    assert "ca_bundle" not in history.replace("--mount=type=secret,id=ca_bundle", "")
    assert "PIP_CERT=/run/secrets" not in image_config(cpu_image)["Env"]
    listing = docker(
        "run",
        "--rm",
        "--platform",
        HOST_PLATFORM,
        "--entrypoint",
        "ls",
        cpu_image,
        "-A",
        "/run/secrets",
        check=False,
    )
    assert listing.stdout.strip() == "", "the CA bundle secret must not stay in the image"


def test_gpu_image_holds_a_cuda_build_of_tensorflow(gpu_image):
    # No GPU here: this checks what the image holds, not that a GPU is seen.
    probe = (
        "import tensorflow as tf, nvidia.cudnn, nvidia.cublas; "
        "info = tf.sysconfig.get_build_info(); "
        "print(tf.test.is_built_with_cuda(), info['cuda_version'], info['cudnn_version'])"
    )
    result = docker("run", "--rm", "--platform", "linux/amd64", gpu_image, "python", "-c", probe)
    built_with_cuda, cuda_version, cudnn_version = result.stdout.split()
    assert built_with_cuda == "True"
    assert cuda_version.startswith("12")
    assert cudnn_version


def test_build_context_holds_only_sources_and_locks(tmp_path):
    """The project's .dockerignore, applied by the real engine to a context with everything in it."""
    context = tmp_path / "context"
    for path in [
        "src/app/__init__.py",
        "src/app/.env",
        "src/app/__pycache__/x.pyc",
        "docker/healthcheck.py",
        "docker/notes.txt",
        "docker/install-lock",
        "docker/locks/requirements-tensorflow.txt",
        "requirements.txt",
        "requirements-gpu.txt",
        "requirements.in",
        "data/dataset.csv",
        ".git/HEAD",
        ".env",
        ".venv/bin/python",
        "venv/bin/python",
        ".nox/tests/x",
        ".pytest_cache/x",
        "tests/test_x.py",
    ]:
        (context / path).parent.mkdir(parents=True, exist_ok=True)
        (context / path).write_text("x")
    shutil.copy(PROJECT_DIR / ".dockerignore", context)
    dockerfile = tmp_path / "Dockerfile.list"
    dockerfile.write_text(
        f"FROM {os.environ.get('BASE_IMAGE', 'python:3.11-slim')}\nCOPY . /context/\n"
    )
    tag = "tft-it-context:latest"
    build = docker(
        "build",
        "--platform",
        HOST_PLATFORM,
        "--file",
        str(dockerfile),
        "--tag",
        tag,
        str(context),
        check=False,
    )
    assert build.returncode == 0, build.stderr
    try:
        listing = docker(
            "run", "--rm", "--platform", HOST_PLATFORM, tag, "find", "/context", "-type", "f"
        ).stdout.split()
    finally:
        docker("image", "rm", tag, check=False)
    assert sorted(listing) == [
        "/context/docker/healthcheck.py",
        "/context/docker/install-lock",
        "/context/docker/locks/requirements-tensorflow.txt",
        "/context/requirements-gpu.txt",
        "/context/src/app/__init__.py",
    ]


def test_rebuilding_unchanged_sources_gives_the_same_image_and_no_orphans(invoke, cpu_image):
    def image_id():
        return docker("image", "inspect", "--format", "{{.Id}}", cpu_image).stdout.strip()

    def dangling():
        return set(
            docker("images", "--quiet", "--no-trunc", "--filter", "dangling=true").stdout.split()
        )

    before, orphans = image_id(), dangling()
    result = invoke("build")
    assert result.returncode == 0, result.stderr
    assert image_id() == before
    assert dangling() == orphans, "a rebuild left an untagged image behind"


# What the slimming build arguments leave in the image: TensorFlow's C++ headers (tensorflow/include)
# and the size of its main library against the size its wheel's RECORD gives (stripped: smaller).
SLIMMING_PROBE = """
import importlib.metadata as metadata, os, tensorflow
folder = os.path.dirname(tensorflow.__file__)
dist = next(d for d in metadata.distributions() if (d.read_text("top_level.txt") or "").split() == ["tensorflow"])
record = next(f for f in dist.files if f.name == "libtensorflow_cc.so.2")
print(os.path.isdir(os.path.join(folder, "include")), os.path.getsize(os.path.join(folder, "libtensorflow_cc.so.2")) < record.size)
"""


def slimming_of(image: str) -> tuple[str, str]:
    has_headers, stripped = docker(
        "run", "--rm", "--platform", platform_of(image), image, "python", "-c", SLIMMING_PROBE
    ).stdout.split()
    return has_headers, stripped


def test_the_cpu_image_has_no_tensorflow_headers_and_stripped_libraries(cpu_image):
    assert slimming_of(cpu_image) == ("False", "True")


def test_the_gpu_image_has_no_tensorflow_headers_and_keeps_its_symbols(gpu_image):
    assert slimming_of(gpu_image) == ("False", "False")


def test_build_args_keep_the_headers_and_the_symbols(invoke):
    args = ["--build-arg", "KEEP_TF_HEADERS=1", "--build-arg", "STRIP_TF_LIBRARIES=0"]
    result = invoke("build", *args, env={"IMAGE_TAG": "unslimmed"})
    image = f"{invoke.image_name}:unslimmed"
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        assert slimming_of(image) == ("True", "False")
    finally:
        docker("image", "rm", "--force", image, check=False)


def steps_from_cache(build_output: str) -> dict[str, bool]:
    """Each step of a BuildKit build (its plain progress output) and whether it came from the cache."""
    titles = dict(re.findall(r"^#(\d+) (\[.+)$", build_output, re.MULTILINE))
    cached = set(re.findall(r"^#(\d+) CACHED$", build_output, re.MULTILINE))
    return {title: number in cached for number, title in titles.items()}


@pytest.mark.parametrize(
    ("variant", "build_args", "locks"),
    [
        ("cpu", (), ("requirements.txt", "requirements-arm64.txt")),
        pytest.param(
            "gpu",
            ("--gpu",),
            ("requirements-gpu.txt",),
            marks=[pytest.mark.platform("linux/amd64"), pytest.mark.needs("gpu")],
        ),
    ],
)
def test_adding_a_package_to_the_lock_keeps_the_tensorflow_layer(
    request, invoke, tmp_path, variant, build_args, locks
):
    """Only the other packages are reinstalled; TensorFlow's layer (1 GB, 6 GB with CUDA) is the cached one."""
    request.getfixturevalue(f"{variant}_image")  # built from the unchanged lock
    project = project_copy(tmp_path)
    # A small pure-Python package from the host tools' lock, as `invoke lock` would add it.
    for lock in locks:
        add_to_image_lock(project, lock)
    name = f"{invoke.image_name}-added"
    image = f"{name}:{'latest-gpu' if variant == 'gpu' else 'latest'}"
    result = invoke("build", *build_args, cwd=project, env={"IMAGE_NAME": name})
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        steps = steps_from_cache(result.stdout + result.stderr)
        assert [cached for title, cached in steps.items() if "COPY --from=tensorflow" in title] == [
            True
        ]
        assert [
            cached
            for title, cached in steps.items()
            if title.startswith("[packages") and "install-lock" in title
        ] == [False]
        docker(
            "run",
            "--rm",
            "--platform",
            platform_of(image),
            image,
            "python",
            "-c",
            "import iniconfig, tensorflow",
        )
    finally:
        docker("image", "rm", "--force", image, check=False)
