"""The server against what clients send, inside the image: values beyond float32, JSON nested too deep,
unexpected errors, the probes, clients that stall (timeouts and the limit of requests in progress) or
leave, and how an answer is written."""

import asyncio
import http.client
import json
import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from app import server, train
from app.server import Options
from example.iris import write_iris_like
from example.serving import EPOCHS, serving, wait_until_ready
from helpers.http_client import call, predict

SETOSA = [5.0, 3.4, 1.5, 0.2]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("requests")
    train.train(write_iris_like(folder / "iris.csv"), folder / "models", epochs=EPOCHS)
    return folder / "models"


@pytest.fixture(scope="module")
def server_url(models):
    with serving(models, models / "unused.csv") as url:
        wait_until_ready(url)
        yield url


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


# --- values and bodies that used to give a plain-text 500 --------------------------------------


@pytest.mark.parametrize(
    "value",
    ["1e300", "3.5e38", "-1e39", "1" + "0" * 39],
    ids=["1e300", "3.5e38", "-1e39", "10**39"],
)
def test_a_value_beyond_float32_is_a_json_400(server_url, value):
    body = f'{{"instances": [[5.1, 3.5, 1.4, 0.2], [{value}, 3.5, 1.4, 0.2]]}}'.encode()
    status, error = call(f"{server_url}/predict", body)
    assert status == 400
    assert error["error"].startswith(
        "instance 1 holds a value that is not a finite number within float32's range"
    )


def test_a_value_within_float32_that_overflows_the_model_is_a_json_400(server_url):
    status, error = predict(server_url, [SETOSA, [3.4e38, 3.4e38, 3.4e38, 3.4e38]])
    assert (status, error) == (
        400,
        {
            "error": "instance 1 is so far from the measurements the model knows that its output is not a finite number"
        },
    )


@pytest.mark.parametrize("depth", [5_000, 100_000])
@pytest.mark.parametrize("where", ["document", "instance"])
def test_json_nested_too_deep_is_a_json_400(server_url, depth, where):
    nested = "[" * depth + "]" * depth
    body = nested if where == "document" else f'{{"instances": [{nested}]}}'
    status, error = call(f"{server_url}/predict", body.encode())
    assert status == 400
    assert (
        error["error"] == 'the body nests JSON too deep; a request is {"instances": [[...], ...]}'
    )


def test_json_nested_as_deep_as_the_parser_goes_is_a_json_400(server_url):
    for depth in range(800, 1001, 25):
        nested = "[" * depth + "]" * depth
        status, error = call(f"{server_url}/predict", f'{{"instances": [{nested}]}}'.encode())
        assert status == 400, (depth, error)


