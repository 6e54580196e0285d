"""The template's settings, read once and validated in one place.

Precedence for every key: command-line flag > process environment > `.env` > built-in default.
The only key with a flag is PLATFORM (`--platform`); `resolve_target` in `targets.py` applies it.
Every key of `.env` that is not listed in SETTING_KEYS belongs to the application and reaches the
container at run time only.
"""

from __future__ import annotations

import difflib
import errno
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
    "TENSORBOARD_PORT",
    "NOTEBOOK_PORT",
    "BUILD_CACHE",
    *PACKAGE_INDEX_KEYS,
)

DEFAULT_BASE_IMAGE = "python:3.11-slim"

# Docker's grammar of image references (distribution/reference): a repository path is lower case.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE_NAME = re.compile(_REPOSITORY)
# A tag has at most 128 characters; room is kept for the suffixes `-gpu` and `-arm64`.
_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,117}")
_REGISTRY = re.compile(rf"{_DOMAIN}(?:/{_PATH_COMPONENT})*")
# [registry/]repository[:tag][@digest], e.g. python:3.11-slim or
# mirror.example:5000/python@sha256:...
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_REPOSITORY})(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@{_DIGEST})?"
)
# Docker's limit for a whole image name, registry included; the container is named after the image,
# and a container name has two characters at least.
SHORTEST_NAME, LONGEST_NAME = 2, 255


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
    # Host ports of `invoke tensorboard` and `invoke notebook`, published on host_address.
    tensorboard_port: int = 6006
    notebook_port: int = 8889
    # A registry repository that `invoke build` takes its layer cache from (and with --export-cache,
    # sends it to).
    build_cache: str | None = None
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


# copier's answers file (copier.yml): the project_name a project was generated with.
_PROJECT_NAME = re.compile(r"^project_name: ([a-z0-9-]+)$", re.M)


def default_image_name(project_dir: Path) -> str:
    """The project_name that copier generated the project with, else the folder's name made a valid
    image name (`My Project` -> `my-project`), of 2 to 128 characters."""
    answers = project_dir / ".copier-answers.yml"
    if answered := answers.is_file() and _PROJECT_NAME.search(answers.read_text(encoding="utf-8")):
        return answered[1]
    name = re.sub(r"[^a-z0-9]+", "-", project_dir.name.lower()).strip("-")[:128].strip("-")
    return name if len(name) >= SHORTEST_NAME else "tensorflow-app"


def read_dotenv(path: Path) -> dict[str, str]:
    """The key-value pairs of a `.env` file.

    A line that does not parse is named by its number and key, never shown: it may hold a password.
    `${NAME}` in a value is replaced by NAME's value (python-dotenv's interpolation), except in the
    package index keys, whose credentials are taken as written.
    """
    if not path.exists():
        return {}
    try:
        with path.open(encoding="utf-8") as stream:
            for binding in parse_stream(stream):
                _check_binding(path, binding)
        values = dotenv_values(path, interpolate=True)
        written = dotenv_values(path, interpolate=False)
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from error
    values.update({key: written[key] for key in PACKAGE_INDEX_KEYS if key in written})
    return {key: value or "" for key, value in values.items()}


