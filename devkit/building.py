"""`invoke build`: the image of a target, built with BuildKit for its platform, with its labels
and secrets."""

from __future__ import annotations

import csv
import datetime
import io
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from devkit import baseimage, runtime, sources
from devkit.baseimage import Base
from devkit.engine import Dialect, Engine, first_line
from devkit.errors import UserError
from devkit.host import private_folder, proxies
from devkit.locks import pinned_tensorflow
from devkit.platforms import arch
from devkit.settings import BUILD_ARG_KEYS, Goes, Settings
from devkit.targets import Target, project_label

# The build arguments `invoke build` sets itself, and where each comes from: `--build-arg` may not
# override them, or an image would carry a base, a port or labels that its settings do not say.
TEMPLATE_BUILD_ARGS = {
    **{key: f"the {key} setting; set it in .env" for key in BUILD_ARG_KEYS},
    "TENSORFLOW_VERSION": "the lock, for the image's labels",
    "SOURCE_URL": "git's remote.origin.url, for the image's labels",
    "REVISION": "git's checked-out commit, for the image's labels",
    "CREATED": "the checked-out commit's time (or SOURCE_DATE_EPOCH), for the image's labels",
}

# What BuildKit sets in every build from `--platform` and the builder's own platform: a value given
# would be honoured, e.g. an amd64 image that installs the arm64 lock.
PLATFORM_BUILD_ARGS = tuple(
    f"{side}{part}"
    for side in ("TARGET", "BUILD")
    for part in ("PLATFORM", "OS", "ARCH", "VARIANT")
)


def parse_build_args(values: Iterable[str]) -> dict[str, str]:
    """The `NAME=VALUE` pairs of `invoke build --build-arg`, checked (a value may be empty)."""
    pairs = {}
    for value in values:
        name, equals, content = value.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UserError(f"--build-arg {value!r}: expected NAME=VALUE, e.g. KEEP_TF_HEADERS=1")
        if name in PLATFORM_BUILD_ARGS:
            raise UserError(
                f"--build-arg {name}: BuildKit sets it from the platforms of the build",
                "choose the image's with `invoke build --platform`",
            )
        if name in TEMPLATE_BUILD_ARGS:
            raise UserError(
                f"--build-arg {name}: `invoke build` sets it itself, "
                f"from {TEMPLATE_BUILD_ARGS[name]}"
            )
        pairs[name] = content
    return pairs


