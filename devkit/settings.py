"""The template's settings, read once and validated in one place.

Precedence for every key: command-line flag > process environment > `.env` > built-in default.
The only key with a flag is PLATFORM (`--platform`); `resolve_target` in `targets.py` applies it.
Every key of `.env` that is not listed in SETTING_KEYS belongs to the application and reaches the
container at run time only.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from devkit.errors import UserError
from devkit.platforms import normalize_platform

# pip's own variables for a package index other than PyPI (an Artifactory or Nexus mirror), often
# with credentials in the URL: they reach pip in builds as a BuildKit secret and in `invoke lock`
# by name, never the command line, a layer or the app's container.
PACKAGE_INDEX_KEYS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")

SETTING_KEYS = (
    "IMAGE_NAME",
    "IMAGE_TAG",
    "BASE_IMAGE",
    "PLATFORM",
    "HOST_ADDRESS",
    "HOST_PORT",
    "CONTAINER_PORT",
    "DATA_DIR",
    "DOCKER",
    "REGISTRY",
    "BUILD_CA_BUNDLE",
    *PACKAGE_INDEX_KEYS,
)

DEFAULT_BASE_IMAGE = "python:3.11-slim"

# Docker's grammar for a repository path (distribution/reference), lower case only.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_NAME = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
# A tag has at most 128 characters; room is kept for the suffixes `-gpu` and `-arm64`.
_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,117}")
_REGISTRY = re.compile(rf"[A-Za-z0-9.-]+(?::[0-9]+)?(?:/{_PATH_COMPONENT})*")


@dataclass(frozen=True)
class Settings:
    """Everything the tasks need to know about this project, validated."""

    project_dir: Path
    image_name: str
    image_tag: str
    base_image: str
    platform: str | None
    host_address: str
    host_port: int
    container_port: int
    data_dir: Path
    docker: str
    registry: str | None
    build_ca_bundle: Path | None
    # PIP_INDEX_URL and PIP_EXTRA_INDEX_URL, where set.
    package_index: dict[str, str] = field(default_factory=dict)
    # The application's own keys from `.env`, with the process environment's value where it has one.
    app_env: dict[str, str] = field(default_factory=dict)


class _Source:
    """Looks a key up in the process environment, then `.env`; says where a value came from."""

    def __init__(self, environ: Mapping[str, str], dotenv: Mapping[str, str]) -> None:
        self._environ = environ
        self._dotenv = dotenv

    def get(self, key: str) -> tuple[str | None, str]:
        """The value (None when unset or empty) and its origin, for error messages."""
        if self._environ.get(key):
            return self._environ[key], "environment"
        if self._dotenv.get(key):
            return self._dotenv[key], ".env"
        return None, "default"


def default_image_name(project_dir: Path) -> str:
    """The project folder's name, made a valid image name (`My Project` -> `my-project`)."""
    name = re.sub(r"[^a-z0-9]+", "-", project_dir.name.lower()).strip("-")
    return name or "tensorflow-app"


def read_dotenv(path: Path) -> dict[str, str]:
    """The key-value pairs of a `.env` file; a line that does not parse is an error that names it."""
    if not path.exists():
        return {}
    try:
        with path.open(encoding="utf-8") as stream:
            for binding in parse_stream(stream):
                if binding.error:
                    statement = binding.original.string.strip()
                    raise UserError(f"{path.name} line {binding.original.line}: cannot parse {statement!r}; expected KEY=value")
        values = dotenv_values(path, interpolate=True)
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from error
    return {key: value or "" for key, value in values.items()}


