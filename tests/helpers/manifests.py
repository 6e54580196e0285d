"""Reading the Kubernetes manifests that `invoke k8s` renders, in the tests of them."""


def the(documents: list[dict], kind: str, name: str | None = None) -> dict:
    """The one document of this kind (and name); a test fails where there is none or more."""
    found = [
        document
        for document in documents
        if document["kind"] == kind and name in (None, document["metadata"]["name"])
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def env_of(container: dict) -> dict[str, str]:
    """A container's environment, as the manifest gives it."""
    return {variable["name"]: variable["value"] for variable in container["env"]}
