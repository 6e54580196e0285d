"""Engine probes, answered by stand-in CLIs: BuildKit mode, engine reachability, NVIDIA runtime."""

import json

import pytest

from devkit import runtime
from devkit.engine import Engine, Outcome, cmd_exe_line
from devkit.errors import UserError
from helpers.fake_cli import fake_cli
from helpers.recording_engine import RecordingEngine


def test_buildx_plugin_is_used_where_it_exists(tmp_path):
    cli = fake_cli(tmp_path, '"buildx version") echo "github.com/docker/buildx v0.17.1" ;;')
    assert Engine(cli).uses_buildx() is True


def test_classic_build_before_version_23(tmp_path):
    cli = fake_cli(
        tmp_path,
        '"buildx version") exit 1 ;;\n"version --format {{.Client.Version}}") echo 20.10.24+dfsg1 ;;',
    )
    assert Engine(cli).uses_buildx() is False


def test_a_cli_from_23_on_without_buildx_is_refused_with_the_fix(tmp_path):
    cli = fake_cli(
        tmp_path,
        '"buildx version") exit 1 ;;\n"version --format {{.Client.Version}}") echo 28.2.2 ;;',
    )
    with pytest.raises(
        UserError,
        match=r"CLI 28\.2\.2\) needs the buildx plugin .* install it \(Debian/Ubuntu: docker-buildx-plugin",
    ):
        Engine(cli).uses_buildx()


def test_missing_cli(tmp_path):
    with pytest.raises(UserError, match="no such command"):
        Engine(str(tmp_path / "nothing-here")).version()


def test_engine_not_reachable_names_the_cause(tmp_path):
    cli = fake_cli(
        tmp_path,
        '"version --format {{.Server.Version}}") echo "Cannot connect to the Docker daemon at unix:///x.sock" >&2; exit 1 ;;',
    )
    with pytest.raises(
        UserError,
        match=r"not running or not reachable \(Cannot connect to the Docker daemon at unix:///x\.sock\)",
    ):
        Engine(cli).version()


def test_nvidia_runtime_present(tmp_path):
    cli = fake_cli(
        tmp_path,
        '"info --format {{json .Runtimes}}") echo \'{"nvidia":{"path":"nvidia-container-runtime"},"runc":{"path":"runc"}}\' ;;',
    )
    Engine(cli).require_nvidia_runtime()


def test_nvidia_runtime_missing_lists_what_there_is(tmp_path):
    cli = fake_cli(
        tmp_path,
        '"info --format {{json .Runtimes}}") echo \'{"io.containerd.runc.v2":{},"runc":{}}\' ;;',
    )
    with pytest.raises(
        UserError, match=r"no NVIDIA runtime \(runtimes: io\.containerd\.runc\.v2, runc\); install"
    ):
        Engine(cli).require_nvidia_runtime()


@pytest.mark.parametrize(
    ("question", "command", "answer"),
    [
        (Engine.container_state, "container inspect --format {{.State.Status}}", "running"),
        (Engine.image_platform, "image inspect --format {{.Os}}/{{.Architecture}}", "linux/arm64"),
    ],
)
def test_a_question_about_a_container_or_image_answers_none_where_there_is_none(
    tmp_path, question, command, answer
):
    cli = fake_cli(
        tmp_path,
        f'"{command} here") echo {answer} ;;\n"{command} gone") echo "No such object: gone" >&2; exit 1 ;;',
    )
    assert question(Engine(cli), "here") == answer
    assert question(Engine(cli), "gone") is None


