"""`invoke tensorboard` and `invoke notebook`: their command lines, what they check before anything
starts, how they stop, and where the notebook's token goes (and does not)."""

import json
import re
import socket
from pathlib import Path

import pytest
from invoke import Exit

import tasks
from devkit import containers, locks, workbench
from devkit.engine import Outcome
from devkit.errors import UserError
from devkit.locks import pinned_versions
from devkit.targets import (
    PROJECT_LABEL,
    every_target,
    notebook_target,
    project_id,
    tensorboard_target,
)
from helpers.command_lines import (
    argv_of,
    commands_run,
    dry_context,
    notebook_command,
    settings_of,
    target_of,
    tensorboard_command,
    value_after,
)
from helpers.engine import free_port
from helpers.project import with_capabilities
from helpers.recording_engine import RecordingEngine

PROJECT_DIR = tasks.PROJECT_DIR
LOCK_TEXT = "tensorflow-cpu==2.21.0 \\\n    --hash=sha256:abc\n"


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    for name in (
        "requirements.txt",
        "requirements-notebook.txt",
        "requirements-notebook-arm64.txt",
    ):
        (folder / name).write_text(LOCK_TEXT)
    (folder / "src").mkdir()
    return folder


# --- settings and names -----------------------------------------------------------------------


def test_ports_default_and_are_checked(project):
    settings = settings_of(project)
    assert (settings.tensorboard_port, settings.notebook_port) == (6006, 8889)
    assert settings_of(project, TENSORBOARD_PORT="7000", NOTEBOOK_PORT="7001").notebook_port == 7001
    with pytest.raises(
        UserError, match=r"NOTEBOOK_PORT='0' \(from environment\): not a port number"
    ):
        settings_of(project, NOTEBOOK_PORT="0")
    assert "TENSORBOARD_PORT" not in settings_of(project, TENSORBOARD_PORT="7000").app_env


def test_the_tools_have_containers_of_their_own(project):
    settings = settings_of(project)
    board = tensorboard_target(target_of(settings))
    assert (board.image, board.container, board.stage) == ("tf:latest", "tf-tensorboard", None)
    lab = notebook_target(target_of(settings, gpu=True))
    assert (lab.image, lab.container, lab.stage) == (
        "tf:latest-gpu-notebook",
        "tf-gpu-notebook",
        "notebook",
    )


# --- TensorBoard ------------------------------------------------------------------------------


def test_tensorboard_command(project):
    (project / ".env").write_text("API_TOKEN=s3cret\n")
    settings = settings_of(project, TENSORBOARD_PORT="7006", HOST_ADDRESS="0.0.0.0")  # noqa: S104
    argv = tensorboard_command(
        settings, tensorboard_target(target_of(settings)), user="1001:1001", detach=True
    )
    assert argv[:5] == ["docker", "run", "--name", "tf-tensorboard", "--detach"]
    assert value_after(argv, "--publish") == ["0.0.0.0:7006:6006"]
    assert value_after(argv, "--user") == ["1001:1001"]
    assert value_after(argv, "--cap-drop") == ["ALL"]
    assert value_after(argv, "--security-opt") == ["no-new-privileges"]
    assert "--read-only" in argv
    assert value_after(argv, "--tmpfs") == ["/tmp"]
    assert "API_TOKEN" not in value_after(argv, "--env"), "TensorBoard gets none of the app's keys"
    assert argv[argv.index("tf:latest") :] == [
        "tf:latest",
        "tensorboard",
        "--logdir",
        "/app/data/logs",
        "--host",
        "0.0.0.0",  # noqa: S104
        "--port",
        "6006",
    ]


def test_tensorboard_checks_the_image_and_port_then_serves_and_removes_its_container(
    project, capsys
):
    engine = RecordingEngine(answers={"image inspect": (0, "linux/amd64\n", "")})
    settings = settings_of(project, TENSORBOARD_PORT=str(free_port()))
    workbench.tensorboard(engine, settings, target_of(settings))
    assert [line.split()[1] for line in engine.actions] == ["run"]
    assert "TensorBoard on http://127.0.0.1:" in capsys.readouterr().err
    missing = RecordingEngine()
    with pytest.raises(UserError, match=r"there is no image tf:latest; `invoke build` makes it"):
        workbench.tensorboard(missing, settings, target_of(settings))
    assert missing.actions == []


def test_tensorboard_refuses_a_busy_port_naming_its_setting(project):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = settings_of(project, TENSORBOARD_PORT=str(busy.getsockname()[1]))
        engine = RecordingEngine(answers={"image inspect": (0, "linux/amd64\n", "")})
        with pytest.raises(
            UserError,
            match=r"TENSORBOARD_PORT \d+ on 127.0.0.1 is already in use; stop what uses it, or set TENSORBOARD_PORT",
        ):
            workbench.tensorboard(engine, settings, target_of(settings))
    assert engine.actions == []


