"""For every test folder: `@pytest.mark.needs("gpu")` skips a test, saying so, in a project that was
generated without that capability (copier.yml's questions; devkit/capabilities.py tells them). A
test that takes the `gpu_image` fixture or is marked `gpu_run` needs the GPU image."""

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs(capability): skip where the project was generated without it"
    )


def pytest_runtest_setup(item):
    needed = [name for mark in item.iter_markers("needs") for name in mark.args]
    # The GPU image's fixture, and a container on a GPU, need the GPU image.
    if "gpu_image" in getattr(item, "fixturenames", ()) or item.get_closest_marker("gpu_run"):
        needed.append("gpu")
    if needed:
        # Imported here: the in-container tests share this file, and the image has no devkit.
        from devkit import capabilities
        from helpers.project import PROJECT_DIR

        for name in needed:
            if not capabilities.present(PROJECT_DIR, name):
                pytest.skip(
                    f"this project was generated without {name}: "
                    f"`copier update --trust --data {name}=true` adds it"
                )
