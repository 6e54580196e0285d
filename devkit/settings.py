"""The template's settings: one table, read once and checked in one place.

Each setting is declared once, in SETTINGS below: its key, its default, how its text is read and
checked, its help (its line in docs/configuration.md) and where it goes (`Goes`). `Settings`, the
list of keys, the checks and `load_settings` follow from the table; a unit test holds
`.env.example` and the table of docs/configuration.md to it, and `invoke build` passes the build
arguments from it.

Precedence for every key: command-line flag > process environment > `.env` > built-in default.
The only key with a flag is PLATFORM (`--platform`); `resolve_target` in `targets.py` applies it.
Every other key of `.env` belongs to the application and reaches its container at run time only;
NOT_APP_KEYS (and `check_app_keys`) say which keys an app may not have.
"""

from __future__ import annotations

import difflib
import enum
import errno
import ipaddress
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import parse_stream

from devkit.errors import UserError
from devkit.platforms import normalize_platform

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
# [registry/]repository[:tag][@digest]: python:3.11-slim, mirror.example:5000/python@sha256:...
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_REPOSITORY})"
    rf"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@{_DIGEST})?"
)
# Docker's limit for a whole image name, registry included; the container is named after the image,
# and a container name has two characters at least.
SHORTEST_NAME, LONGEST_NAME = 2, 255

