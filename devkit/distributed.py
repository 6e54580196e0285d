"""`invoke train`: N containers of the built image train one model together, as the pods of the
training Job do.

Each container gets what a pod of the Indexed Job in deploy/k8s/ gets from Kubernetes and its
manifest: JOB_COMPLETION_INDEX, TRAIN_WORKERS, TRAIN_JOB, TRAIN_SERVICE, TRAIN_PORT, and the
hostname `<job>-<index>`, reachable as `<job>-<index>.<service>` on a network of their own. From
these the training derives TF_CONFIG (src/distributed_training), the same code path as on the
cluster. Beyond that, each is the container `invoke run` makes: DATA_DIR, the user, no
capabilities, the app's .env keys, the project's label; and, as in the pod, a read-only root with an
empty /tmp. Workers that never open their TensorFlow port (code that never reads TF_CONFIG) fail
the training: they were N trainings, not one.
"""

from __future__ import annotations

import queue
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from devkit import runtime
from devkit.containers import (
    container_spec,
    parse_command,
    prepare_data_dir,
    require_engine_for,
    require_image,
    warn_if_stale,
)
from devkit.engine import Engine, first_line
from devkit.errors import UserError
from devkit.host import container_user
from devkit.runtime import ContainerSpec
from devkit.settings import Settings
from devkit.targets import Target, project_id, project_label

DEFAULT_COMMAND = ["python", "-m", "app.train"]
WORKER_PORT = 2222
MAX_WORKERS = 1000
# What one TensorFlow worker takes at the least (the example's: about 330 MiB), to refuse a count
# the engine's memory cannot hold before anything starts.
WORKER_MEMORY = 512 * 2**20
# Once the chief has ended, how long the other workers get to end too before they are stopped.
GRACE_SECONDS = 60
# The Job's pods are <name>-train-<index>: a hostname label has at most 63 characters.
MAX_NAME_LENGTH = 40
# The lines of each worker's output kept to say why it failed: enough to reach back from a tensor
# dump in an exception's message to the traceback's start.
TAIL_LINES = 2000
# How often, until one is seen, the workers are asked whether they listen on WORKER_PORT.
PROBE_SECONDS = 0.5
_LISTEN = "0A"  # a socket's state in /proc/net/tcp: TCP_LISTEN
_TRACEBACK = "Traceback (most recent call last):"
# A line of glog / absl logging (TensorFlow's C++ side, gRPC): `W0000 00:00:...`, never a message's.
_LOG_LINE = re.compile(r"[IWEF]\d{4} ")
_MAX_REASON = 300
_SIGNAL_REASONS = {
    137: "killed (SIGKILL: `docker kill`, or out of memory)",
    143: "stopped (SIGTERM)",
}


def parse_workers(value: str) -> int:
    """The number of `--workers`: a whole number from 1 to MAX_WORKERS."""
    text = str(value).strip()
    # ASCII digits only: str.isdigit() also takes `²` (int() fails) and `٣` (int() makes it 3).
    if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= MAX_WORKERS:
        raise UserError(f"--workers {value}: expected a whole number from 1 to {MAX_WORKERS}")
    return int(text)


def kubernetes_name(settings: Settings) -> str:
    """The project's name on Kubernetes and in the workers' hostnames: the last part of IMAGE_NAME,
    made a DNS label."""
    name = re.sub(r"[^a-z0-9]+", "-", settings.image_name.rsplit("/", 1)[-1]).strip("-")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise UserError(
            f"IMAGE_NAME {settings.image_name!r} does not make a Kubernetes name "
            f"of 1 to {MAX_NAME_LENGTH} characters",
            "set a shorter IMAGE_NAME in .env",
        )
    return name


