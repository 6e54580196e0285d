"""The example application's tests inside the image (`nox -s container_test` runs them beside the
template's tests/container/): this file may import only the standard library, pytest and what the image holds."""

import importlib.util

import pytest

# On the host, TensorFlow is not installed: skipped there with this reason, as tests/container/ is.
if importlib.util.find_spec("tensorflow") is None:
    pytest.skip("in-container tests: `nox -s container_test` runs them inside the image", allow_module_level=True)
