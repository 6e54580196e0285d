"""The container pipelines with the engine scripted: app keys only in the container, the project's
label, one-off commands beside the server, detached runs and their logs, and signals to invoke."""

import os
import re
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

from devkit import containers, distributed, runtime, sources
from devkit.engine import Outcome
from devkit.errors import UserError
from devkit.settings import load_settings
from devkit.targets import project_id
from helpers.command_lines import target_of
from helpers.engine import free_port
from helpers.recording_engine import BUILT, RecordingEngine

# The query that says whether a container exists, runs, is this project's and which start made it.
INSPECT = 'container inspect --format {{.State.Status}} {{index .Config.Labels "org.tensorflow-template.project"}}'
# The server's container `tf`, as that query asks for it.
SERVER = " {{.Id}} tf$"
# A detached container, a moment after it started: running, and healthy.
HEALTHY = {"{{.State.ExitCode}}": (0, "running 0 healthy\n", "")}


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "requirements.txt").write_text("tensorflow-cpu==2.21.0 \\\n    --hash=sha256:abc\n")
    (folder / "requirements-dev.txt").write_text(
        "pytest==8.0.0 \\\n    --hash=sha256:abc\n    # via -r requirements-dev.in\n"
    )
    return folder


def settings_of(project, **environ):
    return load_settings(
        project, environ={"IMAGE_NAME": "tf", "HOST_PORT": str(free_port()), **environ}
    )


def on_action(engine: RecordingEngine, pattern: str, act):
    """Call `act(argv, options)` when the engine runs an action that contains `pattern`; its answer stands."""
    record = engine._action_process

    def acting(argv, options):
        answer = record(argv, options)
        return act(argv, options) if pattern in " ".join(argv) else answer

    engine._action_process = acting


# --- app keys: the container gets them, the docker CLI does not --------------------------------


def test_app_keys_reach_docker_run_in_a_private_file_that_is_gone_after(project, capsys):
    (project / ".env").write_text("API_TOKEN=s3cret value\nMODEL=small\n")
    settings = settings_of(project)
    engine = RecordingEngine(answers=BUILT)
    seen = {}

    def read_the_env_file(argv, options):
        path = Path(argv[argv.index("--env-file") + 1])
        seen.update(
            text=path.read_text(),
            mode=stat.S_IMODE(path.stat().st_mode),
            folder=stat.S_IMODE(path.parent.stat().st_mode),
        )
        seen.update(path=path, env=options["env"])
        return Outcome(0)

    on_action(engine, "docker run", read_the_env_file)
    containers.run(engine, settings, target_of(settings))
    assert seen["text"] == "API_TOKEN=s3cret value\nMODEL=small\n"
    assert (seen["mode"], seen["folder"]) == (0o600, 0o700)
    assert seen["env"] == {}, "nothing of .env in the docker CLI's own environment"
    assert not seen["path"].parent.exists()
    assert not any("s3cret" in line for line in engine.actions)
    assert "s3cret" not in "".join(capsys.readouterr())


def test_the_app_env_file_is_removed_when_the_run_fails(project):
    (project / ".env").write_text("API_TOKEN=s3cret\n")
    settings = settings_of(project)
    engine = RecordingEngine(answers=BUILT)
    paths = []

    def fail(argv, options):
        paths.append(Path(argv[argv.index("--env-file") + 1]))
        raise RuntimeError("the CLI vanished")

    on_action(engine, "docker run", fail)
    with pytest.raises(RuntimeError):
        containers.run(engine, settings, target_of(settings))
    assert paths
    assert not paths[0].exists()


def test_an_app_value_of_several_lines_is_refused_before_anything_runs(project):
    (project / ".env").write_text('CERT="line one\nline two"\n')
    settings = settings_of(project)
    engine = RecordingEngine(answers=BUILT)
    with pytest.raises(
        UserError,
        match=r"^the app key CERT has a value of several lines, which docker's --env-file cannot pass",
    ):
        containers.run(engine, settings, target_of(settings))
    assert not engine.ran("docker run")


def test_without_app_keys_there_is_no_env_file(project):
    settings = settings_of(project)
    engine = RecordingEngine(answers=BUILT)
    containers.run(engine, settings, target_of(settings))
    assert "--env-file" not in engine.actions[0]


# --- the project's label: what is not this project's is left alone --------------------------------


