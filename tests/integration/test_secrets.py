"""Secrets: canaries in `.env`, in BUILD_CA_BUNDLE, in a package index's and a proxy's credentials,
in the git remote (a CI job's token), then a scan of every byte of both images (`docker save`: each
layer, the config, the history) and of what `invoke --dry build` prints.

BuildKit's cache keys do not include a secret's content, so the steps that get secrets must run
again with the canaries: the CPU image is built without layer cache; the GPU image gets a new package
in its lock, which reruns the install of every package but TensorFlow and its CUDA wheels (a cold
rebuild of those 6 GB would need about 12 GB more disk on every run). Their install step is the
same, secret mounts included, as the CPU image's, which the cold build proves.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from helpers.engine import DOCKER, docker, free_port
from helpers.lock_files import add_to_image_lock
from helpers.project import project_copy


def found_in_image(image: str, canaries: list[str]) -> set[str]:
    """The canaries that occur anywhere in the image as `docker save` writes it, streamed (6 GB for the GPU image)."""
    needles = {canary: canary.encode() for canary in canaries}
    overlap = max(map(len, needles.values())) - 1
    found, tail = set(), b""
    with subprocess.Popen([DOCKER, "save", image], stdout=subprocess.PIPE) as saving:
        while chunk := saving.stdout.read(1 << 22):
            window = tail + chunk
            found |= {canary for canary, needle in needles.items() if needle in window}
            tail = window[-overlap:]
    assert saving.returncode == 0, f"docker save {image} failed"
    return found


@pytest.fixture(scope="module")
def canaries(tmp_path_factory) -> dict[str, str]:
    mark = uuid.uuid4().hex[:12]
    return {
        "dotenv": f"canary-dotenv-{mark}",
        "ca_bundle": f"canary-ca-bundle-{mark}",
        "index": f"canary-index-token-{mark}",
        "proxy": f"canary-proxy-password-{mark}",
        "remote": f"canary-remote-token-{mark}",
    }


def with_git_remote(project: Path, url: str) -> None:
    """The copy as a clone whose remote carries credentials, as GitLab CI's does (`https://gitlab-ci-token:<token>@...`)."""
    subprocess.run(["git", "init", "--quiet", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "remote", "add", "origin", url], check=True)


@pytest.mark.parametrize(
    ("variant", "build_args"),
    [("cpu", ("--no-cache",)), pytest.param("gpu", ("--gpu",), marks=pytest.mark.needs("gpu"))],
)
def test_no_secret_reaches_a_layer_or_the_history(invoke, tmp_path, canaries, variant, build_args):
    project = project_copy(
        tmp_path,
        # An app key, and a private index with credentials (PyPI itself, which ignores them).
        f"APP_TOKEN={canaries['dotenv']}\nPIP_INDEX_URL=https://canary-user:{canaries['index']}@pypi.org/simple\n",
    )
    if variant == "gpu":
        add_to_image_lock(project, "requirements-gpu.txt")
    with_git_remote(
        project,
        f"https://gitlab-ci-token:{canaries['remote']}@gitlab.example.com/team/app.git?t={canaries['remote']}",
    )
    # A bundle pip still trusts: the machine's CAs, and text outside the PEM blocks, which TLS ignores.
    # A comma in its path: BuildKit reads `--secret` as CSV, so it must be quoted to arrive whole.
    ca_bundle = tmp_path / "corporate,ca.pem"
    machine_cas = Path(
        os.environ.get("BUILD_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
    ).read_text()
    ca_bundle.write_text(f"# {canaries['ca_bundle']}\n{machine_cas}")
    environment = {
        "IMAGE_NAME": f"{invoke.image_name}-secrets",
        "BUILD_CA_BUNDLE": str(ca_bundle),
        # A proxy with a password, which nothing here may use.
        "HTTPS_PROXY": f"http://proxy-user:{canaries['proxy']}@127.0.0.1:9",
        "NO_PROXY": "*",
    }
    image = f"{environment['IMAGE_NAME']}:{'latest-gpu' if variant == 'gpu' else 'latest'}"
    dry = invoke("--dry", "build", *build_args, cwd=project, env=environment)
    assert dry.returncode == 0, dry.stderr
    assert "SOURCE_URL=https://gitlab.example.com/team/app.git " in dry.stdout + dry.stderr
    assert [name for name, canary in canaries.items() if canary in dry.stdout + dry.stderr] == []
    result = invoke("build", *build_args, cwd=project, env=environment)
    try:
        assert result.returncode == 0, result.stderr[-3000:]
        # pip used the index from .env, and printed it without its password.
        assert (
            "Looking in indexes: https://canary-user:****@pypi.org/simple"
            in result.stdout + result.stderr
        )
        # Two strings that are in the image, so that the scan is seen to find what is there: a line
        # of the app's source (in a layer) and a label (in the config).
        present = ["MAX_BODY_BYTES = ", "org.tensorflow.version"]
        assert found_in_image(image, [*canaries.values(), *present]) == set(present)
        history = (
            docker("history", "--no-trunc", image).stdout + docker("image", "inspect", image).stdout
        )
        assert [name for name, canary in canaries.items() if canary in history] == []
        source = docker(
            "image",
            "inspect",
            "--format",
            '{{index .Config.Labels "org.opencontainers.image.source"}}',
            image,
        ).stdout
        assert source.strip() == "https://gitlab.example.com/team/app.git"
    finally:
        docker("image", "rm", "--force", image, check=False)
    shutil.rmtree(project)


def private_folders(kind: str, pid: int) -> list[Path]:
    """The folders of secrets that the invoke process `pid` made (`invoke-<kind>-<pid>-*`)."""
    return sorted(Path(tempfile.gettempdir()).glob(f"invoke-{kind}-{pid}-*"))


def wait_for(found, process: subprocess.Popen[str], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{what} never appeared:\n{process.communicate()}")
        time.sleep(0.05)


def test_sigterm_during_a_build_leaves_no_index_credentials_behind(invoke, cpu_image):
    env = {"PIP_EXTRA_INDEX_URL": "https://user:canary-token@127.0.0.1:9/simple"}
    process = invoke.popen("build", "--no-cache", env=env, start_new_session=True)
    wait_for(lambda: private_folders("build", process.pid), process, "the build's pip.conf")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0, stderr[-2000:]
    assert private_folders("build", process.pid) == []


def test_what_sigkill_leaves_of_the_app_keys_goes_with_the_next_run(invoke, cpu_image, tmp_path):
    project = project_copy(tmp_path)
    (project / ".env").write_text("API_TOKEN=canary-sigkill\n")
    env = {"HOST_PORT": str(free_port())}
    process = invoke.popen("run", cwd=project, env=env, start_new_session=True)
    try:
        wait_for(lambda: private_folders("app-env", process.pid), process, "the app's env-file")
        process.kill()  # invoke alone: nothing can catch SIGKILL
        process.wait(timeout=30)
        assert private_folders("app-env", process.pid) != []
        after = invoke("run", "--cmd", "true", cwd=project, env=env)
        assert after.returncode == 0, after.stderr
        assert private_folders("app-env", process.pid) == []
    finally:
        docker("rm", "--force", invoke.image_name, check=False)
