"""The host-fit plugin's decisions: which engine tests a machine runs, and why it skips the others."""

from dataclasses import dataclass, field

import pytest

from helpers import host_fit


@dataclass
class Item:
    """What the plugin reads of a collected test: its markers and its fixtures."""

    markers: list = field(default_factory=list)
    fixturenames: tuple[str, ...] = ()

    def iter_markers(self, name):
        return (marker for marker in self.markers if marker.name == name)

    def get_closest_marker(self, name):
        return next(self.iter_markers(name), None)


def reason(item, host="linux/amd64", emulated=False, nvidia=False):
    return host_fit.skip_reason(item, host=host, emulated=emulated, nvidia=nvidia)


def test_native_images_always_run():
    assert reason(Item()) is None
    assert reason(Item([pytest.mark.platform("linux/amd64").mark])) is None
    assert reason(Item(fixturenames=("cpu_image",))) is None


def test_the_other_architecture_runs_only_where_asked():
    arm64 = Item(fixturenames=("arm64_image",))
    assert reason(arm64) == (
        "needs linux/arm64 under emulation on this linux/amd64 host: pass --emulated (nox -s integration -- --emulated) or set CI"
    )
    assert reason(arm64, emulated=True) is None
    assert reason(arm64, host="linux/arm64") is None, "native on an ARM host"


def test_the_gpu_image_is_amd64_so_an_arm_host_skips_its_build():
    gpu = Item(fixturenames=("gpu_image",))
    assert reason(gpu) is None
    assert reason(gpu, host="linux/arm64").startswith(
        "needs linux/amd64 under emulation on this linux/arm64 host"
    )
    both = Item([pytest.mark.platform("linux/amd64", "linux/arm64").mark])
    assert "needs linux/arm64" in reason(both)
    assert "needs linux/amd64" in reason(both, host="linux/arm64")


def test_a_gpu_run_needs_the_nvidia_runtime():
    run = Item([pytest.mark.gpu_run.mark])
    assert reason(run) == "needs a GPU: this engine has no NVIDIA runtime"
    assert reason(run, emulated=True) == "needs a GPU: this engine has no NVIDIA runtime", (
        "CI cannot make a GPU appear"
    )
    assert reason(run, nvidia=True) is None


def test_ci_asks_for_emulation(monkeypatch):
    class Config:
        def getoption(self, name):
            return False

    monkeypatch.delenv("CI", raising=False)
    assert host_fit.emulation_wanted(Config()) is False
    monkeypatch.setenv("CI", "true")
    assert host_fit.emulation_wanted(Config()) is True
