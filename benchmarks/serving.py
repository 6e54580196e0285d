"""How fast the example application serves, against the floor of Python HTTP serving, in one run:
`python -m benchmarks.serving` (needs wrk: `apt-get install wrk`, `brew install wrk` on macOS).

The example's benchmark, not the template's: it goes with the example (`nox -s bench` skips it
once src/app/server.py is gone).

1. `invoke build` (seconds when nothing changed); in a temporary DATA_DIR holding only
   data/iris.csv, the time from `invoke run --detach` to the first 200 from /health, with no model
   yet (the server trains one first) and with that model trained.
2. Five containers of the image, each limited to one CPU (`--cpus 1`), the trained model mounted
   read-only: ours with batching (the defaults), ours without (BATCH_MAX_ROWS=0), ours without its
   log line per request (ACCESS_LOG=0: what that line costs), and two floors
   (benchmarks/serving_floor.py: a constant answer of the same size from Starlette, on uvicorn's
   h11 + asyncio, and on its httptools + uvloop). wrk (one thread, keep-alive connections)
   sends 8-row POST /predict requests for a few seconds per point, at 1, 8 and 32
   connections, to each server in turn, for three rounds: requests/s, p50, p99, the server's CPU
   use (of its one CPU) and CPU time per request (which other load on the machine changes least),
   and ours over each, each figure a server's median round (from one run to the next, the noise
   of a shared machine moved the ratios by a tenth). The median time of one call of the model (8
   rows) is measured in the image too.
3. The goals, each with its figure: met or missed. Exits 1 when one is missed.

wrk, not Python threads, is the client: it costs a fraction of a core, so the figures are the
server's. It reaches each server at its address on a network of the benchmark's own, not through a
published port: the engine's port forwarding (docker-proxy) costs more CPU a request than the
floor's server and, on two cores, held the floor to about half its rate, which flattered ours.
Where the host cannot reach a container's address (Docker Desktop, rootless engines), the published
port is used, and the report says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from benchmarks.emulation import timed_invoke
from devkit.engine import Engine
from devkit.settings import load_settings
from devkit.targets import resolve_target

PROJECT_DIR = Path(__file__).resolve().parents[1]
FLOOR_APP = PROJECT_DIR / "benchmarks" / "serving_floor.py"

ROWS_PER_REQUEST = 8
ROW = [5.1, 3.5, 1.4, 0.2]
CLIENTS = (1, 8, 32)
WARM_UP_S = 2
OURS, UNBATCHED, UNLOGGED = "ours, batching", "ours, no batching", "ours, ACCESS_LOG=0"
FLOOR_H11, FLOOR = "floor: h11 + asyncio", "floor: httptools + uvloop"
# Each server: its app keys and its command (None: the image's own, `python -m app`).
SERVERS: dict[str, tuple[dict[str, str], list[str] | None]] = {
    OURS: ({}, None),
    UNBATCHED: ({"BATCH_MAX_ROWS": "0"}, None),
    UNLOGGED: ({"ACCESS_LOG": "0"}, None),
    FLOOR_H11: ({}, ["python", "/bench/floor.py", "--http", "h11", "--loop", "asyncio"]),
    FLOOR: ({}, ["python", "/bench/floor.py", "--http", "httptools", "--loop", "uvloop"]),
}
# The median time of one call of the SavedModel's signature on 8 rows, as the server calls it.
MODEL_CALL_PROBE = f"""
import statistics, time
import numpy as np
from app import server, store
server.limit_tensorflow_threads()
(_, folder), *_ = store.scan(__import__("pathlib").Path("/app/data/models"))[0]
signature = store.load_signature(folder)
rows = np.array([{ROW}] * {ROWS_PER_REQUEST}, dtype="float32")
times = []
for _ in range(600):
    started = time.perf_counter()
    signature.call(rows)
    times.append(time.perf_counter() - started)
print(statistics.median(times[100:]) * 1000)
"""
# wrk's script: the request, and the figures as one JSON line once the run is done.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


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
    timed_invoke("run", "--detach", env=env)
    return wait_for_health(url, started)


def load_average() -> str:
    path = Path("/proc/loadavg")
    return " ".join(path.read_text().split()[:3]) if path.exists() else "unknown (no /proc)"


@dataclass
class Point:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    cpu: float  # the server's CPU time over the wall time: 1.0 is its whole --cpus 1


# The container's CPU time so far, in microseconds, from its cgroup: v2's cpu.stat, or v1's cpuacct.
CPU_USAGE = (
    "if [ -f /sys/fs/cgroup/cpu.stat ]; then sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat;"
    " else echo $(( $(cat /sys/fs/cgroup/cpuacct/cpuacct.usage) / 1000 )); fi"
)


def cpu_seconds(docker: str, container: str) -> float:
    """The CPU time the container has used so far."""
    usage = subprocess.run(
        [docker, "exec", container, "sh", "-c", CPU_USAGE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(usage) / 1e6


def wrk(script: Path, url: str, clients: int, seconds: float) -> dict:
    """One wrk run: `clients` keep-alive connections, one thread; its figures (the script's)."""
    result = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
        + [f"{url}/predict"],
        capture_output=True,
        text=True,
        check=False,
    )
    figures = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not figures:
        sys.exit(f"wrk failed at {clients} clients on {url}: {result.stderr or result.stdout}")
    return json.loads(figures[-1])


