"""The HTTP API: one model version under data/models/, in TensorFlow Serving's REST shape.

    GET  /health                    readiness: 200 {"status": "ok", "version": ...} once a model is
                                    loaded; 503 before
    GET  /live                      liveness: 200 whenever the process answers
    POST /predict                   {"instances": [[5.1, 3.5, 1.4, 0.2], ...]}
                                    -> {"predictions": [[p0, p1, p2], ...]}
    POST /v1/models/iris:predict    the same, at the path that TensorFlow Serving clients call
    GET  /                          this list

The version served is the newest valid one (TensorFlow Serving's policy: a damaged, unreadable or
foreign entry is logged and skipped), or the one that MODEL_VERSION pins. The port answers at once;
the model loads (or, when there is none yet, is trained first) in the background, and /health says
when it is ready. The model is the version's SavedModel, its `serving_default` signature: the
artifact TensorFlow Serving and KServe serve. Concurrent requests share one call of it
(batching.py). Errors are JSON, {"error": "..."}, as TensorFlow Serving sends them, unexpected ones
(500) included.
"""

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app import batching, dataset, store, train

MAX_BODY_BYTES = 1_000_000
MAX_REQUEST_ROWS = 1_000
FLOAT32_MAX = float(
    np.finfo(np.float32).max
)  # about 3.4e38: beyond it, a value becomes inf in the model
# Limits on what a client may hold: see `Options` and `uvicorn_config`.
MAX_REQUESTS_IN_PROGRESS = 256
BODY_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5.0
SHUTDOWN_GRACE_S = 8.0  # under `docker stop`'s 10 s, after which the engine kills the process
PREDICTION_PATHS = ("/predict", f"/v1/models/{store.MODEL_NAME}:predict")
ENDPOINTS = {  # what GET / lists
    "GET /health": "readiness: 200 once the model is loaded, 503 before",
    "GET /live": "liveness: 200 whenever the server answers",
    "POST /predict": '{"instances": [[5.1, 3.5, 1.4, 0.2], ...]}'
    ' -> {"predictions": [[p0, p1, p2], ...]}',
    f"POST /v1/models/{store.MODEL_NAME}:predict": "the same, at the path that TensorFlow Serving"
    " clients call",
}

log = logging.getLogger("app")


@dataclass(frozen=True)
class Options:
    """How the server serves: the app keys of .env set those named in capitals
    (`from_environment`)."""

    batch_max_rows: int = (
        256  # BATCH_MAX_ROWS: the most rows in one call of the model; 0 turns batching off
    )
    batch_timeout_ms: float = (
        2.0  # BATCH_TIMEOUT_MS: the longest a request waits for others to share its call
    )
    model_version: int | None = None  # MODEL_VERSION: serve this version, not the newest valid one
    # TRAIN_IF_NO_MODEL: with no version yet, train one first (1, the default) or wait for one (0:
    # /health answers 503 "no model yet"; the Kubernetes Deployment sets it, its volume read-only).
    train_if_no_model: bool = True
    max_requests: int = (
        MAX_REQUESTS_IN_PROGRESS  # predictions in progress at once; more get a 503 at once
    )
    body_timeout: float = BODY_TIMEOUT_S  # seconds to send a request's body, from its head
    access_log: bool = True  # ACCESS_LOG: one log line per request; 0 turns it off

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "Options":
        """The options that the environment sets; ValueError names a bad key and what it takes."""
        options = {}
        if value := environ.get("BATCH_MAX_ROWS", "").strip():
            if not value.isascii() or not value.isdigit():
                raise ValueError(
                    f"BATCH_MAX_ROWS={value!r}: a whole number of rows, or 0 to turn batching off"
                )
            options["batch_max_rows"] = int(value)
        if value := environ.get("BATCH_TIMEOUT_MS", "").strip():
            try:
                milliseconds = float(value)
            except ValueError:
                milliseconds = math.nan
            if not 0 <= milliseconds <= 1000:
                raise ValueError(
                    f"BATCH_TIMEOUT_MS={value!r}: milliseconds from 0 to 1000, e.g. 2 or 0.5"
                )
            options["batch_timeout_ms"] = milliseconds
        if value := environ.get("MODEL_VERSION", "").strip():
            if store.version_number(value) is None:
                raise ValueError(
                    f"MODEL_VERSION={value!r}: a version number as in the folder's name"
                    " (1, 2, 3...), or unset for the newest"
                )
            options["model_version"] = int(value)
        if value := environ.get("TRAIN_IF_NO_MODEL", "").strip():
            if value not in ("0", "1"):
                raise ValueError(
                    f"TRAIN_IF_NO_MODEL={value!r}: 1 trains a model when there is none, 0 waits"
                )
            options["train_if_no_model"] = value == "1"
        if value := environ.get("ACCESS_LOG", "").strip():
            if value not in ("0", "1"):
                raise ValueError(f"ACCESS_LOG={value!r}: 1 for a log line per request, 0 for none")
            options["access_log"] = value == "1"
        return cls(**options)


