"""The example on the linux/arm64 CPU image (under emulation on an x86-64 host): with no model yet, it
trains its first one, then tells the three species apart, as on the native image."""

import shutil

from devkit.platforms import ARM64
from example.iris import SETOSA, VERSICOLOR, VIRGINICA
from helpers.engine import docker, free_port, host_platform
from helpers.http_client import predict, wait_for_json
from helpers.project import PROJECT_DIR


def test_the_example_trains_and_predicts_on_the_arm64_image(invoke, arm64_image, tmp_path):
    data = tmp_path / "arm64 data"
    data.mkdir()
    data.chmod(0o777)  # the container's user may be another uid than this test's
    shutil.copy(PROJECT_DIR / "data" / "iris.csv", data)
    port = free_port()
    env = {"DATA_DIR": str(data), "HOST_PORT": str(port)}
    container = invoke.image_name if host_platform() == ARM64 else f"{invoke.image_name}-arm64"
    started = invoke("run", "--platform", ARM64, "--detach", env=env)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        # The server trains its first model on the dataset, then serves: a minute or more under emulation.
        health = wait_for_json(f"http://127.0.0.1:{port}/health", timeout=900)
        assert (health["status"], health["version"]) == ("ok", 1)
        status, body = predict(f"http://127.0.0.1:{port}", [SETOSA, VERSICOLOR, VIRGINICA])
        assert status == 200, body
        assert [row.index(max(row)) for row in body["predictions"]] == [0, 1, 2]
    finally:
        invoke("stop", "--platform", ARM64, env=env)
        docker("rm", "--force", container, check=False)