def test_a_container_of_the_same_name_from_another_project_is_left_alone(project, capsys):
    settings = settings_of(project)
    foreign = {SERVER: (0, "running 0123456789abcdef\n", "")}
    with pytest.raises(
        UserError,
        match=r"^tf is a container of the same name that is not this project's .*or set IMAGE_NAME",
    ):
        containers.run(RecordingEngine(answers=foreign), settings, target_of(settings))
    engine = RecordingEngine(answers=foreign)
    containers.stop(engine, settings, target_of(settings))
    assert engine.actions == []
    assert capsys.readouterr().err.startswith(
        "left alone: tf is a container of the same name that is not this project's"
    )
    with pytest.raises(
        UserError, match=r"^tf is a container of the same name that is not this project's"
    ):
        containers.logs(RecordingEngine(answers=foreign), settings, target_of(settings))


def test_stop_removes_the_projects_own_container(project, capsys):
    settings = settings_of(project)
    engine = RecordingEngine(answers={INSPECT: (0, f"running {project_id(settings)}\n", "")})
    containers.stop(engine, settings, target_of(settings, gpu=True))
    assert engine.actions == ["docker stop tf-gpu"], (
        "SIGTERM, so the app finishes what it serves; --rm removes it"
    )
    assert capsys.readouterr().err == "stopped and removed tf-gpu\n"


def test_stop_leaves_a_removal_under_way_to_the_engine(project, capsys):
    settings = settings_of(project)
    removing = {"container inspect --format {{.State.Status}} tf-gpu$": (0, "removing\n", "")}
    engine = RecordingEngine(
        answers={INSPECT: (0, f"running {project_id(settings)}\n", ""), **removing}
    )
    containers.stop(engine, settings, target_of(settings, gpu=True))
    assert engine.actions == ["docker stop tf-gpu"], (
        "--rm is removing it already: a `docker rm` would fail"
    )
    assert capsys.readouterr().err == "stopped and removed tf-gpu\n"


def test_stop_removes_what_the_stop_left(project, capsys):
    settings = settings_of(project)
    left = {"container inspect --format {{.State.Status}} tf-gpu$": (0, "exited\n", "")}
    engine = RecordingEngine(
        answers={INSPECT: (0, f"running {project_id(settings)}\n", ""), **left}
    )
    containers.stop(engine, settings, target_of(settings, gpu=True))
    assert engine.actions == ["docker stop tf-gpu", "docker container rm --force tf-gpu"]


# --- one-off commands, detached runs, logs --------------------------------------------------------


def test_a_one_off_runs_beside_the_server_in_a_container_of_its_own_and_says_what_it_runs(
    project, capsys
):
    settings = settings_of(project)
    engine = RecordingEngine(
        answers={SERVER: (0, f"running {project_id(settings)}\n", ""), **BUILT}
    )
    with socket.socket() as server_port:
        server_port.bind(("127.0.0.1", settings.host_port))
        server_port.listen()
        containers.run(engine, settings, target_of(settings), cmd="python -m app.train --epochs 1")
    (run,) = [line for line in engine.actions if " run " in line]
    name = re.search(r"--name (\S+)", run)[1]
    assert re.fullmatch(r"tf-run-[0-9a-f]{6}", name)
    assert "--publish" not in run
    assert run.endswith("tf:latest python -m app.train --epochs 1")
    assert capsys.readouterr().err.startswith(
        f"running `python -m app.train --epochs 1` in {name} (tf:latest; no port published; "
    )
    again = RecordingEngine(answers=BUILT)
    containers.run(again, settings, target_of(settings), cmd="python -m app.train")
    assert re.search(r"--name (\S+)", again.actions[0])[1] != name, (
        "several one-offs may run at once"
    )


def test_a_one_off_publishes_what_it_asks_for_once_the_port_is_free(project):
    settings = settings_of(project)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        engine = RecordingEngine()
        with pytest.raises(UserError, match=rf"^HOST_PORT {port} on 127.0.0.1 is already in use"):
            containers.run(
                engine, settings, target_of(settings), cmd="python -m app", publish=(str(port),)
            )
        assert engine.actions == []


def test_a_detached_server_says_its_name_its_url_and_how_to_read_its_output(project, capsys):
    settings = settings_of(project)
    nvidia = {"{{json .Runtimes}}": (0, '{"nvidia": {}, "runc": {}}', "")}
    engine = RecordingEngine(
        answers={**nvidia, **HEALTHY, **BUILT},
        outcomes={"docker run": Outcome(0, "f00dcafe\n", "")},
    )
    containers.run(engine, settings, target_of(settings, gpu=True), detach=True)
    err = capsys.readouterr().err.splitlines()
    assert err[-2] == f"tf-gpu runs in the background on http://127.0.0.1:{settings.host_port}"
    assert err[-1] == "`invoke logs --follow --gpu` shows its output; `invoke stop --gpu` stops it"


