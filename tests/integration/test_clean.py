"""`invoke clean`, `stop` and `run` act only on what carries the project's label: the project's
containers, its images and its untagged images go; another project's of the same name, DATA_DIR and
the caches (without --all) stay."""

import re
import stat

from devkit.settings import load_settings
from devkit.targets import PROJECT_LABEL, project_id
from helpers.engine import DOCKER, containers_named, docker, free_port
from helpers.project import PROJECT_DIR, project_copy


def label_of(image: str) -> str:
    return docker(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{PROJECT_LABEL}"}}}}', image
    ).stdout.strip()


def image_exists(reference: str) -> bool:
    return docker("image", "inspect", reference, check=False).returncode == 0


def test_the_built_image_carries_its_projects_label(cpu_image):
    assert label_of(cpu_image) == project_id(load_settings(PROJECT_DIR, environ={}))


def test_clean_removes_only_the_projects_own_and_leaves_another_projects_of_the_same_name(
    invoke, cpu_image, tmp_path
):
    # A copy is a project of its own (another folder); the suite's image is another project's to it.
    project = project_copy(tmp_path)
    name = f"{invoke.image_name}-clean"
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    (data / "model.keras").write_text("weeks of training")
    env = {"IMAGE_NAME": name, "DATA_DIR": str(data), "HOST_PORT": str(free_port())}
    one_off = None
    try:
        # Two builds, a change between them: the first image is left untagged, as after any rebuild.
        assert invoke("build", cwd=project, env=env).returncode == 0
        untagged = docker(
            "image", "inspect", "--format", "{{.Id}}", f"{name}:latest"
        ).stdout.strip()
        with (project / "src" / "app" / "__init__.py").open("a") as source:
            source.write("# changed\n")
        assert invoke("build", cwd=project, env=env).returncode == 0
        assert (
            docker("image", "inspect", "--format", "{{.RepoTags}}", untagged).stdout.strip() == "[]"
        )
        # Another project's container and image, under the names this project's would have.
        docker("create", "--name", name, cpu_image)
        docker("tag", cpu_image, f"{name}:latest-gpu")
        started = invoke("run", "--detach", "--cmd", "sleep 600", cwd=project, env=env)
        assert started.returncode == 0, started.stderr
        one_off = started.stderr.strip().splitlines()[-2].split()[0]

        refused = invoke("run", "--detach", cwd=project, env=env)
        assert refused.returncode == 1
        assert refused.stderr.strip().startswith(
            f"error: {name} is a container of the same name that is not this project's"
        )
        stopped = invoke("stop", cwd=project, env=env)
        assert (stopped.returncode, stopped.stderr.strip()) == (
            0,
            f"left alone: {name} is a container of the same name that is not this project's "
            f"(no {PROJECT_LABEL} label of this folder); `{DOCKER} rm --force {name}` removes it",
        )

        result = invoke("clean", cwd=project, env=env)
        assert result.returncode == 0, result.stderr
        foreign_container, foreign_image, removed, summary = result.stderr.strip().splitlines()
        assert foreign_container.startswith(
            f"left alone: {name} is a container of the same name that is not this project's"
        )
        assert foreign_image.startswith(
            f"left alone: {name}:latest-gpu is an image of the same name that is not this project's"
        )
        assert removed == f"removed container {one_off}; image {name}:latest; 1 untagged image"
        assert re.fullmatch(
            rf"kept: what you pushed to a registry, DATA_DIR \({data}\), the locks, "
            rf"the lock cache volume {name}-lock-cache and the build cache \(`invoke clean --all` removes those\)",
            summary,
        )
        assert containers_named(one_off) == []
        assert not image_exists(f"{name}:latest")
        assert not image_exists(untagged)
        # Another project's, and never DATA_DIR.
        assert containers_named(name) != []
        assert image_exists(f"{name}:latest-gpu")
        assert image_exists(cpu_image)
        assert (data / "model.keras").read_text() == "weeks of training"

        again = invoke("clean", cwd=project, env=env)
        assert (again.returncode, again.stderr.strip().splitlines()[2]) == (0, "nothing to remove")
    finally:
        docker("rm", "--force", name, *([one_off] if one_off else []), check=False)
        docker("image", "rm", "--force", f"{name}:latest", f"{name}:latest-gpu", check=False)


def test_clean_all_also_removes_the_pip_cache_volume_and_prunes_the_build_cache(invoke, tmp_path):
    name = f"{invoke.image_name}-clean-all"
    volume = f"{name}-lock-cache"
    # The engine is shared with other projects, whose build cache `docker builder prune` would empty:
    # a stand-in CLI records that one command and passes every other to the real one.
    log = tmp_path / "pruned.log"
    stand_in = tmp_path / "docker"
    stand_in.write_text(
        f'#!/bin/sh\nif [ "$1 $2" = "builder prune" ]; then echo "$*" >> {log}; exit 0; fi\nexec {DOCKER} "$@"\n',
    )
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IXUSR)
    env = {"IMAGE_NAME": name, "DOCKER": str(stand_in)}
    docker("volume", "create", volume)
    try:
        result = invoke("clean", "--all", cwd=project_copy(tmp_path), env=env)
        assert result.returncode == 0, result.stderr
        assert (
            result.stderr.strip().splitlines()[-2]
            == f"removed the lock cache volume {volume}; the engine's unused build cache"
        )
        assert result.stderr.strip().splitlines()[-1].endswith(", the locks"), (
            "nothing of the caches is kept"
        )
        assert docker("volume", "inspect", volume, check=False).returncode != 0
        assert log.read_text() == "builder prune --force\n", (
            "only the unused cache, never `--all` of it"
        )
    finally:
        docker("volume", "rm", volume, check=False)
