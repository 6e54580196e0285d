"""The example's server for its tests inside the image: the real server (uvicorn and Starlette,
configured as `python -m app` configures them) on a free port in a thread."""

import contextlib
import threading
import time
from pathlib import Path

import uvicorn

from app.server import Options, create_app, uvicorn_config
from helpers.http_client import call

EPOCHS = (
    15  # enough for separated clusters; arm64 runs these tests under emulation, about 20x slower
)


@contextlib.contextmanager
def serving(models: Path, data_path: Path, options: Options | None = None, **settings):
    """The real server in a thread on a free port; yields its base URL. `settings` go to uvicorn_config."""
    app = create_app(models, data_path, train_epochs=EPOCHS, options=options or Options())
    http_server = uvicorn.Server(
        uvicorn_config(app, host="127.0.0.1", port=0, log_config=None, **settings)
    )
    thread = threading.Thread(target=http_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not http_server.started:
        assert thread.is_alive(), "the server stopped before it listened"
        assert time.monotonic() < deadline, "the server did not start within 30 s"
        time.sleep(0.02)
    port = http_server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        http_server.should_exit = True
        thread.join(timeout=10)


def wait_until_ready(url: str, timeout: float = 300) -> dict:
    """/health's body once it answers 200; a failure to load fails the test with the server's reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = call(f"{url}/health")
        if status == 200:
            return body
        assert body["status"] in ("loading", "training"), body
        time.sleep(0.2)
    raise AssertionError(f"no model was ready within {timeout} s")


def wait_until_failed(url: str, timeout: float = 60) -> dict:
    """/health's body once the server has given up loading a model (a 503 with the reason)."""
    deadline = time.monotonic() + timeout
    while (health := call(f"{url}/health"))[1]["status"] != "failed":
        assert time.monotonic() < deadline, health
        time.sleep(0.1)
    assert health[0] == 503
    return health[1]