def test_a_detached_one_off_says_how_to_read_and_stop_it(project, capsys):
    settings = settings_of(project)
    engine = RecordingEngine(answers={**HEALTHY, **BUILT})
    containers.run(engine, settings, target_of(settings), detach=True, cmd="sleep 60")
    *_, started, follow = capsys.readouterr().err.splitlines()
    name = started.split()[0]
    assert started == f"{name} runs in the background"
    assert (
        follow == f"`docker logs --follow {name}` shows its output; "
        f"`docker rm --force {name}` stops and removes it"
    )


def test_logs_show_the_projects_container_and_follow_on_request(project):
    settings = settings_of(project)
    engine = RecordingEngine(answers={INSPECT: (0, f"running {project_id(settings)}\n", "")})
    containers.logs(engine, settings, target_of(settings))
    containers.logs(engine, settings, target_of(settings), follow=True)
    assert engine.actions == ["docker logs tf", "docker logs --follow tf"]
    ended_by_ctrl_c = RecordingEngine(
        answers=engine.answers, outcomes={"docker logs": Outcome(-signal.SIGINT)}
    )
    containers.logs(ended_by_ctrl_c, settings, target_of(settings), follow=True)
    failed = RecordingEngine(answers=engine.answers, outcomes={"docker logs": Outcome(1)})
    with pytest.raises(UserError, match=r"^could not show the output of tf \(exit 1\)$"):
        containers.logs(failed, settings, target_of(settings))


# --- signals to invoke alone: the container is stopped and removed -----------------------------------


def signal_during(engine: RecordingEngine, pattern: str, number: int, exited: int):
    """While the action `pattern` runs, `number` reaches this process; the action ends once `docker stop` ran."""

    def interrupted(argv, options):
        os.kill(os.getpid(), number)
        deadline = time.monotonic() + 10
        while not engine.ran("docker stop "):
            assert time.monotonic() < deadline, "no docker stop within 10 s of the signal"
            time.sleep(0.01)
        return Outcome(exited)

    on_action(engine, pattern, interrupted)


@pytest.mark.parametrize(
    ("number", "exited"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]
)
def test_a_signal_to_invoke_stops_and_removes_a_foreground_run(project, capsys, number, exited):
    (project / ".env").write_text("API_TOKEN=s3cret\n")
    settings = settings_of(project)
    engine = RecordingEngine(answers=BUILT)
    before = signal.getsignal(number)
    signal_during(engine, "docker run", number, exited)
    containers.run(engine, settings, target_of(settings), cmd="python -m app.train")
    name = re.search(r"--name (\S+)", engine.actions[0])[1]
    assert f"docker stop {name}" in engine.actions
    assert capsys.readouterr().err.endswith(
        f"stopped and removed {name} on {signal.Signals(number).name}\n"
    )
    assert signal.getsignal(number) is before, "invoke's own handling is back after the run"
    assert not Path(re.search(r"--env-file (\S+)", engine.actions[0])[1]).exists()


def test_in_a_terminal_ctrl_c_is_left_to_invoke_which_types_it_into_the_container(project):
    settings = settings_of(project)
    engine = RecordingEngine(answers=BUILT)
    during = []
    on_action(
        engine,
        "docker run",
        lambda argv, options: during.append(signal.getsignal(signal.SIGINT)) or Outcome(130),
    )
    containers.run(engine, settings, target_of(settings), tty=True)
    assert during == [signal.default_int_handler]
    assert not engine.ran("docker stop")


def test_a_container_created_just_after_the_signal_is_stopped_too():
    engine = RecordingEngine(
        outcomes={"docker stop": Outcome(1, "", "Error: No such container: tf-run-1\n")}
    )
    with runtime.StopOnSignal(engine, ["tf-run-1", "tf-run-2"]) as stopped:
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while engine.actions.count("docker stop tf-run-1 tf-run-2") < 2:
            assert time.monotonic() < deadline, "docker stop was not tried again"
            time.sleep(0.05)
    assert stopped.received == signal.SIGTERM
    count = len(engine.actions)
    time.sleep(1.2)
    assert len(engine.actions) == count, "no stop once the block has ended"


