"""`invoke notebook` against the real engine: the notebook stage built beside the runtime image,
JupyterLab as a non-root user behind a token that only the caller sees, src/ importable, the example
notebook run headless in that image, and JupyterLab nowhere in the image that ships."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from helpers.engine import containers_named, docker, free_port, host_platform
from helpers.http_client import status_of
from helpers.project import project_copy

# The platform of the CPU image that `invoke build` makes here.
HOST_PLATFORM = host_platform()

# Where the test runs as root: the owner of its DATA_DIR and notebooks/, whom the container runs as.
OWNER = 2345


@pytest.fixture
def lab(invoke, tmp_path):
    """A copy of the project with a module of its own in src/, a DATA_DIR, and settings for the run."""
    project = project_copy(tmp_path)
    (project / "src" / "notebook_probe.py").write_text("ANSWER = 42\n")
    data = tmp_path / "data"
    data.mkdir()
    if os.getuid() == 0:
        # Root runs the container as DATA_DIR's owner: here a user that is neither root nor the image's.
        for folder in (data, project / "notebooks"):
            os.chown(folder, OWNER, OWNER)
    env = {"DATA_DIR": str(data), "NOTEBOOK_PORT": str(free_port())}
    yield project, env
    docker("rm", "--force", f"{invoke.image_name}-notebook", check=False)


def test_jupyterlab_answers_only_with_its_token_and_runs_the_example_notebook(
    invoke, lab, cpu_image
):
    project, env = lab
    container = f"{invoke.image_name}-notebook"
    started = invoke("notebook", "--detach", cwd=project, env=env)
    assert started.returncode == 0, started.stderr[-3000:]
    url = f"http://127.0.0.1:{env['NOTEBOOK_PORT']}"
    (token,) = re.findall(
        rf"^JupyterLab on {re.escape(url)}/lab\?token=(\S+)$", started.stderr, re.MULTILINE
    )
    assert (
        f"{container} runs in the background; `invoke stop --notebook` stops it" in started.stderr
    )

    assert status_of(f"{url}/api/status", token) == 200
    assert status_of(f"{url}/api/status") == 403
    assert status_of(f"{url}/api/contents/notebooks", "not-the-token") == 403

    # The token went to the caller only: no command line, no log, nothing the engine shows but the env.
    (info,) = json.loads(docker("container", "inspect", container).stdout)
    assert token not in " ".join([info["Path"], *info["Args"]])
    logs = docker("logs", container)
    assert token not in logs.stdout + logs.stderr
    assert "token=..." in logs.stdout + logs.stderr, "JupyterLab shows a token it was given elided"
    expected_user = f"{OWNER}:{OWNER}" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    assert info["Config"]["User"] == expected_user
    assert info["HostConfig"]["CapDrop"] == ["ALL"]
    assert info["HostConfig"]["PortBindings"] == {
        "8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": env["NOTEBOOK_PORT"]}]
    }

    # src/ is importable (mounted, so an edit on the host is seen without a rebuild) and read-only.
    probe = docker(
        "exec",
        container,
        "python",
        "-c",
        "import notebook_probe; print(notebook_probe.ANSWER)",
        check=False,
    )
    assert probe.stdout.strip() == "42", probe.stderr
    assert docker("exec", container, "touch", "/app/src/x", check=False).returncode != 0

    # The example notebook, headless, in this image, as this user: it imports TensorFlow and trains a step.
    executed = docker(
        "exec",
        container,
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--stdout",
        "/app/notebooks/example.ipynb",
        check=False,
    )
    assert executed.returncode == 0, executed.stderr[-3000:]
    outputs = [
        output
        for cell in json.loads(executed.stdout)["cells"]
        for output in cell.get("outputs", [])
    ]
    text = "".join("".join(output.get("text", "")) for output in outputs)
    assert re.search(r"loss after one step: \d+\.\d+", text), text
    assert not [output for output in outputs if output["output_type"] == "error"]

    # JupyterLab is in the notebook image only, never in the runtime image that ships.
    probe = "import importlib.util as u; print(u.find_spec('jupyterlab') is not None)"
    for image, has_jupyterlab in ((cpu_image, "False"), (info["Config"]["Image"], "True")):
        assert (
            docker(
                "run", "--rm", "--platform", HOST_PLATFORM, image, "python", "-c", probe
            ).stdout.strip()
            == has_jupyterlab
        )

    stopped = invoke("stop", "--notebook", cwd=project, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert containers_named(container) == []


def test_dry_notebook_shows_no_token(invoke, tmp_path):
    result = invoke(
        "--dry",
        "notebook",
        env={"NOTEBOOK_PORT": str(free_port()), "DATA_DIR": str(tmp_path / "d")},
    )
    assert result.returncode == 0, result.stderr
    assert "--env-file" in result.stdout
    assert "token" not in (result.stdout + result.stderr).replace("--env-file", "")
    assert not Path(re.search(r"--env-file (\S+)", result.stdout).group(1)).exists()
