"""Every rendering of `invoke k8s` against Kubernetes' own OpenAPI schemas, offline and strict (`nox -s manifests`).

kubernetes-validate bundles the schemas of each Kubernetes minor: the newest it knows and the one
three minors before it are checked, strict (an unknown field is an error). KServe's InferenceService
has no bundled schema: it must parse and name the storage URI of the SavedModels.
"""

import os
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, latest_version, major_minor

from helpers.project import PROJECT_DIR

# A placeholder: rendering needs a registry, validating needs none.
REGISTRY = "registry.example.com/team"
RENDERINGS = {
    "cpu-1-worker": ["--workers", "1"],
    "cpu-3-workers": ["--workers", "3"],
    "gpu-1-worker": ["--gpu"],
    "gpu-3-workers": ["--gpu", "-w", "3"],
}


def _minors() -> list[str]:
    newest = major_minor(latest_version())
    major, minor = (int(part) for part in newest.split("."))
    older = f"{major}.{minor - 3}"
    assert older in {major_minor(version) for version in all_versions()}, (
        f"kubernetes-validate has no schemas for {older}"
    )
    return [newest, older]


MINORS = _minors()


@pytest.fixture(scope="module", params=sorted(RENDERINGS))
def rendering(request) -> tuple[str, list[dict]]:
    env = {**os.environ, "REGISTRY": REGISTRY}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "k8s", "--kserve", *RENDERINGS[request.param]],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return request.param, [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.mark.parametrize("minor", MINORS)
def test_every_kubernetes_object_is_valid_for_the_newest_minor_and_three_before(rendering, minor):
    name, documents = rendering
    core = [
        document
        for document in documents
        if not document["apiVersion"].startswith("serving.kserve.io/")
    ]
    assert len(core) == 7, (
        f"{name}: the data volume, the Job and its Service, the Deployment, its Service, autoscaler, budget"
    )
    for document in core:
        try:
            validated = kubernetes_validate.validate(document, minor, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(
                f"{name}: {document['kind']} {document['metadata']['name']} at {'.'.join(map(str, error.path))}: {error.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as error:
            pytest.fail(f"{name}: {error.message}")
        assert validated == minor


def test_the_kserve_object_parses_and_names_the_savedmodels_storage_uri(rendering):
    name, documents = rendering
    [service] = [document for document in documents if document["kind"] == "InferenceService"]
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    claim = next(
        document["metadata"]["name"]
        for document in documents
        if document["kind"] == "PersistentVolumeClaim"
    )
    assert service["spec"]["predictor"]["model"]["storageUri"] == f"pvc://{claim}/models/iris", name