def test_an_unexpected_error_is_a_json_500_and_its_cause_is_logged(
    models, tmp_path, monkeypatch, caplog
):
    def broken(self, rows):
        raise RuntimeError("the model is broken")

    monkeypatch.setattr(server.ModelSlot, "predict", broken)
    with serving(models, tmp_path / "unused.csv") as url:
        wait_until_ready(url)
        connection = http.client.HTTPConnection(*address(url), timeout=30)
        connection.request(
            "POST",
            "/predict",
            json.dumps({"instances": [SETOSA]}),
            {"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        answer = (response.status, response.getheader("content-type"), json.load(response))
        connection.close()
        assert predict(url, [SETOSA])[0] == 500, "the server keeps answering"
    assert answer == (
        500,
        "application/json",
        {"error": "internal error (RuntimeError); the server's log says more"},
    )
    assert "RuntimeError: the model is broken" in caplog.text


# --- the probes --------------------------------------------------------------------------------


def test_liveness_answers_while_readiness_says_the_model_is_not_ready(tmp_path):
    with serving(tmp_path / "models", write_iris_like(tmp_path / "iris.csv")) as url:
        assert call(f"{url}/live") == (200, {"status": "alive"})
        status, health = call(f"{url}/health")
        assert (status, health["status"] in ("loading", "training")) == (503, True), health
        wait_until_ready(url)
        assert call(f"{url}/live") == (200, {"status": "alive"})
        assert call(f"{url}/health")[0] == 200


def test_with_training_off_and_no_model_health_says_no_model_yet_and_nothing_is_written(tmp_path):
    """Serving on Kubernetes (TRAIN_IF_NO_MODEL=0): the volume is read-only there, training is the
    Job's; the server waits for a version instead of training one."""
    models = tmp_path / "models"
    options = Options.from_environment({"TRAIN_IF_NO_MODEL": "0"})
    with serving(models, write_iris_like(tmp_path / "iris.csv"), options) as url:
        deadline = time.monotonic() + 60
        while (health := call(f"{url}/health"))[1]["status"] == "loading":
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
        assert health == (503, {"status": "no model yet", "model": "iris"})
        time.sleep(1)
        assert call(f"{url}/health")[1]["status"] == "no model yet", "it never starts training"
        assert call(f"{url}/live") == (200, {"status": "alive"})
    assert not models.exists(), "nothing written"


@pytest.mark.parametrize(("value", "trains"), [("", True), ("1", True), ("0", False)])
def test_train_if_no_model_is_1_or_0(value, trains):
    assert Options.from_environment({"TRAIN_IF_NO_MODEL": value}).train_if_no_model is trains
    with pytest.raises(ValueError, match="^TRAIN_IF_NO_MODEL='no': 1 trains a model when"):
        Options.from_environment({"TRAIN_IF_NO_MODEL": "no"})


# --- stalled clients ---------------------------------------------------------------------------


def stalled(url: str, sent: bytes) -> socket.socket:
    """A connection that has sent `sent`, and then nothing."""
    connection = socket.create_connection(address(url), timeout=10)
    connection.sendall(sent)
    return connection


HEAD = b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
STALLS = {"nothing": b"", "half a head": HEAD[:30], "half a body": HEAD + b'{"instances": [[5.1'}


def closed_within(connection: socket.socket, seconds: float) -> tuple[bytes, float]:
    """What the server sent before it closed the connection, and when it closed it."""
    started, received = time.monotonic(), b""
    connection.settimeout(seconds)
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the server held the connection for {seconds} s; it sent {received[:200]!r}")
    finally:
        connection.close()
    return received, time.monotonic() - started


@pytest.fixture(scope="module")
def strict_url(models):
    """A server that gives a request 1 s for its head and 1 s for its body, and takes 4 predictions at once."""
    with serving(
        models, models / "unused.csv", Options(body_timeout=1.0, max_requests=4), keep_alive=1.0
    ) as url:
        wait_until_ready(url)
        yield url


@pytest.mark.parametrize(
    "sent", [STALLS["nothing"], STALLS["half a head"]], ids=["nothing", "half a head"]
)
def test_a_connection_without_a_whole_head_is_closed_after_the_keep_alive_timeout(strict_url, sent):
    received, seconds = closed_within(stalled(strict_url, sent), 10)
    assert received == b""
    assert 0.5 < seconds < 5


def test_a_head_sent_byte_by_byte_does_not_hold_the_connection(strict_url):
    connection = stalled(strict_url, b"")
    connection.settimeout(
        0.2
    )  # also the pace: a byte every 0.2 s, each of which restarted uvicorn's own timer
    started = time.monotonic()
    try:
        for byte in HEAD:
            connection.sendall(bytes([byte]))
            try:
                if connection.recv(1) == b"":
                    break  # closed by the server
            except TimeoutError:
                continue  # still open, nothing to read
        else:
            pytest.fail("the server read the whole head, a byte every 0.2 s")
    except ConnectionError:
        pass  # reset by the server
    finally:
        connection.close()
    assert time.monotonic() - started < 5


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(strict_url):
    connection = http.client.HTTPConnection(*address(strict_url), timeout=10)
    connection.request("GET", "/live")
    assert connection.getresponse().read() == b'{"status":"alive"}'
    received, seconds = closed_within(connection.sock, 10)
    assert (received, seconds < 5) == (b"", True)


def test_a_connection_that_sends_each_head_within_the_timeout_stays_open(strict_url):
    connection = http.client.HTTPConnection(*address(strict_url), timeout=10)
    try:
        for _ in range(8):  # 2.4 s in all, past the 1 s timeout, 0.3 s between an answer and a head
            connection.request("GET", "/live")
            assert connection.getresponse().read() == b'{"status":"alive"}'
            time.sleep(0.3)
        assert connection.sock is not None, "the client saw the connection closed"
        connection.request("GET", "/live")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_a_body_that_stalls_gets_a_json_408_and_the_connection_is_closed(strict_url):
    received, seconds = closed_within(stalled(strict_url, STALLS["half a body"]), 10)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"error": "the body did not arrive within 1 s"}
    assert 0.5 < seconds < 5


def test_past_the_limit_of_requests_in_progress_a_request_gets_a_json_503_at_once(strict_url):
    uploads = [stalled(strict_url, STALLS["half a body"]) for _ in range(4)]
    time.sleep(0.2)  # the server has read their heads
    try:
        started = time.monotonic()
        status, error = predict(strict_url, [SETOSA])
        assert time.monotonic() - started < 0.5
        assert (status, error) == (
            503,
            {"error": "the server has 4 predictions in progress, its limit; retry shortly"},
        )
        assert call(f"{strict_url}/live")[0] == 200, "the probes answer at the limit"
    finally:
        for upload in uploads:
            upload.close()
    deadline = time.monotonic() + 5
    while (answer := predict(strict_url, [SETOSA]))[0] != 200:
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)


