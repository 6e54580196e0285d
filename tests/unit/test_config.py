"""Settings: precedence (environment > .env > default), validation, and the app's own keys."""

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
    assert (settings.host_address, settings.host_port, settings.container_port) == ("127.0.0.1", 8888, 8888)
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
        ("IMAGE_TAG", "-leading-dash", "not a valid tag"),
        ("IMAGE_TAG", "x" * 119, "not a valid tag"),
        ("BASE_IMAGE", "python 3.11", "no spaces"),
        ("PLATFORM", "linux/riscv64", "PLATFORM (from environment): unknown platform 'linux/riscv64'"),
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


def test_malformed_dotenv_line_is_named(project):
    write_env(project, "HOST_PORT=9000\nthis is not a setting\n")
    with pytest.raises(UserError, match=r"\.env line 2: cannot parse 'this is not a setting'"):
        load_settings(project, environ={})


def test_data_dir_relative_to_project_with_spaces(project):
    settings = load_settings(project, environ={"DATA_DIR": "my data/set"})
    assert settings.data_dir == project / "my data" / "set"
    assert not settings.data_dir.exists(), "loading the settings must not create anything"


def test_data_dir_that_is_a_file_is_refused(project):
    (project / "data").write_text("not a folder")
    with pytest.raises(UserError, match="is a file, not a folder"):
        load_settings(project, environ={})


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
    assert load_settings(project, environ={"REGISTRY": "127.0.0.1:5000/team/"}).registry == "127.0.0.1:5000/team"


@pytest.mark.parametrize(
    ("folder", "expected"),
    [("tf-template", "tf-template"), ("My Project", "my-project"), ("__x__", "x"), ("!!!", "tensorflow-app"), ("Data.Sci_2", "data-sci-2")],
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