def _check_binding(path: Path, binding) -> None:
    """One line where a `.env` statement does not parse or holds a NUL byte, which no environment
    can carry."""
    where = f"{path.name} line {binding.original.line}"
    if binding.error:
        key = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=", binding.original.string)
        subject = f"the line of {key.group(1)}" if key else "a line without KEY="
        raise UserError(
            f"{where}: cannot parse {subject} (not shown: it may hold a secret); "
            "expected KEY=value, any quotes closed"
        )
    if binding.key is not None and "\0" in binding.key:
        raise UserError(f"{where}: the key {binding.key!r} holds a NUL byte; remove it")
    if binding.value is not None and "\0" in binding.value:
        raise UserError(
            f"{where}: the value of {binding.key} holds a NUL byte (not shown); remove it"
        )


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
    _require(
        source,
        "IMAGE_NAME",
        image_name,
        lambda value: SHORTEST_NAME <= len(value) <= LONGEST_NAME,
        f"{SHORTEST_NAME} to {LONGEST_NAME} characters (an image name at most {LONGEST_NAME}; "
        f"its container's, at least {SHORTEST_NAME})",
    )
    image_tag = _choose(source, "IMAGE_TAG", "latest")
    _require(
        source,
        "IMAGE_TAG",
        image_tag,
        _IMAGE_TAG.fullmatch,
        "not a valid tag (letters, digits, _ . -; at most 118 characters)",
    )
    base_image = _image_reference(
        source, "BASE_IMAGE", _choose(source, "BASE_IMAGE", DEFAULT_BASE_IMAGE)
    )
    registry = (source.get("REGISTRY")[0] or "").rstrip("/") or None
    build_cache = source.get("BUILD_CACHE")[0]
    if build_cache is not None:
        _require(
            source,
            "BUILD_CACHE",
            build_cache,
            lambda value: "/" in value and _REGISTRY.fullmatch(value),
            "expected a registry and repository without a tag, "
            "e.g. ghcr.io/acme/my-project-cache or 127.0.0.1:5000/my-project-cache",
        )
    if registry is not None:
        _not_an_option(source, "REGISTRY", registry)
        _require(
            source,
            "REGISTRY",
            registry,
            _REGISTRY.fullmatch,
            "expected a registry and optional namespace, e.g. ghcr.io/acme or 127.0.0.1:5000",
        )
        _require(
            source,
            "REGISTRY",
            registry,
            lambda value: len(f"{value}/{image_name}") <= LONGEST_NAME,
            f"{registry}/{image_name} is longer than an image name may be "
            f"({LONGEST_NAME} characters); shorten REGISTRY or IMAGE_NAME",
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
        tensorboard_port=_port(source, "TENSORBOARD_PORT", "6006"),
        notebook_port=_port(source, "NOTEBOOK_PORT", "8889"),
        build_cache=build_cache,
        data_dir=_data_dir(source, project_dir),
        docker=_docker(source),
        registry=registry,
        build_ca_bundle=_ca_bundle(source, project_dir),
        package_index=_package_index(source),
        app_env={
            key: environ.get(key) or value
            for key, value in dotenv.items()
            if key not in SETTING_KEYS
        },
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


def _port(source: _Source, key: str, default: str = "8888") -> int:
    value = _choose(source, key, default)
    # ASCII digits only: str.isdigit() and int() also take `²` and `٣`, which no port is spelt with.
    if not re.fullmatch(r"[0-9]{1,5}", value) or not 1 <= int(value) <= 65535:
        raise _fail(source, key, value, "not a port number (1-65535)")
    return int(value)


def _not_an_option(source: _Source, key: str, value: str) -> None:
    _require(
        source,
        key,
        value,
        lambda text: not text.startswith("-"),
        "may not start with '-', which a command reads as an option",
    )


def _image_reference(source: _Source, key: str, value: str) -> str:
    """An image reference as docker reads it: [registry/]repository[:tag][@digest]."""
    _not_an_option(source, key, value)
    reference = _REFERENCE.fullmatch(value)
    if reference is None:
        raise _fail(
            source,
            key,
            value,
            "not an image reference, e.g. python:3.11-slim or mirror.example.com/python:3.11-slim",
        )
    if len(reference["name"]) > LONGEST_NAME:
        raise _fail(source, key, value, f"an image name has at most {LONGEST_NAME} characters")
    return value


def _address(source: _Source, key: str, default: str) -> str:
    value = _choose(source, key, default)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise _fail(
            source,
            key,
            value,
            "not an IP address (127.0.0.1 for this machine only, 0.0.0.0 for every network)",
        ) from None
    return value


def _project_path(source: _Source, key: str, project_dir: Path, value: str) -> Path:
    """A path from the settings: `~` expanded, relative to the project folder, absolute."""
    try:
        path = Path(value).expanduser()
        return (path if path.is_absolute() else project_dir / path).resolve()
    except RuntimeError as error:  # `~nosuchuser`, or (before Python 3.13) a symlink loop
        raise _fail(
            source,
            key,
            value,
            "a symlink loop" if "loop" in str(error) else "no such user's home folder",
        ) from None
    except OSError as error:
        raise _fail(source, key, value, f"cannot follow it: {error.strerror}") from None


def _exists(source: _Source, key: str, value: str, path: Path) -> bool:
    """Whether something is at `path`; one line where the system cannot tell (a folder we may not
    look into, a symlink loop, a name too long)."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as error:
        reason = "a symlink loop" if error.errno == errno.ELOOP else error.strerror
        raise _fail(source, key, value, f"cannot look at {path}: {reason}") from None
    return True


def _data_dir(source: _Source, project_dir: Path) -> Path:
    value = _choose(source, "DATA_DIR", "./data")
    path = _project_path(source, "DATA_DIR", project_dir, value)
    if _exists(source, "DATA_DIR", value, path):
        if not path.is_dir():
            raise _fail(source, "DATA_DIR", value, f"{path} is a file, not a folder")
        return path
    # Not there yet: `invoke run` makes it, so its nearest existing parent must let us.
    parent = next(parent for parent in path.parents if _exists(source, "DATA_DIR", value, parent))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise _fail(
            source, "DATA_DIR", value, f"{path} does not exist and cannot be created in {parent}"
        )
    return path


def _docker(source: _Source) -> str:
    """The container CLI: a command looked up on PATH when it is run, or a path, which must be a
    program.

    A path that does not exist yet is let through: `invoke --dry` works without any CLI, and the
    tasks that need one say "no such command".
    """
    value = _choose(source, "DOCKER", "docker")
    if os.sep not in value and not (os.altsep and os.altsep in value):
        return value
    path = Path(value)
    if _exists(source, "DOCKER", value, path):
        if path.is_dir():
            raise _fail(
                source,
                "DOCKER",
                value,
                "a folder, not a program; set DOCKER to the docker CLI itself",
            )
        if not os.access(path, os.X_OK):
            raise _fail(source, "DOCKER", value, "not an executable file")
    return value


def _ca_bundle(source: _Source, project_dir: Path) -> Path | None:
    value = source.get("BUILD_CA_BUNDLE")[0]
    if value is None:
        return None
    path = _project_path(source, "BUILD_CA_BUNDLE", project_dir, value)
    if (
        not _exists(source, "BUILD_CA_BUNDLE", value, path)
        or not path.is_file()
        or not os.access(path, os.R_OK)
    ):
        raise _fail(
            source,
            "BUILD_CA_BUNDLE",
            value,
            f"{path} is not a readable file (a PEM bundle of CA certificates)",
        )
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
                raise _fail_quietly(
                    source,
                    key,
                    "expected http(s)://host/path, e.g. https://user:token@pypi.example.com/simple",
                )
        found[key] = value
    return found


def _fail_quietly(source: _Source, key: str, reason: str) -> UserError:
    _, origin = source.get(key)
    return UserError(f"{key} (from {origin}): {reason}")


# Keys the template sets in every container itself (`--env`, which beats an app key of the same
# name).
CONTAINER_KEYS = {"PORT": "set CONTAINER_PORT instead", "HOME": "the container's user gets its own"}


def check_app_keys(keys: Iterable[str]) -> None:
    """The app's keys among these `.env` keys: refuse those that are not the app's to set; warn of
    one that looks like a misspelt setting, which would silently go to the app instead."""
    for key in keys:
        if key in SETTING_KEYS:
            continue
        if key.upper().startswith("DOCKER_"):
            raise UserError(
                f".env key {key}: DOCKER_* variables steer the docker CLI, "
                "and .env keys other than the settings go to the app only",
                "set it in your shell to choose the engine, or rename it for the app",
            )
        if key in CONTAINER_KEYS:
            raise UserError(
                f".env key {key}: the template sets it in the container", CONTAINER_KEYS[key]
            )
        resembles = difflib.get_close_matches(key.upper(), SETTING_KEYS, n=1, cutoff=0.85)
        if resembles:
            print(
                f"warning: .env key {key} is not a setting, so it goes to the app; "
                f"did you mean {resembles[0]}?",
                file=sys.stderr,
            )
