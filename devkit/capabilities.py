"""What a project can be generated without (copier.yml's questions), each told by its files.

`copier copy` leaves a capability's files out when it is answered `false`; the tasks, nox sessions
and checks that belong to it look here, so that nothing of it is left to clean up: no task in
`invoke --list`, no session, no doctor check. `copier update --data NAME=true` brings it back.
"""

from pathlib import Path

from devkit.errors import UserError

# The file or folder whose presence means the project has the capability.
MARKERS = {
    "example": "tests/example",
    "gpu": "Dockerfile.gpu",
    "kubernetes": "deploy/k8s",
    "notebook": "requirements-notebook.in",
    "devcontainer": ".devcontainer",
    "github_actions": ".github/workflows",
}
# The tasks that exist only with a capability.
TASKS = {"kubernetes": ("k8s",), "notebook": ("notebook",)}


def present(project_dir: Path, name: str) -> bool:
    """Whether the project has the capability `name` (a key of MARKERS)."""
    return (project_dir / MARKERS[name]).exists()


def absent_tasks(project_dir: Path) -> list[str]:
    """The task names of the capabilities this project was generated without."""
    absent = [name for name in TASKS if not present(project_dir, name)]
    return [task for name in absent for task in TASKS[name]]


def flag_help(project_dir: Path, name: str, text: str) -> str:
    """`invoke --help`'s text for a flag of the capability `name`: `text` where the project has it,
    else what the flag says when used (and nothing more of the capability)."""
    if present(project_dir, name):
        return text
    return (
        f"this project was generated without {name}: "
        f"`copier update --trust --data {name}=true` adds it"
    )


def require(project_dir: Path, name: str) -> None:
    """One line where the project was generated without `name`: what is missing, what adds it."""
    if not present(project_dir, name):
        raise UserError(
            f"this project was generated without {name} ({MARKERS[name]} is absent)",
            f"`copier update --trust --data {name}=true` adds it",
        )
