"""docker/healthcheck.py, the images' HEALTHCHECK, run as the image runs it against a stand-in app on this machine."""

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from helpers.engine import free_port
from helpers.project import PROJECT_DIR

PROBE = PROJECT_DIR / "docker" / "healthcheck.py"
# A proxy that nothing listens on: a probe that used it could reach no app at all.
DEAD_PROXY = "http://127.0.0.1:9"


def probe(port: int, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(PROBE)],
        env={"PORT": str(port), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def app() -> Iterator[tuple[int, dict[str, int]]]:
    """A stand-in app on a free port whose /health answers `state["status"]`; its port and that state."""
    state = {"status": 200}

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(state["status"] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], state
    finally:
        server.shutdown()
        server.server_close()


def test_a_ready_app_is_healthy(app):
    port, _ = app
    assert probe(port).returncode == 0


def test_a_proxy_set_for_the_app_is_not_used(app):
    port, _ = app
    result = probe(
        port, http_proxy=DEAD_PROXY, HTTP_PROXY=DEAD_PROXY, all_proxy=DEAD_PROXY, no_proxy=""
    )
    assert result.returncode == 0, result.stderr


def test_an_app_not_ready_yet_is_unhealthy_and_says_why(app):
    port, state = app
    state["status"] = 503
    result = probe(port)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"healthcheck: http://127.0.0.1:{port}/health: HTTP Error 503: Service Unavailable"
    )


def test_no_app_on_the_port_is_unhealthy():
    port = free_port()
    result = probe(port)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"healthcheck: http://127.0.0.1:{port}/health: <urlopen error [Errno 111] Connection refused>"
    )