class BadRequest(Exception):
    """A prediction request refused, with its status (4xx, or 503 while the server cannot take it),
    its message and any headers; the client gets {"error": message}."""

    def __init__(self, status_code: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.headers = headers


def _number(value) -> float | None:
    """The value as a float that float32 holds, or None: JSON booleans and strings are not
    measurements."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if abs(number) <= FLOAT32_MAX else None  # also False for inf and NaN


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _preview(value) -> str:
    try:
        return json.dumps(value)[:100]
    except RecursionError:
        return "a value nested too deep to show"


def _document(body: bytes):
    """The body's JSON: orjson's parse, and where it refuses the body, the standard library's, whose
    errors say more (`NaN is not a JSON number`, too deep) and which also takes what orjson does not
    (a lone surrogate in a string)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(400, f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise BadRequest(
            400, 'the body nests JSON too deep; a request is {"instances": [[...], ...]}'
        ) from None


def _numbers(instances: list, feature_count: int) -> np.ndarray | None:
    """The rows as float32, when every one is a list of `feature_count` JSON numbers within
    float32's range; else None. Checked for the whole request at once, so that the cost of a
    request stays in C."""
    if not all(type(row) is list and len(row) == feature_count for row in instances):
        return None
    # Not bool, an int to Python: a JSON `true` is no measurement.
    if not set(map(type, itertools.chain.from_iterable(instances))) <= {float, int}:
        return None
    try:
        rows = np.array(instances, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        return None
    if not (np.abs(rows) <= FLOAT32_MAX).all():  # also False for inf and NaN
        return None
    return rows.astype(np.float32)


def parse_instances(body: bytes, feature_count: int) -> np.ndarray:
    """The rows of a TensorFlow Serving request body ("row format") as float32 [rows, features],
    each checked; BadRequest says what is wrong."""
    document = _document(body)
    if not isinstance(document, dict) or "instances" not in document:
        raise BadRequest(400, 'the body must be a JSON object {"instances": [[...], ...]}')
    instances = document["instances"]
    if not isinstance(instances, list):
        raise BadRequest(400, '"instances" must be a list of rows')
    if not instances:
        raise BadRequest(400, '"instances" is empty: send at least one row')
    if len(instances) > MAX_REQUEST_ROWS:
        raise BadRequest(
            413,
            f"{len(instances)} instances in one request;"
            f" send at most {MAX_REQUEST_ROWS} per request",
        )
    rows = _numbers(instances, feature_count)
    if rows is not None:
        return rows
    # Something is wrong: the first row at fault, and why.
    for index, instance in enumerate(instances):
        if not isinstance(instance, list) or len(instance) != feature_count:
            raise BadRequest(
                400,
                f"instance {index} must be a list of {feature_count} numbers,"
                f" got {_preview(instance)}",
            )
        if None in (_number(value) for value in instance):
            raise BadRequest(
                400,
                f"instance {index} holds a value that is not a finite number within float32's"
                f" range (±3.4e38): {_preview(instance)}",
            )
    raise AssertionError("_numbers refused rows that each pass on their own")


def cpu_limit(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The CPUs this container may use (`docker run --cpus`, a Kubernetes CPU limit), rounded up,
    from its cgroup (v2's cpu.max, or v1's CFS quota); None where there is no limit or no cgroup."""
    try:
        if (cgroup / "cpu.max").exists():
            quota, period = (cgroup / "cpu.max").read_text().split()
        else:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        if quota in ("max", "-1"):
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """The CPUs this process may use: its cgroup's limit, or the cores it may run on if fewer."""
    cores = len(os.sched_getaffinity(0))
    return min(cpu_limit() or cores, cores)


def limit_tensorflow_threads() -> None:
    """TensorFlow's thread pools sized to the CPUs this process may use, not to the machine's cores:
    under `--cpus 1` on a larger machine, more threads only wait for one another (a call of the
    model takes about 0.6 ms with one thread, 1 ms with two, under `--cpus 1`). Before any model."""
    cpus = usable_cpus()
    if cpus == len(os.sched_getaffinity(0)):
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(cpus)
    except RuntimeError:  # TensorFlow already runs in this process (a test's): its pools stay
        log.info("TensorFlow's thread pools were set up before the server's: left as they are")


class ModelSlot:
    """The model being served, and how far it is: loading, training, ready or failed."""

    def __init__(
        self,
        models_dir: Path,
        data_path: Path,
        train_epochs: int,
        pinned: int | None,
        train_if_no_model: bool = True,
    ):
        self.models_dir = models_dir
        self.data_path = data_path
        self.train_epochs = train_epochs
        self.train_if_no_model = train_if_no_model
        self.pinned = pinned
        self.status = "loading"
        self.error = ""
        self.version: int | None = None
        self.metrics: dict = {}
        self.tensorflow_version = ""
        self.feature_count = 0
        self._signature: store.Signature | None = None

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def prepare(self) -> None:
        """Load the version to serve; with none yet (and none pinned), train one first. Runs in a
        background thread."""
        try:
            limit_tensorflow_threads()
            candidates, skipped = store.scan(self.models_dir)
            for reason in skipped:
                log.warning("skipping %s", reason)
            if self.pinned is not None:
                self._load_pinned(candidates)
                return
            for version, folder in candidates:
                try:
                    self._load(version, folder)
                    return
                except store.InvalidVersion as error:
                    log.warning("skipping version %d (%s): %s", version, folder, error)
            if self.train_if_no_model:
                self._train_first()
            else:
                self.status = "no model yet"
                log.info(
                    "no model under %s yet (TRAIN_IF_NO_MODEL=0: not training)", self.models_dir
                )
        except dataset.DatasetError as error:
            self._fail(train.explain(error, self.data_path))
        except Exception as error:  # noqa: BLE001 (any failure must reach /health and the log, not end a background thread unseen)
            self._fail(f"{type(error).__name__}: {error}")

    def _load_pinned(self, candidates: list[tuple[int, Path]]) -> None:
        folder = self.models_dir / store.MODEL_NAME / str(self.pinned)
        if self.pinned not in dict(candidates):
            there = ", ".join(str(version) for version, _ in reversed(candidates)) or "none"
            self._fail(
                f"MODEL_VERSION={self.pinned}: there is no version folder {folder}"
                f" (versions there: {there})"
            )
            return
        try:
            self._load(self.pinned, folder)
        except store.InvalidVersion as error:
            self._fail(f"MODEL_VERSION={self.pinned}: {folder} cannot be served: {error}")

    def _train_first(self) -> None:
        self.status = "training"
        log.info(
            "no model under %s yet: training one first on %s (%d epochs),"
            " as `python -m app.train` does",
            self.models_dir,
            self.data_path,
            self.train_epochs,
        )
        trained = train.train(self.data_path, self.models_dir, epochs=self.train_epochs)
        log.info(
            "trained version %d: accuracy %.3f on the held-out rows",
            trained.version,
            trained.metrics["accuracy"],
        )
        self._load(trained.version, trained.folder)

    def _fail(self, reason: str) -> None:
        self.error, self.status = reason, "failed"
        log.error("cannot serve a model: %s", reason)

    def _load(self, version: int, folder: Path) -> None:
        import tensorflow as tf

        self.status = "loading"
        metrics = store.read_metrics(folder)
        signature = store.load_signature(folder)
        self._signature, self.metrics, self.feature_count = (
            signature,
            metrics,
            signature.feature_count,
        )
        self.version, self.tensorflow_version = version, tf.__version__
        # TensorFlow's and Keras's objects, loaded for good, out of the garbage collector's sight:
        # a full collection walks them all, and under load one comes every few seconds and stops
        # every request in flight for it.
        gc.collect()
        gc.freeze()
        self.status = "ready"
        accuracy = metrics.get("accuracy", "unknown")
        log.info(
            "serving %s version %d from %s (held-out accuracy %s)",
            store.MODEL_NAME,
            version,
            folder,
            accuracy,
        )

    def predict(self, rows):
        return self._signature.call(rows)


def _too_large() -> BadRequest:
    return BadRequest(
        413,
        f"the body is larger than {MAX_BODY_BYTES} bytes;"
        f" send at most {MAX_REQUEST_ROWS} rows per request",
    )


class ClientGone(Exception):
    """The client closed its connection before its request was read: there is nobody to answer."""


async def _body(receive, declared: bytes, timeout: float) -> bytes:
    """The request body, refused (413) past MAX_BODY_BYTES before it is all read, and (408) when it
    takes longer than `timeout`; `declared` is its Content-Length, if any."""
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large()
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _too_large()
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise BadRequest(
            408, f"the body did not arrive within {timeout:g} s", {"Connection": "close"}
        ) from None


class JSONResponse(Response):
    """Starlette's JSONResponse, written by orjson: in C, numpy arrays included."""

    media_type = "application/json"

    def render(self, content) -> bytes:
        return _json(content)


def _internal_error_document(error: Exception) -> dict:
    """A 500's answer: the type of the error; its message may hold what a client should not see."""
    return {"error": f"internal error ({type(error).__name__}); the server's log says more"}


def _json(content) -> bytes:
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class Predictions:
    """POST /predict, as an ASGI application of its own: the rows of the request, checked, in the
    next batch (batching.py); each answer is JSON, an error's too. It keeps at most
    `options.max_requests` predictions in progress and answers the next a 503 at once."""

    def __init__(self, slot: ModelSlot, batcher, options: Options):
        self._slot = slot
        self._batcher = batcher
        self._options = options
        self._in_progress = 0

    async def __call__(self, scope, receive, send) -> None:
        status, headers = 200, {}
        try:
            content = {"predictions": await self._predict(scope, receive)}
        except ClientGone:
            return
        except BadRequest as error:
            status, headers = error.status_code, error.headers or {}
            content = {"error": str(error)}
        except Exception as error:  # noqa: BLE001 (a JSON 500 and the traceback in the log)
            log.exception("the prediction failed")
            status, content = 500, _internal_error_document(error)
        body = _json(content)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                    *((name.encode(), value.encode()) for name, value in headers.items()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _predict(self, scope, receive) -> np.ndarray:
        """The probabilities for the request's rows; BadRequest says why there are none."""
        media_type, declared = b"", b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                media_type = value.split(b";")[0].strip().lower()
            elif name == b"content-length":
                declared = value
        slot, options = self._slot, self._options
        if media_type != b"application/json":
            raise BadRequest(
                415,
                "send the body as JSON with the header Content-Type: application/json,"
                f" not {media_type.decode('latin-1') or 'no type'}",
            )
        if not slot.ready:
            raise BadRequest(
                503, f"the model is not ready yet ({slot.status}); GET /health says when it is"
            )
        if self._in_progress >= options.max_requests:
            message = (
                f"the server has {options.max_requests} predictions in progress, its limit;"
                " retry shortly"
            )
            raise BadRequest(503, message, {"Retry-After": "1"})
        self._in_progress += 1
        try:
            with self._batcher.arriving():
                body = await _body(receive, declared, options.body_timeout)
                rows = parse_instances(body, slot.feature_count)
            probabilities = await self._batcher.predict(rows)
        finally:
            self._in_progress -= 1
        finite = np.isfinite(probabilities).all(axis=1)
        if not finite.all():
            raise BadRequest(
                400,
                f"instance {int(np.argmin(finite))} is so far from the measurements the model"
                " knows that its output is not a finite number",
            )
        return probabilities


class _Application(Starlette):
    """Starlette, but a POST to a prediction path goes straight to `predictions`: under load,
    Starlette's routing and middleware cost a request more than its share of the model's call
    (`python -m benchmarks.serving`). Everything else, the other methods there included, goes
    through Starlette."""

    def __init__(self, predictions: Predictions, **settings):
        super().__init__(**settings)
        self._predictions = predictions

    async def __call__(self, scope, receive, send) -> None:
        prediction = scope["type"] == "http" and scope["method"] == "POST"
        if prediction and scope["path"] in PREDICTION_PATHS:
            await self._predictions(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(
    models_dir: Path,
    data_path: Path,
    *,
    train_epochs: int = train.DEFAULT_EPOCHS,
    options: Options = Options(),
) -> Starlette:
    """The application; the model is loaded or trained in a thread once the server starts."""
    slot = ModelSlot(
        models_dir, data_path, train_epochs, options.model_version, options.train_if_no_model
    )
    if options.batch_max_rows:
        batcher = batching.Batcher(
            slot.predict,
            max_rows=options.batch_max_rows,
            timeout=options.batch_timeout_ms / 1000,
            inline=usable_cpus() == 1,
        )
    else:
        batcher = batching.Unbatched(slot.predict)
    predictions = Predictions(slot, batcher, options)

    async def health(request: Request) -> JSONResponse:
        if not slot.ready:
            body = {"status": slot.status, "model": store.MODEL_NAME}
            if slot.error:
                body["error"] = slot.error
            return JSONResponse(body, status_code=503)
        body = {
            "status": "ok",
            "model": store.MODEL_NAME,
            "version": slot.version,
            "tensorflow": slot.tensorflow_version,
        }
        body["accuracy"] = slot.metrics.get("accuracy")
        return JSONResponse(body)

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"model": store.MODEL_NAME, "endpoints": ENDPOINTS})

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": error.detail}, status_code=error.status_code, headers=error.headers
        )

    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        # uvicorn logs the exception with its traceback once this answer is sent.
        return JSONResponse(_internal_error_document(error), status_code=500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        threading.Thread(target=slot.prepare, name="model-loader", daemon=True).start()
        async with batcher.running():
            yield

    app = _Application(
        predictions,
        routes=[
            Route("/", index),
            Route("/health", health),
            Route("/live", live),
            # Reached for the other methods only (a 405): _Application answers a POST itself.
            *(Route(path, predictions, methods=["POST"]) for path in PREDICTION_PATHS),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.model = slot
    return app


class _TurnWriter:
    """A connection's transport whose writes in one turn of the event loop go out together, at the
    end of the turn: an answer's head and body in one system call, not two (under load, the writes
    are most of what an answer costs the server). Everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self._flush)
        self._held.append(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def _flush(self) -> None:
        if self._held and not self._transport.is_closing():
            self._transport.write(b"".join(self._held))
        self._held.clear()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class _HTTPProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 on httptools (llhttp, Node.js's parser, in C), with a deadline for each
    request head: a connection that has not sent a whole request head within the keep-alive timeout
    of opening, or of its last answer, is closed. (uvicorn's own keep-alive timer stops at the first
    byte, and a new connection has none: a client that sends nothing, or a head byte by byte, would
    hold its connection for good.) It writes through a _TurnWriter."""

    def connection_made(self, transport) -> None:
        super().connection_made(_TurnWriter(transport, self.loop))
        self._waiting_since = self.loop.time()
        self._head_deadline = self.loop.call_later(self.timeout_keep_alive, self._check_deadline)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next head is due within the keep-alive timeout from now. One timer a connection looks
        # when it fires, rather than one timer a request: under load, timers cost.
        self._waiting_since = self.loop.time()

    def connection_lost(self, exc) -> None:
        self._head_deadline.cancel()
        super().connection_lost(exc)

    def _check_deadline(self) -> None:
        """Close a connection whose next head is overdue; else look again when it would be."""
        now = self.loop.time()
        if self.cycle is None or self.cycle.response_complete:  # waiting for a head
            due = self._waiting_since + self.timeout_keep_alive
            if due <= now:
                if not self.transport.is_closing():
                    self.transport.close()
                return
        else:  # answering: the next head is due at the earliest a timeout after this
            due = now + self.timeout_keep_alive
        self._head_deadline = self.loop.call_at(due, self._check_deadline)


def uvicorn_config(
    app: Starlette, *, host: str, port: int, keep_alive: float = KEEP_ALIVE_S, **settings
) -> uvicorn.Config:
    """uvicorn's settings for the app: httptools and uvloop, the head and keep-alive deadline, and
    the graceful shutdown: on SIGTERM it stops accepting, finishes the requests in progress (for up
    to SHUTDOWN_GRACE_S), then exits."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_HTTPProtocol,
        loop="uvloop",
        ws="none",
        timeout_keep_alive=keep_alive,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        **settings,
    )
