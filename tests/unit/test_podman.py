"""DOCKER=podman: every command line the tasks give Podman, and the engine questions and doctor's
checks as Podman answers them (its CLI stood in for by a script)."""

import re
from pathlib import Path

import pytest

from devkit import building, doctor
from devkit import engine as engine_module
from devkit.building import build_command
from devkit.doctor import FAIL, OK, WARN
from devkit.engine import Engine, is_podman
from devkit.errors import UserError
from devkit.locks import CPU_AMD64
from devkit.publishing import push_command, tag_command, untag_command
from devkit.settings import load_settings
from devkit.targets import notebook_target, tensorboard_target
from helpers.base_image import write_record
from helpers.command_lines import (
    container_test_command,
    lock_command,
    manifest_commands,
    notebook_command,
    run_command,
    shell_command,
    target_of,
    tensorboard_command,
    value_after,
)
from helpers.doctor_findings import findings
from helpers.fake_cli import fake_cli
from helpers.project import PROJECT_DIR, with_capabilities
from helpers.recording_engine import RecordingEngine


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "requirements.txt").write_text("tensorflow-cpu==2.21.0 \\\n    --hash=sha256:abc\n")
    return with_capabilities(folder)


def settings_of(project, docker="podman", **environ):
    return load_settings(project, environ={"IMAGE_NAME": "tf", "DOCKER": docker, **environ})


@pytest.mark.parametrize(
    ("cli", "podman"),
    [
        ("podman", True),
        ("/usr/bin/podman", True),
        ("podman-remote", True),
        ("docker", False),
        ("/opt/podman/bin/docker", False),
    ],
)
def test_podman_is_known_by_the_cli_it_names(cli, podman):
    assert is_podman(cli) is podman


# --- build ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gpu", [False, True])
def test_build_keeps_the_healthcheck_in_the_docker_format(project, gpu):
    settings = settings_of(project)
    argv = build_command(settings, target_of(settings, gpu=gpu), buildx=False)
    assert argv[:2] == ["podman", "build"]
    assert value_after(argv, "--format") == ["docker"], (
        "Podman's default OCI format drops HEALTHCHECK"
    )
    assert value_after(argv, "--platform") == ["linux/amd64"]
    assert value_after(argv, "--tag") == ["tf:latest-gpu" if gpu else "tf:latest"]


def test_build_of_the_notebook_stage_and_a_secret(project):
    (project / "ca.pem").write_text("pem")
    settings = settings_of(project, BUILD_CA_BUNDLE="ca.pem")
    argv = build_command(settings, notebook_target(target_of(settings)), buildx=False)
    assert value_after(argv, "--target") == ["notebook"]
    assert value_after(argv, "--secret") == [f"id=ca_bundle,src={project / 'ca.pem'}"]


def test_docker_builds_name_no_format(project):
    settings = settings_of(project, docker="docker")
    assert "--format" not in build_command(settings, target_of(settings), buildx=False)


def test_podman_never_asks_for_buildx():
    engine = RecordingEngine(docker="podman")
    assert engine.uses_buildx() is False
    assert engine.log == []


def test_podman_layer_cache_is_a_repository_of_its_own(project):
    write_record(project)
    settings = settings_of(project, BUILD_CACHE="127.0.0.1:5000/acme/tf-cache")
    engine = RecordingEngine(docker="podman")
    building.build(engine, settings, target_of(settings), export_cache=True)
    _, build = engine.actions
    assert (
        " --layers --cache-from 127.0.0.1:5000/acme/tf-cache --cache-to 127.0.0.1:5000/acme/tf-cache "
        in build
    )
    assert "BUILDKIT_INLINE_CACHE" not in build, (
        "Buildah sends its cache itself: no push of the image"
    )


# --- containers -------------------------------------------------------------------------------


