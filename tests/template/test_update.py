"""`copier update` in a generated project: a local template repository at two tags (v1.0.0, then
v1.1.0 with a change), a project generated from the first that carries its own committed edits.
The update brings the template's change and keeps the project's edits; a changed answer removes or
adds a capability; uncommitted changes are refused; a project cloned with git adopts copier."""

import shutil
import subprocess
from pathlib import Path

import copier
import pytest
from copier.errors import UserMessageError

from helpers.project import PROJECT_DIR

TEMPLATE_CHANGE = "# A line the template's v1.1.0 adds.\n"
PROJECT_EDIT = "# The project's own line.\n"
# What a git clone has and a project made with copier does not: the template's own files.
TEMPLATE_ONLY = (
    "copier.yml",
    ".copier-answers.yml.jinja",
    "template",
    "tests/template",
)


def git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, check=True
    ).stdout


def commit(folder: Path, message: str) -> None:
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message)


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch):
    for key in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(key, "Template Test")
    for key in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(key, "template-test@example.invalid")


@pytest.fixture
def template(tmp_path) -> Path:
    """This template's files, as they are, in a repository of its own tagged v1.0.0."""
    folder = tmp_path / "template"
    listed = git(PROJECT_DIR, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        if (PROJECT_DIR / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_DIR / name, folder / name)
    git(folder, "init", "-q", "-b", "main")
    commit(folder, "v1.0.0")
    git(folder, "tag", "v1.0.0")
    return folder


def release_a_change(template: Path) -> None:
    """v1.1.0: the template changes a file the project did not touch, and one it did."""
    with (template / ".dockerignore").open("a") as file:
        file.write(TEMPLATE_CHANGE)
    readme = template / "README.md"
    readme.write_text(
        readme.read_text().replace("## Prerequisites\n", "## Prerequisites\n\nNew.\n")
    )
    commit(template, "v1.1.0")
    git(template, "tag", "v1.1.0")


def update(project: Path, **answers) -> None:
    copier.run_update(project, data=answers, defaults=True, overwrite=True, unsafe=True, quiet=True)


@pytest.fixture
def project(tmp_path, template) -> Path:
    """Generated from v1.0.0 with JupyterLab left out, committed, then edited and committed again."""
    folder = tmp_path / "acme"
    copier.run_copy(
        str(template), folder, data={"notebook": False}, defaults=True, unsafe=True, quiet=True
    )
    git(folder, "init", "-q", "-b", "main")
    commit(folder, "From the template")
    with (folder / ".env.example").open("a") as file:
        file.write(PROJECT_EDIT)
    commit(folder, "Our own settings")
    return folder


def test_an_update_brings_the_template_change_and_keeps_the_project_edits(template, project):
    release_a_change(template)
    update(project)

    assert (project / ".dockerignore").read_text().endswith(TEMPLATE_CHANGE)
    assert "## Prerequisites\n\nNew.\n" in (project / "README.md").read_text()
    assert (project / ".env.example").read_text().endswith(PROJECT_EDIT)
    assert "_commit: v1.1.0" in (project / ".copier-answers.yml").read_text()
    assert not list(project.rglob("*.rej")), "a change of the template was rejected"


def test_uncommitted_changes_are_refused_and_kept(template, project):
    release_a_change(template)
    (project / "tasks.py").write_text((project / "tasks.py").read_text() + "# work in progress\n")
    before = git(project, "status", "--porcelain")

    with pytest.raises(UserMessageError, match="Destination repository is dirty"):
        update(project)

    assert git(project, "status", "--porcelain") == before
    assert (project / "tasks.py").read_text().endswith("# work in progress\n")
    assert not (project / ".dockerignore").read_text().endswith(TEMPLATE_CHANGE)


def test_a_changed_answer_removes_the_gpu_image_and_adds_jupyterlab(project, run):
    gpu_files = [
        "Dockerfile.gpu",
        "requirements-gpu.in",
        "requirements-gpu.txt",
        ".devcontainer/gpu",
    ]
    assert all((project / name).exists() for name in gpu_files)

    update(project, gpu=False)
    assert [name for name in gpu_files if (project / name).exists()] == []
    assert "gpu: false" in (project / ".copier-answers.yml").read_text()
    assert (project / ".env.example").read_text().endswith(PROJECT_EDIT)
    commit(project, "Without the GPU image")

    assert not (project / "notebooks").exists()
    assert "AS notebook" not in (project / "Dockerfile").read_text()
    update(project, notebook=True)
    assert (project / "notebooks" / "example.ipynb").is_file()
    assert (project / "requirements-notebook.txt").is_file()
    assert "FROM environment AS notebook" in (project / "Dockerfile").read_text()
    assert "  notebook " in run(project, "invoke", "--list").stdout
    assert not (project / "Dockerfile.gpu").exists(), "the earlier answer did not hold"


def test_a_project_cloned_with_git_adopts_copier_as_the_readme_says(tmp_path, template):
    clone = tmp_path / "cloned"
    git(tmp_path, "clone", "-q", str(template), str(clone))
    with (clone / ".env.example").open("a") as file:
        file.write(PROJECT_EDIT)
    commit(clone, "Our own settings")
    release_a_change(template)

    # The README's steps: copier copy over the checkout, from the release it was cloned at.
    copier.run_copy(
        str(template), clone, vcs_ref="v1.0.0", defaults=True, overwrite=True, unsafe=True,
        quiet=True,
    )  # fmt: skip
    # `git restore -p`: the team takes back its own edits, the rest stays as copier made it.
    git(clone, "restore", ".env.example")
    git(clone, "rm", "-r", "-q", *TEMPLATE_ONLY)
    commit(clone, "Made with copier")
    update(clone)

    assert (clone / ".env.example").read_text().endswith(PROJECT_EDIT)
    assert (clone / ".dockerignore").read_text().endswith(TEMPLATE_CHANGE)
    assert (clone / "README.md").read_text().startswith("# cloned\n")
    assert [name for name in TEMPLATE_ONLY if (clone / name).exists()] == []


def test_the_minimal_app_keeps_the_project_own_work_across_an_update(tmp_path, template):
    project = tmp_path / "minimal"
    copier.run_copy(
        str(template), project, data={"example": False}, defaults=True, unsafe=True, quiet=True
    )
    git(project, "init", "-q", "-b", "main")
    commit(project, "From the template")
    app = project / "src" / "app" / "__main__.py"
    app.write_text(app.read_text().replace("no model yet", "our model is coming"))
    (project / "tests" / "container" / "test_app.py").unlink()
    (project / "src" / "app" / "model.py").write_text('"""Our model."""\n')
    commit(project, "Our own app")
    release_a_change(template)

    update(project)

    assert "our model is coming" in app.read_text()
    assert (project / "src" / "app" / "model.py").read_text() == '"""Our model."""\n'
    assert not (project / "tests" / "container" / "test_app.py").exists(), "a deletion was undone"
    assert (project / ".dockerignore").read_text().endswith(TEMPLATE_CHANGE)
    assert not (project / "src" / "app" / "server.py").exists()
