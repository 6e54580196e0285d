"""Our CPU image against the plain Dockerfile users start from (benchmarks/plain/): `nox -s bench`.

Both are built on the same BASE_IMAGE for this host's platform, from copies of this project (its
git-tracked files and .git) with a 1 GB file in data/, as a real project has; the plain copy has no
.dockerignore. First builds run without layer cache and with BuildKit's cache mounts emptied
(so your next build downloads its wheels again). Times are medians of several runs. Prints each
figure for both, the ratio ours/plain and its goal, and exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from devkit.engine import Engine
from devkit.errors import UserError
from devkit.settings import load_settings

PROJECT_DIR = Path(__file__).resolve().parents[1]

OURS, PLAIN = "tf-bench-ours", "tf-bench-plain"
DATA_FILE_BYTES = 1024**3
# Small pure-Python packages that no lock of this template pins: one is added per "new package" run.
NEW_PACKAGES = ("six", "toml", "text-unidecode")
IMPORT_PROBE = (
    "import time; started = time.perf_counter(); import tensorflow; "
    "print(time.perf_counter() - started)"
)


@dataclass(frozen=True)
class Figure:
    name: str
    ours: float
    plain: float
    unit: str
    goal: float

    @property
    def ratio(self) -> float:
        return self.ours / self.plain

    @property
    def met(self) -> bool:
        return self.ratio <= self.goal


class Bench:
    def __init__(self, work: Path, runs: int):
        self.settings = load_settings(PROJECT_DIR, os.environ)
        self.docker = self.settings.docker
        self.platform = Engine(self.docker).native_platform()
        self.runs = runs
        self.ours_dir, self.plain_dir = work / "ours", work / "plain"
        self.work = work
        # In every edit and addition, so that no rebuild finds layers cached by an earlier
        # benchmark.
        self.nonce = uuid.uuid4().hex

    # --- set-up -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Two copies of the project with the same 1 GB data file (hard-linked, written once)."""
        tracked = (
            subprocess.run(
                ["git", "ls-files", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True
            )
            .stdout.decode()
            .split("\0")
        )
        for copy in (self.ours_dir, self.plain_dir):
            for name in filter(None, tracked):
                if (PROJECT_DIR / name).is_file():
                    (copy / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(PROJECT_DIR / name, copy / name)
            shutil.copytree(PROJECT_DIR / ".git", copy / ".git")
        big = self.ours_dir / "data" / "dataset-1GB.bin"
        with big.open("wb") as file:
            for _ in range(DATA_FILE_BYTES // 2**24):
                file.write(os.urandom(2**24))
        os.link(big, self.plain_dir / "data" / big.name)
        (self.plain_dir / ".dockerignore").unlink()
        shutil.copy(
            PROJECT_DIR / "benchmarks" / "plain" / "Dockerfile", self.plain_dir / "Dockerfile"
        )
        shutil.copy(
            PROJECT_DIR / "benchmarks" / "plain" / "requirements.txt",
            self.plain_dir / "requirements.txt",
        )

    def empty_caches(self) -> None:
        for image in (OURS, PLAIN):
            self.docker_cli("image", "rm", "--force", f"{image}:latest", check=False)
        self.docker_cli("builder", "prune", "--force", "--filter", "type=exec.cachemount")

    # --- building -----------------------------------------------------------------------------

    def build_ours(self, no_cache: bool = False) -> tuple[float, int]:
        env = {**os.environ, "IMAGE_NAME": OURS, "IMAGE_TAG": "latest", "PLATFORM": self.platform}
        argv = [sys.executable, "-m", "invoke", "build", *(["--no-cache"] if no_cache else [])]
        return self._timed_build(argv, self.ours_dir, env, f"{OURS}:latest")

    def build_plain(self, no_cache: bool = False) -> tuple[float, int]:
        argv = [
            self.docker,
            "build",
            "--platform",
            self.platform,
            "--progress",
            "plain",
            "--tag",
            f"{PLAIN}:latest",
        ]
        argv += ["--build-arg", f"BASE_IMAGE={self.settings.base_image}"]
        if self.settings.build_ca_bundle is not None:
            argv += ["--secret", f"id=ca_bundle,src={self.settings.build_ca_bundle}"]
        argv += [*(["--no-cache"] if no_cache else []), str(self.plain_dir)]
        return self._timed_build(
            argv, self.plain_dir, {**os.environ, "DOCKER_BUILDKIT": "1"}, f"{PLAIN}:latest"
        )

    def _timed_build(
        self, argv: list[str], cwd: Path, env: dict[str, str], image: str
    ) -> tuple[float, int]:
        """Seconds, and the bytes of build context the engine received (from BuildKit's progress).

        The image that the build replaces under the same tag is removed: a benchmark of a dozen
        builds would otherwise leave a dozen untagged gigabyte images behind.
        """
        replaced = self.docker_cli(
            "image", "inspect", "--format", "{{.Id}}", image, check=False
        ).stdout.strip()
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise UserError(
                f"{' '.join(argv[:4])} ... failed in {cwd}:\n"
                f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        if (
            replaced
            and replaced
            != self.docker_cli("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        ):
            self.docker_cli("image", "rm", replaced, check=False)
        return seconds, context_bytes(result.stdout + result.stderr)

    # --- measuring ----------------------------------------------------------------------------

    def image_bytes(self, image: str) -> int:
        return int(self.docker_cli("image", "inspect", "--format", "{{.Size}}", image).stdout)

    def import_seconds(self, image: str) -> float:
        times = []
        for _ in range(
            self.runs + 1
        ):  # the first run warms the page cache, as any second start would
            probe = self.docker_cli(
                "run", "--rm", "--platform", self.platform, image, "python", "-c", IMPORT_PROBE
            )
            times.append(float(probe.stdout.strip().splitlines()[-1]))
        return statistics.median(times[1:])

    def installed_bytes(self, image: str) -> int:
        """What pip says it installed into the image's environment: the sizes in the packages'
        RECORDs."""
        probe = (
            "import importlib.metadata as m; "
            "print(sum(f.size or 0 for d in m.distributions() for f in d.files or []))"
        )
        return int(
            self.docker_cli(
                "run", "--rm", "--platform", self.platform, image, "python", "-c", probe
            ).stdout.strip()
        )

    def edit_source(self, run: int) -> None:
        for copy in (self.ours_dir, self.plain_dir):
            with (copy / "src" / "app" / "server.py").open("a") as file:
                file.write(f"# benchmark {self.nonce}, edit {run}\n")

    def add_package(self, name: str) -> None:
        """Pin `name` in our lock with its wheel's hash (as `invoke lock` would), and list it in the
        plain requirements."""
        download = self.work / "wheels" / name
        self._run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(download),
                name,
            ]
        )
        wheel = next(download.glob("*.whl"))
        version = wheel.name.split("-")[1]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        with (self.ours_dir / "requirements.txt").open("a") as lock:
            lock.write(
                f"{name}=={version} \\\n    --hash=sha256:{digest}\n    # benchmark {self.nonce}\n"
            )
        with (self.plain_dir / "requirements.txt").open("a") as requirements:
            requirements.write(f"{name}=={version}  # benchmark {self.nonce}\n")

    def docker_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run([self.docker, *args], check=check)

    @staticmethod
    def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise UserError(f"{' '.join(argv[:4])} ... failed: {result.stderr.strip()[-1000:]}")
        return result


UNITS = {"B": 1, "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3}


def context_bytes(build_output: str) -> int:
    """The largest `transferring context: 1.07GB` that BuildKit printed."""
    sizes = [
        float(number) * UNITS[unit]
        for number, unit in re.findall(r"transferring context: ([\d.]+)([kKMG]?B)", build_output)
    ]
    if not sizes:
        raise UserError(
            "BuildKit printed no `transferring context` line: is DOCKER_BUILDKIT=1 set?"
        )
    return int(max(sizes))


def human(value: float, unit: str) -> str:
    if unit == "bytes":
        for name, size in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
            if value >= size:
                return f"{value / size:.2f} {name}"
        return f"{value:.0f} B"
    return f"{value:.2f} s"


def measure(bench: Bench) -> tuple[list[Figure], dict]:
    log = print
    log("preparing two copies of the project with a 1 GB data file ...")
    bench.prepare()
    bench.empty_caches()
    log("first builds, no cache ...")
    ours_first, ours_context = bench.build_ours(no_cache=True)
    plain_first, plain_context = bench.build_plain(no_cache=True)
    ours_size, plain_size = (
        bench.image_bytes(f"{OURS}:latest"),
        bench.image_bytes(f"{PLAIN}:latest"),
    )
    log("import times ...")
    ours_import, plain_import = (
        bench.import_seconds(f"{OURS}:latest"),
        bench.import_seconds(f"{PLAIN}:latest"),
    )
    log("rebuilds after an edit in src/ ...")
    edits = {"ours": [], "plain": []}
    for run in range(bench.runs):
        bench.edit_source(run)
        edits["ours"].append(bench.build_ours()[0])
        edits["plain"].append(bench.build_plain()[0])
    log("rebuilds after adding a package ...")
    additions = {"ours": [], "plain": []}
    for name in NEW_PACKAGES[: bench.runs]:
        bench.add_package(name)
        additions["ours"].append(bench.build_ours()[0])
        additions["plain"].append(bench.build_plain()[0])
    Engine(bench.docker).pull_base_image(bench.settings.base_image, bench.platform)
    base_size = bench.image_bytes(bench.settings.base_image)
    installed = bench.installed_bytes(f"{OURS}:latest")
    figures = [
        Figure("CPU image size", ours_size, plain_size, "bytes", 0.55),
        Figure("build context sent to the engine", ours_context, plain_context, "bytes", 0.01),
        Figure(
            "rebuild after editing one file in src/",
            statistics.median(edits["ours"]),
            statistics.median(edits["plain"]),
            "s",
            0.25,
        ),
        Figure(
            "rebuild after adding one small package",
            statistics.median(additions["ours"]),
            statistics.median(additions["plain"]),
            "s",
            0.60,
        ),
        Figure("import tensorflow in a fresh container", ours_import, plain_import, "s", 1.10),
    ]
    extra = {
        "first build, no cache": (ours_first, plain_first),
        "base image": base_size,
        "installed size of the locked packages": installed,
        "image": ours_size,
    }
    return figures, extra


def report(figures: list[Figure], extra: dict, runs: int) -> bool:
    print()
    print(f"{'figure':<42} {'ours':>10} {'plain':>10} {'ours/plain':>11} {'goal':>8}")
    for figure in figures:
        verdict = "met" if figure.met else "MISSED"
        print(
            f"{figure.name:<42} {human(figure.ours, figure.unit):>10} "
            f"{human(figure.plain, figure.unit):>10} "
            f"{figure.ratio:>11.3f} {'<= ' + str(figure.goal):>8}  {verdict}"
        )
    ours_first, plain_first = extra["first build, no cache"]
    first = (
        f"{human(ours_first, 's'):>10} {human(plain_first, 's'):>10} "
        f"{ours_first / plain_first:>11.3f}"
    )
    print(f"{'first build, no cache (no goal)':<42} {first}")
    floor = extra["base image"] + extra["installed size of the locked packages"]
    floor_ratio = extra["image"] / floor
    floor_met = floor_ratio <= 1.05
    print()
    print(
        f"physical floor: base image {human(extra['base image'], 'bytes')} + installed packages "
        f"{human(extra['installed size of the locked packages'], 'bytes')} = "
        f"{human(floor, 'bytes')}; our image {human(extra['image'], 'bytes')} = "
        f"{floor_ratio:.3f} of it (goal <= 1.05)  {'met' if floor_met else 'MISSED'}"
    )
    print(f"times are medians of {runs} runs")
    return all(figure.met for figure in figures) and floor_met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="runs per timed figure (default 3, at most 3 for the new-package figure)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the two benchmark images (removed by default)"
    )
    arguments = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="image-bench-") as work:
            bench = Bench(Path(work), arguments.runs)
            try:
                figures, extra = measure(bench)
            finally:
                if not arguments.keep:
                    for image in (OURS, PLAIN):
                        bench.docker_cli("image", "rm", "--force", f"{image}:latest", check=False)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if report(figures, extra, arguments.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