def test_a_running_tensorboard_is_not_started_twice(project):
    engine = RecordingEngine(
        answers={
            "image inspect": (0, "linux/amd64\n", ""),
        }
    )
    settings = settings_of(project, TENSORBOARD_PORT=str(free_port()))
    engine.answers["container inspect"] = (0, f"running {project_id(settings)}\n", "")
    with pytest.raises(
        UserError, match=r"tf-tensorboard is already running; `invoke stop --tensorboard` stops it"
    ):
        workbench.tensorboard(engine, settings, target_of(settings))


def test_a_detached_tensorboard_says_how_to_stop_it(project, capsys):
    engine = RecordingEngine(
        answers={
            "image inspect": (0, "linux/amd64\n", ""),
            "{{.State.ExitCode}}": (0, "running 0 healthy\n", ""),
        }
    )
    settings = settings_of(project, TENSORBOARD_PORT=str(free_port()))
    workbench.tensorboard(engine, settings, target_of(settings), detach=True)
    assert (
        "tf-tensorboard runs in the background; `invoke stop --tensorboard` stops it"
        in capsys.readouterr().err
    )


# --- JupyterLab -------------------------------------------------------------------------------


def test_notebook_command(project, tmp_path):
    (project / ".env").write_text("API_TOKEN=s3cret\n")
    settings = settings_of(project, NOTEBOOK_PORT="7888")
    target = notebook_target(target_of(settings))
    spec = workbench.notebook_spec(settings, target, user="1001:1001", token="t0ken")  # noqa: S106
    assert spec.secret_env == {"API_TOKEN": "s3cret", "JUPYTER_TOKEN": "t0ken"}, (
        "the app's keys as `invoke run` passes them, and the token"
    )
    argv = argv_of(spec, env_file=tmp_path / "app.env")
    assert argv[:4] == ["docker", "run", "--name", "tf-notebook"]
    assert value_after(argv, "--publish") == ["127.0.0.1:7888:8888"]
    assert value_after(argv, "--mount") == [
        f"type=bind,source={project / 'data'},target=/app/data",
        f"type=bind,source={project / 'src'},target=/app/src,readonly",
        f"type=bind,source={project / 'notebooks'},target=/app/notebooks",
    ]
    assert value_after(argv, "--env-file") == [str(tmp_path / "app.env")]
    assert not any("s3cret" in word or "t0ken" in word for word in argv)
    assert value_after(argv, "--cap-drop") == ["ALL"]
    assert argv[argv.index("tf:latest-notebook") + 1 :] == workbench.JUPYTER_LAB
    assert "--allow-root" not in argv


def test_jupyterlab_is_told_to_run_as_root_only_where_the_container_is_root(project, tmp_path):
    settings = settings_of(project)
    argv = notebook_command(settings, notebook_target(target_of(settings)), user="0:0", detach=True)
    assert argv[-1] == "--allow-root"
    assert "--detach" in argv


@pytest.mark.parametrize(
    "dockerfile", ["Dockerfile", pytest.param("Dockerfile.gpu", marks=pytest.mark.needs("gpu"))]
)
@pytest.mark.needs("notebook")
def test_the_notebook_stage_serves_what_invoke_starts_and_comes_before_the_runtime(dockerfile):
    text = (PROJECT_DIR / dockerfile).read_text()
    stages = re.findall(r"^FROM \S+ AS (\S+)$", text, re.MULTILINE)
    assert stages[-1] == "release", (
        "the shipped image stays the last stage, what `invoke build` makes"
    )
    assert stages.index("notebook") < stages.index("runtime")
    notebook = text.split("AS notebook", 1)[1].split("AS runtime", 1)[0]
    (cmd,) = re.findall(r"^CMD (.+)$", notebook, re.MULTILINE)
    assert json.loads(cmd) == workbench.JUPYTER_LAB
    assert "requirements-notebook.txt" in notebook
    assert "jupyter" not in text.split("AS runtime", 1)[1], (
        "JupyterLab never enters the runtime image"
    )


