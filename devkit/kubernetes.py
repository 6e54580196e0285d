"""The Kubernetes manifests of `invoke k8s`: deploy/k8s/ rendered for this project's pushed image.

The files in deploy/k8s/ are plain, kustomize-friendly YAML that say `tensorflow-app` wherever the
project's name goes and name the image `tensorflow-app`. Rendering sets the image, the names, the
number of training workers and, for the GPU image, a GPU per pod. Pure functions but `load` and
`manifests`, which read the files.
"""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from devkit.distributed import kubernetes_name, parse_workers
from devkit.errors import UserError
from devkit.settings import Settings

MANIFESTS_DIR = Path("deploy") / "k8s"
KSERVE_DIR = MANIFESTS_DIR / "kserve"
# What the files in deploy/k8s say for the project's name and for its image.
PLACEHOLDER = "tensorflow-app"
GPU_RESOURCE = "nvidia.com/gpu"
_POD_OWNERS = ("Job", "Deployment")


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


def pushed_image(settings: Settings, *, gpu: bool) -> str:
    """The image `invoke push` publishes: REGISTRY/IMAGE_NAME:IMAGE_TAG, or its -gpu tag."""
    if settings.registry is None:
        raise UserError(
            "REGISTRY is not set, so there is no image a cluster could pull",
            "set it in .env to where `invoke push` publishes",
        )
    return f"{settings.registry}/{settings.image_name}:{settings.image_tag}{'-gpu' if gpu else ''}"


def render(
    documents: list[dict], *, name: str, image: str, workers: int, gpu: bool, container_port: int
) -> list[dict]:
    """The documents for this project: its name and image, `workers` training pods, a GPU per pod with `gpu`."""
    rendered = [_renamed(copy.deepcopy(document), name) for document in documents]
    for document in rendered:
        if document["kind"] not in _POD_OWNERS:
            continue
        containers = _pod(document).setdefault("containers", [{}])
        if document["kind"] == "Job":
            document["spec"]["completions"] = document["spec"]["parallelism"] = workers
            _set_env(containers[0], "TRAIN_WORKERS", str(workers))
        else:
            _set_entry(
                containers[0].setdefault("ports", []), "http", "containerPort", container_port
            )
            _set_env(containers[0], "PORT", str(container_port))
        for container in containers:
            container["image"] = image
            if gpu:
                container.setdefault("resources", {}).setdefault("limits", {})[GPU_RESOURCE] = 1
        if gpu:
            # GPU nodes are commonly tainted so that only pods asking for a GPU land there.
            _pod(document)["tolerations"] = [
                {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
            ]
    return rendered


def _renamed(value, name: str):
    """`value` with the project's name wherever the placeholder stands in a string (names, labels, references)."""
    if isinstance(value, dict):
        return {key: _renamed(item, name) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, name) for item in value]
    if isinstance(value, str):
        return value.replace(PLACEHOLDER, name)
    return value


def _pod(document: dict) -> dict:
    return document["spec"].setdefault("template", {}).setdefault("spec", {})


def _set_entry(entries: list[dict], name: str, field: str, value) -> None:
    """The entry called `name` (an env variable, a port) gets `field: value`; one is added where none is called so."""
    entry = next((entry for entry in entries if entry.get("name") == name), None)
    if entry is None:
        entries.append(entry := {"name": name})
    entry[field] = value


def _set_env(container: dict, key: str, value: str) -> None:
    _set_entry(container.setdefault("env", []), key, "value", value)


def to_yaml(documents: list[dict]) -> str:
    """The documents as one YAML stream, in their order, for `kubectl apply -f -`."""
    return yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False)


def manifests(settings: Settings, *, workers: str, gpu: bool, kserve: bool = False) -> str:
    """What `invoke k8s` prints."""
    count = parse_workers(workers)
    image = pushed_image(settings, gpu=gpu)
    documents = load(settings.project_dir / MANIFESTS_DIR)
    if kserve:
        documents += load(settings.project_dir / KSERVE_DIR)
    name = kubernetes_name(settings)
    return to_yaml(
        render(
            documents,
            name=name,
            image=image,
            workers=count,
            gpu=gpu,
            container_port=settings.container_port,
        )
    )
