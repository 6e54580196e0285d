"""Which image a task means: platform rules of the contract, tags, container names."""

import pytest

from devkit.errors import UserError
from devkit.platforms import normalize_platform, platform_of_machine
from devkit.settings import load_settings
from devkit.targets import resolve_target


@pytest.fixture
def settings(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    return load_settings(project, environ={"IMAGE_NAME": "acme/tf", "IMAGE_TAG": "v1"})


def test_cpu_image_follows_the_host(settings):
    for host in ("linux/amd64", "linux/arm64"):
        target = resolve_target(settings, gpu=False, platform_flag=None, host=host)
        assert (target.platform, target.native, target.image, target.dockerfile) == (
            host,
            True,
            "acme/tf:v1",
            "Dockerfile",
        )
        assert target.container == "acme-tf"


def test_cpu_image_for_another_architecture_gets_its_own_tag(settings):
    target = resolve_target(settings, gpu=False, platform_flag="linux/arm64", host="linux/amd64")
    assert (target.platform, target.native, target.image, target.container) == (
        "linux/arm64",
        False,
        "acme/tf:v1-arm64",
        "acme-tf-arm64",
    )
    target = resolve_target(settings, gpu=False, platform_flag="linux/amd64", host="linux/arm64")
    assert target.image == "acme/tf:v1-amd64"


def test_gpu_image_is_amd64_everywhere(settings):
    for host in ("linux/amd64", "linux/arm64"):
        target = resolve_target(settings, gpu=True, platform_flag=None, host=host)
        assert (target.platform, target.image, target.container, target.dockerfile) == (
            "linux/amd64",
            "acme/tf:v1-gpu",
            "acme-tf-gpu",
            "Dockerfile.gpu",
        )


def test_gpu_image_refuses_another_platform_from_flag_or_setting(settings):
    with pytest.raises(
        UserError, match="GPU image is linux/amd64 only.*--platform asks for linux/arm64"
    ):
        resolve_target(settings, gpu=True, platform_flag="linux/arm64", host="linux/amd64")
    arm_settings = load_settings(settings.project_dir, environ={"PLATFORM": "linux/arm64"})
    with pytest.raises(UserError, match="PLATFORM asks for linux/arm64"):
        resolve_target(arm_settings, gpu=True, platform_flag=None, host="linux/arm64")


def test_flag_beats_platform_setting(settings):
    arm_settings = load_settings(settings.project_dir, environ={"PLATFORM": "linux/arm64"})
    assert (
        resolve_target(arm_settings, gpu=False, platform_flag=None, host="linux/amd64").platform
        == "linux/arm64"
    )
    assert (
        resolve_target(
            arm_settings, gpu=False, platform_flag="linux/amd64", host="linux/amd64"
        ).platform
        == "linux/amd64"
    )


def test_unknown_platform_flag_is_refused(settings):
    with pytest.raises(UserError, match="unknown platform 'linux/s390x'"):
        resolve_target(settings, gpu=False, platform_flag="linux/s390x", host="linux/amd64")


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", "linux/amd64"),  # Linux, macOS on Intel (and Python under Rosetta)
        ("AMD64", "linux/amd64"),  # Windows
        ("aarch64", "linux/arm64"),  # Linux on ARM
        ("arm64", "linux/arm64"),  # macOS on Apple Silicon
        ("ARM64", "linux/arm64"),  # Windows on ARM
    ],
)
def test_host_machine_mapping(machine, expected):
    assert platform_of_machine(machine) == expected


def test_unsupported_host_machine():
    with pytest.raises(UserError, match="unsupported host architecture 'ppc64le'"):
        platform_of_machine("ppc64le")


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/x86_64", "linux/amd64"),
        (" linux/amd64 ", "linux/amd64"),
    ],
)
def test_platform_aliases(spelling, expected):
    assert normalize_platform(spelling) == expected
