"""This machine's side of a container: who it runs as, whether its port is free and its data folder
writable, and which proxy variables the tasks pass on."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from platform import system as host_system

from devkit.errors import UserError
from devkit.settings import Settings

# The non-root user the Dockerfiles create, and that a container runs as where no other is chosen.
IMAGE_USER = (1000, 1000)

# Docker's predefined build arguments for proxies: passed by name, so the value comes from the
# environment, and kept out of the image history unless a Dockerfile declares them.
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
)


def proxies() -> tuple[str, ...]:
    """The proxy variables set here, to pass on by name."""
    return tuple(name for name in PROXY_VARIABLES if os.environ.get(name))


def run_as_user(
    system: str,
    uid: int,
    gid: int,
    *,
    sudo_caller: tuple[int, int] | None = None,
    data_dir_owner: tuple[int, int] | None = None,
) -> str | None:
    """The `--user` for a container on this host, or None for the image's own non-root user.

    On Linux, bind-mounted files keep their numeric owner, so the container runs as the caller and
    what it writes to DATA_DIR belongs to the caller. A root caller gets the user behind `sudo`,
    else the owner of DATA_DIR when that is not root: root outside is no reason for root inside.
    Only where both are root does the container run as root, as only root can write such a
    DATA_DIR, and then without any capability (see `runtime.command`). Docker Desktop (macOS,
    Windows) maps ownership itself, so the image's own user serves there.
    """
    if system != "Linux":
        return None
    for ids in (sudo_caller, data_dir_owner) if uid == 0 else ():
        if ids is not None and ids[0] != 0:
            return f"{ids[0]}:{ids[1]}"
    return f"{uid}:{gid}"


def user_ids(user: str | None) -> tuple[int, int]:
    """The uid and gid a container runs as, for a `run_as_user` answer."""
    if user is None:
        return IMAGE_USER
    uid, _, gid = user.partition(":")
    return int(uid), int(gid)


def container_user(settings: Settings) -> str | None:
    """The `--user` of the project's containers: the caller, or for root the user behind sudo or
    DATA_DIR's owner."""
    if not hasattr(os, "getuid"):
        return None  # Windows: Docker Desktop maps ownership
    sudo = (os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", ""))
    owner = settings.data_dir.stat() if settings.data_dir.is_dir() else None
    return run_as_user(
        host_system(),
        os.getuid(),
        os.getgid(),
        sudo_caller=(int(sudo[0]), int(sudo[1])) if all(part.isdigit() for part in sudo) else None,
        data_dir_owner=(owner.st_uid, owner.st_gid) if owner else None,
    )


def container_ids(settings: Settings) -> tuple[int, int] | None:
    """uid and gid that files written by the container get on this host; None where Docker
    Desktop maps them."""
    return user_ids(container_user(settings)) if host_system() == "Linux" else None


def probe_port(address: str, port: int, key: str = "HOST_PORT") -> str | None:
    """Nothing listens on address:port yet, so publishing it will not fail half-way: None where that
    is so, a warning where this process may not check it; a UserError where the port is taken.
    `key` is the setting that chose the port.

    A port below 1024 (Linux: below net.ipv4.ip_unprivileged_port_start) is only for root to bind:
    a caller without that right cannot tell whether it is free, while the engine, which runs as
    root, can publish it.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As servers (and Docker's port proxy) bind: a port that only has connections in TIME_WAIT
        # (from a container stopped a moment ago) is free; one that something listens on is not.
        # Not on Windows, where this option would let the probe share a port in use.
        if os.name != "nt":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(
                    f"{key} {port} on {address} is already in use",
                    f"stop what uses it, or set {key} in .env",
                ) from None
            if error.errno == errno.EACCES:
                return (
                    f"{key} {port} on {address}: cannot check whether it is free (only root may "
                    "bind a port so low); the engine may publish it all the same"
                )
            raise UserError(f"cannot publish {address}:{port}: {error.strerror}") from None
    return None


def require_free_port(address: str, port: int, key: str = "HOST_PORT") -> None:
    """`probe_port`, for a task: a port it cannot check is a warning, and the task goes on."""
    warning = probe_port(address, port, key)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)


def require_writable_by(path: Path, uid: int, gid: int, name: str = "DATA_DIR") -> None:
    """The container's user (uid:gid) may create files in the host folder `path` (a bind mount
    keeps numeric owners); `name` is what the folder is to the user: DATA_DIR, or notebooks/."""
    info = path.stat()
    if info.st_uid == uid:
        needed = stat.S_IWUSR | stat.S_IXUSR
    elif info.st_gid == gid:
        needed = stat.S_IWGRP | stat.S_IXGRP
    else:
        needed = stat.S_IWOTH | stat.S_IXOTH
    if info.st_mode & needed != needed:
        alternative = (
            ", or set DATA_DIR to a folder that user can write" if name == "DATA_DIR" else ""
        )
        raise UserError(
            f"{name} {path} belongs to uid {info.st_uid}, and the container's user (uid {uid}) "
            "cannot write it",
            f"`sudo chown -R {uid}:{gid} {shlex.quote(str(path))}`{alternative}",
        )


class Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised as Ctrl-C's KeyboardInterrupt is: `finally` blocks run (a secret
    file goes), invoke passes it on to the command it waits for, and the task ends non-zero."""

    def __init__(self, number: int) -> None:
        super().__init__(signal.Signals(number).name)
        self.number = signal.Signals(number)


def _raise_signalled(number: int, frame) -> None:
    raise Signalled(number)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP interrupt it as SIGINT does, instead of ending the
    process at once (Python's default), which would skip every clean-up. A handler that someone
    else set (a container's stop-on-signal) is left as it is, as is any outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {number: signal.getsignal(number) for number in numbers}
    for number, handler in previous.items():
        if handler in (signal.SIG_DFL, None):
            signal.signal(number, _raise_signalled)
    try:
        yield
    finally:
        for number, handler in previous.items():
            if handler in (signal.SIG_DFL, None):
                signal.signal(number, handler)


# Folders for files that hold secrets (the app's keys, the package index's credentials): named
# `invoke-<kind>-<pid>-<random>`, so that one whose process is gone (killed with SIGKILL, which no
# process can catch) is recognised, and removed by the next task that makes one, or `invoke clean`.
_PRIVATE_FOLDER = re.compile(r"invoke-[a-z-]+?-([0-9]+)-[^/]+")


@contextlib.contextmanager
def private_folder(kind: str) -> Iterator[Path]:
    """A new folder only this user can enter, removed when the block ends: on an error, Ctrl-C,
    SIGTERM and SIGHUP too."""
    remove_orphaned_folders()
    with (
        signals_interrupt(),
        tempfile.TemporaryDirectory(prefix=f"invoke-{kind}-{os.getpid()}-") as folder,
    ):
        yield Path(folder)


def remove_orphaned_folders(parent: Path | None = None) -> list[Path]:
    """Remove the private folders of this user's tasks whose process has ended; those removed."""
    removed = []
    parent = Path(tempfile.gettempdir()) if parent is None else parent
    for folder in parent.glob("invoke-*"):
        match = _PRIVATE_FOLDER.fullmatch(folder.name)
        try:
            mine = folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == _uid()
        except OSError:
            continue
        if match and mine and not _alive(int(match[1])):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else -1


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # Windows' os.kill would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True
