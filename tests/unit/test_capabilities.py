"""What a project generated without a capability (copier.yml) does: no task, one line for a flag."""

import pytest
from invoke import Exit

from devkit import capabilities
from devkit.errors import UserError
from helpers.command_lines import commands_run, dry_context


def test_a_capability_is_told_by_its_files(tmp_path):
    assert not any(capabilities.present(tmp_path, name) for name in capabilities.MARKERS)
    assert capabilities.absent_tasks(tmp_path) == ["k8s", "notebook"]
    (tmp_path / "deploy" / "k8s").mkdir(parents=True)
    (tmp_path / "requirements-notebook.in").touch()
    (tmp_path / "Dockerfile.gpu").touch()
    assert capabilities.absent_tasks(tmp_path) == []
    assert capabilities.present(tmp_path, "gpu")
    assert not capabilities.present(tmp_path, "devcontainer")


def test_a_missing_capability_is_one_line_naming_the_update_that_adds_it(tmp_path):
    with pytest.raises(UserError) as refused:
        capabilities.require(tmp_path, "gpu")
    assert str(refused.value) == (
        "this project was generated without gpu (Dockerfile.gpu is absent); "
        "`copier update --trust --data gpu=true` adds it"
    )


def test_the_gpu_flag_of_a_project_without_the_gpu_image_is_refused_before_anything_runs(
    tmp_path, monkeypatch
):
    import tasks

    monkeypatch.setattr(tasks, "PROJECT_DIR", tmp_path)
    context = dry_context()
    for task, kwargs in ((tasks.build, {}), (tasks.run, {}), (tasks.lock, {"check": True})):
        with pytest.raises(Exit, match=r"^error: this project was generated without gpu"):
            task(context, gpu=True, **kwargs)
    assert commands_run(context) == []
