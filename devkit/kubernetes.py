"""The Kubernetes manifests of `invoke k8s`: deploy/k8s/ rendered for this project's pushed image.

The files in deploy/k8s/ are plain, kustomize-friendly YAML that say `tensorflow-app` wherever the
project's name goes and name the image `tensorflow-app` (KServe's files say `tensorflow-model` for
the app's model). Rendering sets the image (by the digest `invoke push` recorded, else by its tag),
the names, the number of training workers, for the GPU image a GPU per pod, and what the flags say
of the cluster: namespace, pull secret, service account, storage class, the Job's command, the
Secret of the app keys. Pure functions but `load`, `model_name`, `pushed_image` and `manifests`,
which read files.
"""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from devkit.containers import parse_command
from devkit.distributed import kubernetes_name, parse_workers
from devkit.errors import UserError
from devkit.publishing import PUSH_DIGESTS, recorded_digest
from devkit.settings import Settings

MANIFESTS_DIR = Path("deploy") / "k8s"
KSERVE_DIR = MANIFESTS_DIR / "kserve"
# What the files in deploy/k8s say for the project's name and for its image.
PLACEHOLDER = "tensorflow-app"
# What deploy/k8s/kserve/ says for the app's model: the folder under models/ on the data volume.
MODEL_PLACEHOLDER = "tensorflow-model"
GPU_RESOURCE = "nvidia.com/gpu"
_POD_OWNERS = ("Job", "Deployment")
VERSION_LABEL = "app.kubernetes.io/version"

# Kubernetes' name formats (k8s.io/apimachinery validation): a Service's name is a DNS-1035 label,
# a namespace a DNS-1123 label, a Secret's, a ServiceAccount's or a StorageClass's a DNS-1123
# subdomain; a label value is at most 63 characters of letters, digits and - _ . inside.
_DNS1123_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_DNS1035_LABEL = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(rf"(?=.{{1,253}}$){_DNS1123_LABEL}(?:\.{_DNS1123_LABEL})*")
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_NAME_RULE = {
    "label": "lower case letters, digits and -, starting and ending with a letter or digit, "
    "at most 63",
    "subdomain": "lower case letters, digits, - and ., starting and ending with a letter or digit, "
    "at most 253",
}


@dataclass(frozen=True)
class Cluster:
    """What `invoke k8s`'s flags say of the cluster; None leaves it to the cluster (or, for the
    namespace, to the kubectl context)."""

    namespace: str | None = None
    pull_secret: str | None = None
    service_account: str | None = None
    storage_class: str | None = None

    def __post_init__(self) -> None:
        _check_name("--namespace", self.namespace, "label")
        _check_name("--pull-secret", self.pull_secret, "subdomain")
        _check_name("--service-account", self.service_account, "subdomain")
        _check_name("--storage-class", self.storage_class, "subdomain")


@dataclass(frozen=True)
class AppKeys:
    """The app keys of `.env`, for the pods as one Secret: `name` is the Secret's name."""

    name: str
    values: dict[str, str]


def _check_name(flag: str, value: str | None, kind: str) -> None:
    pattern = _DNS1123_SUBDOMAIN if kind == "subdomain" else re.compile(_DNS1123_LABEL)
    if value is not None and not pattern.fullmatch(value):
        raise UserError(f"{flag} {value!r} is not a Kubernetes name: {_NAME_RULE[kind]}")


def project_name(settings: Settings) -> str:
    """The project's name on Kubernetes, which names its Services: a DNS-1035 label."""
    name = kubernetes_name(settings)
    if not _DNS1035_LABEL.fullmatch(name):
        raise UserError(
            f"IMAGE_NAME {settings.image_name!r} makes the Kubernetes name {name!r}, which must "
            "start with a letter (a Service's name is a DNS-1035 label)",
            "set IMAGE_NAME in .env to a name that starts with a letter",
        )
    return name


def model_name(settings: Settings, model: str | None) -> str:
    """The app's model for KServe: `--model`, else the one folder under DATA_DIR/models; KServe
    names the InferenceService, and so the model, after it."""
    if model is None:
        models = settings.data_dir / "models"
        entries = models.iterdir() if models.is_dir() else ()
        found = sorted(entry.name for entry in entries if entry.is_dir() and entry.name[0] != ".")
        if len(found) != 1:
            there = f"it holds {', '.join(found)}" if found else "it holds none"
            raise UserError(
                f"--kserve serves one model, the folder under {models} ({there})",
                "name it with --model NAME",
            )
        model = found[0]
    if not _DNS1035_LABEL.fullmatch(model):
        raise UserError(
            f"--model {model!r}: KServe names the InferenceService after the model, so it must "
            "be a DNS-1035 label: lower case letters, digits and -, starting with a letter, "
            "at most 63"
        )
    return model


