"""`nox -s container_test` proves an image works: shown by an image whose TensorFlow is broken."""

import subprocess
import sys

from helpers.engine import docker
from helpers.project import project_copy

# Appended to the runtime stage: `import tensorflow` raises, as after a bad install.
BREAK_TENSORFLOW = """
USER root
RUN for init in /opt/venv/lib/python3*/site-packages/tensorflow/__init__.py; do echo 'raise ImportError("broken on purpose")' > "$init"; done
USER 1000:1000
"""


def test_container_test_fails_on_an_image_whose_tensorflow_does_not_import(
    invoke, cpu_image, tmp_path
):
    copy = project_copy(tmp_path)
    with (copy / "Dockerfile").open("a") as dockerfile:
        dockerfile.write(BREAK_TENSORFLOW)
    broken = f"{invoke.image_name}-broken"
    env = {**invoke.env, "IMAGE_NAME": broken}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "nox", "-s", "container_test"],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        docker("image", "rm", "--force", f"{broken}:latest", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "Session container_test failed" in output
    assert (
        "ERROR tests/container/test_smoke.py::test_tensorflow_is_the_version_in_the_lock" in output
    ), output[-3000:]
    assert "ImportError: broken on purpose" in output
    assert "TensorFlow does not import: ImportError: broken on purpose" in output
    assert f"error: the container test failed in {broken}:latest" in output
