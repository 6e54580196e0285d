"""The floor of Python HTTP serving for benchmarks/serving.py: the least a Starlette app on uvicorn
can do for a /predict request (read its body, send a constant answer of the size ours sends), on the
HTTP stack and event loop named. Runs inside the CPU image:
`python floor.py --http h11 --loop asyncio`.
"""

import argparse
import json

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROWS_PER_REQUEST = 8
# What our server answers for 8 rows: 3 probabilities each, as float32 values printed in full.
ANSWER = json.dumps(
    {"predictions": [[0.9876543283462524, 0.012345678918063641, 1.2345678e-08]] * ROWS_PER_REQUEST}
).encode()


async def predict(request: Request) -> Response:
    await request.body()
    return Response(ANSWER, media_type="application/json")


async def health(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http", choices=["h11", "httptools"], required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], required=True)
    parser.add_argument("--port", type=int, default=8888)
    arguments = parser.parse_args()
    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health", health)])
    uvicorn.run(
        app,
        host="0.0.0.0",  # noqa: S104 (inside the container: the published port reaches it)
        port=arguments.port,
        http=arguments.http,
        loop=arguments.loop,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
