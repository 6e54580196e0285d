"""One container lifecycle (devkit/runtime.py), with the engine scripted: a start removes only the
container it made, a detached container that ends at once is a failure with its last lines, another
project's container or network of the same name is left alone by every task, and the files and
signals around a start."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from invoke import Config, Context

from devkit import containers, distributed, host, runtime, workbench
from devkit.engine import Engine, Outcome
from devkit.errors import UserError
from devkit.targets import project_id
from helpers.command_lines import settings_of, target_of
from helpers.engine import free_port
from helpers.recording_engine import RecordingEngine

BUILT = {"image inspect": (0, "linux/amd64\n", "")}


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


def spec_of(settings, **fields) -> runtime.ContainerSpec:
    return runtime.ContainerSpec(
        image="tf:latest", name="tf", project=project_id(settings), **fields
    )


# --- a start removes what it made, and nothing else -------------------------------------------


def test_a_refused_start_removes_nothing_of_the_start_that_won_the_name(project):
    """Two `invoke run --detach` at once: both find the name free, one creates the container, the
    other's `docker run` fails on the name. The one that failed must leave the winner's alone."""
    settings = settings_of(project)
    engine = RecordingEngine(
        outcomes={
            "docker run": Outcome(
                125, "", 'docker: Error response from daemon: Conflict. The container name "/tf"\n'
            )
        }
    )
    record = engine._action_process

    def the_other_start_won(argv, options):
        answer = record(argv, options)
        if argv[1] == "run":  # the winner's container, with its own start label
            engine.answers["container inspect"] = (
                0,
                f"running {project_id(settings)} another-start its-id\n",
                "",
            )
        return answer

    engine._action_process = the_other_start_won
    with pytest.raises(UserError, match=r"^tf did not start: docker: Error response .*Conflict"):
        runtime.start(engine, spec_of(settings), detach=True)
    assert [line.split()[1] for line in engine.actions] == ["run"], "no rm of the winner's"


def test_a_failed_foreground_start_removes_the_container_it_made(project):
    settings = settings_of(project)
    engine = RecordingEngine(outcomes={"docker run": Outcome(1)}, run_leaves="exited")
    ended = runtime.start(engine, spec_of(settings))
    assert ended.outcome.exited == 1
    assert engine.actions[-1] == "docker container rm --force id-of-tf"


# --- a detached container that ends at once ---------------------------------------------------


def test_a_detached_container_that_exits_at_once_fails_with_its_last_lines(project, capsys):
    settings = settings_of(project)
    engine = RecordingEngine(
        answers={
            "{{.State.ExitCode}}": (0, "exited 3 \n", ""),
            "logs --tail": (0, "loading\n", "KeyError: 'MODEL_NAME'\n"),
        },
        outcomes={"docker run": Outcome(0, "c0ffee\n", "")},
    )
    with pytest.raises(UserError, match=r"^tf exited at once with status 3; its last lines"):
        runtime.start(engine, spec_of(settings), detach=True)
    err = capsys.readouterr().err
    assert "KeyError: 'MODEL_NAME'" in err
    assert "c0ffee" not in err, "the id that `docker run --detach` prints reaches no console"
    assert engine.actions[-1] == "docker rm --force c0ffee", "removed, once its lines are read"


def test_a_detached_container_that_runs_is_left_running(project):
    settings = settings_of(project)
    engine = RecordingEngine(
        answers={"{{.State.ExitCode}}": (0, "running 0 healthy\n", "")},
        outcomes={"docker run": Outcome(0, "c0ffee\n", "")},
    )
    runtime.start(engine, spec_of(settings), detach=True)
    assert [line.split()[1] for line in engine.actions] == ["run"]
    assert " --rm " not in engine.actions[0], "kept once ended, so that `invoke logs` says why"


def test_the_id_of_a_detached_container_is_captured_not_shown(project):
    settings = settings_of(project)
    engine = RecordingEngine(answers={"{{.State.ExitCode}}": (0, "running 0 healthy\n", "")})
    hidden = []
    record = engine._action_process
    engine._action_process = lambda argv, options: (
        hidden.append(options["hide"]) or record(argv, options)
    )
    runtime.start(engine, spec_of(settings), detach=True)
    assert hidden == [True]


# --- another project's container or network is left alone, by every task ----------------------


def foreign(name: str) -> dict:
    return {f" {{{{.Id}}}} {name}$": (0, "running 0123456789abcdef\n", "")}


@pytest.mark.parametrize("tool", ["tensorboard", "notebook"])
def test_the_tools_leave_another_projects_container_of_their_name_alone(project, tool):
    (project / "requirements-notebook.txt").write_text("")
    settings = settings_of(
        project, TENSORBOARD_PORT=str(free_port()), NOTEBOOK_PORT=str(free_port())
    )
    engine = RecordingEngine(answers={**BUILT, **foreign(f"tf-{tool}")})
    with pytest.raises(
        UserError,
        match=rf"^tf-{tool} is a container of the same name that is not this project's .*"
        rf"`docker rm --force tf-{tool}` removes it",
    ):
        getattr(workbench, tool)(engine, settings, target_of(settings))
    assert engine.actions == []


def test_train_leaves_another_projects_worker_and_network_alone(project):
    settings = settings_of(project, "acme/flowers")
    memory = {"info --format {{.MemTotal}}": (0, f"{8 * 2**30}\n", "")}
    engine = RecordingEngine(answers={**BUILT, **memory, **foreign("acme-flowers-train-1")})
    with pytest.raises(UserError, match=r"^acme-flowers-train-1 is a container of the same name"):
        distributed.train(engine, settings, target_of(settings), workers="2")
    assert engine.actions == []
    network = {"network inspect": (0, "0123456789abcdef\n", "")}
    engine = RecordingEngine(answers={**BUILT, **memory, **network})
    with pytest.raises(
        UserError,
        match=r"^acme-flowers-train is a network of the same name that is not this project's .*"
        r"`docker network rm acme-flowers-train` removes it",
    ):
        distributed.train(engine, settings, target_of(settings), workers="2")
    assert engine.actions == []


# --- secrets in the temporary folder ----------------------------------------------------------


def write_a_secret_then_get_sigterm(seen: list[Path]) -> None:
    with host.private_folder("app-env") as folder:
        seen.append(folder)
        (folder / "app.env").write_text("KEY=s3cret\n")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)


def test_a_private_folder_goes_on_sigterm():
    seen: list[Path] = []
    with pytest.raises(host.Signalled) as raised:
        write_a_secret_then_get_sigterm(seen)
    assert raised.value.number == signal.SIGTERM
    assert not seen[0].exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_what_a_killed_task_left_is_removed_and_a_running_tasks_is_not(tmp_path):
    gone = tmp_path / "invoke-app-env-999999999-abc"
    alive = tmp_path / f"invoke-build-{os.getpid()}-abc"
    other = tmp_path / "invoke-something"
    for folder in (gone, alive, other):
        folder.mkdir()
    assert host.remove_orphaned_folders(tmp_path) == [gone]
    assert not gone.exists()
    assert alive.exists()
    assert other.exists()


# --- a signal to invoke alone reaches the command it runs --------------------------------------


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_invoke_alone_ends_the_command_it_runs(number):
    """Without a terminal, invoke typed Ctrl-C into a pipe: the command ran on, and succeeded."""
    engine = Engine("docker", Context(Config()))
    threading.Timer(0.5, os.kill, (os.getpid(), number)).start()
    started = time.monotonic()
    outcome = engine.run(["sleep", "20"], hide=True)
    assert time.monotonic() - started < 10
    assert outcome.exited == -number
    assert outcome.failed


# --- only the project's own, local images run ---------------------------------------------------


@pytest.mark.parametrize("docker", ["docker", "podman"])
def test_every_run_takes_the_local_image_and_never_pulls(project, docker):
    settings = settings_of(project)
    engine = RecordingEngine(docker=docker)
    for options in ({}, {"detach": True}, {"interactive": True, "tty": True}):
        argv = runtime.command(engine, spec_of(settings), **options)
        assert argv[argv.index("--pull") + 1] == "never", (
            "a missing image is an error, never one of its name from Docker Hub"
        )
    runtime.require_platform_support(engine, "tf:latest-arm64", "linux/arm64")
    assert " --pull never " in engine.actions[0], "the emulation probe pulls nothing either"


@pytest.mark.parametrize(
    ("task", "options"),
    [
        ("run", {}),
        ("run", {"cmd": "python -m app.train"}),
        ("run", {"dev": True}),
        ("shell", {"tty": False}),
    ],
)
def test_a_missing_image_is_one_line_before_anything_is_said_or_made(
    project, capsys, task, options
):
    settings = settings_of(project)
    engine = RecordingEngine()
    with pytest.raises(UserError) as refused:
        getattr(containers, task)(engine, settings, target_of(settings), **options)
    assert str(refused.value) == "there is no image tf:latest; `invoke build` makes it"
    assert engine.actions == [], "nothing pulled, nothing created"
    assert capsys.readouterr().err == "", "no 'serving ...' before the refusal"
    assert not (project / "data").exists()
