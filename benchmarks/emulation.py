"""The arm64 CPU image under emulation against the native amd64 one:
`python -m benchmarks.emulation`.

What an x86-64 machine pays to build and prove the image that Apple Silicon and ARM servers run.
Through the real tasks, for both platforms, under a benchmark-only IMAGE_NAME:
- `invoke build --no-cache`: every layer rebuilt (pip's download cache stays warm, as on a machine
  that has built once, so the figure is the work, not the network);
- `invoke container-test`: the whole container_test (tests/container) in the built image;
- `import tensorflow` in a fresh container.
Prints each figure for both platforms and the ratio arm64/amd64. Only an x86-64 host emulates arm64;
on an ARM host, arm64 is native and an emulated amd64 TensorFlow cannot run (no AVX), so it stops.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from devkit.engine import Engine
from devkit.platforms import AMD64, ARM64
from devkit.settings import load_settings

PROJECT_DIR = Path(__file__).resolve().parents[1]

IMAGE_NAME = "tf-bench-emulation"
IMPORT_PROBE = (
    "import time; started = time.perf_counter(); import tensorflow; "
    "print(time.perf_counter() - started)"
)


def timed_invoke(*args: str, env: dict[str, str]) -> float:
    """Seconds that `invoke ARGS` takes in the project folder; a failure ends the benchmark with
    its reason."""
    started = time.perf_counter()
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
    return time.perf_counter() - started


def import_seconds(docker: str, image: str, platform: str) -> float:
    probe = [docker, "run", "--rm", "--platform", platform, image, "python", "-c", IMPORT_PROBE]
    return float(subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip())


def main() -> int:
    docker = load_settings(PROJECT_DIR, os.environ).docker
    if Engine(docker).native_platform() != AMD64:
        print(
            "emulation benchmark: this host is not x86-64, so arm64 is native here; "
            "nothing to compare",
            file=sys.stderr,
        )
        return 0
    env = {**os.environ, "IMAGE_NAME": IMAGE_NAME}
    images = {AMD64: f"{IMAGE_NAME}:latest", ARM64: f"{IMAGE_NAME}:latest-arm64"}
    figures: dict[str, dict[str, float]] = {
        "build, no layer cache": {},
        "container_test": {},
        "import tensorflow": {},
    }
    try:
        for platform in (AMD64, ARM64):
            print(f"measuring {platform} ...", file=sys.stderr, flush=True)
            figures["build, no layer cache"][platform] = timed_invoke(
                "build", "--no-cache", "--platform", platform, env=env
            )
            figures["container_test"][platform] = timed_invoke(
                "container-test", "--platform", platform, env=env
            )
            figures["import tensorflow"][platform] = import_seconds(
                docker, images[platform], platform
            )
    finally:
        subprocess.run([docker, "image", "rm", *images.values()], capture_output=True, check=False)
    print(f"{'figure':<38}{'amd64 (native)':>16}{'arm64 (emulated)':>18}{'arm64/amd64':>13}")
    for name, by_platform in figures.items():
        native, emulated = by_platform[AMD64], by_platform[ARM64]
        print(f"{name:<38}{native:>14.1f} s{emulated:>16.1f} s{emulated / native:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
