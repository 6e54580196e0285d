"""Every rendering of `invoke k8s` against Kubernetes' own OpenAPI schemas, offline and strict (`nox -s manifests`).

kubernetes-validate bundles the schemas of each Kubernetes minor: the oldest the README supports
(MINIMUM, which the Job's podFailurePolicy needs), the newest it knows and the one three minors
before it are checked, strict (an unknown field is an error). KServe's InferenceService has no
bundled schema: it must parse and name the storage URI of the SavedModels.
"""

import os
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, latest_version, major_minor

from devkit import kubernetes
from helpers.project import PROJECT_DIR

# The oldest Kubernetes the README names: podFailurePolicy is strict-valid from 1.29 on.
MINIMUM = "1.29"

# A placeholder: rendering needs a registry, validating needs none.
REGISTRY = "registry.example.com/team"
RENDERINGS = {
    "cpu-1-worker": ["--workers", "1"],
    "cpu-3-workers": ["--workers", "3"],
    "gpu-1-worker": ["--gpu"],
    "gpu-3-workers": ["--gpu", "-w", "3"],
    "cluster-flags": [
        *("--namespace", "ml-team", "--pull-secret", "ghcr-pull", "--service-account", "trainer"),
        *("--storage-class", "nfs-client", "--cmd", "python -m app.train --epochs 5"),
    ],
}
MODEL = "petals"


def _minors() -> list[str]:
    newest = major_minor(latest_version())
    major, minor = (int(part) for part in newest.split("."))
    older = f"{major}.{minor - 3}"
    assert older in {major_minor(version) for version in all_versions()}, (
        f"kubernetes-validate has no schemas for {older}"
    )
    assert MINIMUM in {major_minor(version) for version in all_versions()}
    return sorted(
        {newest, older, MINIMUM}, key=lambda minor: [int(part) for part in minor.split(".")]
    )


MINORS = _minors()


@pytest.fixture(scope="module", params=sorted(RENDERINGS))
def rendering(request) -> tuple[str, list[dict]]:
    env = {**os.environ, "REGISTRY": REGISTRY}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "invoke", "k8s", "--kserve", "--model", MODEL),
            *RENDERINGS[request.param],
        ],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return request.param, [document for document in yaml.safe_load_all(result.stdout) if document]


def _validate(name: str, document: dict, minor: str) -> None:
    try:
        validated = kubernetes_validate.validate(document, minor, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(map(str, error.path))
        pytest.fail(
            f"{name}: {document['kind']} {document['metadata']['name']} at {where}: {error.message}"
        )
    except kubernetes_validate.SchemaNotFoundError as error:
        pytest.fail(f"{name}: {error.message}")
    assert validated == minor


@pytest.mark.parametrize("minor", MINORS)
def test_every_kubernetes_object_is_valid_from_the_minimum_to_the_newest_minor(rendering, minor):
    name, documents = rendering
    core = [
        document
        for document in documents
        if not document["apiVersion"].startswith("serving.kserve.io/")
    ]
    assert len(core) == 9, (
        f"{name}: the data volume, the Job and its Service, the Deployment, its Service, "
        "autoscaler, budget, the two NetworkPolicies"
    )
    for document in core:
        _validate(name, document, minor)


@pytest.mark.parametrize("minor", MINORS)
def test_the_secret_of_the_app_keys_is_valid(minor):
    cluster = kubernetes.Cluster(namespace="ml-team")
    secret = kubernetes.app_keys_secret(
        kubernetes.AppKeys("flowers-env", {"WANDB_API_KEY": "value", "BATCH_MAX_ROWS": "64"}),
        name="flowers",
        cluster=cluster,
    )
    _validate("--app-secret", secret, minor)


def test_the_minimum_kubernetes_is_the_one_the_readme_names():
    documents = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
    assert any(
        f"Kubernetes {MINIMUM} or newer" in document.read_text(encoding="utf-8")
        for document in documents
    )


def test_the_kserve_object_parses_and_names_the_savedmodels_storage_uri(rendering):
    name, documents = rendering
    [service] = [document for document in documents if document["kind"] == "InferenceService"]
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    claim = next(
        document["metadata"]["name"]
        for document in documents
        if document["kind"] == "PersistentVolumeClaim"
    )
    model = service["spec"]["predictor"]["model"]
    assert model["storageUri"] == f"pvc://{claim}/models/{MODEL}", name
    assert service["metadata"]["name"] == MODEL, "/v1/models/<model>:predict, as the README says"
    assert model["runtimeVersion"].split("-")[0].count(".") == 2, "a pinned TensorFlow Serving"
