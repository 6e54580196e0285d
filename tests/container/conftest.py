"""Runs inside the image (`nox -s container_test`), with pytest mounted in, not installed: this file may
import only the standard library, pytest and what the image holds."""

import importlib.util
import os
import platform

import pytest

# TensorFlow installed: inside the image. On the host, where it is not (a run over every folder), the
# tests here are not collected, and the run says so; inside the image, a TensorFlow that is installed
# but broken still counts, so these tests run there and fail.
IN_THE_IMAGE = importlib.util.find_spec("tensorflow") is not None
collect_ignore_glob = [] if IN_THE_IMAGE else ["*.py"]


def pytest_report_collectionfinish(config, start_path, items):
    if not IN_THE_IMAGE:
        return "tests/container, tests/example/container: not collected without TensorFlow; `nox -s container_test` runs them in the image"
    return None


@pytest.fixture(scope="session")
def tf():
    import tensorflow

    return tensorflow


def pytest_terminal_summary(terminalreporter):
    """The short report: what TensorFlow this image runs, and what it sees."""
    if not IN_THE_IMAGE:
        return
    terminalreporter.write_sep("-", "container report")
    try:
        import tensorflow as tf

        devices = ", ".join(
            f"{device.device_type}:{device.name.rsplit(':', 1)[-1]}"
            for device in tf.config.list_physical_devices()
        )
        terminalreporter.write_line(
            f"TensorFlow {tf.__version__} (CUDA build: {tf.test.is_built_with_cuda()}); devices: {devices}"
        )
    except Exception as error:  # noqa: BLE001 (a broken TensorFlow is what the tests above report; the report must not crash)
        terminalreporter.write_line(f"TensorFlow does not import: {type(error).__name__}: {error}")
    terminalreporter.write_line(f"{platform.machine()}, uid {os.getuid()}")
