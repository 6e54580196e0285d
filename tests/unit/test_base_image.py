"""The base image by digest, with the engine scripted: how BASE_IMAGE's digest for each platform is
read from the registry (Docker, Podman), what `invoke lock` records and when, what `--check` calls
stale, and what a build starts from and labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit import baseimage, building, locking, locks
from devkit.engine import Outcome
from devkit.errors import UserError
from devkit.platforms import AMD64, ARM64
from helpers.base_image import (
    AMD64_DIGEST,
    ARM64_DIGEST,
    DIGESTS,
    PODMAN_SINGLE,
    docker_index,
    docker_single,
    podman_index,
    write_record,
)
from helpers.command_lines import settings_of, target_of, value_after
from helpers.recording_engine import RecordingEngine

MOVED = "sha256:" + "f" * 64
STANDIN = "127.0.0.1:5000/python:3.11-slim"
# `docker info`: a registry on a loopback address is reached over plain HTTP.
LOOPBACK_INSECURE = {"info --format {{json .RegistryConfig}}": (0, "{}\n", "")}
CPU_LOCKS = (locks.CPU_AMD64, locks.CPU_ARM64)


@pytest.fixture
def project(tmp_path) -> Path:
    """A project whose CPU locks match their inputs, with their halves in docker/locks/."""
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "requirements.in").write_text("numpy\n")
    (folder / "requirements-cpu.in").write_text("-r requirements.in\ntensorflow-cpu\n")
    (folder / "requirements-dev.txt").write_text(
        "pip-tools==7.4.1 \\\n    --hash=sha256:abc\n    # via -r requirements-dev.in\n"
    )
    for lock in CPU_LOCKS:
        body = "".join(
            f"{name}==1.0 \\\n    --hash=sha256:{'0' * 64}\n"
            for name in ("numpy", "tensorflow-cpu")
        )
        (folder / lock.output).write_text(locks.with_footer(folder, lock, body))
        for name, text in locks.layer_texts(lock, body).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
    return folder


def record_text(project: Path) -> str:
    return (project / baseimage.RECORD).read_text()


# --- the registry's digests -------------------------------------------------------------------


def test_docker_reads_each_platforms_manifest_digest_not_the_index_and_no_attestation():
    engine = RecordingEngine(
        answers={
            **LOOPBACK_INSECURE,
            f"manifest inspect --verbose --insecure {STANDIN}$": (0, docker_index(STANDIN), ""),
        }
    )
    assert engine.manifest_digests(STANDIN) == {AMD64: AMD64_DIGEST, ARM64: ARM64_DIGEST}
    assert ("query", f"docker manifest inspect --verbose --insecure {STANDIN}") in engine.log, (
        "a registry over plain HTTP, as the engine reaches it"
    )


def test_docker_reads_the_one_manifest_of_an_image_of_one_platform():
    engine = RecordingEngine(
        answers={
            "manifest inspect --verbose python:3.11-slim": (
                0,
                docker_single("python:3.11-slim", ARM64, ARM64_DIGEST),
                "",
            )
        }
    )
    assert engine.manifest_digests("python:3.11-slim") == {ARM64: ARM64_DIGEST}


def test_a_reference_with_a_tag_and_a_digest_is_read_by_its_digest():
    # docker's CLI fetches the tag's manifest for `name:tag@digest`, and refuses it as not matching.
    engine = RecordingEngine(answers={f"python@{AMD64_DIGEST}": (0, docker_single("python"), "")})
    engine.manifest_digests(f"python:3.11-slim@{AMD64_DIGEST}")
    assert engine.log[-1] == ("query", f"docker manifest inspect --verbose python@{AMD64_DIGEST}")


def test_podman_reads_the_index_and_pulls_an_image_of_one_platform_for_its_digest():
    index = RecordingEngine(
        docker="podman", answers={"manifest inspect python:3.11-slim": (0, podman_index(), "")}
    )
    assert baseimage.resolve(index, "python:3.11-slim") == DIGESTS
    assert index.actions == [], "an index names every platform's digest: nothing is pulled"

    layout = "{{.Os}}/{{.Architecture}} {{.Digest}}"
    single = RecordingEngine(
        docker="podman",
        answers={
            "manifest inspect internal/base:1": (0, PODMAN_SINGLE, ""),
            f"image inspect --format {layout} internal/base:1": (
                0,
                f"linux/amd64 {AMD64_DIGEST}\n",
                "",
            ),
        },
    )
    assert baseimage.resolve(single, "internal/base:1") == {AMD64: AMD64_DIGEST}
    assert single.actions == ["podman pull --quiet internal/base:1"]
    assert baseimage.resolve(single, "internal/base:1", may_pull=False) == {}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            (1, "", "no such manifest: 127.0.0.1:5000/nope:1\n"),
            "cannot resolve BASE_IMAGE 127.0.0.1:5000/nope:1 to a digest (no such manifest:"
            " 127.0.0.1:5000/nope:1); check the name and your network and registry access"
            " (`docker login`)",
        ),
        (
            (0, docker_single("127.0.0.1:5000/nope:1", "linux/s390x"), ""),
            "BASE_IMAGE 127.0.0.1:5000/nope:1 has no linux/amd64 or linux/arm64 variant (only"
            " linux/s390x); set BASE_IMAGE to an image of one of them",
        ),
    ],
)
def test_a_digest_that_cannot_be_resolved_is_one_line(answer, message):
    engine = RecordingEngine(answers={**LOOPBACK_INSECURE, "manifest inspect": answer})
    with pytest.raises(UserError) as error:
        baseimage.resolve(engine, "127.0.0.1:5000/nope:1")
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("image", "qualified"),
    [
        ("python:3.11-slim", "docker.io/library/python:3.11-slim"),
        ("acme/python:3.11", "docker.io/acme/python:3.11"),
        (f"python@{AMD64_DIGEST}", f"docker.io/library/python@{AMD64_DIGEST}"),
        ("127.0.0.1:5000/python:3.11-slim", "127.0.0.1:5000/python:3.11-slim"),
        ("ghcr.io/acme/python:3.11", "ghcr.io/acme/python:3.11"),
        ("localhost/python:3.11", "localhost/python:3.11"),
    ],
)
def test_the_base_name_label_is_a_fully_qualified_reference(image, qualified):
    assert baseimage.qualified_name(image) == qualified


# --- the record -------------------------------------------------------------------------------


def test_the_record_names_the_image_and_each_platforms_digest_under_a_footer(project):
    write_record(project)
    lines = record_text(project).splitlines()
    rows = [line for line in lines if not line.startswith("#")]
    assert rows == [
        f"python:3.11-slim linux/amd64 {AMD64_DIGEST}",
        f"python:3.11-slim linux/arm64 {ARM64_DIGEST}",
    ]
    assert lines[-1].startswith(locks.FOOTER_PREFIX)
    assert baseimage.read(project) == (baseimage.Pins("python:3.11-slim", DIGESTS), None)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda text: text.replace(AMD64_DIGEST, MOVED), "edited by hand"),
        (lambda text: text.replace("linux/arm64", "linux/arm64/v8"), "edited by hand"),
        (lambda text: "".join(text.splitlines(keepends=True)[:-1]), "edited by hand"),
        (
            lambda text: text.replace("python:3.11-slim", "mirror/python:3.11-slim"),
            "edited by hand",
        ),
    ],
)
def test_a_record_edited_by_hand_is_stale(project, edit, reason):
    path = write_record(project)
    path.write_text(edit(path.read_text()))
    assert baseimage.stale_reason(project, "python:3.11-slim") == reason
    with pytest.raises(UserError) as error:
        locking.check(project, CPU_LOCKS, "python:3.11-slim")
    assert str(error.value) == (
        f"out of date: docker/locks/base-image.txt ({reason}); run `invoke lock` to compile them"
    )


def test_without_a_record_yet_the_check_passes_and_says_builds_are_not_pinned(project, capsys):
    assert baseimage.stale_reason(project, "python:3.11-slim") == "missing"
    locking.check(project, CPU_LOCKS, "python:3.11-slim")
    assert capsys.readouterr().err.splitlines() == [
        "docker/locks/base-image.txt is not written yet: builds start from the digest BASE_IMAGE's"
        " registry names at the time; `invoke lock` pins it (commit the file)",
        "up to date: requirements.txt, requirements-arm64.txt",
    ]


def test_the_check_covers_the_record_and_calls_another_base_image_stale(project, capsys):
    write_record(project)
    locking.check(project, CPU_LOCKS, "python:3.11-slim")
    assert capsys.readouterr().err == (
        "up to date: requirements.txt, requirements-arm64.txt, docker/locks/base-image.txt\n"
    )
    with pytest.raises(UserError, match=r"\(it pins python:3.11-slim, not BASE_IMAGE mirror/py"):
        locking.check(project, CPU_LOCKS, "mirror/python:3.11-slim")
    # The host tools' lock alone is compiled on this machine: no base image is checked with it.
    (project / "requirements-dev.in").write_text("pip-tools\n")
    dev_lock = project / locks.DEV.output
    dev_lock.write_text(locks.with_footer(project, locks.DEV, dev_lock.read_text()))
    locking.check(project, (locks.DEV,), "mirror/python:3.11-slim")
    assert capsys.readouterr().err == "up to date: requirements-dev.txt\n"


# --- invoke lock ------------------------------------------------------------------------------


def lock(engine, project, *, upgrade=False, chosen=CPU_LOCKS, **environ):
    locking.lock(
        engine,
        settings_of(project, **environ),
        chosen,
        upgrade=upgrade,
        packages=(),
        python="python3",
    )


def test_lock_pins_the_base_image_without_compiling_locks_that_are_current(project, capsys):
    engine = RecordingEngine()
    lock(engine, project)
    assert not engine.ran("pip-compile")
    assert baseimage.read(project) == (baseimage.Pins("python:3.11-slim", DIGESTS), None)
    assert capsys.readouterr().err.splitlines()[-1] == (
        "docker/locks/base-image.txt: pinned python:3.11-slim: linux/amd64 sha256:aaaaaaaaaaaa,"
        " linux/arm64 sha256:bbbbbbbbbbbb"
    )
    locking.check(project, CPU_LOCKS, "python:3.11-slim")

    again = RecordingEngine()
    lock(again, project)
    assert not [line for kind, line in again.log if "manifest" in line], "no registry asked"
    assert capsys.readouterr().err.splitlines()[-1] == "docker/locks/base-image.txt is up to date"


def test_a_base_image_that_cannot_be_resolved_writes_nothing(project):
    before = {path: path.read_bytes() for path in project.rglob("*") if path.is_file()}
    engine = RecordingEngine(
        answers={"manifest inspect": (1, "", "dial tcp: lookup registry-1.docker.io: no such host")}
    )
    with pytest.raises(UserError) as error:
        lock(engine, project, upgrade=True)
    assert str(error.value) == (
        "cannot resolve BASE_IMAGE python:3.11-slim to a digest (dial tcp: lookup"
        " registry-1.docker.io: no such host); every lock is as it was; check the name and your"
        " network and registry access (`docker login`)"
    )
    assert engine.actions == [], "nothing compiled, nothing pulled"
    assert {path: path.read_bytes() for path in project.rglob("*") if path.is_file()} == before


def test_upgrade_takes_the_digest_the_tag_names_now_and_says_so(project, capsys):
    write_record(project)
    moved = {AMD64: MOVED, ARM64: ARM64_DIGEST}
    engine = RecordingEngine(
        answers={"manifest inspect --verbose": (0, docker_index("python:3.11-slim", moved), "")},
        outcomes={"pip-compile": Outcome(0, (project / "requirements.txt").read_text())},
    )
    lock(engine, project, upgrade=True)
    assert baseimage.read(project)[0].digests == moved
    assert (
        "docker/locks/base-image.txt: python:3.11-slim moved: linux/amd64 sha256:aaaaaaaaaaaa ->"
        " sha256:ffffffffffff" in capsys.readouterr().err.splitlines()
    )
    # pip-compile ran in the base image by the new digest of each lock's platform.
    runs = [line for line in engine.actions if " run " in line]
    assert [line.split(" sh -c ")[0].split()[-1] for line in runs] == [
        f"python:3.11-slim@{MOVED}",
        f"python:3.11-slim@{ARM64_DIGEST}",
    ]


def test_upgrade_of_one_platform_keeps_the_others_digest(project):
    write_record(project)
    engine = RecordingEngine(
        answers={
            "manifest inspect --verbose": (
                0,
                docker_index("python:3.11-slim", {AMD64: MOVED, ARM64: MOVED}),
                "",
            )
        },
        outcomes={"pip-compile": Outcome(0, (project / "requirements-arm64.txt").read_text())},
    )
    lock(engine, project, upgrade=True, chosen=(locks.CPU_ARM64,))
    assert baseimage.read(project)[0].digests == {AMD64: AMD64_DIGEST, ARM64: MOVED}


def test_another_base_image_is_pinned_anew(project, capsys):
    write_record(project)
    engine = RecordingEngine(
        answers={
            **LOOPBACK_INSECURE,
            "manifest inspect --verbose --insecure": (0, docker_index(STANDIN), ""),
        }
    )
    lock(engine, project, BASE_IMAGE=STANDIN)
    assert baseimage.read(project)[0] == baseimage.Pins(STANDIN, DIGESTS)
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .startswith(f"docker/locks/base-image.txt: pinned {STANDIN}: ")
    )


def test_a_failed_compile_writes_no_record(project):
    engine = RecordingEngine(outcomes={"pip-compile": Outcome(1, "", "ERROR: no numpy\n")})
    with pytest.raises(UserError, match="pip-compile failed"):
        lock(engine, project, upgrade=True)
    assert not (project / baseimage.RECORD).exists()


def test_a_dry_lock_without_an_answering_registry_shows_the_compile_in_base_image(project, capsys):
    engine = RecordingEngine(dry=True, answers={"manifest inspect": (127, "", "")})
    lock(engine, project, upgrade=True)
    assert not (project / baseimage.RECORD).exists()
    assert "# would pin the digest of BASE_IMAGE, which is unknown: " in capsys.readouterr().err


# --- invoke build -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "gpu", "digest"),
    [(AMD64, False, AMD64_DIGEST), (ARM64, False, ARM64_DIGEST), (AMD64, True, AMD64_DIGEST)],
)
def test_a_build_starts_from_the_pinned_digest_of_its_platform_and_labels_it(
    project, platform, gpu, digest
):
    (project / "requirements-gpu.txt").write_text((project / "requirements.txt").read_text())
    write_record(project)
    engine = RecordingEngine(answers={"manifest inspect": (1, "", "not to be asked")})
    settings = settings_of(project)
    building.build(engine, settings, target_of(settings, gpu=gpu, platform=platform))
    build = engine.actions[-1].split()
    assert f"BASE_IMAGE=python:3.11-slim@{digest}" in value_after(build, "--build-arg")
    labels = value_after(build, "--label")
    assert "org.opencontainers.image.base.name=docker.io/library/python:3.11-slim" in labels
    assert f"org.opencontainers.image.base.digest={digest}" in labels
    assert engine.actions[0].endswith(
        f" pull --quiet --platform {platform} python:3.11-slim@{digest}"
    )


def test_a_base_image_given_by_digest_is_used_as_it_is(project):
    reference = f"python:3.11-slim@sha256:{'c' * 64}"  # the index's digest
    write_record(project, reference)
    settings = settings_of(project, BASE_IMAGE=reference)
    argv = building.build_command(
        settings,
        target_of(settings, platform=ARM64),
        buildx=False,
        base=baseimage.pinned(project, reference, ARM64),
    )
    assert f"BASE_IMAGE={reference}" in value_after(argv, "--build-arg")
    assert f"org.opencontainers.image.base.digest={ARM64_DIGEST}" in value_after(argv, "--label")


def test_a_build_on_a_base_the_record_does_not_pin_takes_the_registrys_digest_and_says_so(
    project, capsys
):
    write_record(project, "mirror.example/python:3.11-slim")
    engine = RecordingEngine(
        answers={
            "manifest inspect --verbose mirror.example/python:3.12": (
                0,
                docker_index("mirror.example/python:3.12", {AMD64: MOVED}),
                "",
            )
        }
    )
    settings = settings_of(project, BASE_IMAGE="mirror.example/python:3.12")
    building.build(engine, settings, target_of(settings))
    assert capsys.readouterr().err.splitlines()[0] == (
        "docker/locks/base-image.txt does not pin BASE_IMAGE (it pins"
        " mirror.example/python:3.11-slim, not BASE_IMAGE mirror.example/python:3.12): building on"
        f" {MOVED}, the digest its registry names now; `invoke lock` pins it"
    )
    assert f"BASE_IMAGE=mirror.example/python:3.12@{MOVED}" in engine.actions[-1]

    with pytest.raises(UserError, match=r"has no linux/arm64 variant in its registry \(only linux"):
        building.build(engine, settings, target_of(settings, platform=ARM64))


def test_a_pinned_digest_the_registry_no_longer_holds_says_how_to_pin_another(project):
    write_record(project)
    engine = RecordingEngine(outcomes={" pull ": Outcome(1, "", "manifest unknown\n")})
    settings = settings_of(project)
    with pytest.raises(UserError) as error:
        building.build(engine, settings, target_of(settings))
    assert str(error.value) == (
        f"BASE_IMAGE python:3.11-slim@{AMD64_DIGEST} cannot be pulled for linux/amd64 (manifest"
        " unknown); check the name and your registry access; where its registry no longer holds"
        " sha256:aaaaaaaaaaaa, `invoke lock --upgrade` pins the digest its tag names now"
    )
    assert not engine.ran(" build ")
