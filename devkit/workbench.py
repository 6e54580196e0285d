"""The daily tools beside the app: TensorBoard over the training logs (`invoke tensorboard`) and
JupyterLab (`invoke notebook`), each in a container of the project's images, as the caller, with the
least privilege of `invoke run`, on its own port of HOST_ADDRESS."""

from __future__ import annotations

import secrets
import sys
from dataclasses import replace
from platform import system as host_system

from devkit import building, runtime
from devkit.containers import (
    CONTAINER_DATA_DIR,
    container_spec,
    mount_spec,
    prepare_data_dir,
    require_engine_for,
)
from devkit.engine import Engine
from devkit.errors import UserError
from devkit.host import container_user, require_free_port, require_writable_by, user_ids
from devkit.locks import notebook_lock
from devkit.runtime import ContainerSpec, Port
from devkit.settings import Settings
from devkit.targets import Target, notebook_target, tensorboard_target

# Where training writes TensorBoard logs, inside DATA_DIR:
# logs/<model>/<version>/{train,validation}.
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


def tensorboard_spec(settings: Settings, target: Target, *, user: str | None) -> ContainerSpec:
    """TensorBoard over DATA_DIR/logs, from the project's image.

    It needs none of the app's `.env` keys, and writes nothing but /tmp: a read-only root
    filesystem.
    TensorBoard binds every address inside the container, so that the published port reaches it.
    """
    serve = ["tensorboard", "--logdir", f"{CONTAINER_DATA_DIR}/{LOGS_DIR}"]
    serve += ["--host", "0.0.0.0", "--port", str(TENSORBOARD_CONTAINER_PORT)]  # noqa: S104
    spec = container_spec(
        settings, target, name=target.container, user=user, command=serve, app_keys=False
    )
    port = Port(
        settings.host_address,
        settings.tensorboard_port,
        TENSORBOARD_CONTAINER_PORT,
        "TENSORBOARD_PORT",
    )
    return replace(spec, read_only=True, ports=(port,))


def notebook_spec(
    settings: Settings, target: Target, *, user: str | None, token: str
) -> ContainerSpec:
    """JupyterLab on /app with src/ (read-only), notebooks/ and DATA_DIR, and the app's keys.

    The token goes with the app's keys into the file docker reads: it is on no command line and in
    no `--dry` output, and JupyterLab, given its token, never prints it in its log.
    """
    # Root only where the caller and DATA_DIR's owner both are (see host.run_as_user), and then
    # without capabilities: JupyterLab refuses root unless told.
    as_root = user is not None and user_ids(user)[0] == 0
    lab = [*JUPYTER_LAB, *(["--allow-root"] if as_root else [])]
    spec = container_spec(settings, target, name=target.container, user=user, command=lab)
    port = Port(
        settings.host_address, settings.notebook_port, NOTEBOOK_CONTAINER_PORT, "NOTEBOOK_PORT"
    )
    source = mount_spec(settings.project_dir / "src", CONTAINER_SOURCE_DIR, readonly=True)
    notebooks = mount_spec(settings.project_dir / NOTEBOOKS_DIR, CONTAINER_NOTEBOOKS_DIR)
    return replace(
        spec,
        mounts=(*spec.mounts, source, notebooks),
        secret_env={**spec.secret_env, "JUPYTER_TOKEN": token},
        ports=(port,),
    )


def tool_targets(targets: list[Target]) -> list[Target]:
    """The notebook images and the tools' containers beside these images, for `invoke clean`."""
    return [notebook_target(target) for target in targets] + [
        tensorboard_target(target) for target in targets if not target.gpu
    ]


def _serve(
    engine: Engine,
    spec: ContainerSpec,
    *,
    detach: bool,
    stop_hint: str,
    build_hint: str | None,
    prepare,
) -> None:
    """Run a tool's container: a foreground one removed when it ends (Ctrl-C, SIGTERM included), a
    detached one left running."""
    ended = runtime.start(
        engine,
        spec,
        detach=detach,
        tty=not detach and sys.stdin.isatty(),
        stop_hint=stop_hint,
        build_hint=build_hint,
        prepare=prepare,
    )
    result = ended.outcome
    # 130: ended on Ctrl-C, as a foreground tool is meant to stop.
    if ended.signal is None and result.failed and result.exited != 130:
        raise UserError(
            f"{spec.name} exited with status {result.exited}; its output above says why"
        )
    if detach:
        engine.report(
            f"{spec.name} runs in the background; {stop_hint} stops it",
            would=f"start {spec.name} in the background",
        )


def tensorboard(
    engine: Engine, settings: Settings, target: Target, *, detach: bool = False
) -> None:
    """`invoke tensorboard`: TensorBoard from the built image over DATA_DIR/logs, on
    TENSORBOARD_PORT."""
    board = tensorboard_target(target)
    user = container_user(settings)
    spec = tensorboard_spec(settings, board, user=user)
    require_engine_for(engine, board)
    logs = settings.data_dir / LOGS_DIR

    def prepare() -> None:
        prepare_data_dir(engine, settings, user)
        if not logs.is_dir():
            print(
                f"{logs} does not exist yet: TensorBoard shows the runs that training writes there",
                file=sys.stderr,
            )
        engine.report(f"TensorBoard on {spec.ports[0].url} (logs: {logs})")

    _serve(
        engine,
        spec,
        detach=detach,
        stop_hint="`invoke stop --tensorboard`",
        build_hint=board.build_hint(),
        prepare=prepare,
    )


def prepare_notebooks_dir(engine: Engine, settings: Settings, user: str | None) -> None:
    """notebooks/ exists, and the container's user can write it."""
    folder = settings.project_dir / NOTEBOOKS_DIR
    if not folder.exists():
        engine.change(f"create {folder}", lambda: folder.mkdir())
    if host_system() == "Linux" and folder.exists():
        engine.require(require_writable_by, folder, *user_ids(user), f"{NOTEBOOKS_DIR}/")


def notebook(engine: Engine, settings: Settings, target: Target, *, detach: bool = False) -> None:
    """`invoke notebook`: the notebook image built where needed, then JupyterLab on NOTEBOOK_PORT
    with a new token.

    The token is printed once, in the URL to open; a new one each start.
    """
    lab = notebook_target(target)
    stop_hint = f"`invoke stop --notebook{' --gpu' if target.gpu else ''}`"
    lock = notebook_lock(target.platform)
    if not (settings.project_dir / lock.output).exists():
        raise UserError(
            f"{lock.output} is missing: the notebook image installs JupyterLab from it; "
            "run `invoke lock`"
        )
    user = container_user(settings)
    token = secrets.token_urlsafe(32)
    spec = notebook_spec(settings, lab, user=user, token=token)
    require_engine_for(engine, lab)
    # Before the build, which takes a while: a name or port that would refuse the start.
    runtime.require_free_name(engine, spec, stop_hint)
    for port in spec.ports:
        engine.require(require_free_port, port.address, port.host, port.setting)
    # BuildKit rebuilds only what changed: seconds when the image is up to date.
    building.build(engine, settings, lab)

    def prepare() -> None:
        prepare_data_dir(engine, settings, user)
        prepare_notebooks_dir(engine, settings, user)
        # Never under --dry, whose output is the commands: the token is for the one who starts
        # JupyterLab.
        engine.report(f"JupyterLab on {spec.ports[0].url}/lab?token={token}")

    _serve(engine, spec, detach=detach, stop_hint=stop_hint, build_hint=None, prepare=prepare)
