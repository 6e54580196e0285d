"""The Kubernetes manifests of `invoke k8s`: deploy/k8s/ rendered for the pushed image (no cluster needed)."""

import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from devkit import distributed as distributed_launcher
from devkit import kubernetes, publishing
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
        "NetworkPolicy",
        "NetworkPolicy",
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
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert labels == {"app.kubernetes.io/name": "flowers", "app.kubernetes.io/component": "serving"}
    assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
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


def test_the_kserve_object_serves_the_apps_model_on_the_data_volume_under_its_name():
    documents = kubernetes.render(
        kubernetes.load(PROJECT_DIR / kubernetes.KSERVE_DIR),
        name="flowers",
        image=IMAGE,
        workers=1,
        gpu=False,
        container_port=8888,
        model="petals",
    )
    service = the(documents, "InferenceService")
    model = service["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "tensorflow"}
    assert model["storageUri"] == "pvc://flowers-data/models/petals"
    assert service["metadata"]["name"] == "petals", (
        "KServe's TensorFlow runtime names the model after the InferenceService: "
        "/v1/models/petals:predict"
    )
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "flowers"
    assert "image" not in model, "KServe runs TensorFlow Serving, not this image"
    assert kubernetes.GPU_RESOURCE not in model["resources"]["limits"]


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
    text = kubernetes.manifests(settings, workers="2", gpu=True, kserve=True, model="iris")
    documents = list(yaml.safe_load_all(text))
    assert [document["kind"] for document in documents][-1] == "InferenceService"
    assert {container["image"] for pod in pods(documents) for container in pod["containers"]} == {
        "ghcr.io/acme/team/flowers:v2-gpu"
    }
    assert the(documents, "Job")["spec"]["completions"] == 2


DIGEST = "sha256:" + "a" * 64
GPU_DIGEST = "sha256:" + "b" * 64


def record(project, entries) -> None:
    """What `invoke push` would have recorded (or a hand's edit of it)."""
    (project / publishing.PUSH_DIGESTS).write_text(json.dumps(entries))


def images_of(text: str) -> set[str]:
    documents = list(yaml.safe_load_all(text))
    return {container["image"] for pod in pods(documents) for container in pod["containers"]}


def test_after_invoke_push_every_image_is_named_by_the_pushed_digest(project):
    record(
        project,
        {"ghcr.io/acme/team/flowers:v2": DIGEST, "ghcr.io/acme/team/flowers:v2-gpu": GPU_DIGEST},
    )
    settings = load_settings(
        project,
        environ={"REGISTRY": "ghcr.io/acme", "IMAGE_NAME": "team/flowers", "IMAGE_TAG": "v2"},
    )
    for gpu, digest in ((False, DIGEST), (True, GPU_DIGEST)):
        notes = io.StringIO()
        text = kubernetes.manifests(settings, workers="3", gpu=gpu, notes=notes)
        assert images_of(text) == {f"ghcr.io/acme/team/flowers@{digest}"}
        assert notes.getvalue() == ""


@pytest.mark.parametrize(
    "entries",
    [{}, {"ghcr.io/acme/team/flowers:v1": DIGEST, "other.io/acme/team/flowers:v2": DIGEST}],
    ids=["nothing-pushed", "other-references"],
)
def test_without_a_record_of_this_reference_the_tag_is_named_and_one_line_says_so(project, entries):
    if entries:
        record(project, entries)
    settings = load_settings(
        project,
        environ={"REGISTRY": "ghcr.io/acme", "IMAGE_NAME": "team/flowers", "IMAGE_TAG": "v2"},
    )
    notes = io.StringIO()
    text = kubernetes.manifests(settings, workers="1", gpu=True, notes=notes)
    assert images_of(text) == {"ghcr.io/acme/team/flowers:v2-gpu"}
    assert notes.getvalue() == (
        "`invoke push` recorded no digest of ghcr.io/acme/team/flowers:v2-gpu in "
        ".push-digests.json: the pods pull it by its tag\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"ghcr.io/acme/flowers:latest": "sha256:not-a-digest"}',
            ".push-digests.json records 'sha256:not-a-digest' for ghcr.io/acme/flowers:latest, "
            "which is no digest (sha256: and 64 hex digits)",
        ),
        (
            '{"ghcr.io/acme/flowers:latest": ',
            ".push-digests.json is not the JSON that `invoke push` writes (",
        ),
        ('["sha256:"]', ".push-digests.json is not the JSON object `invoke push` writes"),
    ],
    ids=["no-digest", "no-json", "no-object"],
)
def test_a_record_edited_by_hand_into_no_digest_is_refused_in_one_line(project, text, message):
    (project / publishing.PUSH_DIGESTS).write_text(text)
    settings = load_settings(project, environ={"REGISTRY": "ghcr.io/acme", "IMAGE_NAME": "flowers"})
    with pytest.raises(UserError) as refused:
        kubernetes.manifests(settings, workers="1", gpu=False)
    assert str(refused.value).startswith(message)
    assert str(refused.value).endswith(
        "; run `invoke push` again, or delete .push-digests.json to name the images by tag"
    )
    assert "\n" not in str(refused.value)


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