def load(folder: Path) -> list[dict]:
    """The documents of the resources a kustomization.yaml lists, in its order."""
    kustomization = _read(folder / "kustomization.yaml")
    resources = (
        kustomization[0].get("resources")
        if kustomization and isinstance(kustomization[0], dict)
        else None
    )
    if not isinstance(resources, list) or not all(
        isinstance(resource, str) for resource in resources
    ):
        raise UserError(
            f"{folder / 'kustomization.yaml'} lists no `resources`: the files invoke k8s renders"
        )
    documents = [document for resource in resources for document in _read(folder / resource)]
    for document in documents:
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("kind"), str)
            or not isinstance(document.get("spec"), dict)
        ):
            raise UserError(
                f"{folder}: every document must be a Kubernetes object with a kind and a spec"
            )
    return documents


def _read(path: Path) -> list:
    try:
        return [
            document
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
            if document is not None
        ]
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None


def pushed_image(settings: Settings, *, gpu: bool, notes: TextIO = sys.stderr) -> str:
    """The image `invoke push` publishes, REGISTRY/IMAGE_NAME:IMAGE_TAG or its -gpu tag, by the
    digest `invoke push` recorded for it (REGISTRY/IMAGE_NAME@sha256:...); by the tag where it
    recorded none, which `notes` says."""
    if settings.registry is None:
        raise UserError(
            "REGISTRY is not set, so there is no image a cluster could pull",
            "set it in .env to where `invoke push` publishes",
        )
    repository = f"{settings.registry}/{settings.image_name}"
    reference = f"{repository}:{settings.image_tag}{'-gpu' if gpu else ''}"
    digest = recorded_digest(settings, reference)
    if digest is None:
        notes.write(
            f"`invoke push` recorded no digest of {reference} in {PUSH_DIGESTS}: the pods pull "
            "it by its tag\n"
        )
        return reference
    return f"{repository}@{digest}"


def render(
    documents: list[dict],
    *,
    name: str,
    image: str,
    workers: int,
    gpu: bool,
    container_port: int,
    cluster: Cluster = Cluster(),
    command: list[str] | None = None,
    app_keys: AppKeys | None = None,
    model: str = MODEL_PLACEHOLDER,
    version: str | None = None,
) -> list[dict]:
    """The documents for this project: its name and image, `workers` training pods, a GPU per pod
    with `gpu`, the cluster's choices, the Job's `command`, the pods' app keys from a Secret."""
    names = {PLACEHOLDER: name, MODEL_PLACEHOLDER: model}
    rendered = [_renamed(copy.deepcopy(document), names) for document in documents]
    for document in rendered:
        if cluster.namespace:
            document["metadata"] = {
                "name": document["metadata"]["name"],
                "namespace": cluster.namespace,
                **document["metadata"],
            }
        if version and _LABEL_VALUE.fullmatch(version):
            document["metadata"].setdefault("labels", {})[VERSION_LABEL] = version
            if document["kind"] in _POD_OWNERS:
                template = document["spec"].setdefault("template", {})
                template.setdefault("metadata", {}).setdefault("labels", {})[VERSION_LABEL] = (
                    version
                )
        if document["kind"] == "PersistentVolumeClaim" and cluster.storage_class:
            document["spec"]["storageClassName"] = cluster.storage_class
        if document["kind"] == "InferenceService":
            _render_kserve(document["spec"]["predictor"], cluster, gpu)
        if document["kind"] in _POD_OWNERS:
            _render_pods(document, image, workers, gpu, container_port, cluster, command, app_keys)
    return rendered


def _render_pods(
    document: dict,
    image: str,
    workers: int,
    gpu: bool,
    container_port: int,
    cluster: Cluster,
    command: list[str] | None,
    app_keys: AppKeys | None,
) -> None:
    pod = _pod(document)
    containers = pod.setdefault("containers", [{}])
    if document["kind"] == "Job":
        document["spec"]["completions"] = document["spec"]["parallelism"] = workers
        _set_env(containers[0], "TRAIN_WORKERS", str(workers))
        if command:
            containers[0]["command"] = list(command)
    else:
        _set_entry(containers[0].setdefault("ports", []), "http", "containerPort", container_port)
        _set_env(containers[0], "PORT", str(container_port))
    if cluster.service_account:
        pod["serviceAccountName"] = cluster.service_account
    if cluster.pull_secret:
        pod["imagePullSecrets"] = [{"name": cluster.pull_secret}]
    for container in containers:
        container["image"] = image
        if app_keys is not None:
            # `env` beats `envFrom`: the keys the manifest sets itself (PORT, HOME) stay its own.
            container["envFrom"] = [{"secretRef": {"name": app_keys.name}}]
        if gpu:
            container.setdefault("resources", {}).setdefault("limits", {})[GPU_RESOURCE] = 1
    if gpu:
        # GPU nodes are commonly tainted so that only pods asking for a GPU land there.
        pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]


