"""`invoke push`: per-architecture tags in REGISTRY and the multi-architecture list that names
them, and the record of what went out by digest, which `invoke k8s` names the images by."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from devkit.containers import require_image
from devkit.engine import Dialect, Engine, Outcome, first_line
from devkit.errors import UserError
from devkit.platforms import arch
from devkit.settings import Settings
from devkit.targets import Target, resolve_target

# What `invoke push` published, by digest: {"<REGISTRY>/<IMAGE_NAME>:<tag>": "sha256:..."}, one
# entry per reference that `invoke k8s` names (the multi-architecture tag, the -gpu tag). It says
# what this clone pushed, so git ignores it.
PUSH_DIGESTS = Path(".push-digests.json")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


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


def push_command(settings: Settings, name: str, digest_file: str) -> list[str]:
    """Push `name`; where the CLI writes the pushed digest to a file (Podman), to `digest_file`."""
    digest_options = Dialect(settings.docker).digest_file_options(digest_file)
    return [settings.docker, "push", *digest_options, name]


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
    if gpu:
        reference, digest = pushed[0]
    else:
        reference = published
        digest = _publish_manifest_list(engine, settings, published, [name for name, _ in pushed])
    what = (
        reference if gpu else f"{published} for {', '.join(target.platform for target in targets)}"
    )
    engine.report(f"pushed {what}", would=f"push {what}")
    _record(engine, settings, reference, digest)


def _record(engine: Engine, settings: Settings, reference: str, digest: str | None) -> None:
    """`reference`'s entry in PUSH_DIGESTS becomes `digest`; without one (the CLI gave none)
    it goes, so that `invoke k8s` names the image by its tag rather than by an older push."""
    path = settings.project_dir / PUSH_DIGESTS
    if digest is None and not engine.dry:
        engine.report(f"the push gave no digest of {reference}: `invoke k8s` names it by its tag")
    engine.change(
        f"record the digest of {reference} in {PUSH_DIGESTS}",
        lambda: _write_digest(path, reference, digest),
    )


def _write_digest(path: Path, reference: str, digest: str | None) -> None:
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}  # none yet, or unreadable: the new record replaces it
    if not isinstance(recorded, dict):
        recorded = {}
    if digest is None:
        recorded.pop(reference, None)
    else:
        recorded[reference] = digest
    draft = path.with_name(f"{path.name}.draft")
    draft.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(draft, path)  # whole or not at all


def recorded_digest(settings: Settings, reference: str) -> str | None:
    """The digest `invoke push` recorded for `reference`; None where it recorded none. One line
    where the record is no longer what `invoke push` writes (edited by hand)."""
    path = settings.project_dir / PUSH_DIGESTS
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise UserError(
            f"{PUSH_DIGESTS} is not the JSON that `invoke push` writes ({error})", _REPUSH
        ) from None
    if not isinstance(recorded, dict):
        raise UserError(f"{PUSH_DIGESTS} is not the JSON object `invoke push` writes", _REPUSH)
    digest = recorded.get(reference)
    if digest is not None and not (isinstance(digest, str) and DIGEST.fullmatch(digest)):
        raise UserError(
            f"{PUSH_DIGESTS} records {digest!r} for {reference}, which is no digest "
            "(sha256: and 64 hex digits)",
            _REPUSH,
        )
    return digest


_REPUSH = f"run `invoke push` again, or delete {PUSH_DIGESTS} to name the images by tag"


def _digest_of(result: Outcome, digest_file: Path) -> str | None:
    """The digest a push pushed: what it wrote to `digest_file` (Podman), else what it printed
    (`docker push`'s `<tag>: digest: sha256:... size: N`, `docker manifest push`'s `sha256:...`)."""
    written = digest_file.read_text(encoding="utf-8") if digest_file.is_file() else ""
    found = DIGEST.findall(written or result.stdout)
    return found[-1] if found else None


def _push_image(engine: Engine, settings: Settings, target: Target) -> tuple[str, str | None]:
    """Push one image under its name in REGISTRY; that name, and the digest it pushed."""
    name = registry_image(settings, target)
    engine.run(tag_command(settings, target.image, name), hide=True)
    try:
        with tempfile.TemporaryDirectory(prefix="push-") as folder:
            digest_file = Path(folder) / "digest"
            result = engine.run(push_command(settings, name, str(digest_file)))
            digest = _digest_of(result, digest_file)
    finally:
        # Only the registry's name goes: the image keeps its own tag.
        engine.run(untag_command(settings, name), hide=True)
    if result.failed:
        login = f"`docker login {settings.registry.split('/')[0]}` if it needs credentials"
        raise UserError(f"pushing {name} failed: {first_line(result.stderr)}", login)
    return name, digest


def _publish_manifest_list(
    engine: Engine, settings: Settings, published: str, images: list[str]
) -> str | None:
    """`published` becomes a manifest list of the pushed per-architecture `images`; its digest."""
    insecure = engine.registry_is_insecure(settings.registry)
    with tempfile.TemporaryDirectory(prefix="push-") as folder:
        digest_file = Path(folder) / "digest"
        drop_draft, create, publish = engine.dialect.manifest_commands(
            published, images, insecure=insecure, digest_file=str(digest_file)
        )
        engine.run(drop_draft, hide=True)  # fails where there is no draft, as there should not be
        for argv in (create, publish):
            result = engine.run(argv, hide=True)
            if result.failed:
                raise UserError(
                    f"publishing {published} failed: {first_line(result.stderr)}",
                    "the per-architecture tags went out; run `invoke push` again",
                )
        return _digest_of(result, digest_file)
