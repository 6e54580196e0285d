"""Your application: `python -m app` serves HTTP on $PORT, the port that `invoke run` publishes.

The template needs only this contract of it: /health answers 200 once the app is ready, and
TensorFlow imports in the image. Replace /predict (and add your routes) with your model's work.
"""

import os

import tensorflow as tf
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(request):
    """Readiness: 200 once the app can serve (load your model before this answers 200)."""
    return JSONResponse({"status": "ready", "tensorflow": tf.__version__})


async def live(request):
    """Liveness: 200 whenever the process answers."""
    return JSONResponse({"status": "alive"})


async def predict(request):
    """The app's work: replace this with your model's prediction."""
    message = "no model yet: replace predict() in src/app/__main__.py with your model's work"
    return JSONResponse({"error": message}, status_code=501)


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/live", live),
        Route("/predict", predict, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=int(os.environ["PORT"]))  # noqa: S104 (the published port)
