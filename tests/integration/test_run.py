"""`invoke run`, `stop`: ports, the data mount, ownership, Ctrl-C, and the errors of a run."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from devkit import capabilities
from devkit.locks import pinned_tensorflow
from helpers.engine import DOCKER, containers_named, docker, free_port, host_platform
from helpers.http_client import wait_until_healthy
from helpers.invoking import run_as
from helpers.project import PROJECT_DIR, copy_shipped_data, project_copy

# The platform of the CPU image that `invoke build` makes here.
HOST_PLATFORM = host_platform()

# The uid of the non-root user the Dockerfiles create.
IMAGE_UID = 1000
# A uid that is neither root nor the image's user nor, most likely, the caller's.
DATA_OWNER = 2345


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, (
        f"expected a failure, got success:\n{result.stdout}\n{result.stderr}"
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def container(invoke):
    """The CPU container's name; whatever a test leaves running is removed after it."""
    name = invoke.image_name
    yield name
    docker("rm", "--force", name, check=False)


def test_tensorflow_imports_as_a_non_root_user(invoke, cpu_image, container, non_root_caller):
    probe = "import os, tensorflow as tf; print(os.getuid(), tf.__version__)"
    result = run_as(invoke, non_root_caller, "run", "--cmd", f'python -c "{probe}"')
    assert result.returncode == 0, result.stderr
    uid, version = result.stdout.split()[-2:]
    assert int(uid) == non_root_caller.uid != 0
    assert version == pinned_tensorflow((PROJECT_DIR / "requirements.txt").read_text())
    assert containers_named(container) == [], "a foreground run leaves no container"


def test_the_image_itself_runs_as_a_non_root_user(cpu_image):
    # `docker run` without invoke, as a cluster or another tool would start it.
    assert (
        docker("run", "--rm", "--platform", HOST_PLATFORM, cpu_image, "id", "-u").stdout.strip()
        == "1000"
    )


def test_detached_run_answers_on_host_port_and_stop_removes_it(invoke, cpu_image, container):
    started = invoke("run", "--detach")
    assert started.returncode == 0, started.stderr
    wait_until_healthy(f"http://127.0.0.1:{invoke.env['HOST_PORT']}/health")

    again = invoke("run", "--detach")
    assert one_error_line(again) == f"error: {container} is already running; `invoke stop` stops it"

    stopped = invoke("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert containers_named(container) == []


def test_ctrl_c_stops_and_removes_a_foreground_run(invoke, cpu_image, container):
    # A terminal sends SIGINT to the whole foreground process group: invoke and the docker CLI.
    process = invoke.popen("run", start_new_session=True)
    try:
        try:
            wait_until_healthy(f"http://127.0.0.1:{invoke.env['HOST_PORT']}/health")
        except AssertionError as error:
            if process.poll() is not None:
                pytest.fail(
                    f"invoke run ended before it served: {error}\n{process.communicate()[1]}"
                )
            raise
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"invoke run did not end on SIGINT:\n{process.communicate()[1]}")
    assert containers_named(container) == []
    assert process.returncode == 0, stderr


def test_a_port_in_use_is_one_line_and_leaves_no_container(invoke, cpu_image, container, tmp_path):
    port = int(invoke.env["HOST_PORT"])
    not_yet = tmp_path / "not yet made"
    with socket.socket() as squatter:
        # The port may hold TIME_WAIT connections from an earlier test; a listener may still take it.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        result = invoke("run", "--detach", env={"DATA_DIR": str(not_yet)})
    assert (
        one_error_line(result)
        == f"error: HOST_PORT {port} on 127.0.0.1 is already in use; stop what uses it, or set HOST_PORT in .env"
    )
    assert containers_named(container) == []
    assert not not_yet.exists(), "a refused run creates no DATA_DIR"


def test_gpu_without_nvidia_runtime_is_one_line_and_leaves_no_container(invoke, gpu_image):
    runtimes = docker("info", "--format", "{{json .Runtimes}}").stdout
    if "nvidia" in runtimes:
        pytest.skip("this engine has the NVIDIA runtime: the error path cannot be shown here")
    result = invoke("run", "--gpu", "--detach")
    line = one_error_line(result)
    assert line.startswith("error: --gpu: this engine has no NVIDIA runtime (runtimes: ")
    assert "NVIDIA Container Toolkit" in line
    assert containers_named(f"{invoke.image_name}-gpu") == []


