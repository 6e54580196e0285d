"""Making the template yours, step by step as the README's "Make it yours" gives it: the example goes
(src/app, data/iris.csv, tests/example), an app of the team's own that keeps the app contract comes in,
and the template's own checks stay green: `invoke build`, `nox -s tests`, `nox -s container_test`, then
`invoke run --detach`: /health answers 200, the engine reports the container healthy, `invoke stop`.

The team's .env sets a proxy for their app (http_proxy, HTTP_PROXY): the image's health probe must not
go through it. nox runs with this test's own host tools (its interpreter's folder first on PATH).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.engine import containers_named, docker, free_port, health_status
from helpers.http_client import wait_until_healthy
from helpers.invoking import Invoke
from helpers.project import copy_shipped_data, project_copy

# What the README tells a team to delete.
EXAMPLE = ("src/app", "data/iris.csv", "tests/example")

# The team's whole app: health only, TensorFlow imported, the standard library's HTTP server on $PORT.
OWN_APP = '''"""Our own service: `python -m app`."""

import http.server
import os

import tensorflow as tf


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(f"TensorFlow {tf.__version__}\\n".encode())


http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
'''

# A proxy set for the app in .env, which nothing listens on: a probe that used it would reach no app.
DEAD_PROXY = "http://127.0.0.1:9"
# The image's HEALTHCHECK runs every 30 s: the first verdict comes within a minute and a half.
HEALTHY_WITHIN = 90


@pytest.fixture
def adopted(tmp_path) -> Path:
    """A fresh clone of the template with the example replaced by the team's own app."""
    project = project_copy(
        tmp_path, name="our-service", dotenv=f"http_proxy={DEAD_PROXY}\nHTTP_PROXY={DEAD_PROXY}\n"
    )
    copy_shipped_data(project / "data")
    for path in EXAMPLE:
        assert (project / path).exists(), (
            f"the README says to delete {path}, and the template has no such path"
        )
        if (project / path).is_dir():
            shutil.rmtree(project / path)
        else:
            (project / path).unlink()
    (project / "src" / "app").mkdir()
    (project / "src" / "app" / "__init__.py").write_text("")
    (project / "src" / "app" / "__main__.py").write_text(OWN_APP)
    return project


def run(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.mark.needs("example")
def test_the_example_replaced_by_an_app_of_ones_own_builds_tests_serves_and_is_healthy(
    invoke: Invoke, adopted
):
    name, port = f"{invoke.image_name}-adopted", free_port()
    # The team's settings: the project's own ./data as DATA_DIR (no DATA_DIR set), and the host tools on PATH.
    env = {key: value for key, value in invoke.env.items() if key != "DATA_DIR"}
    env.update(
        IMAGE_NAME=name,
        HOST_PORT=str(port),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    try:
        run(adopted, env, "invoke", "build")

        unit = run(adopted, env, "nox", "-s", "tests")
        assert "Session tests was successful" in unit.stdout + unit.stderr

        container = run(adopted, env, "nox", "-s", "container_test")
        output = container.stdout + container.stderr
        assert "Session container_test was successful" in output
        # A dot for each test of the file, every one passed.
        assert re.search(r"^tests/container/test_smoke\.py \.+ ", output, re.MULTILINE), output
        assert "tests/example" not in output

        run(adopted, env, "invoke", "run", "--detach")
        wait_until_healthy(f"http://127.0.0.1:{port}/health")
        deadline = time.monotonic() + HEALTHY_WITHIN
        while (status := health_status(name)) != "healthy":
            assert status == "starting", (
                f"the engine reports {name} {status}: {docker('inspect', '--format', '{{json .State.Health}}', name).stdout}"
            )
            assert time.monotonic() < deadline, (
                f"{name} was not reported healthy within {HEALTHY_WITHIN} s"
            )
            time.sleep(2)

        stopped = run(adopted, env, "invoke", "stop")
        assert stopped.stderr.strip() == f"stopped and removed {name}"
        assert containers_named(name) == []
    finally:
        docker("rm", "--force", name, check=False)
        docker("image", "rm", "--force", f"{name}:latest", check=False)