@dataclass(frozen=True)
class Worker:
    """One container of the training, named as the Job's pod `index` is named."""

    index: int
    count: int
    container: str
    job: str
    service: str

    @property
    def hostname(self) -> str:
        return f"{self.job}-{self.index}"

    @property
    def address(self) -> str:
        """The name the other workers reach it by: the pod's hostname in the headless Service's
        subdomain."""
        return f"{self.hostname}.{self.service}"

    @property
    def label(self) -> str:
        return f"worker {self.index}{' (the chief)' if self.index == 0 else ''}, {self.container}"

    def environment(self) -> dict[str, str]:
        """What the Job's pod number `index` has: Kubernetes' JOB_COMPLETION_INDEX and the
        manifest's TRAIN_*."""
        return {
            "JOB_COMPLETION_INDEX": str(self.index),
            "TRAIN_WORKERS": str(self.count),
            "TRAIN_JOB": self.job,
            "TRAIN_SERVICE": self.service,
            "TRAIN_PORT": str(WORKER_PORT),
        }


def network_name(target: Target) -> str:
    return f"{target.container}-train"


def workers_of(settings: Settings, target: Target, count: int) -> list[Worker]:
    """The workers of a training: containers named after the image's, hostnames after the Job's
    pods."""
    name = kubernetes_name(settings)
    return [
        Worker(
            index, count, f"{target.container}-train-{index}", f"{name}-train", f"{name}-workers"
        )
        for index in range(count)
    ]


def worker_spec(
    settings: Settings, target: Target, worker: Worker, *, user: str | None, command: list[str]
) -> ContainerSpec:
    """One worker: as the pod, a read-only root with an empty /tmp (the pod's emptyDir), on the
    training's network under the pod's hostname. Run attached, so that its output can be shown
    under its name."""
    spec = container_spec(settings, target, name=worker.container, user=user, command=command)
    variables = tuple(f"{key}={value}" for key, value in worker.environment().items())
    return replace(
        spec,
        env=(*spec.env, *variables),
        read_only=True,
        network=network_name(target),
        hostname=worker.hostname,
        network_alias=worker.address,
    )


def train(
    engine: Engine,
    settings: Settings,
    target: Target,
    *,
    workers: str = "1",
    cmd: str | None = None,
) -> None:
    """`invoke train`: everything checked before the first container starts; nothing left when it
    ends."""
    count = parse_workers(workers)
    command = parse_command(cmd) if cmd is not None else DEFAULT_COMMAND
    user = container_user(settings)
    crew = workers_of(settings, target, count)
    specs = [worker_spec(settings, target, worker, user=user, command=command) for worker in crew]
    require_engine_for(engine, target)
    engine.require(require_image, engine, target)
    warn_if_stale(engine, settings, target)
    engine.require(_require_memory_for, engine, count)
    leftovers = _require_not_running(engine, settings, target, specs)
    prepare_data_dir(engine, settings, user)
    _remove(engine, settings, target, leftovers)
    network = network_name(target)
    created = engine.run(
        [settings.docker, "network", "create", "--label", project_label(settings), network],
        hide=True,
    )
    if created.failed:
        raise UserError(f"cannot create the network {network}: {first_line(created.stderr)}")
    print(
        f"training with {count} worker{'s' * (count > 1)} of {target.image} "
        f"on the network {network}",
        file=sys.stderr,
    )
    names = [worker.container for worker in crew]
    with (
        runtime.StopOnSignal(engine, names) as stopped,
        runtime.env_file_of(specs[0]) as env_file,
    ):
        try:
            processes = [
                engine.start(runtime.command(engine, spec, env_file=env_file)) for spec in specs
            ]
            # Nothing to watch where nothing started (`--dry` prints the commands instead).
            failure = None
            if all(processes):
                with PortWatch(engine, crew if count > 1 else []) as ports:
                    failure = _watch(crew, processes, stopping=lambda: stopped.received is not None)
                if failure is None and count > 1 and not ports.seen.is_set():
                    failure = not_one_cluster(count)
        finally:
            runtime.remove_started(engine, *specs)
            engine.run([settings.docker, "network", "rm", network], hide=True)
    if stopped.received is not None:
        raise UserError(
            f"stopped on {stopped.received.name}", "every worker was stopped and removed"
        )
    if failure is not None:
        raise failure


