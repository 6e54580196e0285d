"""Serve the newest valid model (or MODEL_VERSION's) on $PORT, the container port that `invoke run`
publishes: `python -m app`.

App keys (from .env): BATCH_MAX_ROWS, BATCH_TIMEOUT_MS, MODEL_VERSION and ACCESS_LOG; see
.env.example.
SIGTERM (`docker stop`, a rolling update) finishes the requests in progress, then exits 0.
"""

import argparse
import asyncio
import copy
import http
import logging
import os
import signal
import sys
from pathlib import Path

import uvicorn
from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter

from app import train
from app.server import Options, create_app, uvicorn_config


class LinesPerTurn(logging.StreamHandler):
    """A StreamHandler that writes the lines logged in one turn of the event loop together: under
    load, one write for the access lines of a whole batch of answers, not one each (a write to the
    engine's log pipe costs more than the line). Elsewhere, as StreamHandler does."""

    def __init__(self, stream=None):
        super().__init__(stream)
        self._lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in the event loop's thread
            super().emit(record)
            return
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 (logging's own policy: report, never raise)
            self.handleError(record)
            return
        with self.lock:
            if not self._lines:
                loop.call_soon(self.flush)
            self._lines.append(line)

    def flush(self) -> None:
        with self.lock:
            lines, self._lines = self._lines, []
            if lines and self.stream:
                self.stream.write("".join(lines))
        super().flush()


_PHRASES = {status.value: status.phrase for status in http.HTTPStatus}


class AccessLines(AccessFormatter):
    """uvicorn's access line, the same text, in half its time where there are no colours (a log
    that is not a terminal, as a container's is): one string, no copies of the record."""

    def format(self, record: logging.LogRecord) -> str:
        if self.use_colors or not isinstance(record.args, tuple) or len(record.args) != 5:
            return super().format(record)
        client, method, path, version, status = record.args
        level = record.levelname
        return (
            f'{level}:{" " * (8 - len(level))} {client} - "{method} {path} HTTP/{version}"'
            f" {status} {_PHRASES.get(int(status), '')}"
        )


def _log_config() -> dict:
    """uvicorn's own logging (one access line per request), extended to the app's messages."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["access"]["()"] = AccessLines
    config["handlers"]["access"] = {
        "()": LinesPerTurn,
        "formatter": "access",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["app"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _lighter_log_records() -> None:
    """The logging HOWTO's optimizations: no record looks up its caller, thread or process, which no
    line here prints; work saved on every access line under load."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def _exit_cleanly(signum, frame):
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("PORT", "8888"),
        help="port to listen on (default: $PORT, else 8888)",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=train.DEFAULT_MODELS,
        help=f"models folder (default {train.DEFAULT_MODELS})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=train.DEFAULT_DATASET,
        help=f"dataset to train on when there is no model yet (default {train.DEFAULT_DATASET})",
    )
    parser.add_argument(
        "--epochs",
        type=train.positive_whole_number,
        default=train.DEFAULT_EPOCHS,
        help=f"epochs of that first training (default {train.DEFAULT_EPOCHS})",
    )
    arguments = parser.parse_args(argv)
    try:
        options = Options.from_environment(os.environ)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # uvicorn handles SIGTERM while it serves (a graceful shutdown), then sends it again to this
    # handler: exit 0, as for a stop that went as planned; before uvicorn serves, the same handler
    # ends at once.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # 0.0.0.0: inside the container, so that the published port reaches it; which host addresses
    # may connect is decided by `invoke run`'s port publishing (HOST_ADDRESS).
    app = create_app(
        arguments.models, arguments.data, train_epochs=arguments.epochs, options=options
    )
    config = uvicorn_config(
        app,
        host="0.0.0.0",  # noqa: S104
        port=arguments.port,
        log_config=_log_config(),
        access_log=options.access_log,
    )
    _lighter_log_records()
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1  # not started: uvicorn logged why (the port is taken, say)


if __name__ == "__main__":
    sys.exit(main())
