"""The app's keys in `.env`: what may not be one is refused in one line; a misspelt setting is named."""

from pathlib import Path

import pytest

from devkit.errors import UserError
from devkit.settings import load_settings


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "DOCKER_HOST=tcp://elsewhere:2375",
            r"^\.env key DOCKER_HOST: DOCKER_\* variables steer the docker CLI, .*; set it in your shell",
        ),
        (
            "DOCKER_CONFIG=/tmp/x",
            r"^\.env key DOCKER_CONFIG: DOCKER_\* variables steer the docker CLI",
        ),
        ("docker_context=other", r"^\.env key docker_context: DOCKER_\* variables"),
        (
            "PORT=9000",
            r"^\.env key PORT: the template sets it in the container; set CONTAINER_PORT instead$",
        ),
        ("HOME=/root", r"^\.env key HOME: the template sets it in the container"),
    ],
)
def test_keys_that_are_not_the_apps_to_set_are_refused(project, line, message):
    (project / ".env").write_text(f"API_TOKEN=x\n{line}\n")
    with pytest.raises(UserError, match=message) as refused:
        load_settings(project, environ={})
    assert "\n" not in str(refused.value)


def test_docker_settings_in_the_environment_are_not_app_keys(project):
    (project / ".env").write_text("DOCKER=docker\nAPI_TOKEN=x\n")
    settings = load_settings(project, environ={"DOCKER_HOST": "unix:///var/run/docker.sock"})
    assert settings.app_env == {"API_TOKEN": "x"}


@pytest.mark.parametrize(
    ("key", "setting"),
    [("HOST_PROT", "HOST_PORT"), ("DATADIR", "DATA_DIR"), ("host_port", "HOST_PORT")],
)
def test_a_misspelt_setting_is_named_with_the_one_it_resembles(project, capsys, key, setting):
    (project / ".env").write_text(f"{key}=9000\n")
    settings = load_settings(project, environ={})
    assert settings.app_env == {key: "9000"}, "still the app's: it may be meant"
    assert (
        capsys.readouterr().err
        == f"warning: .env key {key} is not a setting, so it goes to the app; did you mean {setting}?\n"
    )


def test_the_apps_own_keys_draw_no_warning(project, capsys):
    (project / ".env").write_text(
        "MODEL_NAME=iris\nNOTEBOOK_DIR=x\nAPI_TOKEN=t\nREGISTRY_USER=me\n"
    )
    load_settings(project, environ={})
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "key",
    [
        "PATH",
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "NVIDIA_VISIBLE_DEVICES",
        "NVIDIA_DRIVER_CAPABILITIES",
    ],
)
def test_the_images_own_environment_is_not_an_app_key(project, key):
    # An app key PATH replaced the container's PATH: the venv's python was no longer found.
    (project / ".env").write_text(f"API_TOKEN=x\n{key}=/canary\n")
    with pytest.raises(UserError, match=rf"^\.env key {key}: the image's own") as refused:
        load_settings(project, environ={})
    assert "\n" not in str(refused.value)
    assert "canary" not in str(refused.value)


@pytest.mark.parametrize(
    "line",
    [
        "'API TOKEN'=canary",
        "'API\tTOKEN'=canary",
        "'#TOKEN'=canary",
        "'A=B'=canary",
        "'TOKEN\u00a0'=canary",
        "'1TOKEN'=canary",
        "'TOKEN*'=canary",
    ],
)
def test_a_key_the_engine_cannot_carry_is_refused_without_its_value(project, line):
    # docker run --env-file fails on "API TOKEN", drops "#TOKEN" as a comment, splits "A=B".
    (project / ".env").write_text(f"{line}\n")
    with pytest.raises(UserError) as refused:
        load_settings(project, environ={})
    assert str(refused.value).startswith(".env key ")
    assert str(refused.value).endswith(
        ": not a name an --env-file can carry; rename it (letters, digits, _ . -, "
        "not starting with a digit)"
    )
    assert "canary" not in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_build_argument_of_a_dockerfile_is_not_an_app_key(project):
    # Meant for the build (or a setting not declared in devkit/settings.py): it would go to the app.
    (project / "Dockerfile").write_text("FROM scratch\nARG KEEP_TF_HEADERS=0\nARG NEW_SETTING\n")
    for key in ("KEEP_TF_HEADERS", "NEW_SETTING"):
        (project / ".env").write_text(f"{key}=1\n")
        with pytest.raises(UserError) as refused:
            load_settings(project, environ={})
        assert str(refused.value) == (
            f".env key {key}: a build argument of Dockerfile, which .env does not pass to builds; "
            f"pass it with `invoke build --build-arg {key}=...`, or declare a setting in "
            "devkit/settings.py"
        )
