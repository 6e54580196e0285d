"""A training derives the same TF_CONFIG as a pod of the Kubernetes Job that `invoke k8s` renders and
as a worker of `invoke train`: distributed_training against devkit's launcher and manifests."""

import pytest

import distributed_training
from devkit import distributed, kubernetes
from helpers.command_lines import settings_of, target_of
from helpers.manifests import env_of, the
from helpers.project import PROJECT_DIR

IMAGE = "registry.example.com/team/flowers:v2"


@pytest.fixture(scope="module")
def base():
    return kubernetes.load(PROJECT_DIR / kubernetes.MANIFESTS_DIR)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


def rendered(base, workers=3, gpu=False, port=8888):
    return kubernetes.render(
        base, name="flowers", image=IMAGE, workers=workers, gpu=gpu, container_port=port
    )


@pytest.mark.parametrize("index", [0, 2])
def test_a_pod_of_the_job_derives_the_tf_config_of_its_hostname_and_port(base, index):
    documents = rendered(base, workers=3)
    job, service = the(documents, "Job"), the(documents, "Service", "flowers-workers")
    container = job["spec"]["template"]["spec"]["containers"][0]
    # What Kubernetes adds to the manifest's environment: the pod's index.
    cluster = distributed_training.from_environment(
        {**env_of(container), "JOB_COMPLETION_INDEX": str(index)}
    )
    assert cluster.spec == {
        "worker": [f"flowers-train-{number}.flowers-workers:2222" for number in range(3)]
    }
    assert (cluster.index, cluster.chief) == (index, index == 0)
    assert (
        [port["containerPort"] for port in container["ports"]]
        == [service["spec"]["ports"][0]["port"]]
        == [2222]
    )


@pytest.mark.parametrize("index", [0, 1])
def test_a_worker_has_the_environment_of_the_pod_invoke_k8s_renders_and_derives_the_same_tf_config(
    project, index
):
    settings = settings_of(project, "acme/flowers")
    worker = distributed.workers_of(settings, target_of(settings), 2)[index]
    base = kubernetes.load(PROJECT_DIR / kubernetes.MANIFESTS_DIR)
    name = distributed.kubernetes_name(settings)
    job = next(
        document
        for document in kubernetes.render(
            base, name=name, image="i", workers=2, gpu=False, container_port=8888
        )
        if document["kind"] == "Job"
    )
    pod = {
        variable["name"]: variable["value"]
        for variable in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    pod["JOB_COMPLETION_INDEX"] = str(index)  # what Kubernetes adds
    assert {key: pod[key] for key in worker.environment()} == worker.environment()
    assert (worker.hostname, worker.address.split(".")[1]) == (
        f"{job['metadata']['name']}-{index}",
        job["spec"]["template"]["spec"]["subdomain"],
    )
    assert distributed_training.from_environment(
        worker.environment()
    ) == distributed_training.from_environment(pod | {"TRAIN_COLLECTIVE_TIMEOUT": "300"})
