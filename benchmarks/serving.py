"""How fast the example application answers, through the real tasks: `python benchmarks/serving.py`.

Builds the CPU image (`invoke build`, seconds when nothing changed), then, in a temporary DATA_DIR
holding only data/iris.csv, measures:
- time from `invoke run --detach` to the first 200 from /health, with no model yet (the server
  trains one first) and with a trained model;
- the latency of POST /predict for 1 row and for 100 rows, the median of repeated requests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
ROW = [5.1, 3.5, 1.4, 0.2]


def invoke(*args: str, env: dict[str, str]) -> None:
    result = subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"invoke {' '.join(args)} failed:\n{result.stderr.strip()}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def seconds_to_first_health(url: str, env: dict[str, str], timeout: float = 600) -> float:
    started = time.perf_counter()
    invoke("run", "--detach", env=env)
    while time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{url}/health did not answer 200 within {timeout:.0f} s")


def median_latency_ms(url: str, rows: int, repeats: int) -> float:
    body = json.dumps({"instances": [ROW] * rows}).encode()
    request = urllib.request.Request(f"{url}/predict", data=body, headers={"Content-Type": "application/json"})
    times = []
    for _ in range(repeats + 5):  # the first few warm up connections and TensorFlow's kernels
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200, help="requests per latency figure (default 200)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as work:
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
            one = median_latency_ms(url, 1, arguments.repeats)
            hundred = median_latency_ms(url, 100, arguments.repeats)
        finally:
            subprocess.run([sys.executable, "-m", "invoke", "stop"], cwd=PROJECT_DIR, env=env, capture_output=True, check=False)
        accuracy = json.loads((data / "models" / "iris" / "1" / "metrics.json").read_text())["accuracy"]
    print(f"{'figure':<58} value")
    print(f"{'held-out accuracy of the first model (30 rows)':<58} {accuracy:.3f}")
    print(f"{'invoke run --detach to first /health 200, no model yet':<58} {untrained:.1f} s")
    print(f"{'invoke run --detach to first /health 200, model trained':<58} {trained:.1f} s")
    print(f"{f'POST /predict, 1 row (median of {arguments.repeats})':<58} {one:.1f} ms")
    print(f"{f'POST /predict, 100 rows (median of {arguments.repeats})':<58} {hundred:.1f} ms  ({hundred / one:.2f}x one row)")


if __name__ == "__main__":
    main()
