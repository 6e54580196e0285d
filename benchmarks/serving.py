"""How fast the example application serves, through the real tasks and the built image: `python -m benchmarks.serving`.

The example's benchmark, not the template's: it goes with the example (`nox -s bench` skips it once
src/app/server.py is gone).

1. `invoke build` (seconds when nothing changed); in a temporary DATA_DIR holding only data/iris.csv, the
   time from `invoke run --detach` to the first 200 from /health, with no model yet (the server trains
   one first) and with that model trained.
2. That model under load: two containers of the image, each limited to one CPU (`--cpus 1`), one with
   batching (the defaults), one without (BATCH_MAX_ROWS=0: each request calls the model alone, in a thread,
   as before batching). Keep-alive clients on 127.0.0.1 send 8-row requests for a few seconds per point,
   1, 8 and 32 at once, to each server in turn: requests/s, p50 and p99 side by side.
3. The goals of batching, each with its figure: met or missed. Exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devkit.engine import Engine
from devkit.settings import load_settings
from devkit.targets import resolve_target

PROJECT_DIR = Path(__file__).resolve().parents[1]

ROWS_PER_REQUEST = 8
CLIENTS = (1, 8, 32)
WARM_UP_S = 0.5
ROW = [5.1, 3.5, 1.4, 0.2]
SERVERS = {"batching": {}, "no batching": {"BATCH_MAX_ROWS": "0"}}  # the app keys of each server


def invoke(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "invoke", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"invoke {' '.join(args)} failed:\n{result.stderr.strip()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, started: float, timeout: float = 600) -> float:
    """Seconds from `started` to the first 200 from /health."""
    while time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{url}/health did not answer 200 within {timeout:.0f} s")


def seconds_to_first_health(url: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    invoke("run", "--detach", env=env)
    return wait_for_health(url, started)


# --- the load: keep-alive clients on plain sockets, so that the client costs little CPU ---------------


def _request(port: int) -> bytes:
    body = json.dumps({"instances": [ROW] * ROWS_PER_REQUEST}).encode()
    head = f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _read_response(connection: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """One HTTP response's status line, and what was read beyond the response."""
    while b"\r\n\r\n" not in buffer:
        buffer += _received(connection)
    head, _, rest = buffer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += _received(connection)
    return head.split(b"\r\n", 1)[0], rest[length:]


def _received(connection: socket.socket) -> bytes:
    data = connection.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection")
    return data


@dataclass
class Point:
    requests_per_s: float
    p50_ms: float
    p99_ms: float


def load(port: int, clients: int, seconds: float) -> Point:
    """`clients` keep-alive connections, each sending one request after the other; the figures of the
    requests that end between the warm-up and the end."""
    request = _request(port)
    barrier = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    window: list[float] = []

    def client(record: list[float]) -> None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buffer = b""
                barrier.wait()
                measure_from, end = window
                while (started := time.perf_counter()) < end:
                    connection.sendall(request)
                    status, buffer = _read_response(connection, buffer)
                    ended = time.perf_counter()
                    if not status.startswith(b"HTTP/1.1 200"):
                        raise ConnectionError(status.decode(errors="replace"))
                    if measure_from <= started and ended <= end:
                        record.append(ended - started)
        except (OSError, threading.BrokenBarrierError) as error:
            failures.append(f"{type(error).__name__}: {error}")
            barrier.abort()

    threads = [threading.Thread(target=client, args=(record,)) for record in latencies]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    window.extend([now + WARM_UP_S, now + WARM_UP_S + seconds])
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: it says why below
        barrier.wait()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit(f"a client failed at {clients} clients: {failures[0]}")
    every = sorted(latency for record in latencies for latency in record)
    percentiles = statistics.quantiles(every, n=100, method="inclusive")
    return Point(len(every) / seconds, percentiles[49] * 1000, percentiles[98] * 1000)


def start_server(docker: str, image: str, name: str, data: Path, app_keys: dict[str, str]) -> str:
    """A server container on one CPU, the models mounted read-only; its URL."""
    port = free_port()
    argv = [
        docker,
        "run",
        "--detach",
        "--rm",
        "--name",
        name,
        "--cpus",
        "1",
        "--publish",
        f"127.0.0.1:{port}:8888",
    ]
    argv += ["--mount", f"type=bind,source={data},target=/app/data,readonly"]
    for key, value in app_keys.items():
        argv += ["--env", f"{key}={value}"]
    subprocess.run([*argv, image], capture_output=True, text=True, check=True)
    return f"http://127.0.0.1:{port}"