def test_a_signal_during_the_container_test_stops_it_and_fails(project):
    settings = settings_of(project)
    engine = RecordingEngine(answers={"image inspect": (0, "linux/amd64\n", "")})
    signal_during(engine, "docker run", signal.SIGTERM, 143)
    with pytest.raises(
        UserError,
        match=r"^the container test was stopped on SIGTERM; tf-container-test is removed$",
    ):
        containers.container_test(engine, settings, target_of(settings), python="python3")
    assert "docker stop tf-container-test" in engine.actions


# --- an image older than src/ or its lock --------------------------------------------------------

LABELS = "image inspect --format {{index .Config.Labels"


def built_from(project: Path) -> dict:
    """The engine's answers for an image built from the project as it is now."""
    labels = sources.digest_labels(project, project / "requirements.txt")
    answer = f"{labels[sources.SOURCE_LABEL]} {labels[sources.LOCK_LABEL]}\n"
    return {**BUILT, LABELS: (0, answer, "")}


@pytest.fixture
def app(project) -> Path:
    (project / "src" / "app").mkdir(parents=True)
    (project / "src" / "app" / "__main__.py").write_text("print('v1')\n")
    (project / ".dockerignore").write_text("*\n!src/\n**/__pycache__\n**/*.py[cod]\n")
    return project


def test_the_source_digest_follows_content_not_times_and_skips_what_the_build_ignores(app):
    before = sources.source_digest(app)
    (app / "src" / "app" / "__pycache__").mkdir()
    (app / "src" / "app" / "__pycache__" / "__main__.cpython-311.pyc").write_bytes(b"\0")
    os.utime(app / "src" / "app" / "__main__.py", (0, 0))
    assert sources.source_digest(app) == before, "bytecode and a touch change nothing"
    (app / "src" / "app" / "__main__.py").write_text("print('v2')\n")
    assert sources.source_digest(app) != before
    (app / "src" / "app" / "__main__.py").write_text("print('v1')\n")
    (app / "src" / "app" / "extra.py").write_text("")
    assert sources.source_digest(app) != before, "a new file counts"


@pytest.mark.parametrize("task", ["run", "shell", "train"])
def test_an_edit_in_src_after_the_build_is_one_line_and_the_run_goes_on(app, capsys, task):
    settings = settings_of(app)
    answers = {**built_from(app), "{{.MemTotal}}": (0, f"{8 * 2**30}\n", "")}
    (app / "src" / "app" / "__main__.py").write_text("print('v2')\n")
    engine = RecordingEngine(answers=answers, dry=task == "train")
    if task == "train":
        distributed.train(engine, settings, target_of(settings))
    else:
        getattr(containers, task)(engine, settings, target_of(settings), tty=False)
    stale = [line for line in capsys.readouterr().err.splitlines() if "changed since" in line]
    assert stale == [
        "warning: src/ changed since tf:latest was built, which still has the old one; "
        "`invoke build` rebuilds it"
    ]
    started = " network create " if task == "train" else " run "
    assert any(started in line for line in engine.actions), "the run goes on"


def test_a_fresh_image_or_one_without_digests_says_nothing(app, capsys):
    settings = settings_of(app)
    containers.run(RecordingEngine(answers=built_from(app)), settings, target_of(settings))
    containers.run(RecordingEngine(answers=BUILT), settings, target_of(settings))
    assert "changed since" not in capsys.readouterr().err


def test_dev_mounts_src_read_only_over_the_images_and_warns_only_of_the_lock(app, capsys):
    settings = settings_of(app)
    answers = built_from(app)
    (app / "src" / "app" / "__main__.py").write_text("print('v2')\n")
    (app / "requirements.txt").write_text("tensorflow-cpu==2.22.0 \\\n    --hash=sha256:def\n")
    engine = RecordingEngine(answers=answers)
    containers.run(engine, settings, target_of(settings), dev=True, read_only=True)
    err = capsys.readouterr().err
    assert "warning: requirements.txt changed since tf:latest was built" in err
    assert "src/ changed" not in err, "src/ is mounted: the image's own is not what runs"
    assert f"src/ {app / 'src'} read-only" in err
    run = next(line for line in engine.actions if " run " in line)
    assert f"--mount type=bind,source={app / 'src'},target=/app/src,readonly " in run
    for flag in ("--cap-drop ALL", "--security-opt no-new-privileges", "--read-only"):
        assert flag in run, "--dev keeps the least privilege"
    plain = RecordingEngine(answers=answers)
    containers.run(plain, settings, target_of(settings))
    assert "target=/app/src" not in plain.actions[0], "without --dev, the image's src/"
