"""Serve the newest model on $PORT, the container port that `invoke run` publishes: `python -m app`."""

import argparse
import copy
import os
import sys
from pathlib import Path

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from app import train
from app.server import create_app


def _log_config() -> dict:
    """uvicorn's own logging (one access line per request), extended to the app's messages."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["app"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__)
    parser.add_argument("--port", type=int, default=os.environ.get("PORT", "8888"), help="port to listen on (default: $PORT, else 8888)")
    parser.add_argument("--models", type=Path, default=train.DEFAULT_MODELS, help=f"models folder (default {train.DEFAULT_MODELS})")
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
    # 0.0.0.0: inside the container, so that the published port reaches it; which host addresses
    # may connect is decided by `invoke run`'s port publishing (HOST_ADDRESS).
    uvicorn.run(
        create_app(arguments.models, arguments.data, train_epochs=arguments.epochs),
        host="0.0.0.0",  # noqa: S104
        port=arguments.port,
        log_config=_log_config(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