def test_run_uses_catatonit_through_init_and_cdi_for_gpus(project):
    settings = settings_of(project)
    cpu = run_command(
        settings, target_of(settings), name="tf", user="1000:1000", ports=[(8888, 8888)]
    )
    assert cpu[:4] == ["podman", "run", "--name", "tf"]
    assert "--init" in cpu
    assert "--device" not in cpu
    gpu = run_command(
        settings,
        target_of(settings, gpu=True),
        name="tf-gpu",
        user="1000:1000",
        ports=[(8888, 8888)],
    )
    assert value_after(gpu, "--device") == ["nvidia.com/gpu=all"], (
        "Podman takes GPUs as CDI devices"
    )
    assert "--gpus" not in gpu


def test_every_container_of_a_gpu_target_gets_the_cdi_device(project, tmp_path):
    settings = settings_of(project)
    gpu = target_of(settings, gpu=True)
    for argv in (
        shell_command(settings, gpu, name="tf-gpu-shell", user=None, tty=False),
        container_test_command(
            settings, gpu, user=None, tools_dir=tmp_path, tensorflow_version="2.21.0"
        ),
        notebook_command(settings, notebook_target(gpu), user=None),
    ):
        assert argv[0] == "podman"
        assert value_after(argv, "--device") == ["nvidia.com/gpu=all"]
        assert value_after(argv, "--cap-drop") == ["ALL"]
        assert value_after(argv, "--security-opt") == ["no-new-privileges"]


def test_tensorboard_under_podman(project):
    settings = settings_of(project)
    argv = tensorboard_command(
        settings, tensorboard_target(target_of(settings)), user="1000:1000", detach=True
    )
    assert argv[:5] == ["podman", "run", "--name", "tf-tensorboard", "--detach"]
    assert "--init" in argv


def test_lock_runs_pip_compile_in_the_base_image_with_podman(project, tmp_path):
    settings = settings_of(project)
    argv = lock_command(settings, CPU_AMD64, work_dir=tmp_path, cache_volume="tf-pip-cache")
    assert argv[:2] == ["podman", "run"]
    assert "--init" in argv
    assert value_after(argv, "--platform") == ["linux/amd64"]


# --- push -------------------------------------------------------------------------------------


def test_push_commands(project):
    settings = settings_of(project, REGISTRY="127.0.0.1:5000/acme")
    name = "127.0.0.1:5000/acme/tf:latest-amd64"
    assert tag_command(settings, "tf:latest", name) == ["podman", "tag", "tf:latest", name]
    # Podman prints no digest: it writes the one it pushed to a file.
    assert push_command(settings, name, "/tmp/push-1/digest") == [
        *("podman", "push", "--digestfile", "/tmp/push-1/digest", name)
    ]
    assert untag_command(settings, name) == ["podman", "image", "rm", name]


def test_the_multi_architecture_list_is_made_and_pushed_the_podman_way(project):
    settings = settings_of(project, REGISTRY="127.0.0.1:5000/acme")
    name = "127.0.0.1:5000/acme/tf:latest"
    images = [f"{name}-amd64", f"{name}-arm64"]
    assert manifest_commands(settings, name, images, insecure=True) == [
        ["podman", "manifest", "rm", name],
        ["podman", "manifest", "create", name, f"docker://{name}-amd64", f"docker://{name}-arm64"],
        [
            *("podman", "manifest", "push", "--rm", "--digestfile", "/tmp/push-1/digest"),
            *(name, f"docker://{name}"),
        ],
    ]


def test_podman_decides_plain_http_registries_itself():
    engine = RecordingEngine(docker="podman")
    assert engine.registry_is_insecure("127.0.0.1:5000") is False
    assert engine.log == [], "no `docker info` RegistryConfig question"


# --- engine questions and doctor --------------------------------------------------------------