def _require_memory_for(engine: Engine, count: int) -> None:
    """The engine's memory holds `count` workers; one line saying how many it holds where it does
    not."""
    answer = engine.query([engine.docker, "info", "--format", "{{.MemTotal}}"]).stdout.strip()
    if answer.isdigit() and count * WORKER_MEMORY > int(answer):
        most = int(answer) // WORKER_MEMORY
        raise UserError(
            f"--workers {count}: each worker needs at least {WORKER_MEMORY // 2**20} MiB "
            f"and the engine has {int(answer) / 2**30:.1f} GiB, room for {most} at most",
            "ask for fewer, or train on a cluster (`invoke k8s`)",
        )


def _require_not_running(
    engine: Engine, settings: Settings, target: Target, specs: list[ContainerSpec]
) -> list[runtime.Found]:
    """No training of this image runs, and no container or network of its names is another
    project's; what a crash of this project's left (stopped containers, the network) is returned,
    to be removed once nothing can refuse the training."""
    found = {spec.name: runtime.inspect(engine, spec.name) for spec in specs}
    for name, there in found.items():
        if there is not None and there.project != project_id(settings):
            raise UserError(
                runtime.foreign_line(engine, name), "or set IMAGE_NAME in .env to another name"
            )
    running = [name for name, there in found.items() if there and there.state == "running"]
    if running:
        raise UserError(
            f"a training already runs in {', '.join(running)}",
            "wait for it, or stop it (Ctrl-C where it runs)",
        )
    runtime.require_free_network(engine, network_name(target), project_id(settings))
    return [there for there in found.values() if there is not None]


def _remove(
    engine: Engine, settings: Settings, target: Target, leftovers: list[runtime.Found]
) -> None:
    """What a crash of this project's training left: its containers, and its network."""
    runtime.remove(engine, *leftovers)
    network = network_name(target)
    if runtime.require_free_network(engine, network, project_id(settings)):
        engine.run([settings.docker, "network", "rm", network], hide=True)


def _watch(
    crew: list[Worker], processes: list, *, stopping: Callable[[], bool]
) -> UserError | None:
    """Show each worker's output under its name until the chief has ended; None, or why the
    training failed.

    A worker that fails (the chief included) ends the training at once; once a signal has asked
    every worker to stop (`stopping`), each gets the time to clean up that `docker stop` gives it.
    """
    ended: queue.Queue[tuple[int, int]] = queue.Queue()
    width = max(len(worker.container) for worker in crew)
    tails = [deque(maxlen=TAIL_LINES) for _ in crew]
    readers = [
        threading.Thread(target=_relay, args=(worker, process, width, tail, ended), daemon=True)
        for worker, process, tail in zip(crew, processes, tails, strict=True)
    ]
    for reader in readers:
        reader.start()
    pending = set(range(len(crew)))
    deadline = None  # once the chief has ended
    while pending:
        wait = 0.5 if deadline is None else deadline - time.monotonic()
        if wait <= 0:
            names = ", ".join(crew[index].container for index in sorted(pending))
            print(
                f"the chief has ended, and {names} still ran {GRACE_SECONDS} s later: stopped",
                file=sys.stderr,
            )
            return None
        try:
            index, status = ended.get(timeout=wait)
        except queue.Empty:
            continue
        pending.discard(index)
        if stopping():
            continue
        if status != 0 and deadline is None:
            reason = failure_reason(status, list(tails[index]))
            return UserError(
                f"{crew[index].label} failed with exit status {status}: {reason}",
                f"its whole output is above, under '{crew[index].container} |'; "
                "the other workers were stopped and removed",
            )
        if status != 0:
            print(
                f"warning: {crew[index].label} ended with exit status {status} after the chief: "
                f"{failure_reason(status, list(tails[index]))}",
                file=sys.stderr,
            )
        if index == 0:
            deadline = time.monotonic() + GRACE_SECONDS
    return None


