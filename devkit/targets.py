"""Which image a task is about: CPU or GPU, for which platform, under which tag and container
name."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from devkit import capabilities
from devkit.engine import Engine
from devkit.errors import UserError
from devkit.locks import Lock, image_lock
from devkit.platforms import AMD64, SUPPORTED, arch, normalize_platform
from devkit.settings import Settings, load_settings

# The label on every image and container the template makes; its value names the project (its
# folder), so that `invoke clean`, `stop` and `run` act on what is this project's, never on
# another's of the same name.
PROJECT_LABEL = "org.tensorflow-template.project"


def project_id(settings: Settings) -> str:
    """A stable id of the project: a hash of its folder's path (two checkouts of one repository
    differ)."""
    return hashlib.sha256(os.fsencode(settings.project_dir.resolve())).hexdigest()[:16]


def project_label(settings: Settings) -> str:
    """`PROJECT_LABEL=<id>`, for `--label` and `--filter label=`."""
    return f"{PROJECT_LABEL}={project_id(settings)}"


@dataclass(frozen=True)
class Target:
    """One image of the project and the container that `invoke run` makes of it."""

    gpu: bool
    platform: str
    # False for an image built for another architecture than the host's (run under emulation).
    native: bool
    image: str
    container: str
    # The Dockerfile stage to build (`--target`); None for the last one, the runtime image.
    stage: str | None = None

    @property
    def dockerfile(self) -> str:
        return "Dockerfile.gpu" if self.gpu else "Dockerfile"

    @property
    def container_test_container(self) -> str:
        """The container of `invoke container-test`, apart from the one `invoke run` may have
        running."""
        return f"{self.container}-container-test"

    @property
    def selection(self) -> str:
        """The flags that choose this image in a task: ` --gpu`, ` --platform linux/arm64`, or
        none."""
        return (
            f"{' --gpu' if self.gpu else ''}{'' if self.native else f' --platform {self.platform}'}"
        )

    def build_hint(self) -> str:
        """The `invoke build` that makes this image."""
        return f"`invoke build{self.selection}`"

    @property
    def lock(self) -> Lock:
        return image_lock(gpu=self.gpu, platform=self.platform)


def resolve_target(
    settings: Settings, *, gpu: bool, platform_flag: str | None, host: str
) -> Target:
    """The image asked for: `--platform` beats PLATFORM; the CPU image defaults to the host's
    platform.

    A CPU image for another architecture than the host's gets a tag suffix (`latest-arm64`), so that
    building it never replaces the native image under the plain tag.
    """
    if platform_flag is not None:
        requested, origin = normalize_platform(platform_flag), "--platform"
    else:
        requested, origin = settings.platform, "PLATFORM"

    if gpu:
        if requested not in (None, AMD64):
            raise UserError(
                f"the GPU image is {AMD64} only (TensorFlow's CUDA wheels are x86-64 only); "
                f"{origin} asks for {requested}"
            )
        platform_name = AMD64
        suffix = "-gpu"
    else:
        platform_name = requested or host
        suffix = "" if platform_name == host else f"-{arch(platform_name)}"

    return Target(
        gpu=gpu,
        platform=platform_name,
        native=platform_name == host,
        image=f"{settings.image_name}:{settings.image_tag}{suffix}",
        container=settings.image_name.replace("/", "-") + suffix,
    )


def notebook_target(target: Target) -> Target:
    """The JupyterLab image of `invoke notebook`: the `notebook` stage of the target's Dockerfile,
    tagged `<IMAGE_TAG>-notebook` (`-gpu-notebook`), and its container."""
    return replace(
        target,
        image=f"{target.image}-notebook",
        container=f"{target.container}-notebook",
        stage="notebook",
    )


def tensorboard_target(target: Target) -> Target:
    """The container of `invoke tensorboard`: TensorBoard from the target's own image."""
    return replace(target, container=f"{target.container}-tensorboard")


def every_target(settings: Settings, *, host: str) -> list[Target]:
    """Every image the project can build here: the CPU image for each platform, then the GPU
    image."""
    cpu = [resolve_target(settings, gpu=False, platform_flag=name, host=host) for name in SUPPORTED]
    return [*cpu, resolve_target(settings, gpu=True, platform_flag=None, host=host)]


def open_target(
    context, project_dir: Path, *, gpu: bool = False, platform: str | None = None
) -> tuple[Engine, Settings, Target]:
    """What a task works with: the engine (through invoke's context), the settings, and the image
    asked for."""
    if gpu:
        capabilities.require(project_dir, "gpu")
    settings = load_settings(project_dir)
    engine = Engine(settings.docker, context)
    return (
        engine,
        settings,
        resolve_target(settings, gpu=gpu, platform_flag=platform, host=engine.native_platform()),
    )