def secret_option(name: str, source: Path) -> str:
    """The value of `--secret`, which BuildKit reads as CSV: a path with a comma or a quote is
    quoted."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([f"id={name}", f"src={source}"])
    return buffer.getvalue()


def public_source_url(remote: str) -> str:
    """What of a git remote may go into every image's `org.opencontainers.image.source` label: the
    scheme, host and path of an http(s) URL (`git@host:org/repo` becomes `https://host/org/repo`),
    without user, password (a CI job's token), query or fragment. Anything else gives no label
    ("")."""
    if any(character.isspace() or not character.isprintable() for character in remote):
        return ""
    # scp-like: [user@]host:path, a host of two characters at least (`C:` is a Windows drive).
    scp = re.fullmatch(
        r"(?:[^@/:]+@)?([A-Za-z0-9][A-Za-z0-9.-]*[A-Za-z0-9]):([A-Za-z0-9._~%+-][A-Za-z0-9._~%+/-]*)",
        remote,
    )
    if scp is not None:
        return f"https://{scp.group(1)}/{scp.group(2)}"
    try:
        url = urllib.parse.urlsplit(remote)
        host, port = url.hostname, url.port
    except ValueError:
        return ""
    if url.scheme.lower() not in ("http", "https") or not host:
        return ""
    host = f"[{host}]" if ":" in host else host
    return f"{url.scheme.lower()}://{host}{f':{port}' if port else ''}{url.path}"


def pip_config(package_index: dict[str, str]) -> str:
    """A pip.conf that sets PIP_INDEX_URL and PIP_EXTRA_INDEX_URL (pip reads it raw: no
    interpolation)."""
    options = {"PIP_INDEX_URL": "index-url", "PIP_EXTRA_INDEX_URL": "extra-index-url"}
    return "[global]\n" + "".join(
        f"{options[key]} = {value}\n" for key, value in package_index.items()
    )


def cache_ref(settings: Settings, target: Target) -> str:
    """Where BUILD_CACHE keeps one image's layer cache: a tag per image, e.g. `<BUILD_CACHE>:amd64`,
    `:arm64`, `:gpu`, `:amd64-notebook`, shared by every IMAGE_TAG (branches reuse each other's
    layers)."""
    variant = "gpu" if target.gpu else arch(target.platform)
    return f"{settings.build_cache}:{variant}{f'-{target.stage}' if target.stage else ''}"


def cache_mode(engine: Engine, *, buildx: bool) -> str:
    """How this builder imports and exports a layer cache: `repository` (one tag per layer in it),
    `registry` (buildx on a builder that exports any stage: mode=max), or `inline` (the classic
    `docker build`, and buildx on its default `docker` driver: the cache rides in the image's own
    config, for the final stage's layers only, and goes out as that image)."""
    if engine.dialect.layer_cache_in_repository:
        return "repository"
    return "registry" if buildx and engine.buildx_driver() != "docker" else "inline"


def cache_options(settings: Settings, target: Target, *, mode: str, export: bool) -> list[str]:
    """The build flags that take the layer cache from BUILD_CACHE and, with `export`, send it
    there."""
    if settings.build_cache is None:
        return []
    if mode == "repository":
        # One tag per cached layer in the repository itself.
        argv = ["--layers", "--cache-from", settings.build_cache]
        return argv + (["--cache-to", settings.build_cache] if export else [])
    ref = cache_ref(settings, target)
    if mode == "registry":
        argv = ["--cache-from", f"type=registry,ref={ref}"]
        return argv + (["--cache-to", f"type=registry,ref={ref},mode=max"] if export else [])
    return ["--cache-from", ref] + (["--build-arg", "BUILDKIT_INLINE_CACHE=1"] if export else [])


def build_command(
    settings: Settings,
    target: Target,
    *,
    buildx: bool,
    no_cache: bool = False,
    labels: dict[str, str] | None = None,
    proxies: tuple[str, ...] = (),
    build_args: dict[str, str] | None = None,
    pip_config_file: Path | None = None,
    cache: list[str] | None = None,
    base: Base | None = None,
) -> list[str]:
    """`docker buildx build --load` where the buildx plugin exists, else the classic `docker build`
    (which builds with BuildKit when DOCKER_BUILDKIT=1 is in its environment), and what the
    engine's dialect adds. `base`: what the build starts from, by digest (the BASE_IMAGE build
    argument, and the labels that name it); without it, BASE_IMAGE as the settings give it."""
    argv = [settings.docker, "buildx", "build", "--load"] if buildx else [settings.docker, "build"]
    argv += Dialect(settings.docker).build_options()
    argv += ["--platform", target.platform]
    argv += ["--file", str(settings.project_dir / target.dockerfile)]
    if target.stage is not None:
        argv += ["--target", target.stage]
    argv += ["--tag", target.image]
    argv += ["--label", project_label(settings)]
    if target.stage is None:
        # What the image is made from, which `invoke run` compares with the project (sources.py).
        lock = settings.project_dir / target.lock.output
        for name, value in sources.digest_labels(settings.project_dir, lock).items():
            argv += ["--label", f"{name}={value}"]
    template_args = settings.going_to(Goes.BUILD_ARG)
    if base is not None:
        for name, value in base.labels().items():
            argv += ["--label", f"{name}={value}"]
        template_args["BASE_IMAGE"] = base.reference
    argv += cache or []
    for name, value in template_args.items():
        argv += ["--build-arg", f"{name}={value}"]
    for name, value in (labels or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    for name in proxies:
        argv += ["--build-arg", name]
    for name, value in (build_args or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    if settings.build_ca_bundle is not None:
        # A BuildKit secret: mounted for the pip install only, never in a layer or the history.
        argv += ["--secret", secret_option("ca_bundle", settings.build_ca_bundle)]
    if pip_config_file is not None:
        # The package index and its credentials, as a pip.conf that the pip installs mount as a
        # secret.
        argv += ["--secret", secret_option("pip_conf", pip_config_file)]
    if no_cache:
        argv.append("--no-cache")
    argv.append(str(settings.project_dir))
    return argv


def source_date(engine: Engine, project_dir: Path) -> str:
    """The time of the checked-out commit, as reproducible builds date an image (SOURCE_DATE_EPOCH).

    Not the wall clock: a rebuild of unchanged sources then yields the very same image, instead of
    a new one that leaves the previous as an untagged `<none>` image on every build.
    """
    given = os.environ.get("SOURCE_DATE_EPOCH")
    # ASCII digits, and at most 10 of them (the year 2286): `int()` also takes `²`, and a larger
    # number is past what every platform's clock functions take.
    if given and not re.fullmatch(r"[0-9]{1,10}", given):
        raise UserError(
            f"SOURCE_DATE_EPOCH={given!r} (from environment): not a time in seconds since 1970"
        )
    epoch = given or engine.git(project_dir, "log", "-1", "--format=%ct")
    moment = (
        datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
        if epoch
        else datetime.datetime.now(datetime.UTC)
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_labels(engine: Engine, settings: Settings, target: Target) -> dict[str, str]:
    """Build arguments behind the image's OCI labels: source, revision, creation time,
    TensorFlow."""
    project_dir = settings.project_dir
    return {
        "TENSORFLOW_VERSION": pinned_tensorflow(
            (project_dir / target.lock.output).read_text(encoding="utf-8")
        ),
        "SOURCE_URL": public_source_url(
            engine.git(project_dir, "config", "--get", "remote.origin.url")
        ),
        "REVISION": engine.git(project_dir, "rev-parse", "HEAD"),
        "CREATED": source_date(engine, project_dir),
    }


def build(
    engine: Engine,
    settings: Settings,
    target: Target,
    *,
    no_cache: bool = False,
    build_args: Iterable[str] = (),
    export_cache: bool = False,
) -> None:
    """Build the target's image: its lock and base image checked first, then one BuildKit build;
    with BUILD_CACHE, its layer cache taken from the registry and, with `export_cache`, sent
    there."""
    extra_args = parse_build_args(build_args)
    if export_cache and settings.build_cache is None:
        fix = "set it to a registry repository, e.g. BUILD_CACHE=ghcr.io/acme/my-project-cache"
        raise UserError("--export-cache: BUILD_CACHE is not set", fix)
    engine.require_running()
    buildx = engine.uses_buildx()
    mode = cache_mode(engine, buildx=buildx) if settings.build_cache else ""
    if not (settings.project_dir / target.lock.output).exists():
        raise UserError(
            f"{target.lock.output} is missing: {target.image} installs it; run `invoke lock`"
        )
    # By the digest `invoke lock` pinned for this platform; pulled here rather than in the middle of
    # the build's output: a misspelt or unreachable BASE_IMAGE is one line.
    base = baseimage.for_build(engine, settings.project_dir, settings.base_image, target.platform)
    reference = baseimage.pull(engine, base, settings.base_image, target.platform)
    if not target.native:
        runtime.require_platform_support(engine, reference, target.platform)
        print(
            f"building {target.image} for {target.platform}: not this host's platform, "
            "so it runs under emulation",
            file=sys.stderr,
        )
    # The index's credentials are in pip.conf: its folder goes on SIGTERM and SIGHUP too, and one
    # that SIGKILL left goes with the next build or `invoke clean`.
    with private_folder("build") as secrets:
        pip_config_file = None
        if settings.package_index:
            pip_config_file = secrets / "pip.conf"
            pip_config_file.touch(mode=0o600)
            pip_config_file.write_text(pip_config(settings.package_index), encoding="utf-8")
        argv = build_command(
            settings,
            target,
            buildx=buildx,
            no_cache=no_cache,
            labels=image_labels(engine, settings, target),
            proxies=proxies(),
            build_args=extra_args,
            pip_config_file=pip_config_file,
            cache=cache_options(settings, target, mode=mode, export=export_cache),
            base=base,
        )
        result = engine.run(argv, env={"DOCKER_BUILDKIT": "1"})
    if result.failed:
        raise UserError(
            f"building {target.image} failed (exit {result.exited}); "
            "the build's output above says why"
        )
    if export_cache and mode == "inline":
        push_inline_cache(engine, settings, target)


def push_inline_cache(engine: Engine, settings: Settings, target: Target) -> None:
    """The inline cache travels in the image: push it under its cache tag, a name lent for the
    push only."""
    ref = cache_ref(settings, target)
    engine.run([settings.docker, "tag", target.image, ref], hide=True)
    try:
        result = engine.run([settings.docker, "push", ref], hide=True)
    finally:
        engine.run([settings.docker, "image", "rm", ref], hide=True)
    if result.failed:
        login = f"`docker login {ref.split('/', 1)[0]}` if it needs credentials"
        raise UserError(
            f"pushing the layer cache to {ref} failed: {first_line(result.stderr)}", login
        )
    engine.report(f"layer cache pushed to {ref}")