def load_settings(project_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings of the project in `project_dir`."""
    environ = os.environ if environ is None else environ
    dotenv = read_dotenv(project_dir / ".env")
    source = _Source(environ, dotenv)

    image_name = _choose(source, "IMAGE_NAME", default_image_name(project_dir))
    _require(
        source,
        "IMAGE_NAME",
        image_name,
        _IMAGE_NAME.fullmatch,
        "not a valid image name (lower case letters, digits, and . _ - / between them)",
    )
    image_tag = _choose(source, "IMAGE_TAG", "latest")
    _require(source, "IMAGE_TAG", image_tag, _IMAGE_TAG.fullmatch, "not a valid tag (letters, digits, _ . -; at most 118 characters)")
    base_image = _choose(source, "BASE_IMAGE", DEFAULT_BASE_IMAGE)
    _require(source, "BASE_IMAGE", base_image, lambda value: not re.search(r"\s", value), "an image reference has no spaces")
    registry = (source.get("REGISTRY")[0] or "").rstrip("/") or None
    if registry is not None:
        _require(
            source,
            "REGISTRY",
            registry,
            _REGISTRY.fullmatch,
            "expected a registry and optional namespace, e.g. ghcr.io/acme or 127.0.0.1:5000",
        )

    platform_value, platform_origin = source.get("PLATFORM")
    platform = None
    if platform_value is not None:
        try:
            platform = normalize_platform(platform_value)
        except UserError as error:
            raise UserError(f"PLATFORM (from {platform_origin}): {error}") from None

    check_app_keys(dotenv)
    return Settings(
        project_dir=project_dir,
        image_name=image_name,
        image_tag=image_tag,
        base_image=base_image,
        platform=platform,
        host_address=_address(source, "HOST_ADDRESS", "127.0.0.1"),
        host_port=_port(source, "HOST_PORT"),
        container_port=_port(source, "CONTAINER_PORT"),
        data_dir=_data_dir(source, project_dir),
        docker=_choose(source, "DOCKER", "docker"),
        registry=registry,
        build_ca_bundle=_ca_bundle(source, project_dir),
        package_index=_package_index(source),
        app_env={key: environ.get(key) or value for key, value in dotenv.items() if key not in SETTING_KEYS},
    )


def _choose(source: _Source, key: str, default: str) -> str:
    value, _ = source.get(key)
    return default if value is None else value


def _fail(source: _Source, key: str, value: str, reason: str) -> UserError:
    _, origin = source.get(key)
    return UserError(f"{key}={value!r} (from {origin}): {reason}")


def _require(source: _Source, key: str, value: str, check, reason: str) -> None:
    if not check(value):
        raise _fail(source, key, value, reason)


def _port(source: _Source, key: str) -> int:
    value = _choose(source, key, "8888")
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise _fail(source, key, value, "not a port number (1-65535)")
    return int(value)


def _address(source: _Source, key: str, default: str) -> str:
    value = _choose(source, key, default)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise _fail(source, key, value, "not an IP address (127.0.0.1 for this machine only, 0.0.0.0 for every network)") from None
    return value


def _project_path(project_dir: Path, value: str) -> Path:
    """A path from the settings: `~` expanded, relative to the project folder, absolute."""
    path = Path(value).expanduser()
    return (path if path.is_absolute() else project_dir / path).resolve()


def _data_dir(source: _Source, project_dir: Path) -> Path:
    value = _choose(source, "DATA_DIR", "./data")
    path = _project_path(project_dir, value)
    if path.exists():
        if not path.is_dir():
            raise _fail(source, "DATA_DIR", value, f"{path} is a file, not a folder")
        return path
    # Not there yet: `invoke run` makes it, so its nearest existing parent must let us.
    parent = next(parent for parent in path.parents if parent.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise _fail(source, "DATA_DIR", value, f"{path} does not exist and cannot be created in {parent}")
    return path


def _ca_bundle(source: _Source, project_dir: Path) -> Path | None:
    value = source.get("BUILD_CA_BUNDLE")[0]
    if value is None:
        return None
    path = _project_path(project_dir, value)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise _fail(source, "BUILD_CA_BUNDLE", value, f"{path} is not a readable file (a PEM bundle of CA certificates)")
    return path


def _package_index(source: _Source) -> dict[str, str]:
    found = {}
    for key in PACKAGE_INDEX_KEYS:
        value = source.get(key)[0]
        if value is None:
            continue
        # PIP_EXTRA_INDEX_URL may list several, separated by spaces, as pip takes it.
        for url in value.split():
            if not re.match(r"(https?|file)://[^\s]+$", url):
                # Never the value itself in the message: it may hold a password.
                raise _fail_quietly(source, key, "expected http(s)://host/path, e.g. https://user:token@pypi.example.com/simple")
        found[key] = value
    return found


def _fail_quietly(source: _Source, key: str, reason: str) -> UserError:
    _, origin = source.get(key)
    return UserError(f"{key} (from {origin}): {reason}")


# Keys the template sets in every container itself (`--env`, which beats an app key of the same name).
CONTAINER_KEYS = {"PORT": "set CONTAINER_PORT instead", "HOME": "the container's user gets its own"}


def check_app_keys(keys: Iterable[str]) -> None:
    """The app's keys among these `.env` keys: refuse those that are not the app's to set; warn of
    one that looks like a misspelt setting, which would silently go to the app instead."""
    for key in keys:
        if key in SETTING_KEYS:
            continue
        if key.upper().startswith("DOCKER_"):
            raise UserError(
                f".env key {key}: DOCKER_* variables steer the docker CLI, and .env keys other than the settings go to the app only",
                "set it in your shell to choose the engine, or rename it for the app",
            )
        if key in CONTAINER_KEYS:
            raise UserError(f".env key {key}: the template sets it in the container", CONTAINER_KEYS[key])
        resembles = difflib.get_close_matches(key.upper(), SETTING_KEYS, n=1, cutoff=0.85)
        if resembles:
            print(f"warning: .env key {key} is not a setting, so it goes to the app; did you mean {resembles[0]}?", file=sys.stderr)
