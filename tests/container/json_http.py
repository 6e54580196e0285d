"""A JSON request and its answer, errors included: shared by the app's tests inside the image and the
integration tests on the host (plain standard library, so both can import it)."""

import http.client
import json
import urllib.error
import urllib.request


def call(url: str, body: bytes | None = None, content_type: str | None = "application/json") -> tuple[int, dict]:
    """GET `url`, or POST `body` to it; the status and the JSON body, for 4xx and 5xx answers too."""
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")  # noqa: S310 (a local test URL)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


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
