"""The Dockerfiles: the stages the two share are the same text in each, and every lock is installed
one way (docker/install-lock), from files that `invoke lock` writes, never by reading pip-compile's
text. A project generated without the GPU image has one Dockerfile, without JupyterLab no notebook
stage: what is there is checked."""

import re

import pytest

from devkit import capabilities
from helpers.project import PROJECT_DIR

DOCKERFILES = [name for name in ("Dockerfile", "Dockerfile.gpu") if (PROJECT_DIR / name).is_file()]
NOTEBOOK = capabilities.present(PROJECT_DIR, "notebook")
NOTEBOOK_STAGE = ("notebook",) if NOTEBOOK else ()
# Docker cannot include one Dockerfile in another: what the images share is written in both, and
# kept the same here. The others differ on purpose: locks (which lock), tensorflow (the CPU image
# strips its libraries), environment (the GPU image's variables), release (the image's title).
SHARED_STAGES = ("venv", "packages", "sbom", *NOTEBOOK_STAGE, "runtime", "dev")
# The stages other code names: invoke build's last stage, the dev containers', invoke notebook's.
NAMED_STAGES = {"environment", "dev", "release", *NOTEBOOK_STAGE}
SEPARATOR = "# " + "-" * 93 + "\n"


def stages(dockerfile: str) -> dict[str, str]:
    """{stage name: its text, comments above its FROM included}; "" for what comes before the first."""
    parts = (PROJECT_DIR / dockerfile).read_text().split(SEPARATOR)
    named = {}
    for part in parts:
        match = re.search(r"^FROM \S+ AS (\S+)$", part, re.MULTILINE)
        named[match.group(1) if match else ""] = part
    return named


def instructions(text: str) -> list[str]:
    """The instructions of a Dockerfile's text, continuation lines joined, comments left out."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\s*\\\n\s*", " ", "\n".join(lines))
    return [line.strip() for line in joined.splitlines() if line.strip()]


@pytest.mark.needs("gpu")
@pytest.mark.parametrize("stage", SHARED_STAGES)
def test_the_shared_stages_are_the_same_in_both_dockerfiles(stage):
    cpu, gpu = (stages(name) for name in DOCKERFILES)
    assert cpu[stage] == gpu[stage], f"the {stage} stage differs between the Dockerfiles"


@pytest.mark.needs("gpu")
def test_both_dockerfiles_have_the_same_stages_in_the_same_order():
    cpu, gpu = (list(stages(name)) for name in DOCKERFILES)
    assert cpu == gpu


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_the_last_stage_is_release_and_the_stages_other_code_names_are_there(dockerfile):
    named = list(stages(dockerfile))
    assert named[-1] == "release", "the last stage is what a build without --target makes"
    assert set(named) >= NAMED_STAGES, "names other code uses"
    assert ("notebook" in named) == NOTEBOOK, "the notebook stage goes with JupyterLab"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_every_lock_is_installed_one_way_with_its_cache_and_secrets(dockerfile):
    runs = [line for line in instructions((PROJECT_DIR / dockerfile).read_text()) if "pip" in line]
    installs = [line for line in runs if "install-lock" in line]
    assert len(installs) == 4 + NOTEBOOK, (
        "tensorflow, packages, the SBOM's generator, dev (and notebook)"
    )
    assert not [line for line in runs if "pip install" in line], "pip runs in install-lock alone"
    for line in installs:
        assert line.startswith(
            "RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked"
            " --mount=type=secret,id=ca_bundle"
            " --mount=type=secret,id=pip_conf,target=/etc/pip.conf"
            " --mount=type=bind,source=docker/install-lock,target=/tmp/install-lock"
        ), line
    script = (PROJECT_DIR / "docker" / "install-lock").read_text()
    (pip,) = [line for line in instructions(script) if line.startswith("pip install")]
    assert "--require-hashes --no-deps --only-binary=:all:" in pip


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_no_stage_reads_pip_compiles_text(dockerfile):
    text = "\n".join(instructions((PROJECT_DIR / dockerfile).read_text()))
    assert not re.search(r"\b(awk|sed|grep)\b", text)
    copied = re.findall(r"\S*requirements\S*\.txt", text)
    image_locks = {"requirements.txt", "requirements-arm64.txt", "requirements-gpu.txt"}
    assert not image_locks & set(copied), "the image locks reach the build as docker/locks/ halves"


def test_comments_name_the_stage_that_invoke_build_makes():
    for dockerfile in DOCKERFILES:
        text = (PROJECT_DIR / dockerfile).read_text()
        assert "runtime image" not in text
        assert "runtime stage as shipped" not in text
        assert not re.search(r"^# runtime:.*the image `invoke build` makes", text, re.MULTILINE)
        release = stages(dockerfile)["release"]
        assert "the image `invoke build` makes" in release
