"""`invoke doctor`'s checks, each against stand-in CLIs and folders: verdicts, details and fixes."""

import errno
import json
import os
import socket
from pathlib import Path

import pytest

from devkit import doctor, host
from devkit.doctor import FAIL, OK, SKIP, WARN
from devkit.settings import load_settings
from helpers.base_image import AMD64_DIGEST, ARM64_DIGEST, DIGESTS, docker_index, write_record
from helpers.doctor_findings import HEALTHY_ENGINE, findings
from helpers.fake_cli import fake_cli
from helpers.project import with_capabilities


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return with_capabilities(folder)


@pytest.mark.needs("gpu")
def test_a_healthy_machine_passes_every_check_and_warns_of_the_missing_nvidia_runtime(
    project, tmp_path
):
    write_record(project)
    result = findings(project, fake_cli(tmp_path, HEALTHY_ENGINE))
    assert list(result) == [
        ".env",
        "CLI",
        "engine",
        "BuildKit",
        "NVIDIA",
        "architecture",
        "port",
        "DATA_DIR",
        "disk",
        "base image",
        "base digest",
    ]
    assert {
        subject: finding.verdict for subject, finding in result.items() if finding.verdict != OK
    } == {"NVIDIA": WARN}
    assert result["engine"].detail == "running, version 20.10.24"
    assert (
        result["BuildKit"].detail
        == "`docker build` with DOCKER_BUILDKIT=1, which `invoke build` sets"
    )
    assert result["NVIDIA"].fix.startswith(
        "install the NVIDIA driver and the NVIDIA Container Toolkit"
    )


def test_every_line_has_a_verdict_and_a_failure_has_a_fix(project, tmp_path):
    result = findings(project, str(tmp_path / "no-docker-here"))
    for finding in result.values():
        assert "\n" not in finding.line()
        assert finding.line().split()[0] in (OK, WARN, FAIL, SKIP)
        assert finding.verdict != FAIL or finding.fix


@pytest.mark.needs("gpu")
def test_no_cli_skips_what_needs_it(project, tmp_path):
    result = findings(project, str(tmp_path / "no-docker-here"))
    assert result["CLI"].verdict == FAIL
    assert result["CLI"].fix == "install Docker, or set DOCKER to the path of a docker CLI"
    assert [result[s].verdict for s in ("engine", "BuildKit", "NVIDIA", "disk", "base image")] == [
        SKIP
    ] * 5
    assert result["port"].verdict == OK


def test_an_engine_that_does_not_answer(project, tmp_path):
    cli = fake_cli(
        tmp_path,
        '"version --format {{.Client.Version}}") echo 20.10.24 ;;\n"version --format {{.Server.Version}}") echo "Cannot connect" >&2; exit 1 ;;',
    )
    result = findings(project, cli)
    assert result["engine"].verdict == FAIL
    assert (
        result["engine"].detail
        == "the container engine is not running or not reachable (Cannot connect)"
    )
    assert result["engine"].fix == "start Docker Desktop, or `sudo systemctl start docker` on Linux"


def test_a_cli_that_cannot_build_with_buildkit(project, tmp_path):
    cli = fake_cli(tmp_path, HEALTHY_ENGINE.replace("echo 20.10.24 ;;", "echo 28.2.2 ;;", 1))
    result = findings(project, cli)
    assert result["BuildKit"].verdict == FAIL
    assert result["BuildKit"].fix.startswith("install it (Debian/Ubuntu: docker-buildx-plugin")


@pytest.mark.needs("gpu")
def test_the_nvidia_runtime_is_required_when_gpu_use_is_asked(project, tmp_path):
    result = findings(project, fake_cli(tmp_path, HEALTHY_ENGINE), gpu=True)
    assert result["NVIDIA"].verdict == FAIL
    assert (
        result["NVIDIA"].detail
        == "no NVIDIA runtime (runtimes: runc): the GPU image cannot run here"
    )


@pytest.mark.parametrize(
    ("host", "engine_platform", "gpu", "verdict", "says"),
    [
        ("linux/amd64", "linux/amd64", True, OK, "the GPU image both run natively"),
        (
            "linux/arm64",
            "linux/arm64",
            False,
            OK,
            "the GPU image is linux/amd64 only and cannot run here",
        ),
        (
            "linux/arm64",
            "linux/arm64",
            True,
            FAIL,
            "the GPU image is linux/amd64 only and cannot run here",
        ),
        # Apple Silicon with an x86-64 Python under Rosetta: Docker Desktop's engine is arm64.
        (
            "linux/amd64",
            "linux/arm64",
            False,
            WARN,
            "Python runs as linux/amd64 but the engine as linux/arm64",
        ),
    ],
)
def test_architecture(host, engine_platform, gpu, verdict, says):
    finding = doctor.check_architecture(host, engine_platform, gpu=gpu)
    assert finding.verdict == verdict
    assert says in finding.detail


