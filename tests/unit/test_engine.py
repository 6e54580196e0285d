"""Engine probes, answered by stand-in CLIs: BuildKit mode, engine reachability, NVIDIA runtime."""

import json
import stat
from pathlib import Path

import pytest

from devkit.engine import Engine
from devkit.errors import UserError


def fake_cli(tmp_path: Path, script: str) -> str:
    """A `docker` that answers by `case "$*"` in `script`."""
    cli = tmp_path / "docker"
    cli.write_text(f'#!/bin/sh\ncase "$*" in\n{script}\n*) echo "unexpected: $*" >&2; exit 99 ;;\nesac\n')
    cli.chmod(cli.stat().st_mode | stat.S_IXUSR)
    return str(cli)


def test_buildx_plugin_is_used_where_it_exists(tmp_path):
    cli = fake_cli(tmp_path, '"buildx version") echo "github.com/docker/buildx v0.17.1" ;;')
    assert Engine(cli).uses_buildx() is True


def test_classic_build_before_version_23(tmp_path):
    cli = fake_cli(tmp_path, '"buildx version") exit 1 ;;\n"version --format {{.Client.Version}}") echo 20.10.24+dfsg1 ;;')
    assert Engine(cli).uses_buildx() is False


def test_a_cli_from_23_on_without_buildx_is_refused_with_the_fix(tmp_path):
    cli = fake_cli(tmp_path, '"buildx version") exit 1 ;;\n"version --format {{.Client.Version}}") echo 28.2.2 ;;')
    with pytest.raises(UserError, match=r"CLI 28\.2\.2\) needs the buildx plugin .* install it \(Debian/Ubuntu: docker-buildx-plugin"):
        Engine(cli).uses_buildx()


def test_missing_cli(tmp_path):
    with pytest.raises(UserError, match="no such command"):
        Engine(str(tmp_path / "nothing-here")).version()


def test_engine_not_reachable_names_the_cause(tmp_path):
    cli = fake_cli(
        tmp_path, '"version --format {{.Server.Version}}") echo "Cannot connect to the Docker daemon at unix:///x.sock" >&2; exit 1 ;;'
    )
    with pytest.raises(UserError, match=r"not running or not reachable \(Cannot connect to the Docker daemon at unix:///x\.sock\)"):
        Engine(cli).version()


def test_nvidia_runtime_present(tmp_path):
    cli = fake_cli(
        tmp_path, '"info --format {{json .Runtimes}}") echo \'{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}\' ;;'
    )
    Engine(cli).require_nvidia_runtime()


def test_nvidia_runtime_missing_lists_what_there_is(tmp_path):
    cli = fake_cli(tmp_path, '"info --format {{json .Runtimes}}") echo \'{"io.containerd.runc.v2":{},"runc":{}}\' ;;')
    with pytest.raises(UserError, match=r"no NVIDIA runtime \(runtimes: io\.containerd\.runc\.v2, runc\); install"):
        Engine(cli).require_nvidia_runtime()


@pytest.mark.parametrize(
    ("question", "command", "answer"),
    [
        (Engine.container_state, "container inspect --format {{.State.Status}}", "running"),
        (Engine.image_platform, "image inspect --format {{.Os}}/{{.Architecture}}", "linux/arm64"),
    ],
)
def test_a_question_about_a_container_or_image_answers_none_where_there_is_none(tmp_path, question, command, answer):
    cli = fake_cli(tmp_path, f'"{command} here") echo {answer} ;;\n"{command} gone") echo "No such object: gone" >&2; exit 1 ;;')
    assert question(Engine(cli), "here") == answer
    assert question(Engine(cli), "gone") is None


@pytest.mark.parametrize(
    ("registry", "insecure"),
    [
        ("127.0.0.1:5000", True),  # loopback: the engine allows plain HTTP, as in its default InsecureRegistryCIDRs
        ("localhost:5000", True),
        ("10.1.2.3:5000", True),  # inside a CIDR the engine is configured with
        ("registry.internal:5000", True),  # listed by name in the engine's insecure-registries
        ("ghcr.io", False),
        ("10.9.9.9", False),
        ("docker.io", False),
    ],
)
def test_registry_security_follows_the_engine(tmp_path, registry, insecure):
    config = {
        "IndexConfigs": {"docker.io": {"Secure": True}, "registry.internal:5000": {"Secure": False}},
        "InsecureRegistryCIDRs": ["127.0.0.0/8", "10.1.0.0/16"],
    }
    cli = fake_cli(tmp_path, f"\"info --format {{{{json .RegistryConfig}}}}\") echo '{json.dumps(config)}' ;;")
    assert Engine(cli).registry_is_insecure(f"{registry}/acme") is insecure


def test_an_engine_without_emulation_is_refused_with_the_fix(tmp_path):
    cli = fake_cli(
        tmp_path,
        '"run --rm --platform linux/arm64 --entrypoint true base") '
        'echo "exec /usr/bin/true: exec format error" >&2; exit 1 ;;\n'
        '"run --rm --platform linux/amd64 --entrypoint true base") exit 0 ;;\n'
        '"run --rm --platform linux/arm64 --entrypoint true gone") echo "Unable to find image" >&2; exit 125 ;;',
    )
    with pytest.raises(
        UserError,
        match=r"^this engine cannot run linux/arm64 programs, so it can neither build nor run a linux/arm64 image; "
        r"enable emulation once: `docker run --privileged --rm tonistiigi/binfmt --install arm64`",
    ):
        Engine(cli).require_platform_support("base", "linux/arm64")
    Engine(cli).require_platform_support("base", "linux/amd64")
    # Any other failure is the real command's to report, in its own words.
    Engine(cli).require_platform_support("gone", "linux/arm64")
