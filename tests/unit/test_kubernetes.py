"""The Kubernetes manifests of `invoke k8s`: deploy/k8s/ rendered for the pushed image (no cluster needed)."""

import copy
import shutil

import pytest
import yaml

from devkit import distributed as distributed_launcher
from devkit import kubernetes
from devkit.errors import UserError
from devkit.settings import load_settings
from helpers.manifests import env_of, the
from helpers.project import PROJECT_DIR

IMAGE = "registry.example.com/team/flowers:v2"


@pytest.fixture(scope="module")
def base():
    return kubernetes.load(PROJECT_DIR / kubernetes.MANIFESTS_DIR)


def rendered(base, workers=3, gpu=False, port=8888):
    return kubernetes.render(
        base, name="flowers", image=IMAGE, workers=workers, gpu=gpu, container_port=port
    )


def pods(documents):
    return [
        document["spec"]["template"]["spec"]
        for document in documents
        if document["kind"] in ("Job", "Deployment")
    ]


def test_the_files_kustomize_lists_are_read_in_its_order(base):
    kinds = [document["kind"] for document in base]
    assert kinds == [
        "PersistentVolumeClaim",
        "Service",
        "Job",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]


def test_the_project_name_replaces_the_placeholder_everywhere_and_the_base_is_left_as_it_was(base):
    before = copy.deepcopy(base)
    documents = rendered(base)
    assert kubernetes.PLACEHOLDER not in kubernetes.to_yaml(documents)
    assert {document["metadata"]["name"] for document in documents} == {
        "flowers-data",
        "flowers-workers",
        "flowers-train",
        "flowers",
    }
    assert base == before, "rendering is pure"


def test_the_training_job_is_indexed_with_a_pod_per_worker_in_the_headless_services_subdomain(base):
    documents = rendered(base, workers=3)
    job, service = the(documents, "Job"), the(documents, "Service", "flowers-workers")
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == "flowers-workers"
    assert pod["restartPolicy"] == "Never"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"job-name": "flowers-train"}, (
        "the label Kubernetes puts on the Job's pods"
    )
    container = pod["containers"][0]
    assert container["image"] == IMAGE
    assert container["command"] == ["python", "-m", "app.train"]
    assert env_of(container)["TRAIN_WORKERS"] == "3"


def test_one_failed_worker_fails_the_whole_job(base):
    job = the(rendered(base), "Job")
    assert job["spec"]["backoffLimit"] == 0
    [rule] = job["spec"]["podFailurePolicy"]["rules"]
    assert rule == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "train", "operator": "NotIn", "values": [0]},
    }
    assert job["spec"]["template"]["spec"]["containers"][0]["name"] == "train"


def test_every_pod_runs_as_uid_1000_without_privileges_on_a_read_only_root_with_limits(base):
    for pod in pods(rendered(base)):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
            1000,
            1000,
        )
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert set(container["resources"]) == {"requests", "limits"}
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(
                container["resources"]["limits"]
            )
            assert kubernetes.GPU_RESOURCE not in container["resources"]["limits"]
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]
            assert volumes[mounts["/app/data"]]["persistentVolumeClaim"] == {
                "claimName": "flowers-data"
            }
        assert "tolerations" not in pod


