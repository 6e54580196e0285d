"""The linux/arm64 CPU image (Apple Silicon, ARM servers), proven on an x86-64 host under emulation.

Built from requirements-arm64.txt under its own tag beside the native image, its container_test
passes and the app serves from it, all through the tasks a Mac user types. Under emulation this
takes minutes; on an ARM host, the same tests run natively.
"""

import re
import subprocess
import sys

from devkit.locks import pinned_tensorflow
from devkit.platforms import ARM64
from helpers.engine import (
    containers_named,
    docker,
    free_port,
    host_platform,
    image_config,
    platform_of,
)
from helpers.http_client import wait_until_healthy
from helpers.project import PROJECT_DIR, copy_shipped_data

HOST_PLATFORM = host_platform()

INSTALLED = "import importlib.metadata as m, sys; print(*(m.version(name) if name in {d.metadata['Name'] for d in m.distributions()} else '-' for name in sys.argv[1:]))"


def test_the_arm64_image_installs_tensorflow_from_the_arm64_lock_beside_the_native_image(
    cpu_image, arm64_image
):
    assert platform_of(arm64_image) == ARM64
    expected = pinned_tensorflow((PROJECT_DIR / "requirements-arm64.txt").read_text())
    # PyPI has no tensorflow-cpu wheel for arm64: the arm64 lock pins tensorflow itself.
    versions = docker(
        "run",
        "--rm",
        "--platform",
        ARM64,
        arm64_image,
        "python",
        "-c",
        INSTALLED,
        "tensorflow",
        "tensorflow-cpu",
    ).stdout
    assert versions.split() == [expected, "-"]
    assert image_config(arm64_image)["Labels"]["org.tensorflow.version"] == expected
    # Built for another platform, the native image under the plain tag is still the native one.
    assert platform_of(cpu_image) == HOST_PLATFORM


def test_container_test_passes_for_arm64(invoke, arm64_image):
    """`nox -s container_test -- --platform linux/arm64`, word for word as the README gives it."""
    result = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "container_test", "--", "--platform", ARM64],
        cwd=PROJECT_DIR,
        env=invoke.env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "Session container_test was successful" in output
    # A dot for each test of the file (the platform's among them), every one passed.
    assert re.search(r"^tests/container/test_smoke\.py \.+ ", output, re.MULTILINE), output[-4000:]
    assert "aarch64, uid " in output, "the container report names the machine it ran on"
    assert platform_of(arm64_image) == ARM64


def test_the_arm64_image_serves_and_stops(invoke, arm64_image, cpu_image, tmp_path):
    data = tmp_path / "arm64 data"
    data.mkdir()
    data.chmod(0o777)  # the container's user may be another uid than this test's
    shipped = copy_shipped_data(data)
    port = free_port()
    env = {"DATA_DIR": str(data), "HOST_PORT": str(port)}
    container = invoke.image_name if HOST_PLATFORM == ARM64 else f"{invoke.image_name}-arm64"
    started = invoke("run", "--platform", ARM64, "--detach", env=env)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        # The app may prepare itself first (the example trains its first model): minutes under emulation.
        wait_until_healthy(f"http://127.0.0.1:{port}/health", timeout=900)
        assert docker("exec", container, "uname", "-m").stdout.strip() == "aarch64"
    finally:
        stopped = invoke("stop", "--platform", ARM64, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr.strip() == f"stopped and removed {container}"
    assert containers_named(container) == []
    assert all((data / name).exists() for name in shipped), "DATA_DIR keeps what it held"
    # `--platform` on every run: the arm64 run left the native tag as it was.
    assert platform_of(cpu_image) == HOST_PLATFORM
