"""Graceful shutdown through the real tasks: `docker stop` sends SIGTERM, as a Kubernetes rolling update
does; the server finishes the requests in flight, refuses new connections, and exits 0 within the grace
period (`docker stop`'s 10 s), so the engine never has to kill it."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import time

import pytest

from helpers.engine import DOCKER, docker
from helpers.http_client import wait_for_json
from helpers.project import PROJECT_DIR

IN_FLIGHT = 50
BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]] * 8}).encode()
HEAD = f"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()


@pytest.fixture
def served(invoke, cpu_image, tmp_path):
    """`invoke run --detach` on a DATA_DIR of the test's own: (container name, port) once /health says ready."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(PROJECT_DIR / "data" / "iris.csv", data)
    started = invoke("run", "--detach", env={"DATA_DIR": str(data)})
    assert started.returncode == 0, started.stderr
    try:
        port = int(invoke.env["HOST_PORT"])
        wait_for_json(f"http://127.0.0.1:{port}/health", timeout=300)
        yield invoke.image_name, port
    finally:
        docker("rm", "--force", invoke.image_name, check=False)


def answer_or_refusal(port: int) -> int | str:
    """The status of GET /live on a new connection, or "refused" when the connection gets no answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/live")
        return connection.getresponse().status
    except (ConnectionError, http.client.RemoteDisconnected):
        # Refused by the kernel once the container is gone; before that, the engine's port proxy
        # accepts and closes at once, as nothing listens behind it any more.
        return "refused"
    finally:
        connection.close()


def response_of(connection: socket.socket) -> tuple[int, dict]:
    connection.settimeout(30)
    response = http.client.HTTPResponse(connection)
    response.begin()
    return response.status, json.loads(response.read())


def test_docker_stop_finishes_the_requests_in_flight_refuses_new_ones_and_exits_0(served):
    container, port = served
    connections = [
        socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(IN_FLIGHT)
    ]
    try:
        for connection in connections:  # in flight: the head and half the body sent
            connection.sendall(HEAD + BODY[: len(BODY) // 2])
        time.sleep(1)  # the server has read every head
        exit_code = subprocess.Popen([DOCKER, "wait", container], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)  # `docker wait` is watching
        stopping = time.monotonic()
        stop = subprocess.Popen(
            [DOCKER, "stop", container], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        while (answer := answer_or_refusal(port)) != "refused":
            assert answer == 200, answer
            assert time.monotonic() - stopping < 5, (
                "the server kept accepting connections 5 s after SIGTERM"
            )
            time.sleep(0.05)
        for connection in connections:
            connection.sendall(BODY[len(BODY) // 2 :])
        answers = [response_of(connection) for connection in connections]
    finally:
        for connection in connections:
            connection.close()
    assert [status for status, _ in answers] == [200] * IN_FLIGHT, answers
    assert all(len(body["predictions"]) == 8 for _, body in answers)
    _, error = stop.communicate(timeout=60)
    assert stop.returncode == 0, error
    code, _ = exit_code.communicate(timeout=60)
    assert code.strip() == "0", (
        f"the server exited with status {code.strip()}, not 0 (137: killed after the grace period)"
    )
    assert time.monotonic() - stopping < 10, "the stop took the whole grace period"
    assert answer_or_refusal(port) == "refused"
