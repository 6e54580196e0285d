"""HTTP calls of the tests to a server on this machine, errors included: used by the tests inside the image
and by the engine tests on the host, so plain standard library.

Every call goes straight to the server: a proxy set in the environment (http_proxy) is never used for
these local addresses.
"""

import http.client
import json
import time
import urllib.error
import urllib.request

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(
    url: str, body: bytes | None = None, content_type: str | None = "application/json"
) -> tuple[int, dict]:
    """GET `url`, or POST `body` to it; the status and the JSON body, for 4xx and 5xx answers too."""
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")  # noqa: S310 (a local test URL)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with _DIRECT.open(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def get_text(url: str) -> tuple[int, str]:
    """GET `url`: the status and the body as text, for 4xx and 5xx answers too."""
    try:
        with _DIRECT.open(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def predict(url: str, rows, path: str = "/predict") -> tuple[int, dict]:
    """POST rows in TensorFlow Serving's request shape."""
    return call(url + path, json.dumps({"instances": rows}).encode())


def post_declaring_length(url: str, path: str, length: int) -> tuple[int, dict]:
    """POST only the headers of a JSON body said to be `length` bytes: a server that waited for the
    body would never answer."""
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.load(response)
    finally:
        connection.close()


def wait_until_healthy(url: str, timeout: float = 120) -> None:
    """GET `url` (an app's /health) until it answers 200: the app contract's "ready", whatever the body."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with _DIRECT.open(url, timeout=5) as response:
                if response.status == 200:
                    return
                last = f"status {response.status}"
        except OSError as error:  # HTTPError (a 503 while the app starts) is an OSError too
            last = error
        time.sleep(1)
    raise AssertionError(f"{url} did not answer 200 within {timeout:.0f} s: {last}")


def wait_for_json(url: str, timeout: float = 120) -> dict:
    """GET `url` until it answers 200, then its JSON body."""
    wait_until_healthy(url, timeout)
    return call(url)[1]


def status_of(url: str, token: str | None = None, timeout: float = 120) -> int:
    """The HTTP status of GET `url` (with the token in the Authorization header), once the server answers."""
    request = urllib.request.Request(  # noqa: S310
        url, headers={"Authorization": f"token {token}"} if token else {}
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _DIRECT.open(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError as error:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{url} did not answer within {timeout:.0f} s: {error}"
                ) from None
            time.sleep(1)
