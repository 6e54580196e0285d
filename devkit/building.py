"""`invoke build`: the image of a target, built with BuildKit for its platform, with its labels and secrets."""

from __future__ import annotations

import datetime
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from devkit.engine import Engine
from devkit.errors import UserError
from devkit.host import proxies
from devkit.locks import pinned_tensorflow
from devkit.settings import Settings
from devkit.targets import Target, project_label


def parse_build_args(values: Iterable[str]) -> dict[str, str]:
    """The `NAME=VALUE` pairs of `invoke build --build-arg`, checked (a value may be empty)."""
    pairs = {}
    for value in values:
        name, equals, content = value.partition("=")
        if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UserError(f"--build-arg {value!r}: expected NAME=VALUE, e.g. KEEP_TF_HEADERS=1")
        pairs[name] = content
    return pairs


def pip_config(package_index: dict[str, str]) -> str:
    """A pip.conf that sets PIP_INDEX_URL and PIP_EXTRA_INDEX_URL (pip reads it raw: no interpolation)."""
    options = {"PIP_INDEX_URL": "index-url", "PIP_EXTRA_INDEX_URL": "extra-index-url"}
    return "[global]\n" + "".join(f"{options[key]} = {value}\n" for key, value in package_index.items())


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
) -> list[str]:
    """`docker buildx build --load` where the buildx plugin exists, else the classic `docker build`
    (which builds with BuildKit when DOCKER_BUILDKIT=1 is in its environment)."""
    argv = [settings.docker, "buildx", "build", "--load"] if buildx else [settings.docker, "build"]
    argv += ["--platform", target.platform]
    argv += ["--file", str(settings.project_dir / target.dockerfile)]
    argv += ["--tag", target.image]
    argv += ["--label", project_label(settings)]
    argv += ["--build-arg", f"BASE_IMAGE={settings.base_image}"]
    argv += ["--build-arg", f"CONTAINER_PORT={settings.container_port}"]
    for name, value in (labels or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    for name in proxies:
        argv += ["--build-arg", name]
    for name, value in (build_args or {}).items():
        argv += ["--build-arg", f"{name}={value}"]
    if settings.build_ca_bundle is not None:
        # A BuildKit secret: mounted for the pip install only, never in a layer or the history.
        argv += ["--secret", f"id=ca_bundle,src={settings.build_ca_bundle}"]
    if pip_config_file is not None:
        # The package index and its credentials, as a pip.conf that the pip installs mount as a secret.
        argv += ["--secret", f"id=pip_conf,src={pip_config_file}"]
    if no_cache:
        argv.append("--no-cache")
    argv.append(str(settings.project_dir))
    return argv


def source_date(engine: Engine, project_dir: Path) -> str:
    """The time of the checked-out commit, as reproducible builds date an image (SOURCE_DATE_EPOCH).

    Not the wall clock: a rebuild of unchanged sources then yields the very same image, instead of
    a new one that leaves the previous as an untagged `<none>` image on every build.
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or engine.git(project_dir, "log", "-1", "--format=%ct")
    moment = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch.isdigit() else datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def image_labels(engine: Engine, settings: Settings, target: Target) -> dict[str, str]:
    """Build arguments behind the image's OCI labels: source, revision, creation time, TensorFlow."""
    project_dir = settings.project_dir
    return {
        "TENSORFLOW_VERSION": pinned_tensorflow((project_dir / target.lock.output).read_text(encoding="utf-8")),
        "SOURCE_URL": engine.git(project_dir, "config", "--get", "remote.origin.url"),
        "REVISION": engine.git(project_dir, "rev-parse", "HEAD"),
        "CREATED": source_date(engine, project_dir),
    }


def build(engine: Engine, settings: Settings, target: Target, *, no_cache: bool = False, build_args: Iterable[str] = ()) -> None:
    """Build the target's image: its lock and base image checked first, then one BuildKit build."""
    extra_args = parse_build_args(build_args)
    engine.require_running()
    buildx = engine.uses_buildx()
    if not (settings.project_dir / target.lock.output).exists():
        raise UserError(f"{target.lock.output} is missing: {target.image} installs it; run `invoke lock`")
    # Here rather than in the middle of the build's output: a misspelt or unreachable BASE_IMAGE is one line.
    engine.pull_base_image(settings.base_image, target.platform)
    if not target.native:
        engine.require_platform_support(settings.base_image, target.platform)
        print(f"building {target.image} for {target.platform}: not this host's platform, so it runs under emulation", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="invoke-build-") as secrets:
        pip_config_file = None
        if settings.package_index:
            pip_config_file = Path(secrets) / "pip.conf"
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
        )
        result = engine.run(argv, env={"DOCKER_BUILDKIT": "1"})
    if result.failed:
        raise UserError(f"building {target.image} failed (exit {result.exited}); the build's output above says why")