def test_with_gpu_every_pod_asks_for_a_gpu_and_tolerates_gpu_nodes(base):
    for pod in pods(rendered(base, gpu=True)):
        assert [
            container["resources"]["limits"][kubernetes.GPU_RESOURCE]
            for container in pod["containers"]
        ] == [1]
        assert pod["tolerations"] == [
            {"key": kubernetes.GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        ]


def test_the_server_is_probed_on_its_port_and_scaled_on_cpu_without_losing_its_last_pod(base):
    documents = rendered(base, port=9000)
    deployment = the(documents, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert "command" not in container, "the image's default command serves"
    assert container["ports"] == [{"name": "http", "containerPort": 9000}]
    assert env_of(container)["PORT"] == "9000"
    probes = {
        kind: (container[kind]["httpGet"]["path"], container[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "readinessProbe")
    }
    assert probes == {"startupProbe": ("/health", "http"), "readinessProbe": ("/health", "http")}
    assert (
        container["livenessProbe"]["httpGet"]["path"],
        container["livenessProbe"]["httpGet"]["port"],
    ) == ("/live", "http")
    assert [
        mount.get("readOnly")
        for mount in container["volumeMounts"]
        if mount["mountPath"] == "/app/data"
    ] == [True]
    service = the(documents, "Service", "flowers")
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    autoscaler = the(documents, "HorizontalPodAutoscaler")
    assert autoscaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "flowers",
    }
    assert autoscaler["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    budget = the(documents, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"] == labels
    assert budget["spec"]["minAvailable"] == 1


def test_the_kserve_object_serves_the_savedmodels_on_the_data_volume():
    documents = kubernetes.render(
        kubernetes.load(PROJECT_DIR / kubernetes.KSERVE_DIR),
        name="flowers",
        image=IMAGE,
        workers=1,
        gpu=True,
        container_port=8888,
    )
    service = the(documents, "InferenceService")
    assert service["spec"]["predictor"]["model"]["modelFormat"] == {"name": "tensorflow"}
    assert service["spec"]["predictor"]["model"]["storageUri"] == "pvc://flowers-data/models/iris"
    assert "image" not in service["spec"]["predictor"]["model"], (
        "KServe runs TensorFlow Serving, not this image"
    )


def test_the_yaml_is_one_stream_that_reads_back_as_it_was(base):
    documents = rendered(base)
    assert list(yaml.safe_load_all(kubernetes.to_yaml(documents))) == documents


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("3", 3), (" 2 ", 2), ("1000", 1000)])
def test_workers_is_a_whole_number_from_one(value, expected):
    assert distributed_launcher.parse_workers(value) == expected


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "", "1001"])
def test_a_bad_worker_count_is_one_line(value):
    with pytest.raises(UserError) as raised:
        distributed_launcher.parse_workers(value)
    assert (
        str(raised.value)
        == f"--workers {value}: expected a whole number from 1 to {distributed_launcher.MAX_WORKERS}"
    )


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "proj"
    shutil.copytree(PROJECT_DIR / kubernetes.MANIFESTS_DIR, folder / kubernetes.MANIFESTS_DIR)
    return folder


def test_the_image_is_the_one_invoke_push_publishes(project):
    settings = load_settings(
        project,
        environ={"REGISTRY": "ghcr.io/acme", "IMAGE_NAME": "team/flowers", "IMAGE_TAG": "v2"},
    )
    assert kubernetes.pushed_image(settings, gpu=False) == "ghcr.io/acme/team/flowers:v2"
    assert kubernetes.pushed_image(settings, gpu=True) == "ghcr.io/acme/team/flowers:v2-gpu"
    assert distributed_launcher.kubernetes_name(settings) == "flowers"
    text = kubernetes.manifests(settings, workers="2", gpu=True, kserve=True)
    documents = list(yaml.safe_load_all(text))
    assert [document["kind"] for document in documents][-1] == "InferenceService"
    assert {container["image"] for pod in pods(documents) for container in pod["containers"]} == {
        "ghcr.io/acme/team/flowers:v2-gpu"
    }
    assert the(documents, "Job")["spec"]["completions"] == 2


def test_without_registry_it_says_to_set_it(project):
    with pytest.raises(
        UserError,
        match="^REGISTRY is not set, so there is no image a cluster could pull; set it in .env",
    ):
        kubernetes.manifests(
            load_settings(project, environ={"IMAGE_NAME": "flowers"}), workers="1", gpu=False
        )


@pytest.mark.parametrize(
    ("image_name", "expected"),
    [("flowers", "flowers"), ("acme/my_model.v2", "my-model-v2"), ("a__b", "a-b")],
)
def test_the_kubernetes_name_is_the_image_names_last_part_as_a_dns_label(
    project, image_name, expected
):
    assert (
        distributed_launcher.kubernetes_name(
            load_settings(project, environ={"IMAGE_NAME": image_name})
        )
        == expected
    )


def test_an_image_name_too_long_for_the_pods_hostnames_is_refused(project):
    with pytest.raises(
        UserError,
        match="does not make a Kubernetes name of 1 to 40 characters; set a shorter IMAGE_NAME",
    ):
        distributed_launcher.kubernetes_name(
            load_settings(project, environ={"IMAGE_NAME": "x" * 41})
        )


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("kustomization.yaml", "resources: [missing.yaml]\n", "cannot read "),
        ("kustomization.yaml", "kind: Kustomization\n", "lists no `resources`"),
        ("training.yaml", "kind: Job\nspec: [unclosed\n", "training.yaml is not valid YAML: "),
        ("training.yaml", "- a list\n", "every document must be a Kubernetes object"),
    ],
)
def test_broken_manifests_are_one_line_naming_the_file(project, file, content, message):
    (project / kubernetes.MANIFESTS_DIR / file).write_text(content)
    with pytest.raises(UserError) as raised:
        kubernetes.load(project / kubernetes.MANIFESTS_DIR)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
