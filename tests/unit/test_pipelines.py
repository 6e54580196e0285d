"""The pipelines behind the tasks, with the engine scripted: what runs in which order, what is
refused before anything is created, what is cleaned up on failure, what `--dry` leaves alone."""

import io
import json
import socket
import time
from pathlib import Path

import pytest

from devkit import building, containers, locking, locks, publishing
from devkit.engine import Outcome
from devkit.errors import UserError
from devkit.targets import every_target, project_id
from helpers.base_image import AMD64_DIGEST, write_record
from helpers.command_lines import settings_of, target_of
from helpers.engine import free_port
from helpers.recording_engine import BUILT, RecordingEngine

LOCK_TEXT = "tensorflow-cpu==2.21.0 \\\n    --hash=sha256:abc\n"
# What the engine says of its own platform: an x86-64 host.
HOST_AMD64 = {"version --format {{.Server.Os}}": (0, "linux/amd64\n", "")}


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "requirements.txt").write_text(LOCK_TEXT)
    (folder / "requirements-arm64.txt").write_text(LOCK_TEXT.replace("-cpu", ""))
    return folder


# --- build ------------------------------------------------------------------------------------


def test_build_pulls_the_base_image_then_builds_with_buildkit(project):
    engine = RecordingEngine()
    settings = settings_of(project)
    building.build(engine, settings, target_of(settings))
    pull, build = engine.actions
    assert pull == f"docker pull --quiet --platform linux/amd64 python:3.11-slim@{AMD64_DIGEST}"
    assert build.startswith("docker build --platform linux/amd64 ")


def test_build_without_its_lock_is_refused_before_anything_runs(project):
    (project / "requirements-arm64.txt").unlink()
    engine = RecordingEngine()
    settings = settings_of(project)
    with pytest.raises(
        UserError,
        match=r"requirements-arm64\.txt is missing: tf:latest-arm64 installs it; run `invoke lock`",
    ):
        building.build(engine, settings, target_of(settings, platform="linux/arm64"))
    assert engine.actions == []


def test_build_for_another_architecture_checks_emulation_first(project):
    engine = RecordingEngine(outcomes={"--entrypoint true": Outcome(1, "", "exec format error")})
    settings = settings_of(project)
    with pytest.raises(UserError, match="cannot run linux/arm64 programs"):
        building.build(engine, settings, target_of(settings, platform="linux/arm64"))
    assert [line.split()[1] for line in engine.actions] == ["pull", "run"], "no build"


def test_build_removes_the_package_index_secret_after_a_failed_build(project):
    engine = RecordingEngine(outcomes={"docker build": Outcome(1)})
    settings = settings_of(project, PIP_INDEX_URL="https://user:token@pypi.example.com/simple")
    with pytest.raises(UserError, match=r"building tf:latest failed \(exit 1\)"):
        building.build(engine, settings, target_of(settings))
    build = engine.actions[-1]
    secret = next(word for word in build.split() if word.startswith("id=pip_conf,src="))
    assert not Path(secret.removeprefix("id=pip_conf,src=")).parent.exists()
    assert "token" not in build


def test_the_source_label_never_carries_the_remotes_credentials(project):
    remote = "https://gitlab-ci-token:canary-token@gitlab.example.com/team/app.git?private_token=canary-token#canary-token"
    engine = RecordingEngine(answers={"config --get remote.origin.url": (0, f"{remote}\n", "")})
    settings = settings_of(project)
    building.build(engine, settings, target_of(settings))
    _, build = engine.actions
    assert "--build-arg SOURCE_URL=https://gitlab.example.com/team/app.git " in build
    assert "canary" not in build


