"""`copier copy` of this template: every capability left out alone, all of them, and none. Each
project holds none of a left-out capability's files, tasks or sessions, its README, docs,
.env.example, `invoke --help` and `nox -l` say nothing of it, and its own `nox -s tests` and `nox -s lint`
pass (run with these host tools: `nox --no-venv --no-install`)."""

import re
import subprocess
from pathlib import Path

import copier
import pytest

from devkit.settings import load_settings
from helpers.project import PROJECT_DIR

QUESTIONS = ("example", "gpu", "kubernetes", "notebook", "devcontainer", "github_actions")

# What each capability left out leaves out (a sample of its paths: copier.yml lists them all).
FILES = {
    "example": [
        "data/iris.csv",
        "tests/example",
        "docs/example.md",
        "src/app/server.py",
        "benchmarks/serving_floor.py",
    ],
    "gpu": ["Dockerfile.gpu", "requirements-gpu.in", "requirements-gpu.txt", "docs/gpu.md"],
    "kubernetes": ["deploy", "devkit/kubernetes.py", "tests/manifests", "docs/kubernetes.md"],
    "notebook": ["notebooks", "requirements-notebook.in", "requirements-notebook.txt"],
    "devcontainer": [".devcontainer", "docs/devcontainer.md"],
    "github_actions": [".github", "docs/ci.md"],
}
TEMPLATE_ONLY = [
    "copier.yml",
    ".copier-answers.yml.jinja",
    "template",
    "tests/template",
]
# The files template/finish.py fits to the answers (its marked blocks); every other file is copied.
FITTED = re.compile(
    r"README\.md|Dockerfile(\.gpu)?|\.env\.example|\.gitignore|docs/.*\.md|\.github/workflows/.*"
    r"|\.devcontainer/(gpu/)?devcontainer\.json"
)
# A marker of template/finish.py, which it takes out of every file it fits.
MARKER = re.compile(r"<!--\s*(end)?if\b|endif not|^\s*(#|//)\s*(end)?if (not )?\w+\s*$", re.M)
TASKS = {"kubernetes": "k8s", "notebook": "notebook"}
# How the README, the docs, .env.example, `invoke --help` and `nox -l` speak of a capability (its
# tasks, flags, files, tools and images), which a project without it must not.
MENTIONS = {
    "example": re.compile(
        r"\b[Ii]ris\b|tests/example|example\.md|\b[Tt]he example\b|\bexample's\b"
        r"|TRAIN_IF_NO_MODEL|app/server\.py|src/app/train\.py"
    ),
    "gpu": re.compile(r"(?i)\bgpu|cuda|nvidia[- ](?:runtime|gpu|container|ctk|\*)"),
    "kubernetes": re.compile(
        r"(?i)kubernetes|\bk8s\b|kubectl|checkov|kserve|\bpods?\b|manifests|deploy/|(?-i:\bJob\b)"
    ),
    "notebook": re.compile(r"(?i)notebook|jupyter"),
    "devcontainer": re.compile(r"(?i)devcontainer|dev containers?\b|codespaces"),
    "github_actions": re.compile(r"(?i)github actions|\.github|workflows?\b|ci\.yml|lock-upgrade"),
}
# What may name a capability left out: how to bring it back (a flag's help, copier's answers).
BRINGS_BACK = re.compile(r"generated without \w+|--data \w+=\w+")
# Every docstring and flag help of tasks.py, as `invoke --help` shows them, a line each.
HELP_TEXTS = """
import inspect, invoke, tasks
for name, task in vars(tasks).items():
    if isinstance(task, invoke.Task):
        for text in [inspect.getdoc(task), *task.help.values()]:
            print(f"invoke --help {name}:", " ".join(text.split()))
"""


def texts_of(project: Path, run) -> list[tuple[str, str]]:
    """(where, line) for every line a user reads about the project: README.md, docs/*.md,
    .env.example, .gitignore, data/README.md, `invoke --help` of every task and `nox -l`."""
    lines = [
        (f"{page.relative_to(project)}:{number}", line)
        for page in [
            project / "README.md",
            project / ".env.example",
            project / ".gitignore",
            project / "data" / "README.md",
            *(project / "docs").glob("*.md"),
        ]
        for number, line in enumerate(page.read_text().splitlines(), 1)
    ]
    helps = run(project, "python", "-c", HELP_TEXTS)
    assert helps.returncode == 0, helps.stderr
    sessions = run(project, "nox", "-l")
    assert sessions.returncode == 0, sessions.stderr
    return [
        *lines,
        *(tuple(line.split(": ", 1)) for line in helps.stdout.splitlines()),
        *(("nox -l", line) for line in sessions.stdout.splitlines()),
    ]


VARIANTS = {
    "all-kept": (),
    **{f"without-{name}": (name,) for name in QUESTIONS},
    "all-left-out": QUESTIONS,
}