# --- the production gaps of issue 25 and the cluster of issue 27 -----------------------------------

RECOMMENDED_LABELS = {
    "app.kubernetes.io/name": "flowers",
    "app.kubernetes.io/instance": "flowers",
    "app.kubernetes.io/part-of": "flowers",
    "app.kubernetes.io/managed-by": "kubectl",
    "app.kubernetes.io/version": "v2",
}


def every(documents, **options):
    """Every rendering of the project's manifests and KServe's, for the pushed tag v2."""
    kserve = kubernetes.load(PROJECT_DIR / kubernetes.KSERVE_DIR)
    return kubernetes.render(
        [*documents, *kserve],
        name="flowers",
        image=IMAGE,
        workers=options.pop("workers", 3),
        gpu=options.pop("gpu", False),
        container_port=8888,
        version="v2",
        **options,
    )


def _selects(selector: dict, labels: dict) -> bool:
    return selector["matchLabels"].items() <= labels.items()


def test_only_the_training_jobs_own_pods_reach_its_tensorflow_port(base):
    documents = rendered(base)
    job = the(documents, "Job")
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    policy = the(documents, "NetworkPolicy", "flowers-train")
    assert _selects(policy["spec"]["podSelector"], pod_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert set(peer) == {"podSelector"}, "no namespaceSelector, no ipBlock: this Job's pods only"
    assert peer["podSelector"] == policy["spec"]["podSelector"]
    deployment = the(documents, "Deployment")
    assert not _selects(peer["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    [port] = rule["ports"]
    [container] = job["spec"]["template"]["spec"]["containers"]
    named = {entry["name"]: entry["containerPort"] for entry in container["ports"]}
    assert (port["protocol"], named[port["port"]]) == ("TCP", 2222)
    assert env_of(container)["TRAIN_PORT"] == "2222"


def test_serving_pods_are_reached_on_their_http_port_only(base):
    documents = rendered(base, port=9000)
    deployment = the(documents, "Deployment")
    policy = the(documents, "NetworkPolicy", "flowers")
    assert _selects(
        policy["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]["labels"]
    )
    assert not _selects(
        policy["spec"]["podSelector"],
        the(documents, "Job")["spec"]["template"]["metadata"]["labels"],
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": "http"}]}]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 9000}]


def test_the_autoscaler_alone_sets_the_number_of_serving_pods(base):
    documents = rendered(base)
    assert the(documents, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 1
    assert "replicas" not in the(documents, "Deployment")["spec"], (
        "every kubectl apply would scale back to it"
    )


def test_serving_pauses_before_sigterm_and_its_probes_survive_cpu_throttling(base):
    deployment = the(rendered(base), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "python", "the one program every image of the template has"
    pause = float(command[-1].rsplit("(", 1)[1].rstrip(")"))
    assert 3 <= pause < pod["terminationGracePeriodSeconds"] - 10
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[kind]["timeoutSeconds"] >= 5, kind


def test_the_probes_need_nothing_beyond_the_app_contract(base):
    [container] = the(rendered(base), "Deployment")["spec"]["template"]["spec"]["containers"]
    probes = [container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")]
    assert [probe["httpGet"]["path"] for probe in probes if "httpGet" in probe] == [
        "/health",
        "/health",
    ], "/health is the only route the contract names"
    assert container["livenessProbe"] == {
        "tcpSocket": {"port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }, "alive: the port accepts connections, whether or not a model is loaded yet"


def test_a_drain_may_evict_serving_pods_that_are_not_ready(base):
    budget = the(rendered(base), "PodDisruptionBudget")
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_serving_on_the_cluster_never_trains_and_the_job_does(base):
    documents = rendered(base)
    [serve] = the(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    [train] = the(documents, "Job")["spec"]["template"]["spec"]["containers"]
    assert env_of(serve)["TRAIN_IF_NO_MODEL"] == "0"
    assert "TRAIN_IF_NO_MODEL" not in env_of(train)


def test_every_object_and_pod_carries_the_recommended_labels_and_no_selector_the_version(base):
    documents = every(base)
    for document in documents:
        labels = document["metadata"]["labels"]
        assert labels.items() >= RECOMMENDED_LABELS.items(), document["metadata"]["name"]
        assert labels["app.kubernetes.io/component"], document["metadata"]["name"]
        if document["kind"] in ("Job", "Deployment"):
            template = document["spec"]["template"]["metadata"]["labels"]
            assert template.items() >= RECOMMENDED_LABELS.items()
        selector = document["spec"].get("selector", {})
        assert "app.kubernetes.io/version" not in selector.get("matchLabels", selector)


def test_a_tag_that_is_no_label_value_leaves_the_version_label_out(base):
    documents = kubernetes.render(
        base,
        name="flowers",
        image=IMAGE,
        workers=1,
        gpu=False,
        container_port=8888,
        version="_v2",
    )
    assert all("app.kubernetes.io/version" not in doc["metadata"]["labels"] for doc in documents)


def test_the_cluster_flags_reach_every_object_and_pod(base):
    cluster = kubernetes.Cluster(
        namespace="ml-team",
        pull_secret="ghcr-pull",  # noqa: S106 (a Secret's name, not a password)
        service_account="trainer.v1",
        storage_class="nfs-client",
    )
    documents = every(base, cluster=cluster)
    assert {document["metadata"]["namespace"] for document in documents} == {"ml-team"}
    assert [document["metadata"]["name"] for document in documents] == [
        document["metadata"]["name"] for document in every(base)
    ]
    for pod in pods(documents):
        assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
        assert pod["serviceAccountName"] == "trainer.v1"
        assert pod["automountServiceAccountToken"] is False, "the pods never call the API"
    assert the(documents, "InferenceService")["spec"]["predictor"]["serviceAccountName"] == (
        "trainer.v1"
    )
    assert the(documents, "PersistentVolumeClaim")["spec"]["storageClassName"] == "nfs-client"


def test_without_cluster_flags_the_cluster_decides(base):
    documents = every(base)
    assert not any("namespace" in document["metadata"] for document in documents)
    for pod in pods(documents):
        assert "imagePullSecrets" not in pod
        assert "serviceAccountName" not in pod
    assert "storageClassName" not in the(documents, "PersistentVolumeClaim")["spec"]


@pytest.mark.parametrize(
    ("flag", "field", "value"),
    [
        ("--namespace", "namespace", "ML"),
        ("--namespace", "namespace", "ml.team"),
        ("--namespace", "namespace", "x" * 64),
        ("--pull-secret", "pull_secret", "ghcr_pull"),
        ("--pull-secret", "pull_secret", "-ghcr"),
        ("--service-account", "service_account", "trainer\nkind: Secret"),
        ("--storage-class", "storage_class", "nfs client"),
    ],
)
def test_a_name_that_is_no_kubernetes_name_is_one_line(flag, field, value):
    with pytest.raises(UserError) as raised:
        kubernetes.Cluster(**{field: value})
    message = str(raised.value)
    assert message.startswith(f"{flag} {value!r} is not a Kubernetes name: lower case letters")
    assert "\n" not in message


def test_the_job_runs_the_command_of_cmd(base):
    [container] = the(
        kubernetes.render(
            base,
            name="flowers",
            image=IMAGE,
            workers=2,
            gpu=False,
            container_port=8888,
            command=["python", "-m", "team.fit", "--epochs", "3"],
        ),
        "Job",
    )["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "team.fit", "--epochs", "3"]


def test_with_gpu_kserve_runs_tensorflow_servings_gpu_image_with_a_gpu(base):
    model = the(every(base, gpu=True), "InferenceService")["spec"]["predictor"]["model"]
    assert model["runtimeVersion"].endswith("-gpu")
    assert model["resources"]["limits"][kubernetes.GPU_RESOURCE] == 1


def test_kserve_pins_a_tensorflow_serving_as_new_as_the_locks_tensorflow():
    """KServe's default TensorFlow Serving (2.6) cannot load what TensorFlow 2.21 exports."""
    [service] = kubernetes.load(PROJECT_DIR / kubernetes.KSERVE_DIR)
    version = service["spec"]["predictor"]["model"]["runtimeVersion"]
    major, minor, _ = (int(part) for part in version.split("."))
    lock = (PROJECT_DIR / "requirements.txt").read_text(encoding="utf-8")
    found = re.search(r"^tensorflow(?:-cpu)?==(\d+)\.(\d+)\.", lock, re.MULTILINE)
    assert found, "requirements.txt pins TensorFlow"
    tensorflow = (int(found[1]), int(found[2]))
    assert major == tensorflow[0], f"TensorFlow Serving {version} for TensorFlow {tensorflow}"
    assert tensorflow[1] - 1 <= minor <= tensorflow[1], (
        f"TensorFlow Serving {version} for TensorFlow {tensorflow}"
    )


# --- invoke k8s's own checks: names, the model, the Secret of the app keys ------------------------


# What `invoke k8s` says where `invoke push` recorded no digest (none of these tests pushed).
BY_TAG = (
    "`invoke push` recorded no digest of ghcr.io/acme/flowers:latest in .push-digests.json: "
    "the pods pull it by its tag\n"
)


def settings_of(project, dotenv="", **environ):
    (project / ".env").write_text(dotenv)
    return load_settings(project, environ={"REGISTRY": "ghcr.io/acme", **environ})


def test_an_image_name_that_makes_no_service_name_is_refused_in_one_line(project):
    with pytest.raises(UserError) as raised:
        kubernetes.manifests(settings_of(project, IMAGE_NAME="123"), workers="1", gpu=False)
    assert str(raised.value) == (
        "IMAGE_NAME '123' makes the Kubernetes name '123', which must start with a letter "
        "(a Service's name is a DNS-1035 label); set IMAGE_NAME in .env to a name that starts "
        "with a letter"
    )


def test_kserves_model_is_the_one_folder_under_data_dirs_models(project):
    settings = settings_of(project, IMAGE_NAME="flowers")
    models = settings.data_dir / "models"
    with pytest.raises(UserError, match=r"\(it holds none\); name it with --model NAME$"):
        kubernetes.model_name(settings, None)
    (models / "petals" / "1").mkdir(parents=True)
    (models / ".cache").mkdir()
    assert kubernetes.model_name(settings, None) == "petals"
    (models / "stems").mkdir()
    with pytest.raises(UserError, match=r"\(it holds petals, stems\); name it with --model NAME$"):
        kubernetes.model_name(settings, None)
    assert kubernetes.model_name(settings, "stems") == "stems"
    with pytest.raises(UserError, match="^--model 'my_model': KServe names the InferenceService"):
        kubernetes.model_name(settings, "my_model")
    text = kubernetes.manifests(settings, workers="1", gpu=False, kserve=True, model="stems")
    service = the(list(yaml.safe_load_all(text)), "InferenceService")
    assert service["metadata"]["name"] == "stems"
    assert service["spec"]["predictor"]["model"]["storageUri"] == "pvc://flowers-data/models/stems"


def test_the_pods_name_the_secret_of_the_app_keys_whose_values_stay_off_standard_output(project):
    settings = settings_of(
        project, "WANDB_API_KEY=s3cr3t-value\nBATCH_MAX_ROWS=64\n", IMAGE_NAME="flowers"
    )
    notes = io.StringIO()
    text = kubernetes.manifests(settings, workers="2", gpu=False, notes=notes)
    assert "s3cr3t-value" not in text
    assert "s3cr3t-value" not in notes.getvalue()
    documents = list(yaml.safe_load_all(text))
    assert "Secret" not in [document["kind"] for document in documents]
    for pod in pods(documents):
        for container in pod["containers"]:
            assert container["envFrom"] == [{"secretRef": {"name": "flowers-env"}}]
    assert notes.getvalue() == BY_TAG + (
        "the pods read .env's app keys (WANDB_API_KEY, BATCH_MAX_ROWS) from Secret flowers-env, "
        "which this output leaves out: `invoke k8s --app-secret` adds it, values included\n"
    )


def test_app_secret_prints_the_secret_with_the_values(project):
    settings = settings_of(project, "WANDB_API_KEY=s3cr3t-value\n", IMAGE_NAME="flowers")
    notes = io.StringIO()
    cluster = kubernetes.Cluster(namespace="ml")
    text = kubernetes.manifests(
        settings, workers="1", gpu=False, app_secret=True, cluster=cluster, notes=notes
    )
    secret = list(yaml.safe_load_all(text))[0]
    assert (secret["kind"], secret["metadata"]["name"], secret["metadata"]["namespace"]) == (
        "Secret",
        "flowers-env",
        "ml",
    )
    assert secret["type"] == "Opaque"
    assert secret["stringData"] == {"WANDB_API_KEY": "s3cr3t-value"}
    assert notes.getvalue() == BY_TAG


def test_without_app_keys_the_pods_name_no_secret(project):
    notes = io.StringIO()
    settings = settings_of(project, IMAGE_NAME="flowers")
    documents = list(
        yaml.safe_load_all(
            kubernetes.manifests(settings, workers="1", gpu=False, app_secret=True, notes=notes)
        )
    )
    assert all("envFrom" not in c for pod in pods(documents) for c in pod["containers"])
    assert notes.getvalue() == BY_TAG + ".env holds no app keys: there is no Secret to print\n"


def test_cmd_is_split_as_a_shell_would_and_a_bad_one_is_one_line(project):
    settings = settings_of(project, IMAGE_NAME="flowers")
    text = kubernetes.manifests(
        settings, workers="1", gpu=False, cmd="python -m team.fit --note 'a b'"
    )
    [container] = the(list(yaml.safe_load_all(text)), "Job")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["command"] == ["python", "-m", "team.fit", "--note", "a b"]
    with pytest.raises(UserError, match='^--cmd "python \'unclosed": No closing quotation'):
        kubernetes.manifests(settings, workers="1", gpu=False, cmd="python 'unclosed")


@pytest.mark.parametrize(
    "flags",
    [["--namespace", "Team"], ["--pull-secret", "ghcr pull"], ["--service-account", "a_b"]],
)
def test_invoke_k8s_with_a_name_that_is_no_kubernetes_name_prints_one_line_and_no_yaml(flags):
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "k8s", *flags],
        cwd=PROJECT_DIR,
        env={**os.environ, "REGISTRY": "registry.example.com/team"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"error: {flags[0]} {flags[1]!r} is not a Kubernetes name")
    assert result.stderr.count("\n") == 1


def test_a_project_named_like_the_models_placeholder_keeps_its_name():
    [service] = kubernetes.render(
        kubernetes.load(PROJECT_DIR / kubernetes.KSERVE_DIR),
        name="tensorflow-model-lab",
        image=IMAGE,
        workers=1,
        gpu=False,
        container_port=8888,
        model="petals",
    )
    assert service["spec"]["predictor"]["model"]["storageUri"] == (
        "pvc://tensorflow-model-lab-data/models/petals"
    )