@pytest.mark.needs("gpu")
def test_dry_gpu_run_asks_for_all_gpus(invoke):
    result = invoke("--dry", "run", "--gpu")
    assert result.returncode == 0, result.stderr
    assert " --gpus all " in result.stdout
    assert f" {invoke.image_name}:latest-gpu" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DOCKER": "/nonexistent/docker"},
            "error: DOCKER='/nonexistent/docker': no such command; install Docker",
        ),
        (
            {"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
            "error: the container engine is not running or not reachable (",
        ),
    ],
)
@pytest.mark.parametrize("task", ["build", "run", "stop"])
def test_missing_cli_or_engine_is_one_line(invoke, env, message, task):
    line = one_error_line(invoke(task, env=env))
    assert line.startswith(message)


# --- ownership: what the container writes into DATA_DIR belongs to the caller ---------------------


def test_files_written_to_data_dir_belong_to_the_caller(
    invoke, cpu_image, container, non_root_caller
):
    caller = non_root_caller
    assert caller.uid not in (0, IMAGE_UID), (
        "the caller must differ from root and the image's own user to prove anything"
    )
    result = run_as(
        invoke, caller, "run", "--cmd", "sh -c 'id -u > /app/data/written-by-container.txt'"
    )
    assert result.returncode == 0, result.stderr
    written = caller.data / "written-by-container.txt"
    assert written.stat().st_uid == caller.uid
    assert written.read_text().strip() == str(caller.uid)


# --- configuration errors: one line, nothing changed ------------------------------------------------


def test_bad_settings_are_one_line_and_change_nothing(invoke, data_dir, tmp_path):
    keep = data_dir / "keep.txt"
    keep.write_text("precious")
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    cases = [
        (
            {"HOST_PORT": "abc"},
            "error: HOST_PORT='abc' (from environment): not a port number (1-65535)",
        ),
        (
            {"HOST_PORT": "70000"},
            "error: HOST_PORT='70000' (from environment): not a port number (1-65535)",
        ),
        (
            {"CONTAINER_PORT": "-1"},
            "error: CONTAINER_PORT='-1' (from environment): not a port number (1-65535)",
        ),
        (
            {"DATA_DIR": str(a_file)},
            f"error: DATA_DIR='{a_file}' (from environment): {a_file} is a file, not a folder",
        ),
        (
            {"DATA_DIR": str(a_file / "data")},
            f"error: DATA_DIR='{a_file / 'data'}' (from environment): {a_file / 'data'} does not exist and cannot be created",
        ),
        (
            {"PLATFORM": "linux/s390x"},
            "error: PLATFORM (from environment): unknown platform 'linux/s390x': choose linux/amd64 or linux/arm64",
        ),
        (
            {"IMAGE_NAME": "Bad Name"},
            "error: IMAGE_NAME='Bad Name' (from environment): not a valid image name",
        ),
        (
            {"BUILD_CA_BUNDLE": str(tmp_path / "missing.pem")},
            f"error: BUILD_CA_BUNDLE='{tmp_path / 'missing.pem'}' (from environment)",
        ),
    ]
    a_folder = tmp_path / "a folder"
    a_folder.mkdir()
    cases += [
        (
            {"BUILD_CA_BUNDLE": str(a_folder)},
            f"error: BUILD_CA_BUNDLE='{a_folder}' (from environment): {a_folder} is not a readable file",
        )
    ]
    # Bad option values, each with the task it belongs to.
    refused = [
        (
            ("build", "--platform", "linux/s390x"),
            {},
            "error: unknown platform 'linux/s390x': choose linux/amd64 or linux/arm64",
        ),
        (
            ("run", "--platform", "windows"),
            {},
            "error: unknown platform 'windows': choose linux/amd64 or linux/arm64",
        ),
        # Only where the project has the GPU image (copier.yml): without it, --gpu is refused
        # for that reason instead.
        *(
            [
                (
                    ("build", "--gpu", "--platform", "linux/arm64"),
                    {},
                    "error: the GPU image is linux/amd64 only",
                ),
                (
                    ("run", "--gpu", "--platform", "arm64"),
                    {},
                    "error: the GPU image is linux/amd64 only",
                ),
            ]
            if capabilities.present(PROJECT_DIR, "gpu")
            else []
        ),
        (
            ("run", "--cmd", "python -c 'unclosed"),
            {},
            'error: --cmd "python -c \'unclosed": No closing quotation; quote it as a shell would',
        ),
        (
            ("build", "--build-arg", "NO_VALUE"),
            {},
            "error: --build-arg 'NO_VALUE': expected NAME=VALUE",
        ),
        (("lock", "--platform", "linux/ppc64le"), {}, "error: unknown platform 'linux/ppc64le'"),
        (
            ("build",),
            {"BASE_IMAGE": "127.0.0.1:5000/no-such-python:3.11"},
            "error: cannot resolve BASE_IMAGE 127.0.0.1:5000/no-such-python:3.11 to a digest (",
        ),
        (
            ("build",),
            {"PIP_INDEX_URL": "corp-index"},
            "error: PIP_INDEX_URL (from environment): expected http(s)://host/path",
        ),
    ]
    engine_before, data_before = engine_state(), sorted(data_dir.rglob("*"))
    for env, message in cases:
        for task in ("build", "run"):
            line = one_error_line(invoke(task, env=env))
            assert line.startswith(message), (env, task, line)
    for args, env, message in refused:
        line = one_error_line(invoke(*args, env=env))
        assert line.startswith(message), (args, line)
    assert engine_state() == engine_before
    assert sorted(data_dir.rglob("*")) == data_before
    assert keep.read_text() == "precious"
    assert a_file.read_text() == "x"


