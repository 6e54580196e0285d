"""A project generated with every capability left out (the minimal app, no GPU image, no
Kubernetes, no JupyterLab, no dev container, no CI) builds with `invoke build`, and its app answers
/health 200 under `invoke run --detach`: the README's two commands work on day one."""

from helpers.engine import free_port, remove_everything_named
from helpers.http_client import call, wait_until_healthy

LEFT_OUT = ("example", "gpu", "kubernetes", "notebook", "devcontainer", "github_actions")


def test_the_all_left_out_project_builds_and_serves_health(generate, run, invoke, tmp_path):
    project = generate(name="acme", **{name: False for name in LEFT_OUT})
    image = f"{invoke.image_name}-generated"
    port = free_port()
    settings = {"IMAGE_NAME": image, "HOST_PORT": str(port), "DATA_DIR": str(project / "data")}
    try:
        built = invoke("build", cwd=project, env=settings)
        assert built.returncode == 0, built.stderr[-3000:]
        started = invoke("run", "--detach", cwd=project, env=settings)
        assert started.returncode == 0, started.stderr[-3000:]
        wait_until_healthy(f"http://127.0.0.1:{port}/health")
        status, body = call(f"http://127.0.0.1:{port}/predict", body=b"{}")
        assert status == 501
        assert "replace predict()" in body["error"]
        stopped = invoke("stop", cwd=project, env=settings)
        assert stopped.returncode == 0, stopped.stderr
    finally:
        remove_everything_named(image)
