"""Settings: precedence (environment > .env > default), validation, and the app's own keys."""

import errno
import os
import pathlib
from pathlib import Path

import pytest

from devkit.errors import UserError
from devkit.settings import default_image_name, load_settings


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "My TF Project"
    folder.mkdir()
    return folder


def write_env(project: Path, text: str) -> None:
    (project / ".env").write_text(text, encoding="utf-8")


def test_defaults_without_env_file(project):
    settings = load_settings(project, environ={})
    assert settings.image_name == "my-tf-project"
    assert settings.image_tag == "latest"
    assert settings.base_image == "python:3.11-slim"
    assert settings.platform is None
    assert (settings.host_address, settings.host_port, settings.container_port) == (
        "127.0.0.1",
        8888,
        8888,
    )
    assert settings.data_dir == project / "data"
    assert settings.docker == "docker"
    assert settings.registry is None
    assert settings.build_ca_bundle is None
    assert settings.app_env == {}


def test_dotenv_beats_default_and_environment_beats_dotenv(project):
    write_env(project, "HOST_PORT=9000\nIMAGE_TAG=from-file\n")
    settings = load_settings(project, environ={"IMAGE_TAG": "from-env"})
    assert settings.host_port == 9000
    assert settings.image_tag == "from-env"


def test_empty_value_counts_as_unset(project):
    write_env(project, "REGISTRY=\nHOST_PORT=\n")
    settings = load_settings(project, environ={"IMAGE_TAG": ""})
    assert settings.registry is None
    assert settings.host_port == 8888
    assert settings.image_tag == "latest"


def test_app_keys_are_everything_else_with_environment_values_first(project):
    write_env(project, "HOST_PORT=9000\nAPI_TOKEN=file-value\nMODEL=small\n")
    settings = load_settings(project, environ={"API_TOKEN": "env-value"})
    assert settings.app_env == {"API_TOKEN": "env-value", "MODEL": "small"}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("HOST_PORT", "abc", "HOST_PORT='abc' (from environment): not a port number"),
        ("HOST_PORT", "0", "not a port number"),
        ("CONTAINER_PORT", "65536", "CONTAINER_PORT='65536' (from environment): not a port number"),
        ("HOST_ADDRESS", "localhost:1", "not an IP address"),
        ("IMAGE_NAME", "My_Image", "not a valid image name"),
        ("IMAGE_NAME", "bad//name", "not a valid image name"),
        # A container is named after the image, and a container name has two characters at least.
        ("IMAGE_NAME", "a", "IMAGE_NAME='a' (from environment): 2 to 255 characters"),
        ("IMAGE_NAME", "a" * 256, "2 to 255 characters"),
        # str.isdigit() and int() take these; no port is spelt with them (int("٣") is 3).
        ("HOST_PORT", "²", "HOST_PORT='²' (from environment): not a port number"),
        ("HOST_PORT", "٣", "HOST_PORT='٣' (from environment): not a port number"),
        ("CONTAINER_PORT", "８０", "not a port number"),
        ("IMAGE_TAG", "-leading-dash", "not a valid tag"),
        ("IMAGE_TAG", "x" * 119, "not a valid tag"),
        ("BASE_IMAGE", "python 3.11", "not an image reference"),
        # Would be read as a docker option in `docker run ... BASE_IMAGE` (the lock) and `docker pull`.
        (
            "BASE_IMAGE",
            "--privileged",
            "BASE_IMAGE='--privileged' (from environment): may not start with '-'",
        ),
        ("BASE_IMAGE", "Python:3.11", "not an image reference"),
        ("BASE_IMAGE", "python:3.11@sha256:abc", "not an image reference"),
        ("BASE_IMAGE", "python:" + "x" * 129, "not an image reference"),
        ("BASE_IMAGE", "a" * 256 + ":1", "an image name has at most 255 characters"),
        (
            "REGISTRY",
            "-ghcr.io/acme",
            "REGISTRY='-ghcr.io/acme' (from environment): may not start with '-'",
        ),
        ("REGISTRY", ".ghcr.io", "expected a registry"),
        (
            "PLATFORM",
            "linux/riscv64",
            "PLATFORM (from environment): unknown platform 'linux/riscv64'",
        ),
        ("PLATFORM", "windows/amd64", "unknown platform"),
        ("REGISTRY", "https://ghcr.io", "expected a registry"),
        ("BUILD_CA_BUNDLE", "/no/such/bundle.pem", "is not a readable file"),
    ],
)
def test_bad_values_are_one_clear_line(project, key, value, message):
    with pytest.raises(UserError, match=None) as raised:
        load_settings(project, environ={key: value})
    text = str(raised.value)
    assert message in text
    assert "\n" not in text


