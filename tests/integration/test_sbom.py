"""`invoke sbom` on the image `invoke build` made: a CycloneDX document listing every pin of the
image's lock with its version, purl and hashes, and the base image; the generator stays out of the
image."""

import json

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL
from packaging.utils import canonicalize_name

from devkit.locks import LockFile, image_lock
from devkit.settings import load_settings
from helpers.engine import docker, host_platform
from helpers.project import PROJECT_DIR

PINNED_BY = "org.tensorflow-template:base-image-pinned-by"
BASE_IMAGE = "org.tensorflow-template:base-image"


def test_invoke_sbom_writes_every_pin_of_the_images_lock_and_its_base_image(
    invoke, cpu_image, tmp_path
):
    output = tmp_path / "image.cdx.json"
    result = invoke("sbom", "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{output}\n", "the file's path, alone on standard output"
    text = output.read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    document = json.loads(text)

    lock = LockFile.read(PROJECT_DIR / image_lock(gpu=False, platform=host_platform()).output)
    packages = {
        canonicalize_name(component["name"]): component
        for component in document["components"]
        if component["type"] == "library"
    }
    assert set(packages) == {entry.name for entry in lock.entries}
    for entry in lock.entries:
        component = packages[entry.name]
        assert component["version"] == entry.version, entry.name
        purl = PackageURL.from_string(component["purl"])
        assert (purl.type, canonicalize_name(purl.name), purl.version) == (
            "pypi",
            entry.name,
            entry.version,
        )
        hashes = {
            f"sha256:{each['content']}"
            for reference in component["externalReferences"]
            for each in reference.get("hashes", [])
            if each["alg"] == "SHA-256"
        }
        assert hashes == set(entry.hashes), entry.name

    [base] = [component for component in document["components"] if component["type"] == "container"]
    assert base["purl"].startswith("pkg:oci/")
    properties = {each["name"]: each["value"] for each in base["properties"]}
    reference = properties[BASE_IMAGE]
    setting = load_settings(PROJECT_DIR, environ=invoke.env).base_image
    # The build's BASE_IMAGE: the setting as it is, or pinned by its digest.
    assert reference == setting or "@sha256:" in reference, reference
    if "@sha256:" in reference:
        assert properties[PINNED_BY] == "digest"
        assert PackageURL.from_string(base["purl"]).version == reference.split("@")[1]
        assert "note:" not in result.stderr
    else:
        assert properties[PINNED_BY] == "tag"
        assert f"the SBOM names the base image by its tag alone ({reference})" in result.stderr


def test_the_generator_is_not_in_the_image(cpu_image):
    probe = (
        "import importlib.util, sys; "
        "sys.exit(any(importlib.util.find_spec(name) for name in ('cyclonedx', 'cyclonedx_py')))"
    )
    found = docker("run", "--rm", "--pull", "never", cpu_image, "python", "-c", probe, check=False)
    assert found.returncode == 0, f"the SBOM's generator is in {cpu_image}: {found.stderr}"
    listed = docker("run", "--rm", "--pull", "never", cpu_image, "ls", "/usr/share/doc/app")
    assert listed.stdout.split() == ["sbom.cdx.json"], "the JSON alone"


def test_invoke_sbom_of_an_image_never_built_says_which_build_makes_it(invoke, tmp_path):
    result = invoke("sbom", "--output", str(tmp_path / "x.json"), env={"IMAGE_TAG": "never-built"})
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: there is no image {invoke.image_name}:never-built; `invoke build` makes it"
    )
    assert not (tmp_path / "x.json").exists()
