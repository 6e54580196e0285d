"""Serve the application on $PORT, the container port that `invoke run` publishes."""

import os

import uvicorn

from app.server import app


def main() -> None:
    # 0.0.0.0: inside the container, so that the published port reaches it; which host addresses
    # may connect is decided by `invoke run`'s port publishing (HOST_ADDRESS).
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ.get("PORT", "8888")))  # noqa: S104


if __name__ == "__main__":
    main()