def test_200_stalled_connections_do_not_keep_a_request_from_an_answer_within_a_second(server_url):
    stalls = [stalled(server_url, sent) for sent in STALLS.values() for _ in range(67)][:200]
    try:
        time.sleep(0.5)
        answers = []

        def client() -> None:
            started = time.monotonic()
            answers.append((predict(server_url, [SETOSA])[0], time.monotonic() - started))

        thread = threading.Thread(target=client)
        thread.start()
        thread.join(timeout=1)
        assert answers, "no answer within 1 s"
        assert answers[0][0] == 200
    finally:
        for connection in stalls:
            connection.close()


def test_a_client_that_leaves_before_its_body_is_read_leaves_no_error_in_the_log(
    server_url, caplog
):
    upload = stalled(server_url, STALLS["half a body"])
    time.sleep(0.2)  # the server is reading its body
    upload.close()
    time.sleep(0.3)
    assert predict(server_url, [SETOSA])[0] == 200
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


# --- the writes of an answer --------------------------------------------------------------------


class RecordingTransport:
    def __init__(self):
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str):
        return f"the transport's {name}"


def test_the_writes_of_one_turn_go_out_in_one_at_its_end():
    async def answer() -> list[bytes]:
        transport = RecordingTransport()
        writer = server._TurnWriter(transport, asyncio.get_running_loop())
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
        writer.write(b'{"predictions": []}')
        held = list(transport.writes)
        await asyncio.sleep(0)
        return held + [b"-- the turn ends --"] + transport.writes

    assert asyncio.run(answer()) == [
        b"-- the turn ends --",
        b'HTTP/1.1 200 OK\r\n\r\n{"predictions": []}',
    ]


def test_what_was_written_goes_out_before_the_connection_closes_and_nothing_after():
    async def close_after_writing() -> tuple[list[bytes], bool]:
        transport = RecordingTransport()
        writer = server._TurnWriter(transport, asyncio.get_running_loop())
        writer.write(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        writer.close()
        writes = list(transport.writes)
        writer.write(b"too late")
        await asyncio.sleep(0)
        return transport.writes, writes == transport.writes

    writes, nothing_after_close = asyncio.run(close_after_writing())
    assert writes == [b"HTTP/1.1 408 Request Timeout\r\n\r\n"]
    assert nothing_after_close


def test_the_rest_of_the_transport_is_the_transports_own():
    loop = asyncio.new_event_loop()
    try:
        writer = server._TurnWriter(RecordingTransport(), loop)
        assert writer.get_extra_info("peername") == "the transport's peername"
    finally:
        loop.close()
