"""The example application's test helpers, inside the image: an Iris-like dataset, and the real server
(uvicorn and Starlette, configured as `python -m app` configures them) on a free port in a thread."""

import contextlib
import random
import threading
import time
from pathlib import Path

import uvicorn
from json_http import call

from app import dataset
from app.server import Options, create_app, uvicorn_config

EPOCHS = 15  # enough for separated clusters; arm64 runs these tests under emulation, about 20x slower
HEADER = ",".join([*dataset.FEATURES, dataset.LABEL])
CENTRES = {"setosa": (5.0, 3.4, 1.5, 0.2), "versicolor": (5.9, 2.8, 4.3, 1.3), "virginica": (6.6, 3.0, 5.6, 2.0)}


def write_dataset(path: Path, rows_per_class: int = 20) -> Path:
    """Iris-like rows around each species' mean measurements."""
    generator = random.Random(0)  # noqa: S311 (test data)
    lines = [HEADER]
    for species, centre in CENTRES.items():
        for _ in range(rows_per_class):
            lines.append(",".join(f"{value + generator.gauss(0, 0.1):.2f}" for value in centre) + f",{species}")
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def serving(models: Path, data_path: Path, options: Options | None = None, **settings):
    """The real server in a thread on a free port; yields its base URL. `settings` go to uvicorn_config."""
    app = create_app(models, data_path, train_epochs=EPOCHS, options=options or Options())
    http_server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=0, log_config=None, **settings))
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
