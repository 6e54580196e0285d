"""A pytest plugin (pyproject's `-p helpers.host_fit`): each machine tests what it can build and run.

- `@pytest.mark.platform(*platforms)`: the test builds or runs images (or compiles locks) of these
  platforms. One that is not the engine's own runs under emulation: minutes where natively it takes
  seconds, so such a test runs only where asked: `pytest --emulated` (`nox -s integration --
  --emulated`) or with CI set. The GPU image is linux/amd64: an Apple Silicon laptop skips it.
- `@pytest.mark.gpu_run`: the test starts a container on a GPU; it runs only where the engine has
  the NVIDIA runtime.

The image fixtures of tests/integration carry their platform (FIXTURE_PLATFORMS), so a test that
asks for `arm64_image` is marked without saying so. Every skip says why (`-rs`), and the report's
header says what this host runs.
"""

from __future__ import annotations

import os
from functools import cache

import pytest

from devkit.engine import Engine
from devkit.platforms import AMD64, ARM64

FIXTURE_PLATFORMS = {"gpu_image": AMD64, "amd64_image": AMD64, "arm64_image": ARM64}


def pytest_addoption(parser):
    parser.addoption(
        "--emulated",
        action="store_true",
        help="also build and run the other architecture's images under emulation (minutes; CI set does the same)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "platform(*platforms): builds or runs images of these platforms; emulated ones only where asked",
    )
    config.addinivalue_line(
        "markers",
        "gpu_run: starts a container on a GPU; only where the engine has the NVIDIA runtime",
    )


@cache
def _engine() -> Engine:
    return Engine(os.environ.get("DOCKER", "docker"))


def host_platform() -> str:
    return _engine().native_platform()


def emulation_wanted(config) -> bool:
    return bool(config.getoption("--emulated") or os.environ.get("CI"))


def _platforms(item) -> set[str]:
    found = {platform for marker in item.iter_markers("platform") for platform in marker.args}
    return found | {
        platform
        for name, platform in FIXTURE_PLATFORMS.items()
        if name in getattr(item, "fixturenames", ())
    }


def skip_reason(item, *, host: str, emulated: bool, nvidia: bool) -> str | None:
    """Why this host does not run the test, or None where it does."""
    foreign = sorted(_platforms(item) - {host})
    if foreign and not emulated:
        return f"needs {', '.join(foreign)} under emulation on this {host} host: pass --emulated (nox -s integration -- --emulated) or set CI"
    if item.get_closest_marker("gpu_run") and not nvidia:
        return "needs a GPU: this engine has no NVIDIA runtime"
    return None


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if _platforms(item) or item.get_closest_marker("gpu_run")]
    if not marked:
        return
    host = host_platform()
    nvidia = (
        any(item.get_closest_marker("gpu_run") for item in marked)
        and "nvidia" in _engine().runtimes()
    )
    for item in marked:
        reason = skip_reason(item, host=host, emulated=emulation_wanted(config), nvidia=nvidia)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_report_header(config):
    if emulation_wanted(config):
        return "host fit: images of every platform are built and run, the other architecture under emulation"
    return "host fit: the other architecture's tests are skipped, each with its reason (--emulated or CI set runs them)"
