"""`invoke sbom`: which container reads the SBOM out of which image, where the file goes, and what
is said where the image is missing, older than its lock, has no SBOM, or names its base by tag."""

import json
import re
from pathlib import Path

import pytest

from devkit import sboms, sources
from devkit.engine import Outcome
from devkit.errors import UserError
from devkit.settings import load_settings
from helpers.command_lines import argv_of, target_of, value_after
from helpers.project import PROJECT_DIR
from helpers.recording_engine import BUILT, RecordingEngine

LOCK = "tensorflow-cpu==2.21.0 \\\n    --hash=sha256:abc\n"


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "requirements.txt").write_text(LOCK)
    return folder


def settings_of(project, **environ):
    return load_settings(project, environ={"IMAGE_NAME": "acme/tf", **environ})


def document(pinned_by: str, reference: str) -> str:
    """An SBOM as the build writes it (docker/sbom.py), reduced to what `invoke sbom` reads."""
    base = {
        "type": "container",
        "bom-ref": "base-image",
        "name": "docker.io/library/python",
        "version": "3.11-slim",
        "properties": [
            {"name": "org.tensorflow-template:base-image", "value": reference},
            {"name": "org.tensorflow-template:base-image-pinned-by", "value": pinned_by},
        ],
    }
    package = {"type": "library", "name": "tensorflow-cpu", "version": "2.21.0"}
    return json.dumps(
        {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [base, package]}
    )


BY_TAG = document("tag", "python:3.11-slim")
BY_DIGEST = document("digest", "python@sha256:" + "a" * 64)


def reading(text: str = BY_DIGEST, *, exited: int = 0, stderr: str = "") -> RecordingEngine:
    """An engine that holds the image, whose `cat` of the SBOM prints `text`."""
    return RecordingEngine(
        answers=BUILT,
        outcomes={f"cat {sboms.IMAGE_SBOM_PATH}": Outcome(exited, text, stderr)},
    )


def test_the_sbom_is_read_by_a_container_that_can_do_nothing_else(project):
    settings = settings_of(project)
    for target in (target_of(settings), target_of(settings, gpu=True)):
        argv = argv_of(sboms.read_spec(settings, target))
        assert argv[-3:] == [target.image, "cat", sboms.IMAGE_SBOM_PATH]
        assert value_after(argv, "--network") == ["none"]
        assert value_after(argv, "--pull") == ["never"], "only the image `invoke build` made"
        assert value_after(argv, "--platform") == [target.platform]
        assert value_after(argv, "--cap-drop") == ["ALL"]
        assert "--read-only" in argv
        assert "--gpus" not in argv, (
            "reading a file needs no GPU: any machine reads the GPU image's"
        )
        assert "--env-file" not in argv, "none of the app's keys"
        assert "--mount" not in argv, "no DATA_DIR"


def test_the_default_file_names_the_image_and_its_architecture_on_every_host(project):
    settings = settings_of(project, IMAGE_TAG="v2")
    folder = project / "sbom"
    assert (
        sboms.default_output(settings, target_of(settings)) == folder / "acme-tf-v2-amd64.cdx.json"
    )
    assert (
        sboms.default_output(settings, target_of(settings, host="linux/arm64"))
        == folder / "acme-tf-v2-arm64.cdx.json"
    )
    assert (
        sboms.default_output(
            settings, target_of(settings, platform="linux/amd64", host="linux/arm64")
        )
        == folder / "acme-tf-v2-amd64.cdx.json"
    ), "the same name where amd64 is emulated"
    assert (
        sboms.default_output(settings, target_of(settings, gpu=True))
        == folder / "acme-tf-v2-gpu.cdx.json"
    )


def test_the_sbom_is_written_as_the_image_holds_it_and_its_path_returned(project, capsys):
    engine = reading(BY_DIGEST)
    settings = settings_of(project)
    path = sboms.write(engine, settings, target_of(settings), None)
    assert path == project / "sbom" / "acme-tf-latest-amd64.cdx.json"
    assert path.read_text() == BY_DIGEST
    assert capsys.readouterr().err == "", "by digest: nothing to say"