def _render_kserve(predictor: dict, cluster: Cluster, gpu: bool) -> None:
    """KServe's predictor: the service account (the storage's credentials), TensorFlow Serving's
    -gpu image and a GPU with `gpu`."""
    if cluster.service_account:
        predictor["serviceAccountName"] = cluster.service_account
    model = predictor.get("model", {})
    if gpu:
        model["runtimeVersion"] = f"{model.get('runtimeVersion', 'latest')}-gpu"
        model.setdefault("resources", {}).setdefault("limits", {})[GPU_RESOURCE] = 1


def app_keys_secret(app_keys: AppKeys, *, name: str, cluster: Cluster) -> dict:
    """The Secret that the pods read the app keys from, values included."""
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "config",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/part-of": name,
        "app.kubernetes.io/managed-by": "kubectl",
    }
    metadata = {"name": app_keys.name, "labels": labels}
    if cluster.namespace:
        metadata["namespace"] = cluster.namespace
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "stringData": dict(app_keys.values),
    }


def _renamed(value, names: dict[str, str]):
    """`value` with each placeholder replaced wherever it stands in a string (names, labels,
    references, the storage URI)."""
    if isinstance(value, dict):
        return {key: _renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, names) for item in value]
    if isinstance(value, str):
        # At once: a name put in for one placeholder is never read as another.
        placeholders = "|".join(re.escape(placeholder) for placeholder in names)
        return re.sub(placeholders, lambda found: names[found[0]], value)
    return value


def _pod(document: dict) -> dict:
    return document["spec"].setdefault("template", {}).setdefault("spec", {})


def _set_entry(entries: list[dict], name: str, field: str, value) -> None:
    """The entry called `name` (an env variable, a port) gets `field: value`; one is added where
    none is called so."""
    entry = next((entry for entry in entries if entry.get("name") == name), None)
    if entry is None:
        entries.append(entry := {"name": name})
    entry[field] = value


def _set_env(container: dict, key: str, value: str) -> None:
    _set_entry(container.setdefault("env", []), key, "value", value)


def to_yaml(documents: list[dict]) -> str:
    """The documents as one YAML stream, in their order, for `kubectl apply -f -`."""
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)


def manifests(
    settings: Settings,
    *,
    workers: str,
    gpu: bool,
    kserve: bool = False,
    cluster: Cluster = Cluster(),
    cmd: str | None = None,
    model: str | None = None,
    app_secret: bool = False,
    notes: TextIO = sys.stderr,
) -> str:
    """What `invoke k8s` prints; what its reader should know goes to `notes` (standard error)."""
    count = parse_workers(workers)
    command = parse_command(cmd) if cmd is not None else None
    name = project_name(settings)
    image = pushed_image(settings, gpu=gpu, notes=notes)
    documents = load(settings.project_dir / MANIFESTS_DIR)
    if kserve:
        documents += load(settings.project_dir / KSERVE_DIR)
    app_keys = AppKeys(f"{name}-env", settings.app_env) if settings.app_env else None
    rendered = render(
        documents,
        name=name,
        image=image,
        workers=count,
        gpu=gpu,
        container_port=settings.container_port,
        cluster=cluster,
        command=command,
        app_keys=app_keys,
        model=model_name(settings, model) if kserve else MODEL_PLACEHOLDER,
        version=settings.image_tag,
    )
    if app_keys is None:
        if app_secret:
            notes.write(".env holds no app keys: there is no Secret to print\n")
    elif app_secret:
        rendered.insert(0, app_keys_secret(app_keys, name=name, cluster=cluster))
    else:
        notes.write(
            f"the pods read .env's app keys ({', '.join(app_keys.values)}) from Secret "
            f"{app_keys.name}, which this output leaves out: `invoke k8s --app-secret` adds it, "
            "values included\n"
        )
    return to_yaml(rendered)