PODMAN = "\n".join(
    [
        '"version --format {{.Client.Version}}") echo 4.3.1 ;;',
        '"version --format {{.Server.Version}}") echo 4.3.1 ;;',
        '"version --format {{.Server.OsArch}}") echo linux/amd64 ;;',
        '"info --format {{.Host.OCIRuntime.Name}}") echo crun ;;',
        '"info --format {{.Host.ServiceIsRemote}}") echo false ;;',
        '"info --format {{.Store.GraphRoot}}") echo "$DOCKER_ROOT" ;;',  # set by test_doctor.findings
        '"pull --quiet --platform linux/amd64 python:3.11-slim") echo sha256:1 ;;',
        '"container inspect --format {{.State.Status}} project") exit 1 ;;',
    ]
)


def podman_cli(tmp_path: Path, extra: str = "") -> str:
    cli = Path(fake_cli(tmp_path, extra + PODMAN))
    podman = cli.with_name("podman")
    cli.rename(podman)
    return str(podman)


def test_engine_questions_in_podmans_words(tmp_path):
    engine = Engine(
        podman_cli(tmp_path, '"version --format {{.Server.OsArch}}") echo linux/arm64 ;;\n')
    )
    assert engine.server_platform() == "linux/arm64"
    assert engine.native_platform() == "linux/arm64"
    assert engine.runtimes() == ["crun"]


def test_gpu_containers_need_a_cdi_spec(tmp_path, monkeypatch):
    engine = Engine(podman_cli(tmp_path))
    monkeypatch.setattr("devkit.engine.CDI_SPEC_DIRS", (tmp_path / "cdi",))
    monkeypatch.setattr("devkit.engine.cdi_nvidia_spec", lambda: None)
    with pytest.raises(
        UserError,
        match=r"--gpu: Podman finds no CDI spec of NVIDIA GPUs .* `sudo nvidia-ctk cdi generate",
    ):
        engine.require_nvidia_runtime()


@pytest.mark.needs("gpu")
def test_doctor_with_podman(project, tmp_path):
    found = findings(project, podman_cli(tmp_path))
    assert list(found)[:6] == [".env", "CLI", "engine", "BuildKit", "init", "NVIDIA"], (
        "Podman's init is checked too"
    )
    assert found["engine"].verdict == OK
    assert found["BuildKit"].verdict == OK
    assert "Buildah" in found["BuildKit"].detail
    assert found["NVIDIA"].fix.endswith(
        "`sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`"
    )
    assert found["disk"].verdict == OK, found["disk"].line()


def test_doctor_init_check(tmp_path, monkeypatch):
    engine = Engine(podman_cli(tmp_path))
    monkeypatch.setattr(engine_module, "CATATONIT_PATHS", (str(tmp_path / "none"),))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    missing = doctor.check_init(engine)
    assert missing.verdict == FAIL
    assert "sudo apt install catatonit" in missing.fix
    catatonit = tmp_path / "catatonit"
    catatonit.write_text("")
    monkeypatch.setattr(engine_module, "CATATONIT_PATHS", (str(catatonit),))
    assert doctor.check_init(engine).verdict == OK


def test_doctor_cdi_check(tmp_path):
    specs = tmp_path / "cdi"
    specs.mkdir()
    assert doctor.check_cdi(gpu=False, spec_dirs=(specs,)).verdict == WARN
    assert doctor.check_cdi(gpu=True, spec_dirs=(specs,)).verdict == FAIL
    (specs / "nvidia.yaml").write_text(
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices:\n- name: all\n"
    )
    found = doctor.check_cdi(gpu=True, spec_dirs=(specs,))
    assert found.verdict == OK
    assert str(specs / "nvidia.yaml") in found.detail


def test_no_module_but_the_engine_asks_whether_the_cli_is_podman():
    """What Podman needs is asked of the engine's dialect by what it is for (`gpus_by_cdi`,
    `builder`...), never by testing the CLI's name outside devkit/engine.py."""
    asking = re.compile(r"\.podman\b|\bis_podman\(")
    found = [
        f"{path.relative_to(PROJECT_DIR)}:{number}: {line.strip()}"
        for path in [PROJECT_DIR / "tasks.py", *sorted((PROJECT_DIR / "devkit").glob("*.py"))]
        if path.name != "engine.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if asking.search(line)
    ]
    assert found == []
