"""`invoke run`, `stop`: ports, the data mount, ownership, Ctrl-C, and the errors of a run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest
from conftest import PROJECT_DIR, containers_named, docker, project_copy, run_as, wait_for_json

from devkit.commands import pinned_tensorflow

# The uid of the non-root user the Dockerfiles create.
IMAGE_UID = 1000


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, f"expected a failure, got success:\n{result.stdout}\n{result.stderr}"
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
    assert docker("run", "--rm", "--platform", "linux/amd64", cpu_image, "id", "-u").stdout.strip() == "1000"


def test_detached_run_answers_on_host_port_and_stop_removes_it(invoke, cpu_image, container):
    started = invoke("run", "--detach")
    assert started.returncode == 0, started.stderr
    health = wait_for_json(f"http://127.0.0.1:{invoke.env['HOST_PORT']}/health")
    assert health["status"] == "ok"
    assert health["tensorflow"] == pinned_tensorflow((PROJECT_DIR / "requirements.txt").read_text())

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
            wait_for_json(f"http://127.0.0.1:{invoke.env['HOST_PORT']}/health")
        except AssertionError as error:
            if process.poll() is not None:
                pytest.fail(f"invoke run ended before it served: {error}\n{process.communicate()[1]}")
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
    assert one_error_line(result) == f"error: HOST_PORT {port} on 127.0.0.1 is already in use; stop what uses it, or set HOST_PORT in .env"
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


def test_dry_gpu_run_asks_for_all_gpus(invoke):
    result = invoke("--dry", "run", "--gpu")
    assert result.returncode == 0, result.stderr
    assert " --gpus all " in result.stdout
    assert f" {invoke.image_name}:latest-gpu" in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DOCKER": "/nonexistent/docker"}, "error: DOCKER='/nonexistent/docker': no such command; install Docker"),
        ({"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, "error: the container engine is not running or not reachable ("),
    ],
)
@pytest.mark.parametrize("task", ["build", "run", "stop"])
def test_missing_cli_or_engine_is_one_line(invoke, env, message, task):
    line = one_error_line(invoke(task, env=env))
    assert line.startswith(message)


# --- ownership: what the container writes into DATA_DIR belongs to the caller ---------------------


def test_files_written_to_data_dir_belong_to_the_caller(invoke, cpu_image, container, non_root_caller):
    caller = non_root_caller
    assert caller.uid not in (0, IMAGE_UID), "the caller must differ from root and the image's own user to prove anything"
    result = run_as(invoke, caller, "run", "--cmd", "sh -c 'id -u > /app/data/written-by-container.txt'")
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
        ({"HOST_PORT": "abc"}, "error: HOST_PORT='abc' (from environment): not a port number (1-65535)"),
        ({"HOST_PORT": "70000"}, "error: HOST_PORT='70000' (from environment): not a port number (1-65535)"),
        ({"CONTAINER_PORT": "-1"}, "error: CONTAINER_PORT='-1' (from environment): not a port number (1-65535)"),
        ({"DATA_DIR": str(a_file)}, f"error: DATA_DIR='{a_file}' (from environment): {a_file} is a file, not a folder"),
        (
            {"DATA_DIR": str(a_file / "data")},
            f"error: DATA_DIR='{a_file / 'data'}' (from environment): {a_file / 'data'} does not exist and cannot be created",
        ),
        (
            {"PLATFORM": "linux/s390x"},
            "error: PLATFORM (from environment): unknown platform 'linux/s390x': choose linux/amd64 or linux/arm64",
        ),
        ({"IMAGE_NAME": "Bad Name"}, "error: IMAGE_NAME='Bad Name' (from environment): not a valid image name"),
        ({"BUILD_CA_BUNDLE": str(tmp_path / "missing.pem")}, f"error: BUILD_CA_BUNDLE='{tmp_path / 'missing.pem'}' (from environment)"),
    ]
    images_before = set(docker("image", "ls", "--quiet", "--no-trunc").stdout.split())
    for env, message in cases:
        for task in ("build", "run"):
            line = one_error_line(invoke(task, env=env))
            assert line.startswith(message), (env, task, line)
    assert set(docker("image", "ls", "--quiet", "--no-trunc").stdout.split()) == images_before
    assert keep.read_text() == "precious"
    assert a_file.read_text() == "x"


def test_app_keys_from_dotenv_reach_the_container_by_name_only(invoke, cpu_image, container, tmp_path):
    copy = project_copy(tmp_path, "HOST_PORT=9000\nGREETING=hello from .env\n")
    shown = invoke("--dry", "run", cwd=copy)
    assert " --env GREETING " in shown.stdout
    assert "hello from .env" not in shown.stdout
    # GREETING is the app's own; HOST_PORT is a template setting, which the container does not get.
    result = invoke("run", "--cmd", """sh -c 'echo "$GREETING|${HOST_PORT:-unset}"'""", cwd=copy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "hello from .env|unset"


def test_malformed_dotenv_line_is_named(invoke, tmp_path):
    copy = project_copy(tmp_path, "HOST_PORT=9000\nthis line is not a setting\n")
    # DATA_DIR empty counts as unset: the copy's default ./data is the one that must not appear.
    result = invoke("run", cwd=copy, env={"DATA_DIR": ""})
    assert one_error_line(result) == "error: .env line 2: cannot parse 'this line is not a setting'; expected KEY=value"
    assert not (copy / "data").exists(), "a refused run creates no DATA_DIR"


def test_unknown_option_is_refused(invoke):
    result = invoke("run", "--colour", "blue")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout


def test_stop_when_nothing_runs_says_so(invoke, container):
    result = invoke("stop")
    assert result.returncode == 0
    assert result.stderr.strip() == f"{container} is not running"


def test_shell_runs_piped_commands_with_the_data_mount_and_returns_their_status(invoke, cpu_image, data_dir):
    (data_dir / "seen-by-shell.txt").write_text("hello\n")
    result = invoke("shell", input="cat /app/data/seen-by-shell.txt && pwd && exit 3\n")
    assert result.returncode == 3, result.stderr
    assert result.stdout.split()[-2:] == ["hello", "/app"]