def test_bad_value_in_dotenv_names_dotenv(project):
    write_env(project, "HOST_PORT=http\n")
    with pytest.raises(UserError, match=r"HOST_PORT='http' \(from \.env\)"):
        load_settings(project, environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "HOST_PORT=9000\nthis is not a setting\n",
            ".env line 2: cannot parse a line without KEY= (not shown: it may hold a secret)",
        ),
        # An unclosed quote: the token after it is in the statement python-dotenv could not parse.
        (
            'PIP_INDEX_URL="https://ci:canary-token@pypi.example.com/simple\n',
            ".env line 1: cannot parse the line of PIP_INDEX_URL",
        ),
        (
            "export API_TOKEN='canary-token\nHOST_PORT=9000\n",
            ".env line 1: cannot parse the line of API_TOKEN",
        ),
    ],
)
def test_a_malformed_dotenv_line_is_named_never_shown(project, text, message):
    write_env(project, text)
    with pytest.raises(UserError) as error:
        load_settings(project, environ={})
    assert str(error.value).startswith(message)
    assert "canary" not in str(error.value)
    assert "not a setting" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "HOST_PORT=9000\nAPI_TOKEN=canary\0token\n",
            ".env line 2: the value of API_TOKEN holds a NUL byte (not shown); remove it",
        ),
        ("API\0TOKEN=1\n", ".env line 1: the key 'API\\x00TOKEN' holds a NUL byte; remove it"),
    ],
)
def test_a_nul_byte_in_dotenv_is_one_line(project, text, message):
    write_env(project, text)
    with pytest.raises(UserError) as error:
        load_settings(project, environ={})
    assert str(error.value) == message


def test_credentials_are_taken_as_written_and_other_values_interpolate(project):
    write_env(
        project,
        "PIP_INDEX_URL=https://ci:pa${ss}word@pypi.example.com/simple\nREGION=eu\nBUCKET=data-${REGION}\n",
    )
    settings = load_settings(project, environ={})
    assert settings.package_index == {
        "PIP_INDEX_URL": "https://ci:pa${ss}word@pypi.example.com/simple"
    }
    assert settings.app_env["BUCKET"] == "data-eu"


def test_data_dir_relative_to_project_with_spaces(project):
    settings = load_settings(project, environ={"DATA_DIR": "my data/set"})
    assert settings.data_dir == project / "my data" / "set"
    assert not settings.data_dir.exists(), "loading the settings must not create anything"


def test_data_dir_that_is_a_file_is_refused(project):
    (project / "data").write_text("not a folder")
    with pytest.raises(UserError, match="is a file, not a folder"):
        load_settings(project, environ={})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "~no-such-user-here/x",
            "DATA_DIR='~no-such-user-here/x' (from environment): no such user's home folder",
        ),
        ("loop/data", "a symlink loop"),
        ("x" * 300, "File name too long"),
    ],
)
def test_a_data_dir_the_system_cannot_resolve_is_one_line(project, value, message):
    (project / "loop").symlink_to(project / "loop")
    with pytest.raises(UserError) as error:
        load_settings(project, environ={"DATA_DIR": value})
    assert message in str(error.value)
    assert str(error.value).startswith(f"DATA_DIR={value!r} (from environment): ")


def test_a_data_dir_under_a_folder_the_caller_may_not_enter_is_one_line(project, monkeypatch):
    # As a non-root caller meets /root/data; root itself may enter any folder, so the system's answer is given here.
    locked = project / "locked"
    real_stat = pathlib.Path.stat

    def stat(path, *args, **kwargs):
        if locked in path.parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "stat", stat)
    with pytest.raises(UserError) as error:
        load_settings(project, environ={"DATA_DIR": "locked/data"})
    assert (
        str(error.value)
        == f"DATA_DIR='locked/data' (from environment): cannot look at {locked / 'data'}: Permission denied"
    )


def test_docker_must_be_a_program_where_it_is_a_path(project):
    (project / "docker").write_text("#!/bin/sh\n")
    for value, reason in (
        (str(project), "a folder, not a program"),
        (str(project / "docker"), "not an executable file"),
    ):
        with pytest.raises(UserError) as error:
            load_settings(project, environ={"DOCKER": value})
        assert str(error.value).startswith(f"DOCKER={value!r} (from environment): {reason}")
    # Not there (yet): `invoke --dry` works without a CLI; the tasks that need one say "no such command".
    assert load_settings(project, environ={"DOCKER": str(project / "nothing")}).docker == str(
        project / "nothing"
    )
    assert load_settings(project, environ={"DOCKER": "podman"}).docker == "podman"


def test_data_dir_that_cannot_be_created_is_refused(project):
    (project / "blocker").write_text("a file where a parent folder should be")
    with pytest.raises(UserError, match="does not exist and cannot be created"):
        load_settings(project, environ={"DATA_DIR": "blocker/data"})