@pytest.mark.parametrize("epoch", ["²", "99999999999999999999", "-1"])
def test_a_source_date_epoch_that_is_no_time_is_one_line(project, monkeypatch, epoch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
    engine = RecordingEngine()
    settings = settings_of(project)
    with pytest.raises(
        UserError,
        match=r"^SOURCE_DATE_EPOCH=.* \(from environment\): not a time in seconds since 1970$",
    ):
        building.build(engine, settings, target_of(settings))
    assert not engine.ran("build")


# --- run, stop, container test -----------------------------------------------------------------


def test_run_checks_before_it_creates_and_removes_a_foreground_container_after(project):
    settings = settings_of(project, HOST_PORT=str(free_port()))
    engine = RecordingEngine(
        answers={
            "container inspect": (0, f"exited {project_id(settings)} 0 old-id\n", ""),
            **BUILT,
        },
        run_leaves="exited",
    )
    containers.run(engine, settings, target_of(settings))
    assert [line.split()[1:4] for line in engine.actions] == [
        ["container", "rm", "--force"],
        ["run", "--name", "tf"],
        ["container", "rm", "--force"],
    ], "a stale leftover goes first; the run's after"
    assert engine.actions[0].endswith(" old-id"), "by its id: the one that was inspected"
    assert (project / "data").is_dir(), "DATA_DIR is made before the container starts"


def test_run_refuses_a_running_container_and_a_busy_port_without_creating_anything(project):
    settings = settings_of(project, HOST_PORT=str(free_port()))
    running = RecordingEngine(
        answers={"container inspect": (0, f"running {project_id(settings)}\n", "")}
    )
    with pytest.raises(UserError, match="tf is already running; `invoke stop` stops it"):
        containers.run(running, settings, target_of(settings))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = settings_of(project, HOST_PORT=str(busy.getsockname()[1]))
        engine = RecordingEngine()
        with pytest.raises(UserError, match="is already in use"):
            containers.run(engine, taken, target_of(taken))
    assert running.actions == engine.actions == []
    assert not (project / "data").exists()


def test_a_refused_run_leaves_a_stopped_leftover_where_it_was(project):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = settings_of(project, HOST_PORT=str(busy.getsockname()[1]))
        engine = RecordingEngine(
            answers={"container inspect": (0, f"exited {project_id(settings)}\n", "")}
        )
        with pytest.raises(UserError, match="is already in use"):
            containers.run(engine, settings, target_of(settings))
    assert engine.actions == [], "the leftover goes only once nothing can refuse the run"


def test_a_detached_run_that_fails_is_removed(project):
    engine = RecordingEngine(
        answers=BUILT,
        outcomes={
            "docker run": Outcome(
                125, "", "docker: Error response from daemon: no space left on device.\n"
            )
        },
    )
    engine.run_leaves = "created"
    settings = settings_of(project, HOST_PORT=str(free_port()))
    with pytest.raises(
        UserError,
        match="^tf did not start: docker: Error response from daemon: no space left on device.$",
    ):
        containers.run(engine, settings, target_of(settings), detach=True)
    assert engine.actions[-1] == "docker container rm --force id-of-tf"


def test_a_foreground_run_ended_by_ctrl_c_is_no_error(project):
    engine = RecordingEngine(answers=BUILT, outcomes={"docker run": Outcome(130)})
    settings = settings_of(project, HOST_PORT=str(free_port()))
    containers.run(engine, settings, target_of(settings))


def test_the_gpu_image_needs_the_nvidia_runtime_before_anything_is_created(project):
    engine = RecordingEngine(answers={"{{json .Runtimes}}": (0, '{"runc": {}}', "")})
    settings = settings_of(project, HOST_PORT=str(free_port()))
    with pytest.raises(
        UserError, match=r"--gpu: this engine has no NVIDIA runtime \(runtimes: runc\)"
    ):
        containers.run(engine, settings, target_of(settings, gpu=True))
    assert engine.actions == []


def test_dry_run_prints_and_changes_nothing(project, capsys):
    engine = RecordingEngine(dry=True, answers={"{{json .Runtimes}}": (0, '{"runc": {}}', "")})
    settings = settings_of(project, HOST_PORT=str(free_port()))
    containers.run(engine, settings, target_of(settings, gpu=True))
    assert [line.split()[1] for line in engine.actions] == ["run"]
    assert not (project / "data").exists()
    assert f"# would create {project / 'data'}" in capsys.readouterr().err


def test_stop_of_what_is_not_running_says_so(project, capsys):
    engine = RecordingEngine()
    settings = settings_of(project)
    containers.stop(engine, settings, target_of(settings))
    assert engine.actions == []
    assert "tf is not running" in capsys.readouterr().err


def test_container_test_refuses_a_missing_image_and_removes_its_container_after_a_failure(project):
    (project / "requirements-dev.txt").write_text(
        "pytest==8.0.0 \\\n    --hash=sha256:abc\n    # via -r requirements-dev.in\n"
    )
    settings = settings_of(project)
    missing = RecordingEngine()
    with pytest.raises(UserError, match=r"there is no image tf:latest; `invoke build` makes it"):
        containers.container_test(missing, settings, target_of(settings), python="python3")
    assert not missing.ran("docker run")
    failing = RecordingEngine(
        answers={"image inspect": (0, "linux/amd64\n", "")},
        outcomes={"docker run": Outcome(1)},
        run_leaves="exited",
    )
    with pytest.raises(UserError, match=r"the container test failed in tf:latest \(exit 1\)"):
        containers.container_test(failing, settings, target_of(settings), python="python3")
    assert failing.actions[-1] == "docker container rm --force id-of-tf-container-test"


# --- push -------------------------------------------------------------------------------------


def test_push_checks_every_image_before_the_first_goes_out(project):
    engine = RecordingEngine(
        answers={
            "image inspect --format {{.Os}}/{{.Architecture}} tf:latest$": (0, "linux/amd64\n", ""),
            **HOST_AMD64,
        }
    )
    settings = settings_of(project, REGISTRY="127.0.0.1:5000")
    with pytest.raises(
        UserError,
        match=r"there is no image tf:latest-arm64; `invoke build --platform linux/arm64` makes it",
    ):
        publishing.push(engine, settings, gpu=False, platforms=["linux/amd64", "linux/arm64"])
    assert engine.actions == []


def test_a_failed_push_still_takes_the_registry_name_back(project):
    engine = RecordingEngine(
        answers={"image inspect": (0, "linux/amd64\n", ""), **HOST_AMD64},
        outcomes={
            "docker push": Outcome(1, "", "denied: requested access to the resource is denied\n")
        },
    )
    settings = settings_of(project, REGISTRY="ghcr.io/acme")
    with pytest.raises(
        UserError,
        match=r"pushing ghcr.io/acme/tf:latest-amd64 failed: denied: .*`docker login ghcr.io`",
    ):
        publishing.push(engine, settings, gpu=False, platforms=[])
    assert [line.split()[1] for line in engine.actions] == ["tag", "push", "image"]
    assert engine.actions[-1] == "docker image rm ghcr.io/acme/tf:latest-amd64"


def test_push_of_both_platforms_publishes_one_list_naming_them(project):
    engine = RecordingEngine(
        answers={
            "image inspect --format {{.Os}}/{{.Architecture}} tf:latest-arm64": (
                0,
                "linux/arm64\n",
                "",
            ),
            "image inspect": (0, "linux/amd64\n", ""),
            **HOST_AMD64,
            "RegistryConfig": (0, '{"InsecureRegistryCIDRs": ["127.0.0.0/8"]}', ""),
        }
    )
    settings = settings_of(project, REGISTRY="127.0.0.1:5000")
    publishing.push(engine, settings, gpu=False, platforms=["linux/amd64", "linux/arm64"])
    name = "127.0.0.1:5000/tf:latest"
    assert f"docker manifest create --insecure {name} {name}-amd64 {name}-arm64" in engine.actions
    assert engine.actions[-1] == f"docker manifest push --purge --insecure {name}"


LIST_DIGEST = "sha256:" + "1" * 64
GPU_DIGEST = "sha256:" + "2" * 64
# What `docker manifest push` prints on success: the list's digest.
MANIFEST_PUSHED = {"manifest push": Outcome(0, f"{LIST_DIGEST}\n", "")}
BOTH_BUILT = {
    "image inspect --format {{.Os}}/{{.Architecture}} tf:latest-arm64": (0, "linux/arm64\n", ""),
    "image inspect": (0, "linux/amd64\n", ""),
    **HOST_AMD64,
}


def recorded(project) -> dict:
    return json.loads((project / publishing.PUSH_DIGESTS).read_text())


@pytest.mark.needs("kubernetes")
def test_push_records_the_digest_of_the_multi_architecture_list_for_invoke_k8s(project):
    from devkit import kubernetes  # absent where the project has no Kubernetes

    engine = RecordingEngine(answers=BOTH_BUILT, outcomes=MANIFEST_PUSHED)
    settings = settings_of(project, REGISTRY="127.0.0.1:5000/acme")
    publishing.push(engine, settings, gpu=False, platforms=["linux/amd64", "linux/arm64"])
    assert recorded(project) == {"127.0.0.1:5000/acme/tf:latest": LIST_DIGEST}
    assert kubernetes.pushed_image(settings, gpu=False) == f"127.0.0.1:5000/acme/tf@{LIST_DIGEST}"


@pytest.mark.needs("kubernetes", "gpu")
def test_push_of_the_gpu_image_records_the_digest_docker_push_printed_beside_the_others(project):
    from devkit import kubernetes  # absent where the project has no Kubernetes

    engine = RecordingEngine(answers=BOTH_BUILT, outcomes=MANIFEST_PUSHED)
    settings = settings_of(project, REGISTRY="ghcr.io/acme")
    publishing.push(engine, settings, gpu=False, platforms=[])
    printed = f"The push refers to repository [ghcr.io/acme/tf]\nlatest-gpu: digest: {GPU_DIGEST} size: 4321\n"
    engine = RecordingEngine(answers=BOTH_BUILT, outcomes={"docker push": Outcome(0, printed, "")})
    publishing.push(engine, settings, gpu=True, platforms=[])
    assert recorded(project) == {
        "ghcr.io/acme/tf:latest": LIST_DIGEST,
        "ghcr.io/acme/tf:latest-gpu": GPU_DIGEST,
    }
    assert kubernetes.pushed_image(settings, gpu=True) == f"ghcr.io/acme/tf@{GPU_DIGEST}"


class PodmanWritingDigests(RecordingEngine):
    """Podman prints no digest: each push writes the one it pushed to its --digestfile."""

    def _action_process(self, argv, options):
        if "--digestfile" in argv and not self.dry:
            digest = LIST_DIGEST if "manifest" in argv else GPU_DIGEST
            Path(argv[argv.index("--digestfile") + 1]).write_text(digest)
        return super()._action_process(argv, options)


def test_with_podman_push_records_the_digests_it_wrote_to_its_digest_files(project):
    answers = {
        "version --format {{.Server.OsArch}}": (0, "linux/amd64\n", ""),
        "image inspect --format {{.Os}}/{{.Architecture}} tf:latest-gpu": (0, "linux/amd64\n", ""),
        **BOTH_BUILT,
    }
    settings = settings_of(project, REGISTRY="127.0.0.1:5000/acme", DOCKER="podman")
    for gpu in (False, True):
        engine = PodmanWritingDigests(docker="podman", answers=answers)
        publishing.push(engine, settings, gpu=gpu, platforms=[])
    assert recorded(project) == {
        "127.0.0.1:5000/acme/tf:latest": LIST_DIGEST,
        "127.0.0.1:5000/acme/tf:latest-gpu": GPU_DIGEST,
    }


def test_a_push_that_prints_no_digest_drops_the_older_one_and_says_so(project, capsys):
    settings = settings_of(project, REGISTRY="ghcr.io/acme")
    engine = RecordingEngine(answers=BOTH_BUILT, outcomes=MANIFEST_PUSHED)
    publishing.push(engine, settings, gpu=False, platforms=[])
    engine = RecordingEngine(answers=BOTH_BUILT)  # a CLI that prints no digest
    capsys.readouterr()
    publishing.push(engine, settings, gpu=False, platforms=[])
    assert recorded(project) == {}, "the older push's digest names another build now"
    assert capsys.readouterr().err.splitlines()[-1] == (
        "the push gave no digest of ghcr.io/acme/tf:latest: `invoke k8s` names it by its tag"
    )


def test_under_dry_push_records_nothing_and_says_it_would(project, capsys):
    engine = RecordingEngine(dry=True, answers=BOTH_BUILT, outcomes=MANIFEST_PUSHED)
    settings = settings_of(project, REGISTRY="ghcr.io/acme")
    publishing.push(engine, settings, gpu=False, platforms=["linux/amd64", "linux/arm64"])
    assert not (project / publishing.PUSH_DIGESTS).exists()
    assert capsys.readouterr().err.splitlines() == [
        "# would push ghcr.io/acme/tf:latest for linux/amd64, linux/arm64",
        "# would record the digest of ghcr.io/acme/tf:latest in .push-digests.json",
    ]


# --- clean ------------------------------------------------------------------------------------


def test_clean_removes_only_what_carries_the_projects_label(project, capsys):
    settings = settings_of(project)
    mine = project_id(settings)
    engine = RecordingEngine(
        answers={
            f"container ls --all --filter label=org.tensorflow-template.project={mine} --format": (
                0,
                "tf-run-1a2b3c\ntf-container-test\n",
                "",
            ),
            " {{.Id}} tf-container-test$": (
                0,
                f"exited {mine}\n",
                "",
            ),
            " {{.Id}} tf$": (
                0,
                "running \n",
                "",
            ),
            'image inspect --format {{index .Config.Labels "org.tensorflow-template.project"}} tf:latest-gpu$': (
                0,
                f"{mine}\n",
                "",
            ),
            'image inspect --format {{index .Config.Labels "org.tensorflow-template.project"}} tf:latest$': (
                0,
                "another\n",
                "",
            ),
            "--filter dangling=true": (0, "sha256:aaa\nsha256:bbb\n", ""),
        }
    )
    containers.clean(
        engine, settings, every_target(settings, host="linux/amd64"), cache_volume="tf-lock-cache"
    )
    assert engine.actions == [
        "docker container rm --force tf-run-1a2b3c tf-container-test",
        "docker image rm tf:latest-gpu sha256:aaa sha256:bbb",
    ]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(
        "left alone: tf is a container of the same name that is not this project's"
    )
    assert lines[0].endswith("`docker rm --force tf` removes it")
    assert lines[1].startswith(
        "left alone: tf:latest is an image of the same name that is not this project's"
    )
    assert (
        lines[2]
        == "removed containers tf-run-1a2b3c, tf-container-test; image tf:latest-gpu; 2 untagged images"
    )
    assert lines[3].startswith(
        f"kept: what you pushed to a registry, DATA_DIR ({project / 'data'}), the locks, the lock cache volume tf-lock-cache"
    )
    nothing = RecordingEngine()
    containers.clean(
        nothing, settings, every_target(settings, host="linux/amd64"), cache_volume="tf-lock-cache"
    )
    assert nothing.actions == []
    assert capsys.readouterr().err.splitlines()[0] == "nothing to remove"


def test_clean_all_also_removes_the_pip_cache_and_the_unused_build_cache_and_claims_no_freed_space(
    project, capsys
):
    """The engine says nothing of what `image rm` frees, and a `system df` before and after counts the
    whole engine: a figure from it was false ("freed 0 B" after a 1.4 GB image went). None is given."""
    settings = settings_of(project)
    # An engine that would answer `system df`: 10 GB less after, mostly other projects' doing.
    engine = RecordingEngine(
        answers={
            "volume inspect tf-lock-cache": (0, "[]", ""),
            "system df": (0, "10.5GB\n26.1MB\n1.2GB\n16.59GB\n", ""),
        }
    )
    containers.clean(
        engine,
        settings,
        every_target(settings, host="linux/amd64"),
        cache_volume="tf-lock-cache",
        everything=True,
    )
    assert engine.actions == ["docker volume rm tf-lock-cache", "docker builder prune --force"]
    assert [line for _, line in engine.log if " system df" in line] == []
    removed, summary = capsys.readouterr().err.splitlines()
    assert removed == "removed the lock cache volume tf-lock-cache; the engine's unused build cache"
    assert summary == (
        f"kept: what you pushed to a registry, DATA_DIR ({project / 'data'}), the locks"
    )


# --- lock -------------------------------------------------------------------------------------


@pytest.fixture
def lock_project(project):
    (project / "requirements.in").write_text("numpy\n")
    (project / "requirements-cpu.in").write_text("-r requirements.in\ntensorflow-cpu\n")
    (project / "requirements-gpu.in").write_text(
        "-c requirements.txt\n-r requirements.in\ntensorflow[and-cuda]\n"
    )
    dev = "pip-tools==7.4.1 \\\n    --hash=sha256:abc\n    # via -r requirements-dev.in\n"
    (project / "requirements-dev.txt").write_text(dev)
    return project


def pin(name: str, version: str = "1.0") -> str:
    return f"{name}=={version} \\\n    --hash=sha256:{'0' * 64}\n"


def compiled(*names: str) -> Outcome:
    return Outcome(0, "".join(pin(name) for name in names))


def test_a_failed_lock_leaves_every_lock_as_it_was(lock_project):
    before = {path.name: path.read_bytes() for path in lock_project.glob("requirements*.txt")}
    engine = RecordingEngine(
        outcomes={
            "--platform linux/amd64": compiled("numpy", "tensorflow-cpu"),
            "--platform linux/arm64": Outcome(
                1, "", "ERROR: No matching distribution found for numpy==99\n"
            ),
        }
    )
    settings = settings_of(lock_project)
    with pytest.raises(
        UserError,
        match="pip-compile failed for requirements-arm64.txt; every lock is unchanged: ERROR: No matching",
    ):
        locking.lock(
            engine,
            settings,
            (locks.CPU_AMD64, locks.CPU_ARM64),
            upgrade=True,
            packages=(),
            python="python3",
        )
    assert engine.ran("--platform linux/amd64"), "the amd64 lock compiled first"
    assert {
        path.name: path.read_bytes() for path in lock_project.glob("requirements*.txt")
    } == before


def test_the_gpu_lock_is_compiled_against_the_new_cpu_lock(lock_project):
    engine = RecordingEngine(
        outcomes={
            "requirements-cpu.in": compiled("numpy", "tensorflow-cpu"),
            "requirements-gpu.in": compiled("numpy", "tensorflow"),
        }
    )
    settings = settings_of(lock_project)
    locking.lock(
        engine, settings, (locks.CPU_AMD64, locks.GPU), upgrade=True, packages=(), python="python3"
    )
    gpu_compile = next(line for line in engine.actions if "requirements-gpu.in" in line)
    assert ",target=/src/requirements.txt,readonly" in gpu_compile
    assert locks.is_current(lock_project, locks.CPU_AMD64)
    assert locks.is_current(lock_project, locks.GPU), (
        "the GPU lock's footer names the CPU lock it was compiled against"
    )
    assert not list(lock_project.glob(".*partial"))


@pytest.mark.parametrize(
    ("arm64_output", "missing"),
    [
        (pin("numpy"), "tensorflow-cpu"),
        # Pinned, but without a hash: `pip install --require-hashes` in the build would refuse it.
        (pin("numpy") + "tensorflow-cpu==1.0\n", "tensorflow-cpu"),
        (pin("tensorflow-cpu") + "numpy>=1.0\n", "numpy"),
    ],
)
def test_a_compiled_lock_without_a_pinned_hashed_entry_for_a_requirement_replaces_no_lock(
    lock_project, arm64_output, missing
):
    before = {path.name: path.read_bytes() for path in lock_project.glob("requirements*.txt")}
    engine = RecordingEngine(
        outcomes={
            "--platform linux/amd64": compiled("numpy", "tensorflow-cpu"),
            "--platform linux/arm64": Outcome(0, arm64_output),
        }
    )
    with pytest.raises(UserError) as error:
        locking.lock(
            engine,
            settings_of(lock_project),
            (locks.CPU_AMD64, locks.CPU_ARM64),
            upgrade=True,
            packages=(),
            python="python3",
        )
    assert (
        str(error.value)
        == f"pip-compile left no pinned, hashed entry in requirements-arm64.txt for {missing}; every lock is unchanged"
    )
    assert {
        path.name: path.read_bytes() for path in lock_project.glob("requirements*.txt")
    } == before


def test_a_lock_ends_with_what_changed_in_each(lock_project, capsys):
    write_record(lock_project)
    (lock_project / "requirements.txt").write_text(
        pin("numpy", "0.9") + pin("tensorflow-cpu") + pin("six")
    )
    (lock_project / "requirements-arm64.txt").write_text(
        pin("numpy").replace("sha256:0", "sha256:1") + pin("tensorflow-cpu")
    )
    engine = RecordingEngine(
        outcomes={
            "--platform linux/amd64": compiled("numpy", "tensorflow-cpu", "tabulate"),
            "--platform linux/arm64": compiled("numpy", "tensorflow-cpu"),
        }
    )
    locking.lock(
        engine,
        settings_of(lock_project),
        (locks.CPU_AMD64, locks.CPU_ARM64),
        upgrade=True,
        packages=(),
        python="python3",
    )
    err = capsys.readouterr().err.splitlines()
    assert err[-4:-1] == [
        "requirements.txt: added tabulate 1.0; removed six 1.0; moved numpy 0.9 -> 1.0",
        "requirements-arm64.txt: the same versions (hashes or notes changed)",
        "docker/locks/base-image.txt: unchanged (python:3.11-slim has not moved)",
    ]
    assert err[-1] == "left out of date: requirements-gpu.txt; `invoke lock --gpu` compiles it", (
        "compiled against the CPU lock that moved"
    )
    locking.lock(
        engine,
        settings_of(lock_project),
        (locks.CPU_ARM64,),
        upgrade=True,
        packages=(),
        python="python3",
    )
    assert capsys.readouterr().err.splitlines()[-3] == "requirements-arm64.txt: unchanged"


def test_a_lock_for_another_architecture_says_it_runs_under_emulation(lock_project, capsys):
    engine = RecordingEngine(
        answers=HOST_AMD64, outcomes={"--platform linux/arm64": compiled("numpy", "tensorflow-cpu")}
    )
    locking.lock(
        engine,
        settings_of(lock_project),
        (locks.CPU_ARM64,),
        upgrade=True,
        packages=(),
        python="python3",
    )
    assert capsys.readouterr().err.splitlines()[0] == (
        "locking requirements-arm64.txt (linux/arm64) under emulation: this engine runs linux/amd64, "
        "so every step of Python goes through QEMU; expect minutes"
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_ticker_says_a_long_step_is_alive_in_lines_or_on_a_terminal_with_a_spinner():
    log = io.StringIO()
    with locking.Ticker("locking requirements-arm64.txt", stream=log, every=0.05):
        time.sleep(0.3)
    lines = log.getvalue().splitlines()
    assert len(lines) >= 3
    assert set(lines) == {"still locking requirements-arm64.txt: 0:00 so far"}
    terminal = Terminal()
    with locking.Ticker("locking requirements.txt", stream=terminal, every=0.05):
        time.sleep(0.3)
    drawn = terminal.getvalue()
    assert "\n" not in drawn, "one line, redrawn"
    assert drawn.startswith("\r| locking requirements.txt: 0:00\r/ locking requirements.txt: 0:00")
    assert drawn.endswith("\r\033[K"), "the line is cleared for what follows"


def test_ctrl_c_ends_the_ticker_with_the_step():
    log = io.StringIO()
    with (
        pytest.raises(KeyboardInterrupt),
        locking.Ticker("locking", stream=log, every=0.01) as ticker,
    ):
        raise KeyboardInterrupt
    assert not ticker._thread.is_alive()


def test_a_dry_lock_writes_nothing(lock_project, capsys):
    before = (lock_project / "requirements.txt").read_bytes()
    engine = RecordingEngine(dry=True)
    locking.lock(
        engine,
        settings_of(lock_project),
        (locks.CPU_AMD64,),
        upgrade=True,
        packages=(),
        python="python3",
    )
    assert (lock_project / "requirements.txt").read_bytes() == before
    assert "# would replace requirements.txt" in capsys.readouterr().err
