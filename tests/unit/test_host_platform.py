"""Which platform is native here: Python's view of the machine, overruled by the engine's where they differ.

Each case is a host as Python and `docker version` see it. `platform.machine()` answers differently per
operating system, and Python may itself be emulated (an x86-64 Python under Rosetta on Apple Silicon,
an x64 Python on Windows on ARM) while Docker Desktop's engine runs natively.
"""

import platform

import pytest

from devkit.engine import Engine
from devkit.platforms import host_platform
from helpers.fake_cli import fake_cli

# What `docker version --format {{.Server.Os}}/{{.Server.Arch}}` answers: Go's names for the engine's platform.
ENGINE_ANSWER = '"version --format {{.Server.Os}}/{{.Server.Arch}}")'


@pytest.mark.parametrize(
    ("machine", "engine_script", "expected"),
    [
        # The engine answers, and decides.
        pytest.param(
            "arm64", "echo linux/arm64", "linux/arm64", id="macOS on Apple Silicon, Docker Desktop"
        ),
        pytest.param(
            "x86_64",
            "echo linux/arm64",
            "linux/arm64",
            id="macOS on Apple Silicon, Python under Rosetta",
        ),
        pytest.param(
            "x86_64", "echo linux/amd64", "linux/amd64", id="macOS on Intel, Docker Desktop"
        ),
        pytest.param("x86_64", "echo linux/amd64", "linux/amd64", id="Linux x86_64"),
        pytest.param(
            "aarch64",
            "echo linux/arm64",
            "linux/arm64",
            id="Linux aarch64 (Graviton, Ampere, Raspberry Pi)",
        ),
        pytest.param(
            "AMD64", "echo linux/amd64", "linux/amd64", id="Windows, Docker Desktop on WSL 2"
        ),
        pytest.param(
            "AMD64",
            "echo linux/arm64",
            "linux/arm64",
            id="Windows on ARM, x64 Python under emulation",
        ),
        pytest.param("ARM64", "echo linux/arm64", "linux/arm64", id="Windows on ARM"),
        pytest.param(
            "x86_64",
            "echo linux/arm64",
            "linux/arm64",
            id="Linux x86_64, DOCKER_HOST on an arm64 server",
        ),
        # No usable answer: Python's view of the machine decides.
        pytest.param(
            "arm64", "exit 1", "linux/arm64", id="macOS on Apple Silicon, Docker Desktop stopped"
        ),
        pytest.param("x86_64", "exit 1", "linux/amd64", id="Linux x86_64, engine stopped"),
        pytest.param("aarch64", "exit 1", "linux/arm64", id="Linux aarch64, engine stopped"),
        pytest.param(
            "AMD64",
            "echo windows/amd64",
            "linux/amd64",
            id="Windows, Docker Desktop switched to Windows containers",
        ),
        pytest.param(
            "x86_64",
            "echo linux/s390x",
            "linux/amd64",
            id="an engine on an architecture TensorFlow has no wheels for",
        ),
    ],
)
def test_native_platform(tmp_path, monkeypatch, machine, engine_script, expected):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    cli = fake_cli(tmp_path, f"{ENGINE_ANSWER} {engine_script} ;;")
    assert Engine(cli).native_platform() == expected


def test_python_decides_where_there_is_no_cli(tmp_path, monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "AMD64")
    assert Engine(str(tmp_path / "no-docker-here")).native_platform() == "linux/amd64"


def test_the_engine_platform_overrules_python_without_asking_again(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert host_platform() == "linux/amd64"
    assert host_platform("linux/arm64") == "linux/arm64"