def test_an_output_path_is_taken_as_given_with_its_folders_made(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = reading(BY_DIGEST)
    settings = settings_of(project)
    path = sboms.write(engine, settings, target_of(settings), Path("out/image.json"))
    assert path == tmp_path / "out" / "image.json"
    assert path.read_text() == BY_DIGEST


def test_a_base_image_named_by_tag_alone_is_said_in_one_line(project, capsys):
    engine = reading(BY_TAG)
    settings = settings_of(project)
    sboms.write(engine, settings, target_of(settings), None)
    assert capsys.readouterr().err.splitlines() == [
        "note: the SBOM names the base image by its tag alone (python:3.11-slim), not by digest: "
        "which build of the tag the image was made on is not recorded"
    ]


def test_a_missing_image_is_one_line_that_says_which_build_makes_it_and_nothing_runs(project):
    engine = RecordingEngine()
    settings = settings_of(project)
    with pytest.raises(
        UserError,
        match=r"^there is no image acme/tf:latest-gpu; `invoke build --gpu` makes it$",
    ):
        sboms.write(engine, settings, target_of(settings, gpu=True), None)
    assert not engine.ran(" run ")
    assert not (project / "sbom").exists()


def test_an_image_built_before_the_images_carried_an_sbom_is_told_to_rebuild(project):
    missing = f"cat: {sboms.IMAGE_SBOM_PATH}: No such file or directory\n"
    engine = reading("", exited=1, stderr=missing)
    settings = settings_of(project)
    with pytest.raises(
        UserError,
        match=re.escape(
            f"acme/tf:latest holds no SBOM at {sboms.IMAGE_SBOM_PATH}: it was built before the "
            "images carried one; `invoke build` rebuilds it"
        ),
    ):
        sboms.write(engine, settings, target_of(settings), None)
    assert not (project / "sbom").exists()


@pytest.mark.parametrize(
    ("text", "said"),
    [("{not json", "is not JSON"), ('{"spdxVersion": "SPDX-2.3"}', "is no CycloneDX document")],
)
def test_what_is_no_cyclonedx_document_is_refused_and_not_written(project, text, said):
    engine = reading(text)
    settings = settings_of(project)
    with pytest.raises(UserError, match=said):
        sboms.write(engine, settings, target_of(settings), None)
    assert not (project / "sbom").exists()


def test_an_image_older_than_its_lock_is_said_before_its_sbom_is_written(project, capsys):
    old = sources.lock_digest(project / "requirements.txt")
    (project / "requirements.txt").write_text(LOCK + "numpy==2.0.0 \\\n    --hash=sha256:def\n")
    labels = {sources.LOCK_LABEL: (0, f"src-digest {old}\n", "")}
    engine = RecordingEngine(
        answers={**labels, **BUILT},
        outcomes={f"cat {sboms.IMAGE_SBOM_PATH}": Outcome(0, BY_DIGEST, "")},
    )
    settings = settings_of(project)
    assert sboms.write(engine, settings, target_of(settings), None).is_file()
    assert capsys.readouterr().err.splitlines() == [
        "warning: requirements.txt changed since acme/tf:latest was built, which still has the old "
        "one; `invoke build` rebuilds it"
    ]


def test_under_dry_the_read_is_printed_and_nothing_is_written(project, capsys):
    engine = RecordingEngine(dry=True)
    settings = settings_of(project)
    assert sboms.write(engine, settings, target_of(settings), None) is None
    [run] = engine.actions
    assert run.endswith(f"acme/tf:latest cat {sboms.IMAGE_SBOM_PATH}")
    assert capsys.readouterr().err.splitlines() == [
        f"# would write the SBOM of acme/tf:latest to {project}/sbom/acme-tf-latest-amd64.cdx.json"
    ]
    assert not (project / "sbom").exists()


def test_the_path_invoke_sbom_reads_is_where_both_dockerfiles_put_the_sbom():
    for dockerfile in PROJECT_DIR.glob("Dockerfile*"):
        release = dockerfile.read_text().rsplit("AS release", 1)[1]
        assert f"COPY --from=sbom /sbom.cdx.json {sboms.IMAGE_SBOM_PATH}\n" in release, dockerfile


def test_git_ignores_the_folder_invoke_sbom_writes_to():
    assert f"{sboms.SBOM_DIR}/" in (PROJECT_DIR / ".gitignore").read_text().splitlines()
