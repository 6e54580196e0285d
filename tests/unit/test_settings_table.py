"""The table of settings in devkit/settings.py is the one place a setting is declared: `Settings`,
`.env.example`, the docs' table of settings, the build arguments and the Dockerfiles agree with it."""

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from devkit import capabilities
from devkit.building import TEMPLATE_BUILD_ARGS, build_command
from devkit.settings import (
    BUILD_ARG_KEYS,
    NOT_APP_KEYS,
    SETTINGS,
    Goes,
    Settings,
    dockerfile_arguments,
    load_settings,
)
from helpers.command_lines import settings_of, target_of, value_after
from helpers.project import PROJECT_DIR

ENV_EXAMPLE = PROJECT_DIR / ".env.example"
# The settings .env.example and the docs show: a capability's only where the project has it.
SHOWN = tuple(
    setting
    for setting in SETTINGS
    if setting.capability is None or capabilities.present(PROJECT_DIR, setting.capability)
)
# The example application's keys sit in one block of .env.example, which "Make it yours" deletes.
EXAMPLE_BLOCK = re.compile(
    r"^# -+ The example application's keys .*?^# -+ end of the example application's keys -+\n",
    re.MULTILINE | re.DOTALL,
)
# A line of .env.example that sets a key, or shows it commented out.
KEY_LINE = re.compile(r"^(#\s?)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.MULTILINE)
TABLE_HEADER = "| key | default | meaning |"
# What the images set in their environment that an app may change, e.g. TF_CPP_MIN_LOG_LEVEL=0 to
# see TensorFlow's log: Python's and TensorFlow's knobs, never where programs are found.
KNOBS_AN_APP_MAY_TURN = {
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_FORCE_GPU_ALLOW_GROWTH",
}


def template_part_of_env_example() -> str:
    """.env.example as it is once the example is deleted."""
    return EXAMPLE_BLOCK.sub("", ENV_EXAMPLE.read_text(encoding="utf-8"))


def documented_default(setting) -> str:
    """How the docs' table writes a setting's default."""
    if setting.default_help:
        return setting.default_help
    return "unset" if setting.default is None else f"`{setting.default}`"


def row_follows(setting, default: str, meaning: str) -> bool:
    """A row of the docs says what the table does: a worked-out default and the meaning may go on
    with a link to more, such as "(below)"."""
    expected = documented_default(setting)
    default_agrees = default.startswith(expected) if setting.default_help else default == expected
    return default_agrees and meaning.startswith(setting.help)


def settings_table() -> tuple[Path, dict[str, tuple[str, str]]]:
    """The table of settings in the README or a page of docs/: key -> (default, meaning)."""
    for page in [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        if f"\n{TABLE_HEADER}\n" in text:
            rows = text.split(f"\n{TABLE_HEADER}\n", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
            # A row may end in a marker of the capability it belongs to (template/finish.py).
            rows = [re.sub(r"\s*<!-- if \w+ -->$", "", row) for row in rows]
            cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]
            return page, {key.strip("`"): (default, meaning) for key, default, meaning in cells}
    pytest.fail(f"no page of the docs holds the settings table ({TABLE_HEADER})")


def test_the_docs_table_of_settings_is_the_table_of_devkit_settings():
    page, documented = settings_table()
    disagree = [
        setting.key
        for setting in SHOWN
        if setting.key not in documented or not row_follows(setting, *documented[setting.key])
    ]
    undeclared = sorted(set(documented) - {setting.key for setting in SHOWN})
    assert (disagree, undeclared) == ([], []), (
        f"{page.name} and devkit/settings.py disagree; the rows the table declares:\n"
        + "\n".join(f"| `{s.key}` | {documented_default(s)} | {s.help} |" for s in SHOWN)
    )


def test_env_example_shows_every_setting_once_with_its_default():
    lines = KEY_LINE.findall(template_part_of_env_example())
    shown = [key for _, key, _ in lines]
    declared = {setting.key: setting for setting in SHOWN}
    assert sorted(shown) == sorted(declared), (
        "a key of .env.example that devkit/settings.py does not declare would go to the app; "
        "a declared one missing from .env.example is undocumented"
    )
    for commented, key, value in lines:
        setting = declared[key]
        if isinstance(setting.default, str):
            assert (commented, value) == ("", setting.default), f"{key}={setting.default}"
        else:
            assert commented, f"{key} has no literal default: .env.example shows it commented out"


def test_env_example_copied_to_dotenv_changes_no_setting(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    defaults = load_settings(project, environ={})
    shutil.copy(ENV_EXAMPLE, project / ".env")
    assert load_settings(project, environ={}) == defaults


def test_env_example_names_every_key_an_app_may_not_have():
    text = template_part_of_env_example()
    assert [key for key in NOT_APP_KEYS if not re.search(rf"\b{key}\b", text)] == []


def test_deleting_the_examples_block_leaves_nothing_of_iris_in_env_example():
    assert "iris" not in template_part_of_env_example().lower()


def test_settings_has_a_field_for_every_setting_of_the_table():
    fields = [field.name for field in dataclasses.fields(Settings)]
    assert sorted(fields) == sorted(["project_dir", "app_env", *(s.field for s in SETTINGS)])


def test_every_build_time_setting_reaches_the_build_and_may_not_be_overridden(tmp_path):
    settings = settings_of(tmp_path, BASE_IMAGE="mirror/python:3.11", CONTAINER_PORT="9000")
    args = value_after(build_command(settings, target_of(settings), buildx=True), "--build-arg")
    passed = dict(arg.split("=", 1) for arg in args)
    assert (passed["BASE_IMAGE"], passed["CONTAINER_PORT"]) == ("mirror/python:3.11", "9000")
    for setting in SETTINGS:
        value = getattr(settings, setting.field)
        if Goes.BUILD_ARG in setting.goes and value is not None:
            assert passed[setting.key] == str(value)
        else:
            assert setting.key not in passed, "only the build-time settings are build arguments"
    assert set(BUILD_ARG_KEYS) <= set(TEMPLATE_BUILD_ARGS)


def test_every_dockerfile_declares_the_build_time_settings():
    dockerfiles = sorted(PROJECT_DIR.glob("Dockerfile*"))
    assert dockerfiles
    for dockerfile in dockerfiles:
        text = dockerfile.read_text(encoding="utf-8")
        declared = re.findall(r"(?im)^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", text)
        assert set(BUILD_ARG_KEYS) <= set(declared), dockerfile.name
    assert set(BUILD_ARG_KEYS) <= set(dockerfile_arguments(PROJECT_DIR))


def image_environment() -> dict[str, str]:
    """Every key an `ENV` of the project's Dockerfiles sets, and the file."""
    found = {}
    for dockerfile in sorted(PROJECT_DIR.glob("Dockerfile*")):
        text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
        for line in re.findall(r"(?im)^\s*ENV\s+(.+)$", text):
            for key in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", line):
                found.setdefault(key, dockerfile.name)
    return found


def test_the_images_environment_is_refused_as_app_keys_but_for_knobs_an_app_may_turn():
    environment = image_environment()
    assert "PATH" in environment
    unclassified = {
        key: where
        for key, where in environment.items()
        if key not in NOT_APP_KEYS and key not in KNOBS_AN_APP_MAY_TURN
    }
    assert unclassified == {}, "refuse it in NOT_APP_KEYS (devkit/settings.py) or allow it here"


def test_every_setting_goes_somewhere():
    for setting in SETTINGS:
        assert setting.goes, setting.key
        assert setting.key == setting.key.upper()
    assert {s.key for s in SETTINGS if Goes.SECRET in s.goes} >= {
        s.key for s in SETTINGS if s.secret
    }