def test_notebook_builds_its_stage_then_serves_with_a_token_only_the_caller_sees(project, capsys):
    engine = RecordingEngine()
    settings = settings_of(project, NOTEBOOK_PORT=str(free_port()))
    seen = {}
    record = engine._action_process

    def read_the_env_file(argv, options):
        if "--env-file" in argv:
            env_file = Path(value_after(argv, "--env-file")[0])
            seen["mode"] = env_file.stat().st_mode & 0o777
            seen["text"] = env_file.read_text()
        return record(argv, options)

    engine._action_process = read_the_env_file
    workbench.notebook(engine, settings, target_of(settings))
    pull, build, run = engine.actions
    assert pull.startswith("docker pull ")
    assert build.startswith("docker build ")
    assert " --target notebook --tag tf:latest-notebook " in build
    assert run.startswith("docker run --name tf-notebook ")
    token = re.fullmatch(r"JUPYTER_TOKEN=(\S{40,})\n", seen["text"]).group(1)
    assert seen["mode"] == 0o600
    assert token not in run, "the token is on no command line"
    assert f"/lab?token={token}" in capsys.readouterr().err, "printed once, in the URL to open"
    assert not Path(value_after(run.split(), "--env-file")[0]).exists(), (
        "the env file goes when the run ends"
    )
    assert (project / "notebooks").is_dir()


def test_each_start_gets_a_new_token(project, capsys):
    settings = settings_of(project, NOTEBOOK_PORT=str(free_port()))
    for _ in range(2):
        workbench.notebook(RecordingEngine(), settings, target_of(settings))
    tokens = re.findall(r"token=(\S+)", capsys.readouterr().err)
    assert len(tokens) == 2
    assert tokens[0] != tokens[1]


def test_dry_notebook_shows_no_token_and_creates_nothing(project, capsys):
    engine = RecordingEngine(dry=True)
    settings = settings_of(project, NOTEBOOK_PORT=str(free_port()))
    workbench.notebook(engine, settings, target_of(settings))
    err = capsys.readouterr().err
    assert "token" not in err
    assert f"# would create {project / 'notebooks'}" in err
    assert not (project / "notebooks").exists()


def test_gpu_notebook_needs_the_nvidia_runtime_before_it_builds(project):
    engine = RecordingEngine(answers={"{{json .Runtimes}}": (0, '{"runc": {}}', "")})
    settings = settings_of(project, NOTEBOOK_PORT=str(free_port()))
    with pytest.raises(UserError, match=r"--gpu: this engine has no NVIDIA runtime"):
        workbench.notebook(engine, settings, target_of(settings, gpu=True))
    assert engine.actions == []


def test_notebook_without_its_lock_is_refused(project):
    (project / "requirements-notebook.txt").unlink()
    engine = RecordingEngine()
    settings = settings_of(project)
    with pytest.raises(
        UserError,
        match=r"requirements-notebook\.txt is missing: the notebook image installs JupyterLab from it",
    ):
        workbench.notebook(engine, settings, target_of(settings))
    assert engine.actions == []


def test_a_failed_notebook_build_starts_nothing(project):
    engine = RecordingEngine(outcomes={"docker build": Outcome(1)})
    settings = settings_of(project, NOTEBOOK_PORT=str(free_port()))
    with pytest.raises(UserError, match=r"building tf:latest-notebook failed"):
        workbench.notebook(engine, settings, target_of(settings))
    assert not engine.ran("docker run")


def test_a_notebooks_folder_the_container_user_cannot_write_is_refused(project, monkeypatch):
    monkeypatch.setattr(workbench, "host_system", lambda: "Linux")
    (project / "notebooks").mkdir(mode=0o755)
    settings = settings_of(project, NOTEBOOK_PORT=str(free_port()))
    with pytest.raises(
        UserError,
        match=r"notebooks/ .* belongs to uid \d+, and the container's user \(uid 4242\) cannot write it",
    ):
        workbench.prepare_notebooks_dir(RecordingEngine(), settings, "4242:4242")


def test_clean_removes_the_notebook_images_and_the_tools_containers(project, capsys):
    settings = settings_of(project)
    ours = f"{project_id(settings)}\n"
    engine = RecordingEngine(
        answers={
            "container ls --all --filter label=": (0, "tf-gpu-notebook\ntf-tensorboard\n", ""),
            "container inspect --format {{.State.Status}} {{index .Config.Labels": (1, "", ""),
            "image inspect --format {{index .Config.Labels": (1, "", ""),
        }
    )
    for image in ("tf:latest", "tf:latest-notebook"):
        engine.answers = {
            f'image inspect --format {{{{index .Config.Labels "{PROJECT_LABEL}"}}}} {image}$': (
                0,
                ours,
                "",
            ),
            **engine.answers,
        }
    targets = every_target(settings, host="linux/amd64")
    containers.clean(
        engine, settings, [*targets, *workbench.tool_targets(targets)], cache_volume="tf-lock-cache"
    )
    assert engine.actions[:2] == [
        "docker container rm --force tf-gpu-notebook tf-tensorboard",
        "docker image rm tf:latest tf:latest-notebook",
    ], "TensorBoard's image is the CPU image: named once"


