"""BUILD_CACHE: where `invoke build` takes its layer cache from and, with --export-cache, sends it,
spelt for each builder: buildx on a registry-capable driver, the classic builder's inline cache."""

from pathlib import Path

import pytest

from devkit import building
from devkit.building import build_command, cache_options, cache_ref
from devkit.engine import Outcome
from devkit.errors import UserError
from devkit.targets import notebook_target
from helpers.command_lines import settings_of, target_of
from helpers.recording_engine import RecordingEngine

CACHE = "127.0.0.1:5000/acme/tf-cache"


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    for name in ("requirements.txt", "requirements-arm64.txt", "requirements-gpu.txt"):
        (folder / name).write_text("tensorflow-cpu==2.21.0 \\\n    --hash=sha256:abc\n")
    return folder


@pytest.mark.parametrize(
    "value", ["ghcr.io/acme/tf-cache", "127.0.0.1:5000/tf-cache", "registry.example.com:443/a/b/c"]
)
def test_build_cache_is_a_repository(project, value):
    assert settings_of(project, BUILD_CACHE=value).build_cache == value


@pytest.mark.parametrize(
    "value", ["ghcr.io", "ghcr.io/acme/cache:main", "ghcr.io/Acme/cache", "two words/x"]
)
def test_a_build_cache_that_is_no_repository_is_refused_in_one_line(project, value):
    with pytest.raises(
        UserError,
        match=r"BUILD_CACHE=.* \(from environment\): expected a registry and repository without a tag",
    ):
        settings_of(project, BUILD_CACHE=value)


def test_one_cache_tag_per_image_shared_by_every_image_tag(project):
    settings = settings_of(project, BUILD_CACHE=CACHE, IMAGE_TAG="feature-x")
    assert cache_ref(settings, target_of(settings)) == f"{CACHE}:amd64"
    assert cache_ref(settings, target_of(settings, platform="linux/arm64")) == f"{CACHE}:arm64"
    assert cache_ref(settings, target_of(settings, gpu=True)) == f"{CACHE}:gpu"
    assert cache_ref(settings, notebook_target(target_of(settings))) == f"{CACHE}:amd64-notebook"


def test_cache_flags_per_builder(project):
    settings = settings_of(project, BUILD_CACHE=CACHE)
    target = target_of(settings)
    assert cache_options(settings, target, mode="registry", export=False) == [
        "--cache-from",
        f"type=registry,ref={CACHE}:amd64",
    ]
    assert cache_options(settings, target, mode="registry", export=True) == [
        "--cache-from",
        f"type=registry,ref={CACHE}:amd64",
        "--cache-to",
        f"type=registry,ref={CACHE}:amd64,mode=max",
    ]
    assert cache_options(settings, target, mode="inline", export=False) == [
        "--cache-from",
        f"{CACHE}:amd64",
    ]
    assert cache_options(settings, target, mode="inline", export=True) == [
        "--cache-from",
        f"{CACHE}:amd64",
        "--build-arg",
        "BUILDKIT_INLINE_CACHE=1",
    ]
    assert cache_options(settings_of(project), target, mode="inline", export=False) == [], (
        "no BUILD_CACHE, no flags"
    )


def test_cache_flags_reach_the_build_command(project):
    settings = settings_of(project, BUILD_CACHE=CACHE)
    argv = build_command(
        settings, target_of(settings), buildx=False, cache=["--cache-from", f"{CACHE}:amd64"]
    )
    assert argv[argv.index("--cache-from") + 1] == f"{CACHE}:amd64"
    assert argv[-1] == str(project)


def test_classic_builder_imports_and_with_export_pushes_the_image_that_carries_the_cache(
    project, capsys
):
    settings = settings_of(project, BUILD_CACHE=CACHE)
    importing = RecordingEngine()
    building.build(importing, settings, target_of(settings))
    _, build = importing.actions
    assert f" --cache-from {CACHE}:amd64 " in build
    assert "BUILDKIT_INLINE_CACHE" not in build, (
        "without --export-cache the image is exactly the one without BUILD_CACHE"
    )
    exporting = RecordingEngine()
    building.build(exporting, settings, target_of(settings), export_cache=True)
    _, build, tag, push, untag = exporting.actions
    assert " --build-arg BUILDKIT_INLINE_CACHE=1 " in build
    assert (tag, push, untag) == (
        f"docker tag tf:latest {CACHE}:amd64",
        f"docker push {CACHE}:amd64",
        f"docker image rm {CACHE}:amd64",
    )
    assert f"layer cache pushed to {CACHE}:amd64" in capsys.readouterr().err


def test_buildx_exports_every_stage_where_its_builder_can(project):
    settings = settings_of(project, BUILD_CACHE=CACHE)
    container_driver = RecordingEngine(
        answers={
            "buildx version": (0, "v0.17.1", ""),
            "buildx inspect": (0, "Name: ci\nDriver: docker-container\n", ""),
        }
    )
    building.build(container_driver, settings, target_of(settings), export_cache=True)
    _, build = container_driver.actions
    assert f"--cache-to type=registry,ref={CACHE}:amd64,mode=max" in build
    # The default `docker` driver exports no registry cache: the inline cache and a push of the image instead.
    docker_driver = RecordingEngine(
        answers={
            "buildx version": (0, "v0.17.1", ""),
            "buildx inspect": (0, "Name: default\nDriver: docker\n", ""),
        }
    )
    building.build(docker_driver, settings, target_of(settings), export_cache=True)
    assert [line.split()[1] for line in docker_driver.actions] == [
        "pull",
        "buildx",
        "tag",
        "push",
        "image",
    ]
    assert "BUILDKIT_INLINE_CACHE=1" in docker_driver.actions[1]


def test_export_without_build_cache_is_refused_before_anything_runs(project):
    engine = RecordingEngine()
    with pytest.raises(
        UserError, match=r"--export-cache: BUILD_CACHE is not set; set it to a registry repository"
    ):
        building.build(
            engine, settings_of(project), target_of(settings_of(project)), export_cache=True
        )
    assert engine.log == []


def test_a_failed_cache_push_names_the_registry_and_gives_the_name_back(project):
    engine = RecordingEngine(
        outcomes={
            "docker push": Outcome(1, "", "denied: requested access to the resource is denied\n")
        }
    )
    settings = settings_of(project, BUILD_CACHE=CACHE)
    with pytest.raises(
        UserError,
        match=rf"pushing the layer cache to {CACHE}:amd64 failed: denied: .*`docker login 127.0.0.1:5000`",
    ):
        building.build(engine, settings, target_of(settings), export_cache=True)
    assert engine.actions[-1] == f"docker image rm {CACHE}:amd64"


def test_a_failed_build_pushes_no_cache(project):
    engine = RecordingEngine(outcomes={"docker build": Outcome(1)})
    settings = settings_of(project, BUILD_CACHE=CACHE)
    with pytest.raises(UserError, match="building tf:latest failed"):
        building.build(engine, settings, target_of(settings), export_cache=True)
    assert [line.split()[1] for line in engine.actions] == ["pull", "build"]