def test_ca_bundle_resolved_and_checked(project):
    (project / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings(project, environ={"BUILD_CA_BUNDLE": "ca.pem"})
    assert settings.build_ca_bundle == project / "ca.pem"


def test_platform_spellings_are_normalised(project):
    assert load_settings(project, environ={"PLATFORM": "linux/aarch64"}).platform == "linux/arm64"
    assert load_settings(project, environ={"PLATFORM": "LINUX/AMD64"}).platform == "linux/amd64"
    assert load_settings(project, environ={"PLATFORM": "arm64"}).platform == "linux/arm64"


def test_registry_trailing_slash_dropped(project):
    assert (
        load_settings(project, environ={"REGISTRY": "127.0.0.1:5000/team/"}).registry
        == "127.0.0.1:5000/team"
    )


@pytest.mark.parametrize(
    "reference",
    [
        "python:3.11-slim",
        "library/python",
        "mirror.example.com:5000/library/python:3.11-slim",
        "localhost:5000/python",
        "Registry.Example.com/team/python:3.11",
        "python:3.11-slim@sha256:" + "a" * 64,
        "python@sha256:" + "0" * 64,
    ],
)
def test_base_image_references_docker_reads(project, reference):
    assert load_settings(project, environ={"BASE_IMAGE": reference}).base_image == reference


def test_the_registry_name_of_the_image_has_at_most_255_characters(project):
    with pytest.raises(
        UserError,
        match=r"^REGISTRY='ghcr.io/acme' \(from environment\): ghcr.io/acme/a+ is longer than an image name may be",
    ):
        load_settings(project, environ={"REGISTRY": "ghcr.io/acme", "IMAGE_NAME": "a" * 250})


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("tf-template", "tf-template"),
        ("My Project", "my-project"),
        ("__xy__", "xy"),
        ("!!!", "tensorflow-app"),
        ("Data.Sci_2", "data-sci-2"),
        # A container name has two characters at least; an image name, here, 128 at most.
        ("x", "tensorflow-app"),
        ("a" * 127 + "-b" * 10, "a" * 127),
    ],
)
def test_default_image_name(folder, expected):
    assert default_image_name(Path("/somewhere") / folder) == expected


def test_a_malformed_package_index_is_refused_without_showing_it(project):
    with pytest.raises(UserError) as error:
        load_settings(project, environ={"PIP_INDEX_URL": "user:s3cret@corp-index"})
    assert (
        str(error.value)
        == "PIP_INDEX_URL (from environment): expected http(s)://host/path, e.g. https://user:token@pypi.example.com/simple"
    )


@pytest.mark.parametrize("where", ["link", "/"])
def test_a_data_dir_that_is_the_filesystem_root_is_refused(project, where):
    # A symlink to / passed every check, and the app then wrote into the host's root.
    (project / "link").symlink_to("/")
    with pytest.raises(UserError) as error:
        load_settings(project, environ={"DATA_DIR": where})
    assert str(error.value) == (
        f"DATA_DIR={where!r} (from environment): it is / (the filesystem's root); "
        "the container may write anything in DATA_DIR"
    )


@pytest.mark.parametrize("value", [".", "..", "{home}", "/etc", "/usr/lib/.."])
def test_a_data_dir_that_holds_the_project_or_the_system_is_refused(project, value, monkeypatch):
    monkeypatch.setenv("HOME", str(project.parent))
    value = value.format(home=project.parent)
    with pytest.raises(UserError) as error:
        load_settings(project, environ={"DATA_DIR": value})
    assert str(error.value).startswith(f"DATA_DIR={value!r} (from environment): it is ")
    assert str(error.value).endswith("; the container may write anything in DATA_DIR")


@pytest.mark.parametrize("value", ["data\nset", "data\rset", "data\tset", "data\x1bset"])
def test_a_data_dir_with_a_control_character_is_refused_before_anything_is_made(project, value):
    with pytest.raises(UserError) as error:
        load_settings(project, environ={"DATA_DIR": value})
    assert str(error.value) == (
        f"DATA_DIR={value!r} (from environment): a line break or another control character, "
        "which a mount of the engine cannot take"
    )
    assert list(project.iterdir()) == []


def test_a_data_dir_whose_link_leads_to_a_control_character_is_refused(project):
    (project / "link").symlink_to(project / "odd\nname")
    with pytest.raises(UserError, match="a line break or another control character"):
        load_settings(project, environ={"DATA_DIR": "link"})


@pytest.mark.parametrize("value", ["::1", "::", "fe80::1", "::ffff:127.0.0.1"])
def test_an_ipv6_host_address_is_refused_in_one_line(project, value):
    # docker took `::1:8888:8888` as "too many colons", and http://::1:8888 is no URL.
    with pytest.raises(UserError) as error:
        load_settings(project, environ={"HOST_ADDRESS": value})
    assert str(error.value) == (
        f"HOST_ADDRESS={value!r} (from environment): an IPv6 address; the ports are published on "
        "IPv4: 127.0.0.1 for this machine only, 0.0.0.0 for every network"
    )


@pytest.mark.parametrize("value", ["127.0.0.1", "0.0.0.0", "192.168.1.20"])  # noqa: S104
def test_ipv4_host_addresses_are_taken(project, value):
    assert load_settings(project, environ={"HOST_ADDRESS": value}).host_address == value


def test_default_image_name_is_the_project_name_copier_generated_the_project_with(tmp_path):
    project = tmp_path / "Checkout Folder"
    project.mkdir()
    assert default_image_name(project) == "checkout-folder"
    (project / ".copier-answers.yml").write_text(
        "_commit: v1.0.0\nexample: true\nproject_name: acme\n"
    )
    assert default_image_name(project) == "acme"
    assert load_settings(project, environ={}).image_name == "acme"