# --- locks ------------------------------------------------------------------------------------


@pytest.mark.needs("notebook", "gpu")
def test_the_notebook_locks_keep_the_packages_of_the_images_they_extend():
    """The GPU image's notebook stage installs the amd64 notebook lock: its shared pins must match the GPU lock's too."""
    for notebook, image in (
        ("requirements-notebook.txt", "requirements.txt"),
        ("requirements-notebook-arm64.txt", "requirements-arm64.txt"),
        ("requirements-notebook.txt", "requirements-gpu.txt"),
    ):
        extra, base = (
            pinned_versions((PROJECT_DIR / name).read_text()) for name in (notebook, image)
        )
        shared = extra.keys() & base.keys()
        assert shared, f"{notebook} and {image} share no package: was it compiled against it?"
        assert {name: extra[name] for name in shared} == {name: base[name] for name in shared}, (
            f"{notebook} against {image}"
        )
        assert "jupyterlab" in extra
        assert "jupyterlab" not in base, (
            f"JupyterLab is in {image}, which the shipped image installs"
        )


@pytest.mark.needs("notebook")
def test_a_new_cpu_lock_makes_its_notebook_lock_stale(tmp_path):
    for name in PROJECT_DIR.glob("requirements*"):
        (tmp_path / name.name).write_bytes(name.read_bytes())
    assert locks.is_current(tmp_path, locks.NOTEBOOK_ARM64)
    lock = tmp_path / "requirements-arm64.txt"
    lock.write_text(
        locks.with_footer(tmp_path, locks.CPU_ARM64, lock.read_text() + "tabulate==0.9.0\n")
    )
    assert not locks.is_current(tmp_path, locks.NOTEBOOK_ARM64)
    assert locks.is_current(tmp_path, locks.NOTEBOOK_AMD64)


# --- the tasks --------------------------------------------------------------------------------


@pytest.fixture
def task_project(tmp_path, monkeypatch):
    folder = tmp_path / "proj"
    folder.mkdir()
    for lock in [*PROJECT_DIR.glob("requirements*.txt"), *PROJECT_DIR.glob("requirements*.in")]:
        (folder / lock.name).write_bytes(lock.read_bytes())
    with_capabilities(folder)
    monkeypatch.setattr(tasks, "PROJECT_DIR", folder)
    for key in (
        "IMAGE_NAME",
        "IMAGE_TAG",
        "PLATFORM",
        "DATA_DIR",
        "TENSORBOARD_PORT",
        "NOTEBOOK_PORT",
        "BUILD_CACHE",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOCKER", str(tmp_path / "no-docker-here"))
    return folder


@pytest.mark.needs("notebook", "gpu")
def test_dry_tensorboard_and_notebook_print_their_containers(task_project, capsys):
    context = dry_context()
    tasks.tensorboard(context, detach=True)
    tasks.notebook(context, gpu=True)
    board, pull, build, lab = commands_run(context)
    assert " pull " in pull
    assert " run --name proj-tensorboard --detach " in board
    assert board.endswith(
        "proj:latest tensorboard --logdir /app/data/logs --host 0.0.0.0 --port 6006"
    )
    assert " build --platform linux/amd64 " in build
    assert "Dockerfile.gpu --target notebook --tag proj:latest-gpu-notebook" in build
    assert " run --name proj-gpu-notebook " in lab
    assert " --gpus all " in lab
    assert "token=" not in capsys.readouterr().err


@pytest.mark.needs("notebook", "gpu")
def test_stop_takes_the_tools_by_flag(task_project, capsys):
    context = dry_context()
    tasks.stop(context, tensorboard=True, notebook=True)
    tasks.stop(context, notebook=True, gpu=True)
    tasks.stop(context)
    assert commands_run(context) == [], "under --dry without an engine, nothing is running"
    assert capsys.readouterr().err.splitlines() == [
        "proj-tensorboard is not running",
        "proj-notebook is not running",
        "proj-gpu-notebook is not running",
        "proj is not running",
    ]
    with pytest.raises(
        Exit, match=r"^error: --tensorboard with --gpu: TensorBoard runs from the CPU image"
    ):
        tasks.stop(context, tensorboard=True, gpu=True)


@pytest.mark.needs("notebook")
def test_a_refused_tool_is_one_line(task_project):
    (task_project / "requirements-notebook-arm64.txt").unlink()
    (task_project / "requirements-notebook.txt").unlink()
    with pytest.raises(Exit) as refused:
        tasks.notebook(dry_context())
    assert str(refused.value.message).startswith("error: requirements-notebook.txt is missing")
