"""The app inside the image (`nox -s container_test`): `python -m app` serves /health, /live and
/predict on $PORT. Replace it with tests of your own app's work."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest


@pytest.fixture
def server():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "app"], env={**os.environ, "PORT": str(port)}, cwd="/app"
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1)  # noqa: S310 (a local URL)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"python -m app did not answer /health on port {port}")
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(timeout=10)


def get(url: str, data: bytes | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as answer:  # noqa: S310
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_health_live_and_a_predict_to_replace(server):
    assert get(f"{server}/health")[0] == 200
    assert get(f"{server}/live") == (200, {"status": "alive"})
    status, body = get(f"{server}/predict", data=b"{}")
    assert status == 501
    assert "replace predict()" in body["error"]
