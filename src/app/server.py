"""The HTTP API: the newest model under data/models/, in TensorFlow Serving's REST shape.

    GET  /health                    200 {"status": "ok", "version": ...} once a model is loaded; 503 before
    POST /predict                   {"instances": [[5.1, 3.5, 1.4, 0.2], ...]} -> {"predictions": [[p0, p1, p2], ...]}
    POST /v1/models/iris:predict    the same, at the path that TensorFlow Serving clients call
    GET  /                          this list

Errors are JSON, {"error": "..."}, as TensorFlow Serving sends them. The port answers at once; the model
loads (or, when there is none yet, is trained first) in the background, and /health says when it is ready.
"""

import contextlib
import json
import logging
import math
import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app import dataset, store, train

MAX_BODY_BYTES = 1_000_000
MAX_BATCH = 1_000  # rows per request
ENDPOINTS = {  # what GET / lists
    "GET /health": "200 once the model is loaded, 503 before",
    "POST /predict": '{"instances": [[5.1, 3.5, 1.4, 0.2], ...]} -> {"predictions": [[p0, p1, p2], ...]}',
    f"POST /v1/models/{store.MODEL_NAME}:predict": "the same, at the path that TensorFlow Serving clients call",
}

log = logging.getLogger("app")


class BadRequest(Exception):
    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code


def _number(value) -> float | None:
    """The value as a finite float, or None: JSON booleans and strings are not measurements."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_instances(body: bytes, feature_count: int) -> list[list[float]]:
    """The rows of a TensorFlow Serving request body ("row format"), each checked; BadRequest says what is wrong."""
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(400, f"the body is not valid JSON: {error}") from None
    if not isinstance(document, dict) or "instances" not in document:
        raise BadRequest(400, 'the body must be a JSON object {"instances": [[...], ...]}')
    instances = document["instances"]
    if not isinstance(instances, list):
        raise BadRequest(400, '"instances" must be a list of rows')
    if not instances:
        raise BadRequest(400, '"instances" is empty: send at least one row')
    if len(instances) > MAX_BATCH:
        raise BadRequest(413, f"{len(instances)} instances in one request; send at most {MAX_BATCH} per request")
    rows = []
    for index, instance in enumerate(instances):
        if not isinstance(instance, list) or len(instance) != feature_count:
            raise BadRequest(400, f"instance {index} must be a list of {feature_count} numbers, got {json.dumps(instance)[:100]}")
        row = [_number(value) for value in instance]
        if None in row:
            raise BadRequest(400, f"instance {index} holds a value that is not a finite number: {json.dumps(instance)[:100]}")
        rows.append(row)
    return rows


class ModelSlot:
    """The model being served, and how far it is: loading, training, ready or failed."""

    def __init__(self, models_dir: Path, data_path: Path, train_epochs: int):
        self.models_dir = models_dir
        self.data_path = data_path
        self.train_epochs = train_epochs
        self.status = "loading"
        self.error = ""
        self.version: int | None = None
        self.metrics: dict = {}
        self.tensorflow_version = ""
        self.feature_count = 0
        self._model = None

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def prepare(self) -> None:
        """Load the newest model; train one first when there is none. Runs in a background thread."""
        try:
            found = store.newest(self.models_dir)
            if found is None:
                self.status = "training"
                log.info(
                    "no model under %s yet: training one first on %s (%d epochs), as `python -m app.train` does",
                    self.models_dir,
                    self.data_path,
                    self.train_epochs,
                )
                trained = train.train(self.data_path, self.models_dir, epochs=self.train_epochs)
                log.info("trained version %d: accuracy %.3f on the held-out rows", trained.version, trained.metrics["accuracy"])
                found = trained.version, trained.folder
            self.status = "loading"
            self._load(*found)
        except dataset.DatasetError as error:
            self._fail(train.explain(error, self.data_path))
        except Exception as error:  # noqa: BLE001 (any failure must reach /health and the log, not end a background thread unseen)
            self._fail(f"{type(error).__name__}: {error}")

    def _fail(self, reason: str) -> None:
        self.error, self.status = reason, "failed"
        log.error("cannot serve a model: %s", reason)

    def _load(self, version: int, folder: Path) -> None:
        import keras
        import numpy as np
        import tensorflow as tf

        model = keras.models.load_model(folder / store.MODEL_FILE)
        with contextlib.suppress(OSError, ValueError):
            self.metrics = json.loads((folder / store.METRICS_FILE).read_text(encoding="utf-8"))
        feature_count = int(model.input_shape[-1])
        model(np.zeros((1, feature_count), dtype="float32"))  # traces once, so the first request is fast
        self._model, self.version, self.tensorflow_version, self.feature_count = model, version, tf.__version__, feature_count
        self.status = "ready"
        log.info(
            "serving %s version %d from %s (held-out accuracy %s)",
            store.MODEL_NAME,
            version,
            folder,
            self.metrics.get("accuracy", "unknown"),
        )

    def predict(self, rows: list[list[float]]) -> list[list[float]]:
        import numpy as np

        return self._model(np.asarray(rows, dtype="float32"), training=False).numpy().tolist()


async def _body(request: Request) -> bytes:
    """The request body, refused (413) past MAX_BODY_BYTES before it is all read; Starlette's own
    max_body_size would answer in plain text, and clients of this API expect JSON errors."""
    too_large = BadRequest(413, f"the body is larger than {MAX_BODY_BYTES} bytes; send at most {MAX_BATCH} rows per request")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    return bytes(body)


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def create_app(models_dir: Path, data_path: Path, *, train_epochs: int = train.DEFAULT_EPOCHS) -> Starlette:
    """The application; the model is loaded or trained in a thread once the server starts."""
    slot = ModelSlot(models_dir, data_path, train_epochs)

    async def health(request: Request) -> JSONResponse:
        if not slot.ready:
            body = {"status": slot.status, "model": store.MODEL_NAME}
            if slot.error:
                body["error"] = slot.error
            return JSONResponse(body, status_code=503)
        body = {"status": "ok", "model": store.MODEL_NAME, "version": slot.version, "tensorflow": slot.tensorflow_version}
        body["accuracy"] = slot.metrics.get("accuracy")
        return JSONResponse(body)

    async def predict(request: Request) -> JSONResponse:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return _error(415, f"send the body as JSON with the header Content-Type: application/json, not {media_type or 'no type'}")
        if not slot.ready:
            return _error(503, f"the model is not ready yet ({slot.status}); GET /health says when it is")
        try:
            rows = parse_instances(await _body(request), slot.feature_count)
        except BadRequest as error:
            return _error(error.status_code, str(error))
        # In a worker thread: the event loop keeps answering /health while TensorFlow computes.
        return JSONResponse({"predictions": await run_in_threadpool(slot.predict, rows)})

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"model": store.MODEL_NAME, "endpoints": ENDPOINTS})

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, error.detail)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        threading.Thread(target=slot.prepare, name="model-loader", daemon=True).start()
        yield

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/health", health),
            Route("/predict", predict, methods=["POST"]),
            Route(f"/v1/models/{store.MODEL_NAME}:predict", predict, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.model = slot
    return app
