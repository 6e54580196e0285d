"""docker/sbom.py, which writes each image's SBOM in the Dockerfiles' `sbom` stage: how it reads the
base image's reference, and that the component it adds keeps the document valid CycloneDX."""

import importlib.util
import json

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from helpers.project import PROJECT_DIR

_spec = importlib.util.spec_from_file_location("sbom_script", PROJECT_DIR / "docker" / "sbom.py")
sbom_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sbom_script)

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("reference", "repository", "tag", "digest"),
    [
        ("python:3.11-slim", "docker.io/library/python", "3.11-slim", None),
        ("python", "docker.io/library/python", "latest", None),
        (f"python@{DIGEST}", "docker.io/library/python", None, DIGEST),
        (f"python:3.11-slim@{DIGEST}", "docker.io/library/python", "3.11-slim", DIGEST),
        ("acme/python:3.11", "docker.io/acme/python", "3.11", None),
        ("127.0.0.1:5000/python:3.11-slim", "127.0.0.1:5000/python", "3.11-slim", None),
        ("127.0.0.1:5000/python", "127.0.0.1:5000/python", "latest", None),
        (f"localhost/base@{DIGEST}", "localhost/base", None, DIGEST),
        ("ghcr.io/acme/team/python:3.11", "ghcr.io/acme/team/python", "3.11", None),
    ],
)
def test_a_reference_is_read_as_the_engine_pulls_it(reference, repository, tag, digest):
    assert sbom_script.split_reference(reference) == (repository, tag, digest)


def test_a_base_image_by_digest_is_a_container_whose_purl_names_that_digest():
    reference = f"ghcr.io/acme/python:3.11-slim@{DIGEST}"
    component = sbom_script.base_image_component(reference, "arm64")
    assert component["type"] == "container"
    assert component["name"] == "ghcr.io/acme/python"
    assert component["version"] == DIGEST
    purl = PackageURL.from_string(component["purl"])
    assert (purl.type, purl.name, purl.version) == ("oci", "python", DIGEST)
    assert purl.qualifiers == {
        "repository_url": "ghcr.io/acme/python",
        "tag": "3.11-slim",
        "arch": "arm64",
    }
    assert "by digest" in component["description"]
    properties = {each["name"]: each["value"] for each in component["properties"]}
    assert properties == {
        "org.tensorflow-template:base-image": reference,
        "org.tensorflow-template:base-image-pinned-by": "digest",
    }


def test_a_base_image_by_tag_alone_says_so_in_the_sbom():
    component = sbom_script.base_image_component("python:3.11-slim", "amd64")
    assert component["version"] == "3.11-slim"
    purl = PackageURL.from_string(component["purl"])
    assert purl.version is None, "no digest to name"
    assert purl.qualifiers["tag"] == "3.11-slim"
    assert "by tag only: the reference names no digest" in component["description"]
    properties = {each["name"]: each["value"] for each in component["properties"]}
    assert properties["org.tensorflow-template:base-image-pinned-by"] == "tag"


@pytest.mark.parametrize("reference", ["python:3.11-slim", f"127.0.0.1:5000/python@{DIGEST}"])
def test_the_base_image_keeps_a_generated_sbom_valid_cyclonedx(reference):
    generated = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": [
            {
                "type": "library",
                "bom-ref": "requirements-L3",
                "name": "absl-py",
                "version": "2.5.1",
                "purl": "pkg:pypi/absl-py@2.5.1",
            }
        ],
        "dependencies": [{"ref": "requirements-L3"}],
    }
    document = sbom_script.with_base_image(
        generated, sbom_script.base_image_component(reference, "amd64")
    )
    assert [each["ref"] for each in document["dependencies"]] == ["base-image", "requirements-L3"]
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    assert validator.validate_str(json.dumps(document)) is None
    broken = {**document, "components": [{"type": "container"}, *document["components"]]}
    assert validator.validate_str(json.dumps(broken)) is not None, "the check can fail"