# The folders of the system a DATA_DIR may not be (Linux's and macOS's), nor lie in where marked:
# the app's container writes anything in DATA_DIR.
_SYSTEM_FOLDERS = {
    *("bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "proc", "root"),
    *("run", "sbin", "sys", "usr", "var", "Applications", "Library", "System", "Users", "private"),
}
_SYSTEM_TREES = {"boot", "dev", "etc", "proc", "sys"}


class Goes(enum.Flag):
    """Where a setting's value goes."""

    ENGINE = enum.auto()  # how the tasks call the engine: the CLI, image names, platform, registry
    BUILD_ARG = enum.auto()  # `docker build --build-arg KEY=value`, for every one set
    SECRET = enum.auto()  # to pip: a BuildKit secret of builds, and `invoke lock`'s by name
    RUN = enum.auto()  # an option of the containers the tasks start: address, ports, mounts


class Invalid(ValueError):
    """A parser's refusal: why. `load_settings` adds the key, the value (unless it is not to be
    shown) and where it came from."""

    def __init__(self, reason: str, *, show_value: bool = True) -> None:
        super().__init__(reason)
        self.show_value = show_value


@dataclass(frozen=True)
class Context:
    """What a parser may need besides the text: the project folder, the settings read before."""

    project_dir: Path
    values: Mapping[str, object]


@dataclass(frozen=True)
class Setting:
    """One setting of `.env`, declared once."""

    key: str
    # The value .env.example writes, uncommented; None: unset (commented out in .env.example); a
    # function of the project folder: a default worked out (default_help says how, for the docs).
    default: str | Callable[[Path], str] | None
    # The value from its text (an empty text is unset and never parsed); Invalid where it is wrong.
    parse: Callable[[str, Context], object]
    # Its meaning, as the docs' table begins it (where a link to more may follow).
    help: str
    goes: Goes
    default_help: str = ""
    # A credential: never shown in a message, and taken as written (python-dotenv's ${...} is not
    # applied to it).
    secret: bool = False
    # The capability (devkit/capabilities.py) it belongs to: a project without that capability
    # still reads it, but its .env.example and docs do not show it.
    capability: str | None = None

    @property
    def field(self) -> str:
        """Its name in `Settings`."""
        return self.key.lower()


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


def _image_name(value: str, context: Context) -> str:
    if not _IMAGE_NAME.fullmatch(value):
        raise Invalid(
            "not a valid image name (lower case letters, digits, and . _ - / between them)"
        )
    if not SHORTEST_NAME <= len(value) <= LONGEST_NAME:
        raise Invalid(
            f"{SHORTEST_NAME} to {LONGEST_NAME} characters (an image name at most {LONGEST_NAME};"
            f" its container's, at least {SHORTEST_NAME})"
        )
    return value


def _image_tag(value: str, context: Context) -> str:
    if not _IMAGE_TAG.fullmatch(value):
        raise Invalid("not a valid tag (letters, digits, _ . -; at most 118 characters)")
    return value


def _not_an_option(value: str) -> None:
    if value.startswith("-"):
        raise Invalid("may not start with '-', which a command reads as an option")


def _image_reference(value: str, context: Context) -> str:
    """An image reference as docker reads it: [registry/]repository[:tag][@digest]."""
    _not_an_option(value)
    reference = _REFERENCE.fullmatch(value)
    if reference is None:
        raise Invalid(
            "not an image reference, e.g. python:3.11-slim or mirror.example.com/python:3.11-slim"
        )
    if len(reference["name"]) > LONGEST_NAME:
        raise Invalid(f"an image name has at most {LONGEST_NAME} characters")
    return value


def _platform(value: str, context: Context) -> str:
    try:
        return normalize_platform(value)
    except UserError as error:
        raise Invalid(str(error), show_value=False) from None


def _ipv4_address(value: str, context: Context) -> str:
    choices = "127.0.0.1 for this machine only, 0.0.0.0 for every network"
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise Invalid(f"not an IP address ({choices})") from None
    if address.version == 6:
        # Published as ADDRESS:HOST_PORT:CONTAINER_PORT and shown as http://ADDRESS:PORT, which an
        # IPv6 address breaks ("too many colons"): refused here rather than half supported.
        raise Invalid(f"an IPv6 address; the ports are published on IPv4: {choices}")
    return value


def _port(value: str, context: Context) -> int:
    # ASCII digits only: str.isdigit() and int() also take `²` and `٣`, which no port is spelt with.
    if not re.fullmatch(r"[0-9]{1,5}", value) or not 1 <= int(value) <= 65535:
        raise Invalid("not a port number (1-65535)")
    return int(value)


def _project_path(value: str, project_dir: Path) -> Path:
    """A path from the settings: `~` expanded, relative to the project folder, absolute."""
    try:
        path = Path(value).expanduser()
        return (path if path.is_absolute() else project_dir / path).resolve()
    except RuntimeError as error:  # `~nosuchuser`, or (before Python 3.13) a symlink loop
        raise Invalid(
            "a symlink loop" if "loop" in str(error) else "no such user's home folder"
        ) from None
    except OSError as error:
        raise Invalid(f"cannot follow it: {error.strerror}") from None


def _exists(path: Path) -> bool:
    """Whether something is at `path`; Invalid where the system cannot tell (a folder we may not
    look into, a symlink loop, a name too long)."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as error:
        reason = "a symlink loop" if error.errno == errno.ELOOP else error.strerror
        raise Invalid(f"cannot look at {path}: {reason}") from None
    return True


def _printable(path: Path) -> None:
    """No line break, tab or other control character, which `--mount` and `--secret` (CSV, one
    line) and a Kubernetes hostPath cannot take."""
    if any(unicodedata.category(character) == "Cc" for character in str(path)):
        raise Invalid(
            "a line break or another control character, which a mount of the engine cannot take"
        )


def _home() -> Path | None:
    try:
        return Path.home().resolve()
    except (RuntimeError, KeyError, OSError):
        return None


def _not_the_system(path: Path, project_dir: Path) -> None:
    """DATA_DIR is the app's to write: never the root, the home folder, the system's folders, or
    a folder that holds the project (its code and .env)."""
    parts = path.parts[1:]
    if not parts:
        what = "the filesystem's root"
    elif path == _home():
        what = "your home folder"
    elif (len(parts) == 1 and parts[0] in _SYSTEM_FOLDERS) or parts[0] in _SYSTEM_TREES:
        what = "a folder of the system"
    elif project_dir.resolve().is_relative_to(path):
        what = "it holds this project, its code and .env"
    else:
        return
    raise Invalid(f"it is {path} ({what}); the container may write anything in DATA_DIR")


def _data_dir(value: str, context: Context) -> Path:
    _printable(Path(value))
    path = _project_path(value, context.project_dir)
    _printable(path)
    _not_the_system(path, context.project_dir)
    if _exists(path):
        if not path.is_dir():
            raise Invalid(f"{path} is a file, not a folder")
        return path
    # Not there yet: `invoke run` makes it, so its nearest existing parent must let us.
    parent = next(parent for parent in path.parents if _exists(parent))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise Invalid(f"{path} does not exist and cannot be created in {parent}")
    return path


def _docker(value: str, context: Context) -> str:
    """The container CLI: a command looked up on PATH when it is run, or a path, which must be a
    program. A path that does not exist yet is let through: `invoke --dry` works without any CLI,
    and the tasks that need one say "no such command"."""
    if os.sep not in value and not (os.altsep and os.altsep in value):
        return value
    path = Path(value)
    if _exists(path):
        if path.is_dir():
            raise Invalid("a folder, not a program; set DOCKER to the docker CLI itself")
        if not os.access(path, os.X_OK):
            raise Invalid("not an executable file")
    return value


def _registry(value: str, context: Context) -> str | None:
    registry = value.rstrip("/")
    if not registry:
        return None
    _not_an_option(registry)
    if not _REGISTRY.fullmatch(registry):
        raise Invalid(
            "expected a registry and optional namespace, e.g. ghcr.io/acme or 127.0.0.1:5000"
        )
    image = f"{registry}/{context.values['IMAGE_NAME']}"
    if len(image) > LONGEST_NAME:
        raise Invalid(
            f"{image} is longer than an image name may be ({LONGEST_NAME} characters);"
            " shorten REGISTRY or IMAGE_NAME"
        )
    return registry


def _build_cache(value: str, context: Context) -> str:
    if "/" not in value or not _REGISTRY.fullmatch(value):
        raise Invalid(
            "expected a registry and repository without a tag, e.g. ghcr.io/acme/my-project-cache"
            " or 127.0.0.1:5000/my-project-cache"
        )
    return value


def _ca_bundle(value: str, context: Context) -> Path:
    path = _project_path(value, context.project_dir)
    _printable(path)
    if not _exists(path) or not path.is_file() or not os.access(path, os.R_OK):
        raise Invalid(f"{path} is not a readable file (a PEM bundle of CA certificates)")
    return path


def _index_urls(value: str, context: Context) -> str:
    # PIP_EXTRA_INDEX_URL may list several, separated by spaces, as pip takes it.
    for url in value.split():
        if not re.match(r"(https?|file)://[^\s]+$", url):
            raise Invalid(
                "expected http(s)://host/path, e.g. https://user:token@pypi.example.com/simple"
            )
    return value


# The table. Its order is the order of the checks (a parser sees the values above its own), of
# the docs' table and of `.env.example`.
SETTINGS = (
    Setting(
        "IMAGE_NAME",
        default_image_name,
        _image_name,
        "image repository",
        Goes.ENGINE,
        default_help="`project_name` of `.copier-answers.yml` where copier made the project, "
        "else this folder's name made a valid image name",
    ),
    Setting(
        "IMAGE_TAG",
        "latest",
        _image_tag,
        "tag of the CPU image",
        Goes.ENGINE,
    ),
    Setting(
        "BASE_IMAGE",
        "python:3.11-slim",
        _image_reference,
        "base of every Dockerfile (a mirror, a digest-pinned ref, an internal image)",
        Goes.BUILD_ARG | Goes.ENGINE,
    ),
    Setting(
        "PLATFORM",
        None,
        _platform,
        "overrides the target platform",
        Goes.ENGINE,
        default_help="per variant",
    ),
    Setting(
        "HOST_ADDRESS",
        "127.0.0.1",
        _ipv4_address,
        "host address (IPv4) the port is published on",
        Goes.RUN,
    ),
    Setting("HOST_PORT", "8888", _port, "host side of the published port", Goes.RUN),
    Setting(
        "CONTAINER_PORT",
        "8888",
        _port,
        "port the app listens on inside the container",
        Goes.BUILD_ARG | Goes.RUN,
    ),
    Setting("DATA_DIR", "./data", _data_dir, "host folder mounted at `/app/data`", Goes.RUN),
    Setting(
        "DOCKER",
        "docker",
        _docker,
        "the container CLI: `docker`, a path to one, or `podman`",
        Goes.ENGINE,
    ),
    Setting(
        "REGISTRY",
        None,
        _registry,
        "where `invoke push` publishes, e.g. `ghcr.io/acme` or `127.0.0.1:5000`",
        Goes.ENGINE,
    ),
    Setting(
        "BUILD_CA_BUNDLE",
        None,
        _ca_bundle,
        "CA bundle pip trusts during builds, for TLS-intercepting proxies",
        Goes.SECRET,
    ),
    # pip's own variables for a package index other than PyPI (an Artifactory or Nexus mirror),
    # often with credentials in the URL: they reach pip in builds as a BuildKit secret and in
    # `invoke lock` by name, never the command line, a layer or the app's container.
    Setting(
        "PIP_INDEX_URL",
        None,
        _index_urls,
        "a package index other than PyPI, credentials included",
        Goes.SECRET,
        secret=True,
    ),
    Setting(
        "PIP_EXTRA_INDEX_URL",
        None,
        _index_urls,
        "more package indexes, besides PyPI or `PIP_INDEX_URL`, credentials included",
        Goes.SECRET,
        secret=True,
    ),
    Setting("TENSORBOARD_PORT", "6006", _port, "host port of `invoke tensorboard`", Goes.RUN),
    Setting(
        "NOTEBOOK_PORT",
        "8889",
        _port,
        "host port of `invoke notebook`",
        Goes.RUN,
        capability="notebook",
    ),
    Setting(
        "BUILD_CACHE",
        None,
        _build_cache,
        "a registry repository for the layer cache, e.g. `ghcr.io/acme/my-project-cache`",
        Goes.ENGINE,
    ),
)

SETTING_KEYS = tuple(setting.key for setting in SETTINGS)
BUILD_ARG_KEYS = tuple(setting.key for setting in SETTINGS if Goes.BUILD_ARG in setting.goes)
# pip's own names of its package index, which it reads from pip.conf or the environment.
PIP_KEYS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")


@dataclass(frozen=True)
class Settings:
    """Everything the tasks need to know about this project, checked: a field per setting of the
    table (its key in lower case), the project folder, and the app's own keys."""

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
    pip_index_url: str | None
    pip_extra_index_url: str | None
    tensorboard_port: int
    notebook_port: int
    build_cache: str | None
    # The application's own keys from `.env`, with the process environment's value where it has one.
    app_env: dict[str, str] = field(default_factory=dict)

    def going_to(self, goes: Goes) -> dict[str, str]:
        """The settings that go to `goes` and are set, by key, as text: e.g. the build arguments."""
        return {
            setting.key: str(getattr(self, setting.field))
            for setting in SETTINGS
            if goes & setting.goes and getattr(self, setting.field) is not None
        }

    @property
    def package_index(self) -> dict[str, str]:
        """PIP_INDEX_URL and PIP_EXTRA_INDEX_URL, where set: pip reads them by these names."""
        return {key: value for key, value in self.going_to(Goes.SECRET).items() if key in PIP_KEYS}


def read_dotenv(path: Path) -> dict[str, str]:
    """The key-value pairs of a `.env` file.

    A line that does not parse is named by its number and key, never shown: it may hold a password.
    `${NAME}` in a value is replaced by NAME's value (python-dotenv's interpolation), except in the
    secret settings (the package index keys), whose credentials are taken as written.
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
    values.update({s.key: written[s.key] for s in SETTINGS if s.secret and s.key in written})
    return {key: value or "" for key, value in values.items()}


def _check_binding(path: Path, binding) -> None:
    """One line where a `.env` statement does not parse or holds a NUL byte, which no environment
    can carry."""
    where = f"{path.name} line {binding.original.line}"
    if binding.error:
        key = re.match(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=", binding.original.string)
        subject = f"the line of {key.group(1)}" if key else "a line without KEY="
        raise UserError(
            f"{where}: cannot parse {subject} (not shown: it may hold a secret);"
            " expected KEY=value, any quotes closed"
        )
    if binding.key is not None and "\0" in binding.key:
        raise UserError(f"{where}: the key {binding.key!r} holds a NUL byte; remove it")
    if binding.value is not None and "\0" in binding.value:
        raise UserError(
            f"{where}: the value of {binding.key} holds a NUL byte (not shown); remove it"
        )


def _lookup(
    key: str, environ: Mapping[str, str], dotenv: Mapping[str, str]
) -> tuple[str | None, str]:
    """The value of `key` (None when unset or empty) and where it came from, for messages."""
    if environ.get(key):
        return environ[key], "environment"
    if dotenv.get(key):
        return dotenv[key], ".env"
    return None, "default"


def load_settings(project_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check the settings of the project in `project_dir`, in the table's order."""
    environ = os.environ if environ is None else environ
    dotenv = read_dotenv(project_dir / ".env")
    values: dict[str, object] = {}
    for setting in SETTINGS:
        text, origin = _lookup(setting.key, environ, dotenv)
        if text is None:
            default = setting.default
            text = default(project_dir) if callable(default) else default
        try:
            values[setting.key] = (
                None if text is None else setting.parse(text, Context(project_dir, values))
            )
        except Invalid as error:
            shown = f"={text!r}" if error.show_value and not setting.secret else ""
            raise UserError(f"{setting.key}{shown} (from {origin}): {error}") from None
    check_app_keys(dotenv, project_dir)
    return Settings(
        project_dir=project_dir,
        app_env={
            key: environ.get(key) or value
            for key, value in dotenv.items()
            if key not in SETTING_KEYS
        },
        **{setting.field: values[setting.key] for setting in SETTINGS},
    )


# Keys an app may not have in `.env`, with why and what to do instead: the template sets them in
# every container, or the image's own environment (and the loader's and Python's) depends on them.
# `docker run --env-file` would let an app key replace them, e.g. PATH without the image's venv.
_IMAGE_OWN = "the image's own environment, which an app key would replace"
NOT_APP_KEYS = {
    "PORT": ("the template sets it in the container", "set CONTAINER_PORT instead"),
    "HOME": ("the template sets it in the container", "the container's user gets its own"),
    **{
        key: (_IMAGE_OWN, "rename the app's key")
        for key in ("PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    },
    **{
        key: (f"{_IMAGE_OWN} (the loader reads it in every program)", "rename the app's key")
        for key in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT")
    },
    **{
        key: (f"{_IMAGE_OWN} (the NVIDIA runtime reads it)", "rename the app's key")
        for key in ("NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES")
    },
}

# What `docker run --env-file` carries as a name, and Podman's too (where `NAME*` is a pattern of
# the host's environment): no whitespace, `=` or leading `#`, which docker refuses, splits or drops.
_APP_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def dockerfile_arguments(project_dir: Path) -> dict[str, str]:
    """Every `ARG` of the project's Dockerfiles, and the file that declares it first."""
    found: dict[str, str] = {}
    for dockerfile in sorted(project_dir.glob("Dockerfile*")):
        try:
            text = dockerfile.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for names in re.findall(r"(?im)^\s*ARG\s+(.+)$", text):
            for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)", names):
                found.setdefault(name, dockerfile.name)
    return found


def check_app_keys(keys: Iterable[str], project_dir: Path) -> None:
    """The app's keys among these `.env` keys: refuse in one line (never with its value) those that
    are not the app's to set or that no container can carry; warn of one that looks like a misspelt
    setting, which would silently go to the app instead."""
    arguments = dockerfile_arguments(project_dir)
    for key in keys:
        if key in SETTING_KEYS:
            continue
        if not _APP_KEY.fullmatch(key):
            raise UserError(
                f".env key {key!r}: not a name an --env-file can carry",
                "rename it (letters, digits, _ . -, not starting with a digit)",
            )
        if key.upper().startswith("DOCKER_"):
            raise UserError(
                f".env key {key}: DOCKER_* variables steer the docker CLI, and .env keys other than"
                " the settings go to the app only",
                "set it in your shell to choose the engine, or rename it for the app",
            )
        if key in NOT_APP_KEYS:
            raise UserError(f".env key {key}: {NOT_APP_KEYS[key][0]}", NOT_APP_KEYS[key][1])
        if key in arguments:
            # Meant for a build, or a build-time setting someone forgot to declare above.
            raise UserError(
                f".env key {key}: a build argument of {arguments[key]}, which .env does not pass"
                " to builds",
                f"pass it with `invoke build --build-arg {key}=...`, or declare a setting in"
                " devkit/settings.py",
            )
        resembles = difflib.get_close_matches(key.upper(), SETTING_KEYS, n=1, cutoff=0.85)
        if resembles:
            print(
                f"warning: .env key {key} is not a setting, so it goes to the app;"
                f" did you mean {resembles[0]}?",
                file=sys.stderr,
            )
