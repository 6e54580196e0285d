"""The example application's tests inside the image (`nox -s container_test` runs them beside the
template's tests/container/): this file may import only the standard library, pytest and what the image holds."""

import importlib.util

import pytest

# On the host, where TensorFlow is not installed, the tests here are not collected (as tests/container/conftest.py explains).
collect_ignore_glob = [] if importlib.util.find_spec("tensorflow") is not None else ["*.py"]


@pytest.fixture(scope="session")
def tf():
    import tensorflow

    return tensorflow