def goals(figures: dict[str, dict[int, Point]]) -> list[tuple[str, str, bool]]:
    """Each goal of batching: what it asks, the figure, met."""
    on, off = figures["batching"], figures["no batching"]
    ratio = on[32].requests_per_s / on[1].requests_per_s
    latency = on[1].p50_ms / off[1].p50_ms
    return [
        ("requests/s at 32 clients >= 2x at 1 client", f"{ratio:.2f}x", ratio >= 2),
        ("p99 at 32 clients <= 100 ms", f"{on[32].p99_ms:.1f} ms", on[32].p99_ms <= 100),
        ("p50 at 1 client <= 1.1x that of no batching", f"{latency:.2f}x", latency <= 1.1),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=3, help="seconds of load per point (default 3)"
    )
    arguments = parser.parse_args()
    settings = load_settings(PROJECT_DIR, os.environ)
    image = resolve_target(
        settings, gpu=False, platform_flag=None, host=Engine(settings.docker).native_platform()
    ).image
    names = {
        server: f"serving-bench-{server.replace(' ', '-')}-{os.getpid()}" for server in SERVERS
    }
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as work:
        Path(work).chmod(0o755)  # the servers' user reads the models
        data = Path(work) / "data"
        data.mkdir()
        shutil.copy(PROJECT_DIR / "data" / "iris.csv", data)
        port = free_port()
        env = {**os.environ, "DATA_DIR": str(data), "HOST_PORT": str(port)}
        url = f"http://127.0.0.1:{port}"
        invoke("build", env=env)
        try:
            untrained = seconds_to_first_health(url, env)
            invoke("stop", env=env)
            trained = seconds_to_first_health(url, env)
            invoke("stop", env=env)
            urls = {
                server: start_server(settings.docker, image, names[server], data, keys)
                for server, keys in SERVERS.items()
            }
            for server_url in urls.values():
                wait_for_health(server_url, time.perf_counter())
            figures: dict[str, dict[int, Point]] = {server: {} for server in SERVERS}
            for (
                clients
            ) in CLIENTS:  # the servers in turn, so that both see what else this machine does
                for server, server_url in urls.items():
                    print(f"{server}, {clients} clients ...", file=sys.stderr, flush=True)
                    figures[server][clients] = load(
                        int(server_url.rsplit(":", 1)[1]), clients, arguments.seconds
                    )
        finally:
            subprocess.run(
                [sys.executable, "-m", "invoke", "stop"],
                cwd=PROJECT_DIR,
                env=env,
                capture_output=True,
                check=False,
            )
            subprocess.run(
                [settings.docker, "rm", "--force", *names.values()],
                capture_output=True,
                check=False,
            )
    print(f"{'invoke run --detach to first /health 200, no model yet':<58} {untrained:.1f} s")
    print(f"{'invoke run --detach to first /health 200, model trained':<58} {trained:.1f} s")
    print(
        f"\nPOST /predict, {ROWS_PER_REQUEST} rows per request, server on one CPU (--cpus 1), {os.cpu_count()} cores here"
    )
    print(f"{'clients':>7}  {'':>10}{'batching':^30}{'no batching':^30}")
    print(f"{'':>7}  {'':>10}" + f"{'requests/s':>12}{'p50':>9}{'p99':>9}" * 2)
    for clients in CLIENTS:
        row = "".join(
            f"{point.requests_per_s:>12.0f}{point.p50_ms:>6.1f} ms{point.p99_ms:>6.1f} ms"
            for point in (figures[server][clients] for server in SERVERS)
        )
        print(f"{clients:>7}  {'':>10}{row}")
    print(f"\n{'goal':<48}{'figure':>10}  result")
    results = goals(figures)
    for goal, figure, met in results:
        print(f"{goal:<48}{figure:>10}  {'met' if met else 'MISSED'}")
    return 0 if all(met for _, _, met in results) else 1


if __name__ == "__main__":
    sys.exit(main())
