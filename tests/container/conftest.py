"""Runs inside the image (`nox -s container_test`), with pytest mounted in, not installed: this file may
import only the standard library, pytest and what the image holds."""

import importlib.util
import os
import platform

import pytest

# On the host (a collection of every folder at once), TensorFlow is not installed: these tests are
# skipped there with this reason. Inside the image, a TensorFlow that is installed but broken still
# runs them, and they fail.
if importlib.util.find_spec("tensorflow") is None:
    pytest.skip("in-container tests: `nox -s container_test` runs them inside the image", allow_module_level=True)


@pytest.fixture(scope="session")
def tf():
    import tensorflow

    return tensorflow


def pytest_terminal_summary(terminalreporter):
    """The short report: what TensorFlow this image runs, and what it sees."""
    terminalreporter.write_sep("-", "container report")
    try:
        import tensorflow as tf

        devices = ", ".join(f"{device.device_type}:{device.name.rsplit(':', 1)[-1]}" for device in tf.config.list_physical_devices())
        terminalreporter.write_line(f"TensorFlow {tf.__version__} (CUDA build: {tf.test.is_built_with_cuda()}); devices: {devices}")
    except Exception as error:  # noqa: BLE001 (a broken TensorFlow is what the tests above report; the report must not crash)
        terminalreporter.write_line(f"TensorFlow does not import: {type(error).__name__}: {error}")
    terminalreporter.write_line(f"{platform.machine()}, uid {os.getuid()}")
