"""A JSON request and its answer, errors included: shared by the app's tests inside the image and the
integration tests on the host (plain standard library, so both can import it)."""

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
