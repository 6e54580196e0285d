"""`invoke build --build-arg`: what BuildKit sets itself is refused, as what the template sets is."""

import pytest

from devkit.building import parse_build_args
from devkit.errors import UserError

AUTOMATIC = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
]


@pytest.mark.parametrize("name", AUTOMATIC)
def test_buildkits_platform_arguments_are_refused(name):
    # TARGETARCH=arm64 was honoured: an amd64 image would have installed the arm64 lock.
    with pytest.raises(UserError) as refused:
        parse_build_args([f"{name}=arm64"])
    assert str(refused.value) == (
        f"--build-arg {name}: BuildKit sets it from the platforms of the build; "
        "choose the image's with `invoke build --platform`"
    )


def test_an_argument_of_the_same_name_in_other_case_is_the_users():
    assert parse_build_args(["targetarch=mine"]) == {"targetarch": "mine"}
