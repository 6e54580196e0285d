"""Making the template yours, step by step as the README's "Make it yours" gives it: the example goes
(src/app, data/iris.csv, tests/example, its block of .env.example), an app of the team's own that keeps
the app contract comes in, its one package replaces the example's in requirements.in and `invoke lock`
compiles every lock (the other architecture's under emulation), and the template's own checks stay
green: `invoke build`, `nox -s tests`, `nox -s container_test`, then `invoke run --detach`: /health
answers 200 from the team's code with its package, the engine reports the container healthy,
`invoke stop`.

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

from devkit.locks import LockFile
from helpers.engine import containers_named, docker, free_port, health_status, host_platform
from helpers.http_client import get_text, wait_until_healthy
from helpers.invoking import Invoke
from helpers.lock_files import IMAGE_LOCKS
from helpers.project import copy_shipped_data, project_copy

# The platform of the CPU image that `invoke build` makes here.
HOST_PLATFORM = host_platform()

# What the README tells a team to delete.
EXAMPLE = ("src/app", "data/iris.csv", "tests/example")

# The team's one package: small, pure Python, in no lock of the template.
OWN_PACKAGE = "tabulate"

# The team's whole app: health only, TensorFlow and its package imported, the standard library's
# HTTP server on $PORT.
OWN_APP = '''"""Our own service: `python -m app`."""

import http.server
import os

import tabulate
import tensorflow as tf


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(f"TensorFlow {tf.__version__}, tabulate {tabulate.__version__}\\n".encode())


http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
'''

# A proxy set for the app in .env, which nothing listens on: a probe that used it would reach no app.
DEAD_PROXY = "http://127.0.0.1:9"
# The image's HEALTHCHECK runs every 30 s: the first verdict comes within a minute and a half.
HEALTHY_WITHIN = 90


@pytest.fixture
def adopted(tmp_path) -> Path:
    """A fresh clone of the template with the example replaced by the team's own app and package."""
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
    # .env.example: the example's keys, between its two `# ----` lines.
    settings = (project / ".env.example").read_text()
    block = re.search(r"^# ----.*?^# ----[^\n]*\n", settings, re.MULTILINE | re.DOTALL)
    assert block, ".env.example has no block of the example's keys between two `# ----` lines"
    (project / ".env.example").write_text(settings.replace(block.group(), ""))
    (project / "src" / "app").mkdir()
    (project / "src" / "app" / "__init__.py").write_text("")
    (project / "src" / "app" / "__main__.py").write_text(OWN_APP)
    # requirements.in: the example's packages (all it lists) make way for the team's.
    (project / "requirements.in").write_text(f"# Our service's packages.\n{OWN_PACKAGE}\n")
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
@pytest.mark.platform("linux/amd64", "linux/arm64")  # `invoke lock` compiles the locks of both
def test_the_example_replaced_by_an_app_of_ones_own_locks_builds_tests_serves_and_is_healthy(
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
        # The suite's IMAGE_NAME for the lock: its pip cache volume, which the suite removes.
        locked = run(adopted, {**env, "IMAGE_NAME": invoke.image_name}, "invoke", "lock")
        report = locked.stderr.splitlines()
        # The other architecture's lock says why it is slow, and that it is alive while it runs.
        other = "requirements-arm64.txt" if HOST_PLATFORM == "linux/amd64" else "requirements.txt"
        assert any(
            line.startswith(f"locking {other} (")
            and "under emulation" in line
            and line.endswith("expect minutes")
            for line in report
        ), locked.stderr
        assert any(
            line.startswith(f"still locking {other}: ") and line.endswith(" so far")
            for line in report
        ), locked.stderr
        for lock in IMAGE_LOCKS:
            entry = LockFile.read(adopted / lock).get(OWN_PACKAGE)
            assert entry, f"{lock} lacks {OWN_PACKAGE}"
            assert {value.split(":")[0] for value in entry.hashes} == {"sha256"}, (
                f"{lock}: {OWN_PACKAGE} has no sha256 hash"
            )
            assert any(
                line.startswith(f"{lock}: added {OWN_PACKAGE} {entry.version}") for line in report
            ), locked.stderr
        run(adopted, env, "invoke", "lock", "--check")

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
        status, body = get_text(f"http://127.0.0.1:{port}/health")
        assert (status, body.split(", ")[-1].split(" ")[0]) == (200, OWN_PACKAGE), body
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