def engine_state() -> dict[str, set[str]]:
    """Every image, container and volume the engine holds."""
    return {
        "images": set(docker("image", "ls", "--all", "--quiet", "--no-trunc").stdout.split()),
        "containers": set(docker("ps", "--all", "--quiet", "--no-trunc").stdout.split()),
        "volumes": set(docker("volume", "ls", "--quiet").stdout.split()),
    }


def test_a_data_dir_the_container_user_cannot_write_is_one_line_and_starts_nothing(
    invoke, container, tmp_path
):
    data = tmp_path / "read-only data"
    data.mkdir()
    if os.getuid() == 0:
        os.chown(data, DATA_OWNER, DATA_OWNER)  # a root caller's container runs as DATA_DIR's owner
    data.chmod(0o555)
    uid = DATA_OWNER if os.getuid() == 0 else os.getuid()
    result = invoke("run", "--detach", env={"DATA_DIR": str(data)})
    assert one_error_line(result).startswith(
        f"error: DATA_DIR {data} belongs to uid {data.stat().st_uid}, and the container's user (uid {uid}) cannot write it; "
        f"`sudo chown -R {uid}:"
    )
    assert containers_named(container) == []
    assert list(data.iterdir()) == []


def test_app_keys_from_dotenv_reach_the_container_and_nothing_else(
    invoke, cpu_image, container, tmp_path
):
    copy = project_copy(tmp_path, "HOST_PORT=9000\nGREETING=hello from .env\n")
    shown = invoke("--dry", "run", cwd=copy)
    assert " --env-file " in shown.stdout
    assert "GREETING" not in shown.stdout + shown.stderr
    assert "hello from .env" not in shown.stdout + shown.stderr
    # A docker CLI that notes its own environment and arguments, then runs the real one.
    notes = tmp_path / "notes"
    notes.mkdir()
    stand_in = tmp_path / "docker"
    stand_in.write_text(
        f'#!/bin/sh\nenv > "{notes}/env-$$"\necho "$@" > "{notes}/args-$$"\nexec {DOCKER} "$@"\n'
    )
    stand_in.chmod(0o755)
    # GREETING is the app's own; HOST_PORT is a template setting, which the container does not get.
    result = invoke(
        "run",
        "--cmd",
        """sh -c 'echo "$GREETING|${HOST_PORT:-unset}"'""",
        cwd=copy,
        env={"DOCKER": str(stand_in)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "hello from .env|unset"
    assert not any("hello from .env" in note.read_text() for note in notes.glob("env-*")), (
        "never the docker CLI's environment"
    )
    (run,) = [
        note.read_text().split()
        for note in notes.glob("args-*")
        if note.read_text().startswith("run ")
    ]
    assert not Path(run[run.index("--env-file") + 1]).exists(), (
        "the file of app keys is removed after the run"
    )


def test_docker_settings_in_dotenv_are_refused_not_passed_to_the_app(invoke, tmp_path):
    copy = project_copy(tmp_path, "GREETING=hi\nDOCKER_HOST=unix:///elsewhere.sock\n")
    result = invoke("run", cwd=copy, env={"DATA_DIR": ""})
    assert one_error_line(result).startswith(
        "error: .env key DOCKER_HOST: DOCKER_* variables steer the docker CLI"
    )
    assert not (copy / "data").exists()


def test_malformed_dotenv_line_is_named(invoke, tmp_path):
    copy = project_copy(tmp_path, "HOST_PORT=9000\nthis line is not a setting\n")
    # DATA_DIR empty counts as unset: the copy's default ./data is the one that must not appear.
    result = invoke("run", cwd=copy, env={"DATA_DIR": ""})
    assert (
        one_error_line(result)
        == "error: .env line 2: cannot parse a line without KEY= (not shown: it may hold a secret); expected KEY=value, any quotes closed"
    )
    assert not (copy / "data").exists(), "a refused run creates no DATA_DIR"


def test_unknown_option_is_refused(invoke):
    result = invoke("run", "--colour", "blue")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout


def test_stop_when_nothing_runs_says_so(invoke, container):
    result = invoke("stop")
    assert result.returncode == 0
    assert result.stderr.strip() == f"{container} is not running"


def test_shell_runs_piped_commands_with_the_data_mount_and_returns_their_status(
    invoke, cpu_image, data_dir
):
    (data_dir / "seen-by-shell.txt").write_text("hello\n")
    result = invoke("shell", input="cat /app/data/seen-by-shell.txt && pwd && exit 3\n")
    assert result.returncode == 3, result.stderr
    assert result.stdout.split()[-2:] == ["hello", "/app"]


# --- least privilege and concurrency --------------------------------------------------------------


def test_read_only_run_without_capabilities_serves_and_writes_only_data_dir(
    invoke, cpu_image, container, tmp_path
):
    data = tmp_path / "data"
    data.mkdir()
    copy_shipped_data(data)
    if os.getuid() == 0:
        # A root caller's container runs as the owner of DATA_DIR, when that is not root.
        os.chown(data, DATA_OWNER, DATA_OWNER)
    started = invoke("run", "--detach", "--read-only", env={"DATA_DIR": str(data)})
    assert started.returncode == 0, started.stderr
    host = json.loads(docker("inspect", "--format", "{{json .HostConfig}}", container).stdout)
    assert host["ReadonlyRootfs"] is True
    assert list(host["Tmpfs"]) == ["/tmp"]
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    # The app gets ready on the read-only root filesystem (the example trains its first model into DATA_DIR).
    wait_until_healthy(f"http://127.0.0.1:{invoke.env['HOST_PORT']}/health", timeout=300)
    status = docker(
        "exec",
        container,
        "sh",
        "-c",
        "id -u; grep CapEff /proc/1/status; touch /app/data/written; touch /app/x",
        check=False,
    )
    uid = DATA_OWNER if os.getuid() == 0 else os.getuid()
    assert status.stdout.split()[0] == str(uid)
    assert status.stdout.split()[1:] == ["CapEff:", "0000000000000000"]
    assert "Read-only file system" in status.stderr
    assert (data / "written").stat().st_uid == uid, (
        "DATA_DIR stays writable, by the container's user"
    )
    assert invoke("stop").returncode == 0


def test_two_projects_side_by_side_run_at_once(invoke, cpu_image, tmp_path, data_dir):
    projects = [project_copy(tmp_path, name=name) for name in ("churn-model", "vision-model")]
    ports = [free_port(), free_port()]
    # Each with its default, folder-derived name (an empty IMAGE_NAME counts as unset).
    settings = [{"IMAGE_NAME": "", "HOST_PORT": str(port)} for port in ports]
    try:
        for project, env in zip(projects, settings, strict=True):
            built = invoke("build", cwd=project, env=env)
            assert built.returncode == 0, built.stderr[-2000:]
            started = invoke("run", "--detach", cwd=project, env=env)
            assert started.returncode == 0, started.stderr
        for port in ports:
            wait_until_healthy(f"http://127.0.0.1:{port}/health")
        assert containers_named("churn-model") != []
        assert containers_named("vision-model") != []
        again = invoke("run", "--detach", cwd=projects[0], env=settings[0])
        assert (
            one_error_line(again) == "error: churn-model is already running; `invoke stop` stops it"
        )
        assert invoke("stop", cwd=projects[0], env=settings[0]).returncode == 0
        assert containers_named("churn-model") == []
        # Stopping one project left the other alone.
        wait_until_healthy(f"http://127.0.0.1:{ports[1]}/health")
    finally:
        for name in ("churn-model", "vision-model"):
            docker("rm", "--force", name, check=False)
            docker("image", "rm", f"{name}:latest", check=False)


def test_two_detached_runs_at_once_leave_exactly_one_server(invoke, cpu_image, container):
    """The one that loses the name removes nothing: not the winner's container, by name or else."""
    for _ in range(2):
        runs = [invoke.popen("run", "--detach") for _ in range(2)]
        ended = [(process.wait(timeout=180), process.communicate()[1]) for process in runs]
        assert sorted(status for status, _ in ended) == [0, 1], ended
        refused = next(stderr for status, stderr in ended if status == 1)
        # Which line depends on how far the other run got: "already running", "did not start:
        # ... Conflict", or its port "already in use". One line, in any case.
        assert refused.strip().splitlines()[-1].startswith("error: "), refused
        assert "Traceback" not in refused
        assert len(containers_named(container)) == 1, "exactly one server"
        wait_until_healthy(f"http://127.0.0.1:{invoke.env['HOST_PORT']}/health")
        stopped = invoke("stop")
        assert stopped.returncode == 0, stopped.stderr
        assert containers_named(container) == []


def test_a_detached_container_that_exits_at_once_fails_with_its_last_lines(
    invoke, cpu_image, container
):
    result = invoke("run", "--detach", "--cmd", "sh -c 'echo the reason >&2; exit 3'")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "the reason" in lines
    assert re.fullmatch(
        rf"error: {container}-run-[0-9a-f]{{6}} exited at once with status 3; its last lines "
        "are above",
        lines[-1],
    )
    left = docker(
        "container", "ls", "--all", "--quiet", "--filter", f"name={container}-run-"
    ).stdout.split()
    assert left == [], "removed once its lines are read"
    assert not re.search(r"\b[0-9a-f]{64}\b", result.stdout + result.stderr), "no container id"


def test_a_missing_image_is_one_line_and_nothing_is_pulled_or_created(invoke, tmp_path):
    # A name that may well exist in a public registry: never pulled in place of the project's.
    absent = f"{invoke.image_name}-absent"
    not_yet = tmp_path / "not yet made"
    env = {"IMAGE_NAME": absent, "DATA_DIR": str(not_yet)}
    for args in (["run"], ["run", "--detach"], ["run", "--cmd", "true"], ["shell"]):
        result = invoke(*args, env=env, stdin=subprocess.DEVNULL)
        assert one_error_line(result) == (
            f"error: there is no image {absent}:latest; `invoke build` makes it"
        ), args
    assert docker("image", "ls", "--quiet", absent).stdout.strip() == "", "nothing pulled"
    assert docker("ps", "--all", "--quiet", "--filter", f"name={absent}").stdout.strip() == ""
    assert not not_yet.exists(), "a refused run creates no DATA_DIR"


def test_an_edit_in_src_is_said_stale_and_served_by_dev(invoke, cpu_image, tmp_path):
    project = project_copy(tmp_path)
    image = f"{invoke.image_name}-stale"
    env = {"IMAGE_NAME": image}
    try:
        built = invoke("build", cwd=project, env=env)
        assert built.returncode == 0, built.stderr[-2000:]
        fresh = invoke("run", "--cmd", "true", cwd=project, env=env)
        assert fresh.returncode == 0, fresh.stderr
        assert "changed since" not in fresh.stderr

        (project / "src" / "edited_after_build.py").write_text("print('the edit runs')\n")
        stale = invoke("run", "--cmd", "true", cwd=project, env=env)
        assert stale.returncode == 0, stale.stderr
        assert stale.stderr.splitlines()[0] == (
            f"warning: src/ changed since {image}:latest was built, which still has the old one; "
            "`invoke build` rebuilds it"
        )

        served = invoke(
            "run", "--dev", "--cmd", "python -m edited_after_build", cwd=project, env=env
        )
        assert served.returncode == 0, served.stderr
        assert "the edit runs" in served.stdout
        assert "changed since" not in served.stderr, "with --dev, src/ is the project's own"
        write = invoke("run", "--dev", "--cmd", "touch /app/src/x", cwd=project, env=env)
        assert write.returncode != 0, "src/ is mounted read-only"
        assert not (project / "src" / "x").exists()
    finally:
        docker("image", "rm", f"{image}:latest", check=False)
