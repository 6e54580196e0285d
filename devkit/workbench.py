"""The daily tools beside the app: TensorBoard over the training logs (`invoke tensorboard`) and
JupyterLab (`invoke notebook`), each in a container of the project's images, as the caller, with the
least privilege of `invoke run`, on its own port of HOST_ADDRESS."""

from __future__ import annotations

import secrets
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from platform import system as host_system

from devkit import building
from devkit.containers import (
    CONTAINER_DATA_DIR,
    StopOnSignal,
    app_env_file,
    container_options,
    mount_spec,
    prepare_data_dir,
    remove_container,
    require_engine_for,
    require_image,
)
from devkit.engine import Engine
from devkit.errors import UserError
from devkit.host import container_user, require_free_port, require_writable_by, user_ids
from devkit.locks import notebook_lock
from devkit.settings import Settings
from devkit.targets import Target, notebook_target, tensorboard_target

# Where training writes TensorBoard logs, inside DATA_DIR: logs/<model>/<version>/{train,validation}.
LOGS_DIR = "logs"
# The ports the tools listen on inside their containers (the host side is a setting).
TENSORBOARD_CONTAINER_PORT = 6006
NOTEBOOK_CONTAINER_PORT = 8888
# The project folders JupyterLab works on, as the notebook image's root folder /app shows them.
NOTEBOOKS_DIR = "notebooks"
CONTAINER_NOTEBOOKS_DIR = "/app/notebooks"
CONTAINER_SOURCE_DIR = "/app/src"
# The notebook image's CMD, as the Dockerfiles spell it: JupyterLab on every address of the
# container (so that the published port reaches it), showing /app.
JUPYTER_LAB = [
    "jupyter",
    "lab",
    "--ip=0.0.0.0",
    f"--port={NOTEBOOK_CONTAINER_PORT}",
    "--no-browser",
    "--ServerApp.root_dir=/app",
]


def tensorboard_command(
    settings: Settings, target: Target, *, user: str | None, detach: bool
) -> list[str]:
    """`docker run` of TensorBoard over DATA_DIR/logs, from the project's image.

    It needs none of the app's `.env` keys, and writes nothing but /tmp: a read-only root filesystem.
    TensorBoard binds every address inside the container, so that the published port reaches it.
    """
    argv = [settings.docker, "run", "--name", target.container]
    if detach:
        argv.append("--detach")
    argv += container_options(replace(settings, app_env={}), target, user, None)
    argv += ["--read-only", "--tmpfs", "/tmp"]  # noqa: S108
    argv += [
        "--publish",
        f"{settings.host_address}:{settings.tensorboard_port}:{TENSORBOARD_CONTAINER_PORT}",
    ]
    serve = [
        "tensorboard",
        "--logdir",
        f"{CONTAINER_DATA_DIR}/{LOGS_DIR}",
        "--host",
        "0.0.0.0",  # noqa: S104
        "--port",
        str(TENSORBOARD_CONTAINER_PORT),
    ]
    return [*argv, target.image, *serve]


def notebook_command(
    settings: Settings,
    target: Target,
    *,
    user: str | None,
    detach: bool,
    env_file: Path,
    app_env: Path | None = None,
) -> list[str]:
    """`docker run` of the notebook image: JupyterLab on /app with src/ (read-only), notebooks/ and DATA_DIR.

    env_file holds JUPYTER_TOKEN: docker reads it, so the token is on no command line and in no
    `--dry` output, and JupyterLab, given its token, never prints it in its log. app_env: the app's
    `.env` keys, as `invoke run` passes them.
    """
    argv = [settings.docker, "run", "--name", target.container]
    if detach:
        argv.append("--detach")
    argv += container_options(settings, target, user, app_env)
    argv += [
        "--mount",
        mount_spec(settings.project_dir / "src", CONTAINER_SOURCE_DIR, readonly=True),
    ]
    argv += ["--mount", mount_spec(settings.project_dir / NOTEBOOKS_DIR, CONTAINER_NOTEBOOKS_DIR)]
    argv += ["--env-file", str(env_file)]
    argv += [
        "--publish",
        f"{settings.host_address}:{settings.notebook_port}:{NOTEBOOK_CONTAINER_PORT}",
    ]
    # Root only where the caller and DATA_DIR's owner both are (see host.run_as_user), and then without
    # capabilities: JupyterLab refuses root unless told.
    as_root = user is not None and user_ids(user)[0] == 0
    return [*argv, target.image, *JUPYTER_LAB, *(["--allow-root"] if as_root else [])]


def tool_targets(targets: list[Target]) -> list[Target]:
    """The notebook images and the tools' containers beside these images, for `invoke clean`."""
    return [notebook_target(target) for target in targets] + [
        tensorboard_target(target) for target in targets if not target.gpu
    ]