@pytest.mark.parametrize("left_out", VARIANTS.values(), ids=VARIANTS.keys())
def test_a_generated_project_has_only_what_was_asked_and_its_checks_pass(generate, run, left_out):
    project = generate(**{name: False for name in left_out})

    for name, paths in FILES.items():
        for path in paths:
            assert (project / path).exists() != (name in left_out), (
                f"{path} {'present' if name in left_out else 'missing'} with {name}="
                f"{name not in left_out}"
            )
    gpu_devcontainer = not {"gpu", "devcontainer"} & set(left_out)
    assert (project / ".devcontainer/gpu").exists() == gpu_devcontainer
    for path in TEMPLATE_ONLY:
        assert not (project / path).exists(), f"template-only {path} was copied into the project"

    readme = (project / "README.md").read_text()
    assert readme.startswith("# acme\n")
    assert "copier copy --trust gh:" not in readme, "the project's README talks about the template"
    for path in filter(Path.is_file, project.rglob("*")):
        if FITTED.fullmatch(str(path.relative_to(project))):
            assert not MARKER.search(path.read_text()), f"a marker was left in {path.name}"
    said = [
        f"{where} speaks of {name}: {line.strip()}"
        for where, line in texts_of(project, run)
        for name in left_out
        if MENTIONS[name].search(BRINGS_BACK.sub("", line))
    ]
    assert said == []

    for page in [project / "README.md", *(project / "docs").glob("*.md")]:
        for link in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / link).is_file(), f"{page.name} links {link}, which is absent"

    listed = run(project, "invoke", "--list")
    assert listed.returncode == 0, listed.stderr
    for name, task in TASKS.items():
        assert (re.search(rf"^  {task}\s", listed.stdout, re.M) is None) == (name in left_out)

    if "example" in left_out:
        assert (project / "src/app/__main__.py").is_file()
        assert (project / "tests/container/test_app.py").is_file()

    checks = run(project, "nox", "--no-venv", "--no-install", "-s", "tests", "lint")
    assert checks.returncode == 0, f"{checks.stdout[-4000:]}\n{checks.stderr[-4000:]}"
    # The tests of the GPU image and of JupyterLab that stay are skipped, saying why.
    for name in {"gpu", "notebook"} & set(left_out):
        assert f"this project was generated without {name}" in checks.stdout


def test_a_flag_of_a_capability_left_out_says_in_one_line_what_adds_it(generate, run):
    project = generate(gpu=False, notebook=False)
    for argv, name in (
        (["invoke", "--dry", "build", "--gpu"], "gpu"),
        (["invoke", "stop", "--notebook"], "notebook"),
        (["invoke", "doctor", "--gpu"], "gpu"),
    ):
        result = run(project, *argv)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            f"error: this project was generated without {name} "
            f"({'Dockerfile.gpu' if name == 'gpu' else 'requirements-notebook.in'} is absent); "
            f"`copier update --trust --data {name}=true` adds it"
        ]


def test_project_name_defaults_to_the_folder_made_valid_and_names_the_image(
    generate, tmp_path, monkeypatch
):
    project = generate(name="My Project")
    answers = (project / ".copier-answers.yml").read_text()
    assert "project_name: my-project\n" in answers
    assert (project / "README.md").read_text().startswith("# my-project\n")
    assert load_settings(project, environ={}).image_name == "my-project"

    # `copier copy ... .` over a checkout: the folder's own name, not ".".
    checkout = tmp_path / "Our_Checkout"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    copier.run_copy(str(PROJECT_DIR), ".", vcs_ref="HEAD", defaults=True, unsafe=True, quiet=True)
    assert "project_name: our-checkout\n" in (checkout / ".copier-answers.yml").read_text()


@pytest.mark.parametrize("name", ["Not_An-Image", "2-starts-with-a-digit", "a", "ends-with-"])
def test_an_impossible_project_name_is_refused_by_the_validator(generate, tmp_path, name):
    with pytest.raises(ValueError, match=r"^Validation error for question 'project_name'") as error:
        generate(project_name=name)
    assert len(str(error.value).splitlines()) == 1
    assert not (tmp_path / "acme").exists(), "a refused answer left a half-made project"


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "over-a-checkout"])
def test_copiers_command_line_refuses_an_impossible_name_before_it_writes_anything(
    run, tmp_path, existing
):
    """`copier copy --data project_name=...`: the validator's message is the last line copier
    prints, and it exits 1. copier 9.19 prints a traceback above it: its command line catches only
    its own errors, and a refused answer is a ValueError that copier raises itself
    (copier-org/copier#1436 put the question's name in its message), which no template can
    change."""
    destination = tmp_path / "checkout"
    if existing:
        destination.mkdir()
        (destination / "notes.txt").write_text("ours\n")
    argv = ["copier", "copy", "--trust", "--defaults", "--vcs-ref", "HEAD"]
    argv += ["--data", "project_name=Not_An-Image", str(PROJECT_DIR), str(destination)]
    refused = run(tmp_path, *argv, timeout=120)
    assert refused.returncode == 1
    assert re.fullmatch(
        r"(ValueError: )?Validation error for question 'project_name': project_name "
        r'"Not_An-Image": 2 to 40 characters of a-z, 0-9 and .*',
        refused.stderr.strip().splitlines()[-1],
    )
    if existing:
        assert [path.name for path in destination.iterdir()] == ["notes.txt"]
    else:
        assert not destination.exists(), "a refused answer left a half-made project"


def test_the_defaults_give_this_repository_less_the_template_only_files(generate):
    project = generate()
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ours = {
        name
        for name in listed.split("\0")
        if name
        and (PROJECT_DIR / name).is_file()
        and not any(name == path or name.startswith(f"{path}/") for path in TEMPLATE_ONLY)
    }
    generated = {
        str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()
    } - {".copier-answers.yml"}
    assert generated == ours
    changed = [
        name
        for name in sorted(ours)
        if not FITTED.fullmatch(name)
        and (project / name).read_bytes() != (PROJECT_DIR / name).read_bytes()
    ]
    assert changed == [], "copier changed files that no answer fits"
