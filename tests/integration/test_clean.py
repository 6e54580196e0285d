"""`invoke clean`: the project's containers and images go; DATA_DIR, other images and containers stay."""

from helpers.engine import containers_named, docker, free_port


def test_clean_removes_the_projects_containers_and_images_and_nothing_else(invoke, cpu_image, tmp_path):
    name = f"{invoke.image_name}-clean"
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    (data / "model.keras").write_text("weeks of training")
    env = {"IMAGE_NAME": name, "DATA_DIR": str(data), "HOST_PORT": str(free_port())}
    # The project's images under each tag clean knows (tags of the suite's CPU image: no build needed).
    images = [f"{name}:latest", f"{name}:latest-gpu", f"{name}:v1"]
    for image in images:
        docker("tag", cpu_image, image)
    other = f"{name}-other"
    docker("create", "--name", other, cpu_image)
    try:
        started = invoke("run", "--detach", "--cmd", "sleep 600", env=env)
        assert started.returncode == 0, started.stderr
        assert containers_named(name) != []

        result = invoke("clean", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == f"removed {name}, {name}:latest, {name}:latest-gpu"
        assert containers_named(name) == []
        assert docker("image", "inspect", f"{name}:latest", check=False).returncode != 0
        assert docker("image", "inspect", f"{name}:latest-gpu", check=False).returncode != 0
        # Not the project's under this IMAGE_TAG, not the project's at all, and never DATA_DIR.
        assert docker("image", "inspect", f"{name}:v1", check=False).returncode == 0
        assert docker("image", "inspect", cpu_image, check=False).returncode == 0
        assert containers_named(other) != []
        assert (data / "model.keras").read_text() == "weeks of training"

        again = invoke("clean", env=env)
        assert (again.returncode, again.stderr.strip()) == (0, "nothing to remove")
    finally:
        docker("rm", "--force", name, other, check=False)
        docker("image", "rm", *images, check=False)