def _relay(worker: Worker, process, width: int, tail: deque, ended: queue.Queue) -> None:
    """Print the worker's lines under its name, as compose does; then say how it ended."""
    for line in process.stdout:
        tail.append(line.rstrip())
        print(f"{worker.container:<{width}} | {line.rstrip()}", flush=True)
    ended.put((worker.index, process.wait()))


def failure_reason(status: int, lines: list[str]) -> str:
    """Why a worker ended, in one line: the signal that killed it, else the exception it died of,
    else its last error line, else its last line."""
    if status in _SIGNAL_REASONS:
        return _SIGNAL_REASONS[status]
    exception = exception_line(lines)
    lines = [line.strip() for line in lines if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error")]
    # A program that says `error: ...` last has said why: a traceback before it was another's
    # (a library logging an exception it recovered from).
    if exception is not None and not (errors and errors[-1] == lines[-1]):
        return exception
    return _shortened((errors or lines or ["no output"])[-1])


def exception_line(lines: list[str]) -> str | None:
    """The exception of the last Python traceback in `lines` (`ValueError: ...`), None without one.

    A message of several lines (a tensor dump inside it) is its first line and its last, joined by
    an ellipsis; the log lines that TensorFlow's C++ side prints after it are left out.
    """
    starts = [number for number, line in enumerate(lines) if line.strip() == _TRACEBACK]
    if not starts:
        return None
    after = lines[starts[-1] + 1 :]
    # The frames are indented; the first line that is not is the exception's.
    header = next(
        (n for n, line in enumerate(after) if line.strip() and not line[0].isspace()), None
    )
    if header is None:
        return None
    message = [
        line.strip() for line in after[header:] if line.strip() and not _LOG_LINE.match(line)
    ]
    if len(message) == 1:
        return _shortened(message[0])
    return _shortened(f"{message[0]} … {message[-1]}")


def _shortened(line: str) -> str:
    return line if len(line) <= _MAX_REASON else f"{line[: _MAX_REASON - 1]}…"


def listening_ports(proc_net_tcp: str) -> set[int]:
    """The ports listened on, from the text of /proc/net/tcp and /proc/net/tcp6."""
    ports = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == _LISTEN and ":" in fields[1]:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def not_one_cluster(count: int) -> UserError:
    """What `invoke train` says when no worker ever opened its TensorFlow port."""
    return UserError(
        f"the {count} workers never formed one cluster: none opened its TensorFlow port "
        f"{WORKER_PORT}, so each trained alone (the command never read TF_CONFIG)",
        "train with the template's distributed_training (README: Beyond one machine), "
        "or with --workers 1",
    )


class PortWatch:
    """Asks the running workers, until one says yes, whether they listen on WORKER_PORT: the sign
    that their TensorFlow servers started, as a MultiWorkerMirroredStrategy's do."""

    def __init__(self, engine: Engine, crew: list[Worker]) -> None:
        self.engine = engine
        self.crew = crew
        self.seen = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)

    def __enter__(self) -> PortWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def listens(self, worker: Worker) -> bool:
        files = ["/proc/net/tcp", "/proc/net/tcp6"]
        # stdout even on a failure: /proc/net/tcp6 is missing where IPv6 is off.
        try:
            answer = self.engine.query(
                [self.engine.docker, "exec", worker.container, "cat", *files], timeout=10
            )
        except UserError:  # no answer in time: not seen this time
            return False
        return WORKER_PORT in listening_ports(answer.stdout)

    def _probe(self) -> None:
        while self.crew and not self._done.is_set():
            if any(self.listens(worker) for worker in self.crew):
                self.seen.set()
                return
            self._done.wait(PROBE_SECONDS)
