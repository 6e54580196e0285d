"""The task menu under `invoke --dry`, with no container CLI at all: each task reaches its pipeline
and prints the commands it would run; refusals are one line."""

import re
import shutil

import pytest
from invoke import Collection, Exit

import tasks
from devkit.settings import SETTING_KEYS, load_settings
from devkit.targets import project_id
from helpers.base_image import docker_index
from helpers.command_lines import commands_run, dry_context
from helpers.fake_cli import fake_cli
from helpers.project import with_capabilities

PROJECT_DIR = tasks.PROJECT_DIR


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with the real locks and their inputs, tests/container, and no engine
    anywhere."""
    folder = tmp_path / "proj"
    folder.mkdir()
    for lock in [*PROJECT_DIR.glob("requirements*.txt"), *PROJECT_DIR.glob("requirements*.in")]:
        shutil.copy(lock, folder)
    (folder / "tests" / "container").mkdir(parents=True)
    with_capabilities(folder)
    monkeypatch.setattr(tasks, "PROJECT_DIR", folder)
    # None of the caller's settings (CI exports BASE_IMAGE, BUILD_CA_BUNDLE, DOCKER): the defaults.
    for key in SETTING_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DOCKER", str(tmp_path / "no-docker-here"))
    return folder


def test_dry_build_prints_one_build(project):
    context = dry_context()
    tasks.build(context, platform="linux/arm64")
    pull, probe, command = commands_run(context)
    assert pull.endswith(" pull --quiet --platform linux/arm64 python:3.11-slim")
    assert " run --rm --pull never --platform linux/arm64 --entrypoint true " in probe, (
        "emulation, probed"
    )
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


@pytest.mark.needs("gpu")
def test_dry_container_test_builds_installs_pytest_and_runs_the_tests(project):
    context = dry_context()
    tasks.container_test(context, gpu=True)
    pull, build, install, test = commands_run(context)
    assert " pull " in pull, "the base image for the platform, then"
    assert " build " in build, "the image it tests, built first"
    assert "/Dockerfile.gpu " in build
    assert "--tag proj:latest-gpu" in build
    assert " -m pip install " in install
    assert " run --name proj-gpu-container-test " in test
    assert test.endswith(
        "proj:latest-gpu python -m pytest -p no:cacheprovider -ra --import-mode=importlib"
        " --rootdir /app/tests /app/tests/container"
    )


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
        (
            "HOST_PORT",
            "²",
            "error: HOST_PORT='²' (from environment): not a port number (1-65535)",
        ),
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


# What a line may say only once it happened: never under --dry, which runs no action.
OUTCOME_WORDS = re.compile(
    r"\b(removed|pushed|stopped|started|freed|replaced|built|runs in the background|"
    r"ended|exited|serving \S+ as|running `)",
    re.IGNORECASE,
)


def test_every_task_under_dry_prints_commands_and_claims_no_outcome(
    project, tmp_path, capfd, monkeypatch
):
    """Under --dry, with an engine that holds this project's containers, images and a stale lock
    (so that each task has something to act on), no line says that anything happened."""
    (project / "requirements-dev.in").write_text("invoke\n")  # a lock that is out of date
    (project / "requirements-notebook.txt").write_text("")
    (project / "tests" / "container").mkdir(parents=True, exist_ok=True)
    if (PROJECT_DIR / "deploy").is_dir():  # absent where the project has no Kubernetes
        shutil.copytree(PROJECT_DIR / "deploy", project / "deploy", dirs_exist_ok=True)
    mine = project_id(load_settings(project, environ={}))
    docker = fake_cli(
        tmp_path,
        f"""*"version --format"*) echo 24.0.7 ;;
"buildx version") echo v0.17.1 ;;
"buildx inspect") echo "Driver: docker" ;;
*"info --format"*) echo '{{}}' ;;
"container ls"*) echo proj-run-1a2b3c ;;
"network ls"*) echo proj-train ;;
"container inspect --format {{{{.State.Status}}}} {{{{.State.ExitCode}}}}"*) echo exited 3 ;;
"container inspect --format {{{{.State.Status}}}} "*) echo "exited {mine}" ;;
"container inspect --format {{{{.State.Status}}}}"*) echo running ;;
"image inspect --format {{{{.Os}}}}/{{{{.Architecture}}}}"*) echo linux/amd64 ;;
"image inspect --format"*) echo {mine} ;;
"image ls"*) echo sha256:aaa ;;
"volume inspect"*) echo '[]' ;;
"network inspect"*) echo {mine} ;;
"system df"*) echo 1GB ;;
"manifest inspect --verbose"*) echo '{docker_index("python:3.11-slim")}' ;;
"manifest inspect"*) echo '{{}}' ;;""",
    )
    monkeypatch.setenv("DOCKER", docker)
    monkeypatch.setenv("REGISTRY", "127.0.0.1:5000/acme")
    # Every task of the menu, a new one included; these with the flags that give them work to do.
    flags = {
        "run": {"detach": True},
        "tensorboard": {"detach": True},
        "notebook": {"detach": True},
        "lock": {"dev": True},
        "train": {"workers": "2"},
    }
    menu = Collection.from_module(tasks).tasks
    calls = {task: flags.get(name, {}) for name, task in menu.items()}
    printed, refusals = {}, {}
    for task, kwargs in calls.items():
        context = dry_context()
        try:
            task(context, **kwargs)
        except Exit as refused:
            refusals[task.name] = refused.message
        out, err = capfd.readouterr()
        printed[task.name.replace("_", "-")] = (out + err, commands_run(context))
    # Only doctor may refuse: it also checks this machine (its disk, its architecture).
    assert set(refusals) <= {"doctor"}, refusals
    claims = {
        name: [line for line in text.splitlines() if OUTCOME_WORDS.search(line)]
        for name, (text, _) in printed.items()
    }
    assert {name: lines for name, lines in claims.items() if lines} == {}
    for name in ("run", "tensorboard", "notebook", "push", "clean", "train", "lock", "sbom"):
        # `notebook` is no task of a project generated without JupyterLab (copier.yml).
        if name in printed:
            assert printed[name][1], f"`invoke --dry {name}` shows the commands it would run"
    assert "would remove" in printed["clean"][0]
    assert "would push" in printed["push"][0]
    assert "would write the SBOM of proj:latest to " in printed["sbom"][0]


def test_dry_run_dev_mounts_src_read_only(project):
    context = dry_context()
    tasks.run(context, dev=True)
    (run,) = commands_run(context)
    assert f" --mount type=bind,source={project / 'src'},target=/app/src,readonly " in run
    assert " --pull never " in run
