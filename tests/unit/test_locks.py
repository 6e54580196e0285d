"""The committed locks: hash-pinned, the right TensorFlow per image, shared versions in step."""

import re

import pytest
from conftest import PROJECT_DIR

LOCKS = ("requirements.txt", "requirements-arm64.txt", "requirements-gpu.txt", "requirements-dev.txt")


def pins(lock: str) -> dict[str, str]:
    text = (PROJECT_DIR / lock).read_text()
    return {name.lower(): version for name, version in re.findall(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", text, re.MULTILINE)}


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_has_a_hash(lock):
    blocks = re.split(r"\n(?=[A-Za-z0-9])", (PROJECT_DIR / lock).read_text())
    requirements = [block for block in blocks if re.match(r"[A-Za-z0-9]", block)]
    assert requirements
    for block in requirements:
        assert "==" in block.splitlines()[0], f"{lock}: not pinned: {block.splitlines()[0]}"
        assert "--hash=sha256:" in block, f"{lock}: no hash for {block.splitlines()[0]}"


def test_each_image_gets_its_tensorflow():
    assert "tensorflow-cpu" in pins("requirements.txt")
    assert "tensorflow" not in pins("requirements.txt")
    assert "tensorflow" in pins("requirements-arm64.txt")
    assert "tensorflow-cpu" not in pins("requirements-arm64.txt")
    gpu = pins("requirements-gpu.txt")
    assert "tensorflow" in gpu
    assert "tensorflow-cpu" not in gpu
    assert any(name.startswith("nvidia-cudnn") for name in gpu), "the GPU lock holds the CUDA wheels"


def test_shared_packages_have_the_same_versions_in_every_image():
    amd64, arm64, gpu = pins("requirements.txt"), pins("requirements-arm64.txt"), pins("requirements-gpu.txt")
    assert amd64["tensorflow-cpu"] == arm64["tensorflow"] == gpu["tensorflow"]
    for other in (arm64, gpu):
        shared = amd64.keys() & other.keys()
        assert {name: amd64[name] for name in shared} == {name: other[name] for name in shared}
