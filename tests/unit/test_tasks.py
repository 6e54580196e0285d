"""The task menu under `invoke --dry`, with no container CLI at all: each task reaches its pipeline
and prints the commands it would run; refusals are one line."""

import shutil

import pytest
from invoke import Exit

import tasks
from helpers.command_lines import commands_run, dry_context
from helpers.project import with_capabilities

PROJECT_DIR = tasks.PROJECT_DIR


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with the real locks and their inputs, tests/container, and no engine anywhere."""
    folder = tmp_path / "proj"
    folder.mkdir()
    for lock in [*PROJECT_DIR.glob("requirements*.txt"), *PROJECT_DIR.glob("requirements*.in")]:
        shutil.copy(lock, folder)
    (folder / "tests" / "container").mkdir(parents=True)
    with_capabilities(folder)
    monkeypatch.setattr(tasks, "PROJECT_DIR", folder)
    for key in (
        "IMAGE_NAME",
        "IMAGE_TAG",
        "PLATFORM",
        "REGISTRY",
        "DATA_DIR",
        "HOST_PORT",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
    ):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOCKER", str(tmp_path / "no-docker-here"))
    return folder


def test_dry_build_prints_one_build(project):
    context = dry_context()
    tasks.build(context, platform="linux/arm64")
    (command,) = commands_run(context)
    assert " build --platform linux/arm64 " in command
    assert "--tag proj:latest" in command


def test_dry_run_and_shell_print_their_container_and_create_nothing(project):
    context = dry_context()
    tasks.run(context, detach=True, cmd="python -m app.train")
    tasks.shell(context)
    run, shell = commands_run(context)
    assert " run --name proj-run-" in run, "a one-off has a name of its own, beside the server's"
    assert " --detach " in run
    assert " --publish " not in run
    assert run.endswith("proj:latest python -m app.train")
    assert " run --name proj-shell-" in shell
    assert shell.endswith("proj:latest bash")
    assert not (project / "data").exists()


def test_dry_container_test_installs_pytest_and_runs_the_tests(project):
    context = dry_context()
    tasks.container_test(context)
    install, test = commands_run(context)
    assert " -m pip install " in install
    assert " run --name proj-container-test " in test
    assert test.endswith("--rootdir /app/tests /app/tests/container")


def test_dry_stop_clean_and_lock_need_no_engine(project):
    context = dry_context()
    tasks.stop(context)
    tasks.clean(context)
    tasks.lock(context, dev=True)
    assert commands_run(context) == [], (
        "nothing runs, nothing is there to remove, the dev lock is current"
    )
    tasks.clean(context, all_=True)
    assert [command.split(" ", 1)[1] for command in commands_run(context)] == [
        "builder prune --force"
    ]


def test_lock_check_names_what_is_stale(project):
    (project / "requirements-dev.in").write_text("invoke\n")
    with pytest.raises(Exit, match=r"^error: out of date: requirements-dev.txt; run `invoke lock`"):
        tasks.lock(dry_context(), dev=True, check=True)


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        (tasks.push, {}, "error: REGISTRY is not set, so there is nowhere to push; set it in .env"),
        pytest.param(
            tasks.build,
            {"gpu": True, "platform": "linux/arm64"},
            "error: the GPU image is linux/amd64 only",
            marks=pytest.mark.needs("gpu"),
        ),
        (tasks.build, {"build_arg": ["NOPE"]}, "error: --build-arg 'NOPE': expected NAME=VALUE"),
        (tasks.run, {"cmd": "'unclosed"}, 'error: --cmd "\'unclosed": No closing quotation'),
        (
            tasks.run,
            {"publish": ["9000"]},
            "error: --publish goes with --cmd; the server publishes HOST_PORT",
        ),
        (
            tasks.run,
            {"cmd": "python -m app", "publish": ["9000:"]},
            "error: --publish '9000:': expected HOST_PORT or HOST_PORT:CONTAINER_PORT",
        ),
        (tasks.logs, {}, "error: there is no container proj; `invoke run --detach` starts it"),
        pytest.param(
            tasks.logs,
            {"gpu": True},
            "error: there is no container proj-gpu; `invoke run --detach --gpu` starts it",
            marks=pytest.mark.needs("gpu"),
        ),
        pytest.param(
            tasks.lock,
            {"dev": True, "gpu": True},
            "error: --dev locks the host tools; it does not go with --gpu or --platform",
            marks=pytest.mark.needs("gpu"),
        ),
    ],
)
def test_refusals_are_one_line(project, task, kwargs, message):
    with pytest.raises(Exit) as refused:
        task(dry_context(), **kwargs)
    assert str(refused.value.message).startswith(message)
    assert "\n" not in refused.value.message


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("HOST_PORT", "²", "error: HOST_PORT='²' (from environment): not a port number (1-65535)"),
        (
            "DATA_DIR",
            "~no-such-user-here/x",
            "error: DATA_DIR='~no-such-user-here/x' (from environment): no such user's home folder",
        ),
        (
            "DOCKER",
            "{folder}",
            "error: DOCKER='{folder}' (from environment): a folder, not a program",
        ),
        (
            "BASE_IMAGE",
            "--privileged",
            "error: BASE_IMAGE='--privileged' (from environment): may not start with '-'",
        ),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_1_even_under_dry(
    project, monkeypatch, key, value, message
):
    value, message = (text.replace("{folder}", str(project)) for text in (value, message))
    monkeypatch.setenv(key, value)
    for task in (tasks.build, tasks.run, tasks.lock):
        with pytest.raises(Exit) as refused:
            task(dry_context())
        assert refused.value.code == 1
        assert str(refused.value.message).startswith(message)
        assert "\n" not in refused.value.message