def _require_not_running(
    engine: Engine, settings: Settings, target: Target, stop_hint: str
) -> None:
    """No container of this name runs; a stopped leftover of a crash is removed."""
    state = engine.container_state(target.container)
    if state == "running":
        raise UserError(f"{target.container} is already running; {stop_hint} stops it")
    if state is not None:
        remove_container(engine, settings, target.container)


def _serve(
    engine: Engine,
    settings: Settings,
    target: Target,
    argv: list[str],
    *,
    detach: bool,
    stop_hint: str,
) -> None:
    """Run a tool's container: a foreground one removed when it ends (Ctrl-C, SIGTERM included), a detached one left running."""
    with StopOnSignal(engine, settings, [target.container], tty=sys.stdin.isatty()) as stopped:
        try:
            result = engine.run(argv)
        finally:
            if not detach:
                remove_container(engine, settings, target.container)
    if stopped.received is not None:
        # Ctrl-C without a terminal, or SIGTERM: the container was stopped, as asked.
        print(f"stopped and removed {target.container} on {stopped.received.name}", file=sys.stderr)
    elif result.failed:
        if detach:
            remove_container(engine, settings, target.container)
        # 130: ended on Ctrl-C, as a foreground tool is meant to stop.
        if result.exited != 130:
            raise UserError(
                f"{target.container} exited with status {result.exited}; its output above says why"
            )
    elif detach:
        print(f"{target.container} runs in the background; {stop_hint} stops it", file=sys.stderr)


def tensorboard(
    engine: Engine, settings: Settings, target: Target, *, detach: bool = False
) -> None:
    """`invoke tensorboard`: TensorBoard from the built image over DATA_DIR/logs, on TENSORBOARD_PORT."""
    board = tensorboard_target(target)
    stop_hint = "`invoke stop --tensorboard`"
    user = container_user(settings)
    argv = tensorboard_command(settings, board, user=user, detach=detach)
    require_engine_for(engine, board)
    engine.require(require_image, engine, board)
    _require_not_running(engine, settings, board, stop_hint)
    engine.require(
        require_free_port, settings.host_address, settings.tensorboard_port, "TENSORBOARD_PORT"
    )
    prepare_data_dir(engine, settings, user)
    logs = settings.data_dir / LOGS_DIR
    if not logs.is_dir():
        print(
            f"{logs} does not exist yet: TensorBoard shows the runs that training writes there",
            file=sys.stderr,
        )
    print(
        f"TensorBoard on http://{settings.host_address}:{settings.tensorboard_port} (logs: {logs})",
        file=sys.stderr,
    )
    _serve(engine, settings, board, argv, detach=detach, stop_hint=stop_hint)


def prepare_notebooks_dir(engine: Engine, settings: Settings, user: str | None) -> None:
    """notebooks/ exists, and the container's user can write it."""
    folder = settings.project_dir / NOTEBOOKS_DIR
    if not folder.exists():
        engine.change(f"create {folder}", lambda: folder.mkdir())
    if host_system() == "Linux" and folder.exists():
        engine.require(require_writable_by, folder, *user_ids(user), f"{NOTEBOOKS_DIR}/")


def notebook(engine: Engine, settings: Settings, target: Target, *, detach: bool = False) -> None:
    """`invoke notebook`: the notebook image built where needed, then JupyterLab on NOTEBOOK_PORT with a new token.

    The token is printed once, in the URL to open; a new one each start.
    """
    lab = notebook_target(target)
    gpu = " --gpu" if target.gpu else ""
    stop_hint = f"`invoke stop --notebook{gpu}`"
    lock = notebook_lock(target.platform)
    if not (settings.project_dir / lock.output).exists():
        raise UserError(
            f"{lock.output} is missing: the notebook image installs JupyterLab from it; run `invoke lock`"
        )
    user = container_user(settings)
    require_engine_for(engine, lab)
    _require_not_running(engine, settings, lab, stop_hint)
    engine.require(
        require_free_port, settings.host_address, settings.notebook_port, "NOTEBOOK_PORT"
    )
    # BuildKit rebuilds only what changed: seconds when the image is up to date.
    building.build(engine, settings, lab)
    prepare_data_dir(engine, settings, user)
    prepare_notebooks_dir(engine, settings, user)
    token = secrets.token_urlsafe(32)
    url = f"http://{settings.host_address}:{settings.notebook_port}/lab"
    with (
        tempfile.TemporaryDirectory(prefix="invoke-notebook-") as work,
        app_env_file(settings) as app_env,
    ):
        env_file = Path(work) / "notebook.env"
        env_file.touch(mode=0o600)
        env_file.write_text(f"JUPYTER_TOKEN={token}\n", encoding="utf-8")
        argv = notebook_command(
            settings, lab, user=user, detach=detach, env_file=env_file, app_env=app_env
        )
        # Never under --dry, whose output is the commands: the token is for the one who starts JupyterLab.
        engine.report(f"JupyterLab on {url}?token={token}")
        _serve(engine, settings, lab, argv, detach=detach, stop_hint=stop_hint)