def test_a_malformed_dotenv_is_named_and_skips_what_needs_settings(project, tmp_path):
    (project / ".env").write_text("HOST_PORT=8888\nnot a setting\n")
    result = findings(project, fake_cli(tmp_path, HEALTHY_ENGINE))
    assert result[".env"].verdict == FAIL
    assert result[".env"].detail.startswith(
        ".env line 2: cannot parse a line without KEY= (not shown: it may hold a secret)"
    )
    assert [result[s].verdict for s in ("port", "DATA_DIR", "disk", "base image")] == [SKIP] * 4


def test_a_port_in_use(project, tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = findings(project, fake_cli(tmp_path, HEALTHY_ENGINE), HOST_PORT=str(port))
    assert result["port"].verdict == FAIL
    assert result["port"].detail == f"HOST_PORT {port} on 127.0.0.1 is already in use"


def test_a_data_dir_the_container_user_cannot_write(project, tmp_path):
    data = project / "data"
    data.mkdir(mode=0o755)
    settings = load_settings(project, {"DATA_DIR": str(data)})
    stranger = (os.getuid() + 4321, os.getgid() + 4321)
    finding = doctor.check_data_dir(settings, stranger)
    assert finding.verdict == FAIL
    assert (
        finding.detail
        == f"DATA_DIR {data} belongs to uid {os.getuid()}, and the container's user (uid {stranger[0]}) cannot write it"
    )
    assert finding.fix.startswith(f"`sudo chown -R {stranger[0]}:{stranger[1]} ")
    assert doctor.check_data_dir(settings, (os.getuid(), os.getgid())).verdict == OK


def test_too_little_disk_for_the_build(project, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "CPU_BUILD_BYTES", 10**18)
    result = findings(project, fake_cli(tmp_path, HEALTHY_ENGINE))
    assert result["disk"].verdict == FAIL
    assert result["disk"].fix.startswith("free space: `docker image prune`")


def test_an_engine_whose_storage_is_elsewhere_is_not_measured(project, tmp_path):
    result = findings(
        project, fake_cli(tmp_path, HEALTHY_ENGINE), docker_root="/var/lib/docker-in-a-vm"
    )
    assert result["disk"].verdict == WARN


def logging_cli(tmp_path: Path, script: str) -> tuple[str, Path]:
    """A stand-in CLI that also writes down every command it is given."""
    answers = fake_cli(tmp_path, script)
    log = tmp_path / "commands.log"
    cli = tmp_path / "logging-docker"
    cli.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {answers} "$@"\n')
    cli.chmod(0o755)
    return str(cli), log


def not_here(manifest_answer: str) -> str:
    """The healthy engine without the base image, whose registry answers `manifest inspect` so."""
    local = (
        '"image inspect --format {{.Os}}/{{.Architecture}} python:3.11-slim") echo linux/amd64 ;;'
    )
    return HEALTHY_ENGINE.replace(
        local,
        f'"image inspect --format {{{{.Os}}}}/{{{{.Architecture}}}} python:3.11-slim") exit 1 ;;\n{manifest_answer}',
    )


@pytest.mark.parametrize(
    ("manifest", "verdict", "detail"),
    [
        (
            f"echo '{json.dumps({'manifests': [{'platform': {'os': 'linux', 'architecture': 'amd64'}}]})}'",
            WARN,
            "python:3.11-slim for linux/amd64: not pulled yet; `invoke build` pulls it",
        ),
        (
            'echo "manifest unknown" >&2; exit 1',
            FAIL,
            "BASE_IMAGE python:3.11-slim is neither on this engine nor in its registry (manifest unknown)",
        ),
        (
            f"echo '{json.dumps({'manifests': [{'platform': {'os': 'linux', 'architecture': 'arm64'}}]})}'",
            FAIL,
            "BASE_IMAGE python:3.11-slim has no linux/amd64 variant (only linux/arm64)",
        ),
    ],
)
def test_the_base_image_is_only_read_never_pulled(project, tmp_path, manifest, verdict, detail):
    cli, log = logging_cli(
        tmp_path, not_here(f'"manifest inspect python:3.11-slim") {manifest} ;;')
    )
    result = findings(project, cli)
    assert (result["base image"].verdict, result["base image"].detail) == (verdict, detail)
    assert verdict != FAIL or result["base image"].fix.endswith(
        "or set BASE_IMAGE in .env (a mirror your network reaches)"
    )
    assert not [line for line in log.read_text().splitlines() if line.split()[0] == "pull"], (
        "a pull re-points a tag others may use"
    )


def test_a_base_image_here_for_another_platform_only_is_not_pulled_yet(project, tmp_path):
    index = json.dumps(
        {
            "manifests": [
                {"platform": {"os": "linux", "architecture": p}} for p in ("amd64", "arm64")
            ]
        }
    )
    script = HEALTHY_ENGINE.replace(
        'python:3.11-slim") echo linux/amd64', 'python:3.11-slim") echo linux/arm64'
    )
    result = findings(
        project,
        fake_cli(tmp_path, f"{script}\n\"manifest inspect python:3.11-slim\") echo '{index}' ;;"),
    )
    assert result["base image"].verdict == WARN
    assert result["base image"].detail == (
        "python:3.11-slim for linux/amd64: not pulled yet (the engine has its linux/arm64 variant); `invoke build` pulls it"
    )


MOVED = "sha256:" + "f" * 64


@pytest.mark.parametrize(
    ("record", "registry", "verdict", "detail", "fix"),
    [
        (
            None,
            docker_index("python:3.11-slim"),
            WARN,
            "docker/locks/base-image.txt is not written yet: builds take the digest its registry"
            " names at the time",
            "`invoke lock` pins it (commit the file)",
        ),
        (
            ("mirror.example/python:3.11-slim", DIGESTS),
            docker_index("python:3.11-slim"),
            WARN,
            "docker/locks/base-image.txt does not pin BASE_IMAGE (it pins"
            " mirror.example/python:3.11-slim, not BASE_IMAGE python:3.11-slim): builds take the"
            " digest its registry names at the time",
            "`invoke lock` pins it",
        ),
        (
            ("python:3.11-slim", DIGESTS),
            docker_index("python:3.11-slim", {"linux/amd64": MOVED, "linux/arm64": ARM64_DIGEST}),
            WARN,
            f"python:3.11-slim has moved since `invoke lock` (linux/amd64 {AMD64_DIGEST[:19]} ->"
            f" {MOVED[:19]}); builds keep the pinned digest",
            "`invoke lock --upgrade` takes the new one (and every package's newest)",
        ),
        (
            ("python:3.11-slim", DIGESTS),
            "NO ANSWER",
            WARN,
            "not checked whether python:3.11-slim moved: cannot resolve BASE_IMAGE python:3.11-slim"
            " to a digest (dial tcp: lookup registry-1.docker.io: no such host)",
            "",
        ),
    ],
)
def test_the_base_digest_is_pinned_and_a_tag_that_moved_is_a_warning(
    project, tmp_path, record, registry, verdict, detail, fix
):
    if record is not None:
        write_record(project, *record)
    answer = (
        'echo "dial tcp: lookup registry-1.docker.io: no such host" >&2; exit 1'
        if registry == "NO ANSWER"
        else f"echo '{registry}'"
    )
    cli, log = logging_cli(
        tmp_path, f'"manifest inspect --verbose python:3.11-slim") {answer} ;;\n{HEALTHY_ENGINE}'
    )
    result = findings(project, cli)
    assert (result["base digest"].verdict, result["base digest"].detail) == (verdict, detail)
    assert result["base digest"].fix == fix
    assert not [line for line in log.read_text().splitlines() if line.split()[0] == "pull"]


def test_a_base_image_given_by_digest_cannot_move(project, tmp_path):
    reference = f"python:3.11-slim@{AMD64_DIGEST}"
    write_record(project, reference)
    result = findings(project, fake_cli(tmp_path, HEALTHY_ENGINE), BASE_IMAGE=reference)
    assert result["base digest"].verdict == OK
    assert result["base digest"].detail == f"BASE_IMAGE {reference} is given by digest"


def test_a_pinned_base_image_is_looked_for_by_its_digest(project, tmp_path):
    write_record(project)
    result = findings(project, fake_cli(tmp_path, HEALTHY_ENGINE))
    assert result["base image"].detail == f"python:3.11-slim@{AMD64_DIGEST} for linux/amd64: pulled"
    assert result["base digest"].detail == (
        "python:3.11-slim pinned for linux/amd64, linux/arm64; the tag has not moved"
    )


def test_a_low_port_that_only_root_may_bind_is_a_warning(project, tmp_path, monkeypatch, capsys):
    cli = fake_cli(tmp_path, HEALTHY_ENGINE)
    real_socket = socket.socket

    class NotRoot(real_socket):
        """A socket as a caller without the right to bind ports below 1024 has it."""

        def bind(self, address):
            if 0 < address[1] < 1024:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return super().bind(address)

    monkeypatch.setattr(socket, "socket", NotRoot)
    result = findings(project, cli, HOST_PORT="80")
    assert result["port"].verdict == WARN
    assert result["port"].detail.startswith(
        "HOST_PORT 80 on 127.0.0.1: cannot check whether it is free (only root may bind"
    )
    host.require_free_port("127.0.0.1", 80)
    assert capsys.readouterr().err.startswith(
        "warning: HOST_PORT 80 on 127.0.0.1: cannot check whether it is free"
    )


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        # The doctor said "ok ... the container's user can write it" of a link to the host's root.
        ("DATA_DIR", "root-link", "DATA_DIR='root-link' (from environment): it is / "),
        # docker then refused `::1:8888:8888` ("too many colons").
        ("HOST_ADDRESS", "::1", "HOST_ADDRESS='::1' (from environment): an IPv6 address"),
        ("DATA_DIR", "data\nset", "DATA_DIR='data\\nset' (from environment): a line break"),
    ],
)
def test_a_setting_that_cannot_work_fails_the_settings_check(project, tmp_path, key, value, says):
    (project / "root-link").symlink_to("/")
    result = findings(project, fake_cli(tmp_path, HEALTHY_ENGINE), **{key: value})
    assert result[".env"].verdict == FAIL
    assert result[".env"].detail.startswith(says)
    assert [result[s].verdict for s in ("port", "DATA_DIR", "disk", "base image")] == [SKIP] * 4
