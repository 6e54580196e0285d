"""`invoke push`: per-architecture tags in REGISTRY and the multi-architecture list that names
them."""

from __future__ import annotations

from devkit.containers import require_image
from devkit.engine import Engine, first_line
from devkit.errors import UserError
from devkit.platforms import arch
from devkit.settings import Settings
from devkit.targets import Target, resolve_target


def multi_arch_image(settings: Settings) -> str:
    """`<REGISTRY>/<IMAGE_NAME>:<IMAGE_TAG>`: the one name that Macs and Linux servers pull
    alike."""
    if settings.registry is None:
        raise UserError(
            "REGISTRY is not set, so there is nowhere to push",
            "set it in .env, e.g. REGISTRY=ghcr.io/acme",
        )
    return f"{settings.registry}/{settings.image_name}:{settings.image_tag}"


def registry_image(settings: Settings, target: Target) -> str:
    """Where `invoke push` publishes one image: `<REGISTRY>/<IMAGE_NAME>:<IMAGE_TAG>-<arch>` for a
    CPU image (the multi-architecture tag lists these), `...:<IMAGE_TAG>-gpu` for the GPU image."""
    suffix = "-gpu" if target.gpu else f"-{arch(target.platform)}"
    return f"{multi_arch_image(settings)}{suffix}"


def tag_command(settings: Settings, image: str, name: str) -> list[str]:
    return [settings.docker, "tag", image, name]


def push_command(settings: Settings, name: str) -> list[str]:
    return [settings.docker, "push", name]


def untag_command(settings: Settings, name: str) -> list[str]:
    """Remove one name of an image: the image itself stays under its other tags."""
    return [settings.docker, "image", "rm", name]


def push(engine: Engine, settings: Settings, *, gpu: bool, platforms: list[str | None]) -> None:
    """Push the GPU image, or the CPU image of each platform and one multi-architecture tag naming
    them.

    Every image is checked before the first goes out: no half-published set.
    """
    published = multi_arch_image(settings)
    host = engine.native_platform()
    requested = [
        resolve_target(settings, gpu=gpu, platform_flag=name, host=host)
        for name in platforms or [None]
    ]
    targets = list({target.image: target for target in requested}.values())
    engine.require_running()
    for target in targets:
        engine.require(require_image, engine, target)
    pushed = [_push_image(engine, settings, target) for target in targets]
    if not gpu:
        _publish_manifest_list(engine, settings, published, pushed)
    what = (
        pushed[0] if gpu else f"{published} for {', '.join(target.platform for target in targets)}"
    )
    engine.report(f"pushed {what}", would=f"push {what}")


def _push_image(engine: Engine, settings: Settings, target: Target) -> str:
    """Push one image under its name in REGISTRY; that name."""
    name = registry_image(settings, target)
    engine.run(tag_command(settings, target.image, name), hide=True)
    try:
        result = engine.run(push_command(settings, name))
    finally:
        # Only the registry's name goes: the image keeps its own tag.
        engine.run(untag_command(settings, name), hide=True)
    if result.failed:
        login = f"`docker login {settings.registry.split('/')[0]}` if it needs credentials"
        raise UserError(f"pushing {name} failed: {first_line(result.stderr)}", login)
    return name


def _publish_manifest_list(
    engine: Engine, settings: Settings, published: str, images: list[str]
) -> None:
    """`published` becomes a manifest list of the pushed per-architecture `images`."""
    insecure = engine.registry_is_insecure(settings.registry)
    drop_draft, create, publish = engine.dialect.manifest_commands(
        published, images, insecure=insecure
    )
    engine.run(drop_draft, hide=True)  # fails where there is no draft, as there should not be
    for argv in (create, publish):
        result = engine.run(argv, hide=True)
        if result.failed:
            raise UserError(
                f"publishing {published} failed: {first_line(result.stderr)}",
                "the per-architecture tags went out; run `invoke push` again",
            )
