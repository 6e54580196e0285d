"""A minimal HTTP application: proves that TensorFlow loads and that the published port answers."""

import tensorflow as tf
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(request: Request) -> JSONResponse:
    """Liveness and what serves: the TensorFlow version and the devices it sees."""
    devices = [device.device_type for device in tf.config.list_physical_devices()]
    return JSONResponse({"status": "ok", "tensorflow": tf.__version__, "devices": devices})


app = Starlette(routes=[Route("/health", health)])
