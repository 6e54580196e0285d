"""The GitHub Actions workflows: what runs when, and on what (`nox -s lint` checks their schema)."""

import ast
import re

import pytest
import yaml

from helpers.project import PROJECT_DIR

WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
pytestmark = pytest.mark.skipif(
    not WORKFLOWS.is_dir(), reason="no .github/workflows: a project made without GitHub Actions"
)
# Not a check: the benchmark, several minutes of figures.
NOT_IN_CI = {"bench"}


def workflow(name: str) -> dict:
    document = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def is_session(decorator: ast.expr) -> bool:
    """nox.session(...), or only_with(PATH, ...) where PATH is in this project (noxfile.py)."""
    if "nox.session" in ast.unparse(decorator):
        return True
    if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "only_with":
        return (PROJECT_DIR / ast.literal_eval(decorator.args[0])).exists()
    return False


def nox_sessions() -> set[str]:
    tree = ast.parse((PROJECT_DIR / "noxfile.py").read_text(encoding="utf-8"))
    return {
        function.name
        for function in tree.body
        if isinstance(function, ast.FunctionDef)
        and any(is_session(decorator) for decorator in function.decorator_list)
    }


def test_ci_runs_every_nox_session_but_the_benchmark():
    [matrix] = [
        job["strategy"]["matrix"]
        for job in workflow("ci.yml")["jobs"].values()
        if "strategy" in job
    ]
    assert set(matrix["session"]) == nox_sessions() - NOT_IN_CI
    assert "pip_audit" in matrix["session"]
    if (PROJECT_DIR / "deploy" / "k8s").is_dir():
        assert {"manifests", "checkov"} <= set(matrix["session"])


def test_ci_runs_once_per_change_pushes_of_main_and_tags_and_pull_requests():
    triggers = workflow("ci.yml")["on"]
    assert triggers["push"] == {"branches": ["main"], "tags": ["v*"]}
    assert "pull_request" in triggers


@pytest.mark.parametrize("name", sorted(path.name for path in WORKFLOWS.glob("*.yml")))
def test_every_action_is_pinned_by_its_full_commit_sha(name):
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    uses = re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", text, re.MULTILINE)
    assert uses, name
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", action), action
        assert re.match(r"\s*# v\d", comment), f"{action}: the release it is in, as a comment"


def test_the_weekly_lock_upgrade_tests_the_new_pins_and_proposes_them_with_the_summary():
    document = workflow("lock-upgrade.yml")
    [schedule] = document["on"]["schedule"]
    _, _, day, month, weekday = schedule["cron"].split()
    assert (day, month) == ("*", "*"), "every week"
    assert weekday.isdigit(), "once a week"
    assert document["permissions"] == {"contents": "read"}
    [job] = document["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    runs = [step.get("run", "") for step in job["steps"]]
    upgrade = next(index for index, run in enumerate(runs) if "invoke lock --upgrade" in run)
    tests = next(index for index, run in enumerate(runs) if run.startswith("nox -s tests"))
    proposal = next(index for index, run in enumerate(runs) if "gh pr create" in run)
    assert upgrade < tests < proposal
    sessions = re.findall(r"^nox -s (.+)$", runs[tests], re.MULTILINE)
    assert set(" ".join(sessions).split()) <= nox_sessions(), "a session this project lacks"
    assert 'tee "$RUNNER_TEMP/lock.log"' in runs[upgrade]
    # A base image digest that moved alone is proposed too.
    assert "git diff --quiet -- 'requirements*.txt' docker/locks;" in runs[upgrade]
    assert '"$RUNNER_TEMP/lock.log"' in runs[proposal]
    assert runs[proposal].count('--body-file "$RUNNER_TEMP/body.md"') == 2


def test_publishing_attests_each_pushed_images_sbom_and_the_build_provenance():
    [job] = [job for job in workflow("ci.yml")["jobs"].values() if "needs" in job]
    assert job["permissions"] == {
        "contents": "read",
        "packages": "write",
        "id-token": "write",
        "attestations": "write",
    }
    steps = job["steps"]
    runs = [step.get("run", "") for step in steps]
    written = re.findall(r"invoke sbom (.*) --output \"\$RUNNER_TEMP/(sbom-\S+)\"", "".join(runs))
    pushed = next(index for index, run in enumerate(runs) if "invoke push" in run)
    read = next(index for index, run in enumerate(runs) if "invoke sbom" in run)
    built = next(index for index, run in enumerate(runs) if "invoke build" in run)
    assert built < read < pushed, "each SBOM read out of the image that is pushed"
    attested = {
        step["with"]["sbom-path"].removeprefix("${{ runner.temp }}/"): step["with"]
        for step in steps
        if step.get("uses", "").startswith("actions/attest-sbom@")
    }
    assert sorted(attested) == sorted(name for _, name in written)
    for flags, name in written:
        variant = "gpu" if flags == "--gpu" else flags.removeprefix("--platform linux/")
        assert name == f"sbom-{variant}.cdx.json"
        assert attested[name]["subject-digest"] == f"${{{{ steps.pushed.outputs.{variant} }}}}"
        assert attested[name]["push-to-registry"] is True
    provenance = [
        step["with"]["subject-digest"]
        for step in steps
        if step.get("uses", "").startswith("actions/attest-build-provenance@")
    ]
    expected = ["list", "gpu"] if any(flags == "--gpu" for flags, _ in written) else ["list"]
    assert provenance == [f"${{{{ steps.pushed.outputs.{name} }}}}" for name in expected]
    attesting = [index for index, step in enumerate(steps) if "attest" in step.get("uses", "")]
    assert min(attesting) > pushed, "attestations name what went out, by its digest"