@pytest.mark.parametrize(
    ("registry", "insecure"),
    [
        (
            "127.0.0.1:5000",
            True,
        ),  # loopback: the engine allows plain HTTP, as in its default InsecureRegistryCIDRs
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
        "IndexConfigs": {
            "docker.io": {"Secure": True},
            "registry.internal:5000": {"Secure": False},
        },
        "InsecureRegistryCIDRs": ["127.0.0.0/8", "10.1.0.0/16"],
    }
    cli = fake_cli(
        tmp_path, f"\"info --format {{{{json .RegistryConfig}}}}\") echo '{json.dumps(config)}' ;;"
    )
    assert Engine(cli).registry_is_insecure(f"{registry}/acme") is insecure


def test_an_engine_without_emulation_is_refused_with_the_fix():
    engine = RecordingEngine(
        outcomes={
            "linux/arm64 --entrypoint true base$": Outcome(
                1, "", "exec /usr/bin/true: exec format error\n"
            ),
            "linux/arm64 --entrypoint true gone$": Outcome(125, "", "Unable to find image\n"),
        }
    )
    with pytest.raises(
        UserError,
        match=r"^this engine cannot run linux/arm64 programs, so it can neither build nor run a "
        r"linux/arm64 image; enable emulation once: "
        r"`docker run --privileged --rm tonistiigi/binfmt --install arm64`",
    ):
        runtime.require_platform_support(engine, "base", "linux/arm64")
    runtime.require_platform_support(engine, "base", "linux/amd64")
    # Any other failure is the real command's to report, in its own words.
    runtime.require_platform_support(engine, "gone", "linux/arm64")
    assert engine.actions[0] == (
        "docker run --rm --pull never --platform linux/arm64 --entrypoint true base"
    )


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["docker", "run", "a b"], 'docker run "a b"'),
        # cmd.exe acts on & | ^ < > ( ) ! " and expands %NAME% even inside quotes: each gets a caret.
        (["docker", "build", "--build-arg", "A=x&y|z"], "docker build --build-arg A=x^&y^|z"),
        (["docker", "run", "--env", "P=%PATH%"], "docker run --env P=^%PATH^%"),
        (["docker", "run", "50% & more"], 'docker run ^"50^% ^& more^"'),
        (["echo", "^", 'say "hi"'], 'echo ^^ ^"say \\^"hi\\^"^"'),
        ([r"C:\Program Files\Docker\docker.exe", "ps"], r'"C:\Program Files\Docker\docker.exe" ps'),
    ],
)
def test_command_lines_for_cmd_exe_escape_what_it_acts_on(argv, line):
    assert cmd_exe_line(argv) == line


@pytest.mark.parametrize("kind", ["folder", "not executable"])
def test_a_docker_that_cannot_be_run_is_one_line(tmp_path, kind):
    cli = tmp_path / "docker"
    if kind == "folder":
        cli.mkdir()
    else:
        cli.write_text("#!/bin/sh\n")
    with pytest.raises(
        UserError,
        match=rf"^DOCKER='{cli}': cannot run it \(Permission denied\); set DOCKER to the docker CLI itself$",
    ):
        Engine(str(cli)).server_platform()


def test_a_registry_is_read_without_pulling(tmp_path):
    index = {
        "manifests": [
            {"platform": {"os": "linux", "architecture": "amd64"}},
            {"platform": {"os": "unknown", "architecture": "unknown"}},
        ]
    }
    cli = fake_cli(
        tmp_path,
        f"\"manifest inspect mirror.example/python:3.11\") echo '{json.dumps(index)}' ;;\n"
        '"manifest inspect mirror.example/python:one") echo \'{"config": {}, "layers": []}\' ;;\n'
        '"info --format {{json .RegistryConfig}}") echo \'{"InsecureRegistryCIDRs": ["127.0.0.0/8"]}\' ;;\n'
        '"manifest inspect --insecure 127.0.0.1:5000/gone:1") echo "no such manifest: 127.0.0.1:5000/gone:1" >&2; exit 1 ;;',
    )
    assert Engine(cli).registry_platforms("mirror.example/python:3.11") == ["linux/amd64"]
    assert Engine(cli).registry_platforms("mirror.example/python:one") == [], (
        "one platform, which its manifest does not name"
    )
    with pytest.raises(
        UserError,
        match=r"^127.0.0.1:5000/gone:1 is neither on this engine nor in its registry \(no such manifest: ",
    ):
        Engine(cli).registry_platforms("127.0.0.1:5000/gone:1")