def measure(docker: str, container: str, script: Path, url: str, clients: int, seconds: float):
    used = cpu_seconds(docker, container)
    started = time.perf_counter()
    figures = wrk(script, url, clients, seconds)
    wall = time.perf_counter() - started
    cpu = (cpu_seconds(docker, container) - used) / wall
    if figures["errors"]:
        sys.exit(f"{container}: {figures['errors']} failed requests at {clients} clients")
    return Point(
        requests_per_s=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        cpu=cpu,
    )


@dataclass
class Server:
    published: str  # its URL through a published port on 127.0.0.1
    direct: str  # its URL at its address on the benchmark's network


def median_round(points: list[Point]) -> Point:
    """The round whose requests/s is the median (the lower of the two middle ones, for an even
    count): its latencies and CPU use come with it."""
    return sorted(points, key=lambda point: point.requests_per_s)[(len(points) - 1) // 2]


def start_server(
    docker: str,
    image: str,
    name: str,
    network: str,
    data: Path,
    keys: dict[str, str],
    command: list[str] | None,
) -> Server:
    """A server container on one CPU, the models mounted read-only."""
    port = free_port()
    argv = [docker, "run", "--detach", "--rm", "--name", name, "--cpus", "1"]
    argv += ["--network", network, "--publish", f"127.0.0.1:{port}:8888"]
    argv += ["--mount", f"type=bind,source={data},target=/app/data,readonly"]
    argv += ["--mount", f"type=bind,source={FLOOR_APP},target=/bench/floor.py,readonly"]
    for key, value in keys.items():
        argv += ["--env", f"{key}={value}"]
    subprocess.run([*argv, image, *(command or [])], capture_output=True, text=True, check=True)
    address = subprocess.run(
        [docker, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"]
        + [name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Server(published=f"http://127.0.0.1:{port}", direct=f"http://{address}:8888")


def reachable(url: str) -> bool:
    """Whether this host reaches the server at `url` (a container's address) within a second."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def model_call_ms(docker: str, image: str, data: Path) -> float:
    """The median time of one call of the model on 8 rows, in the image on one CPU."""
    argv = [docker, "run", "--rm", "--cpus", "1"]
    argv += ["--mount", f"type=bind,source={data},target=/app/data,readonly"]
    result = subprocess.run(
        [*argv, image, "python", "-c", MODEL_CALL_PROBE], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"the model call probe failed:\n{result.stderr.strip()[-2000:]}")
    return float(result.stdout.split()[-1])


def goals(figures: dict[str, dict[int, Point]], model_ms: float) -> list[tuple[str, str, bool]]:
    """Each goal: what it asks, the figure, met."""
    ours, unbatched, floor = figures[OURS], figures[UNBATCHED], figures[FLOOR]
    share = ours[32].requests_per_s / floor[32].requests_per_s
    gain = ours[8].requests_per_s / unbatched[8].requests_per_s
    bound = floor[1].p50_ms + model_ms + 0.5
    return [
        ("32 clients: requests/s >= 0.5x the httptools floor", f"{share:.2f}x", share >= 0.5),
        ("32 clients: p99 <= 50 ms", f"{ours[32].p99_ms:.1f} ms", ours[32].p99_ms <= 50),
        ("8 clients: requests/s >= 2x without batching", f"{gain:.2f}x", gain >= 2),
        (
            f"1 client: p50 <= floor p50 + model call + 0.5 ms = {bound:.2f} ms",
            f"{ours[1].p50_ms:.2f} ms",
            ours[1].p50_ms <= bound,
        ),
    ]


def report(
    figures, model_ms: float, seconds: float, rounds: int, loads: tuple[str, str], direct: bool
) -> int:
    print(
        f"\nPOST /predict, {ROWS_PER_REQUEST} rows per request; each server on one CPU (--cpus 1),"
        f" {os.cpu_count()} cores here; wrk: 1 thread, keep-alive, {seconds:g} s per point;"
        f" each figure the median of {rounds} rounds"
    )
    if direct:
        print("wrk reached each server at its address on the benchmark's network")
    else:
        print(
            "wrk reached each server through a published port: this host cannot reach a"
            " container's address, and the engine's port forwarding shares the cores"
        )
    print(f"one call of the model ({ROWS_PER_REQUEST} rows), median: {model_ms:.2f} ms")
    print(f"load average (1, 5, 15 min): {loads[0]} before, {loads[1]} after")
    print(
        f"\n{'clients':>7}  {'server':<27}{'requests/s':>11}{'p50':>10}{'p99':>10}"
        f"{'server CPU':>12}{'CPU/request':>13}{'ours/server':>13}"
    )
    for clients in CLIENTS:
        ours = figures[OURS][clients].requests_per_s
        for index, (server, points) in enumerate(figures.items()):
            point = points[clients]
            print(
                f"{clients if index == 0 else '':>7}  {server:<27}{point.requests_per_s:>11.0f}"
                f"{point.p50_ms:>7.2f} ms{point.p99_ms:>7.1f} ms{point.cpu:>11.0%}"
                f"{point.cpu / point.requests_per_s * 1000:>10.3f} ms"
                f"{ours / point.requests_per_s:>13.2f}"
            )
    print(f"\n{'goal':<60}{'figure':>10}  result")
    results = goals(figures, model_ms)
    for goal, figure, met in results:
        print(f"{goal:<60}{figure:>10}  {'met' if met else 'MISSED'}")
    return 0 if all(met for _, _, met in results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=5, help="seconds of load per point (default 5)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of all the servers at each point; a figure is the median round (default 3)",
    )
    arguments = parser.parse_args()
    if arguments.seconds <= 0 or arguments.rounds < 1:
        parser.error("--seconds takes a time above 0, --rounds a whole number from 1")
    if shutil.which("wrk") is None:
        sys.exit(
            "benchmarks.serving needs wrk, the HTTP load generator: `apt-get install wrk` "
            "(Debian, Ubuntu) or `brew install wrk` (macOS)"
        )
    settings = load_settings(PROJECT_DIR, os.environ)
    docker = settings.docker
    image = resolve_target(
        settings, gpu=False, platform_flag=None, host=Engine(docker).native_platform()
    ).image
    names = {server: f"serving-bench-{index}-{os.getpid()}" for index, server in enumerate(SERVERS)}
    network = f"serving-bench-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as work:
        Path(work).chmod(0o755)  # the servers' user reads the models
        data = Path(work) / "data"
        data.mkdir()
        shutil.copy(PROJECT_DIR / "data" / "iris.csv", data)
        script = Path(work) / "predict.lua"
        body = json.dumps({"instances": [ROW] * ROWS_PER_REQUEST})
        script.write_text(WRK_SCRIPT % body, encoding="utf-8")
        port = free_port()
        env = {**os.environ, "DATA_DIR": str(data), "HOST_PORT": str(port)}
        url = f"http://127.0.0.1:{port}"
        timed_invoke("build", env=env)
        try:
            untrained = seconds_to_first_health(url, env)
            timed_invoke("stop", env=env)
            trained = seconds_to_first_health(url, env)
            timed_invoke("stop", env=env)
            model_ms = model_call_ms(docker, image, data)
            subprocess.run([docker, "network", "create", network], capture_output=True, check=True)
            servers = {
                server: start_server(docker, image, names[server], network, data, keys, command)
                for server, (keys, command) in SERVERS.items()
            }
            for started in servers.values():
                wait_for_health(started.published, time.perf_counter())
            direct = all(reachable(started.direct) for started in servers.values())
            urls = {
                server: started.direct if direct else started.published
                for server, started in servers.items()
            }
            for server_url in urls.values():
                wrk(script, server_url, CLIENTS[-1], WARM_UP_S)
            loads = [load_average()]
            figures: dict[str, dict[int, Point]] = {server: {} for server in SERVERS}
            # The servers in turn at each point, round after round, so that all see what else
            # this machine does; each figure is a server's median round.
            for clients in CLIENTS:
                rounds: dict[str, list[Point]] = {server: [] for server in SERVERS}
                for round_number in range(1, arguments.rounds + 1):
                    for server, server_url in urls.items():
                        print(
                            f"{server}, {clients} clients, round {round_number} ...",
                            file=sys.stderr,
                            flush=True,
                        )
                        rounds[server].append(
                            measure(
                                docker,
                                names[server],
                                script,
                                server_url,
                                clients,
                                arguments.seconds,
                            )
                        )
                for server, points in rounds.items():
                    figures[server][clients] = median_round(points)
            loads.append(load_average())
        finally:
            subprocess.run(
                [sys.executable, "-m", "invoke", "stop"],
                cwd=PROJECT_DIR,
                env=env,
                capture_output=True,
                check=False,
            )
            subprocess.run(
                [docker, "rm", "--force", *names.values()], capture_output=True, check=False
            )
            subprocess.run([docker, "network", "rm", network], capture_output=True, check=False)
    print(f"{'invoke run --detach to first /health 200, no model yet':<58} {untrained:.1f} s")
    print(f"{'invoke run --detach to first /health 200, model trained':<58} {trained:.1f} s")
    return report(
        figures, model_ms, arguments.seconds, arguments.rounds, (loads[0], loads[1]), direct
    )


if __name__ == "__main__":
    sys.exit(main())
