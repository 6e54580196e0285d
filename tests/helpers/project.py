"""Where the project is, and copies of it that tests may edit."""

import shutil
import subprocess
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def project_copy(tmp_path: Path, dotenv: str | None = None, name: str = "project") -> Path:
    """A copy of the project, without .git, caches, data/ or .env: tests edit it, never the real one."""
    copy = tmp_path / name
    ignore = shutil.ignore_patterns(
        ".git", ".nox", "data", ".env", "__pycache__", ".pytest_cache", ".ruff_cache"
    )
    shutil.copytree(PROJECT_DIR, copy, ignore=ignore)
    if dotenv is not None:
        (copy / ".env").write_text(dotenv)
    return copy


def copy_shipped_data(folder: Path) -> list[str]:
    """Copy into `folder` what the project ships in data/ (its files in git), as a fresh clone's DATA_DIR holds
    them: the app's own seed data, whatever the app is. Models and datasets a user added are not copied."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--", "data"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    names = [Path(name).relative_to("data") for name in listing.stdout.split("\0") if name]
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_DIR / "data" / name, folder / name)
    return [str(name) for name in names]


def with_capabilities(folder: Path) -> Path:
    """Mark in `folder` the capabilities (copier.yml's) this project has, as their files would: an
    empty Dockerfile.gpu where the project has the GPU image, and so on. Returns the folder."""
    from devkit import capabilities

    for name, marker in capabilities.MARKERS.items():
        if capabilities.present(PROJECT_DIR, name) and not (folder / marker).exists():
            source = PROJECT_DIR / marker
            (folder / marker).parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                (folder / marker).mkdir()
            else:
                (folder / marker).touch()
    return folder
