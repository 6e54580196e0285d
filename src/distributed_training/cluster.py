"""Where this training process stands among its peers, read from its environment alone.

The same code runs on a laptop, in `invoke train`'s containers, in a Kubernetes Indexed Job, on
Vertex AI and under Ray. In order:

1. `TF_CONFIG`, as Vertex AI custom jobs, Ray Train's TensorflowTrainer and Kubeflow set it, is used
   as it is (chief and worker tasks; MultiWorkerMirroredStrategy has no parameter servers).
2. `TRAIN_WORKERS`, as a pod of the training Job (deploy/k8s/) and every container of
   `invoke train` have it, together with `JOB_COMPLETION_INDEX` (set by Kubernetes for an Indexed
   Job), `TRAIN_JOB`, `TRAIN_SERVICE` and `TRAIN_PORT`: worker i listens on
   `<TRAIN_JOB>-<i>.<TRAIN_SERVICE>:<TRAIN_PORT>`, the hostname Kubernetes gives the Job's pod i in
   the subdomain of a headless Service.
3. Neither: one process.

`TRAIN_COLLECTIVE_TIMEOUT` (seconds, default 300) bounds each exchange between workers, so that a
worker that died fails the others instead of leaving them waiting for ever. Worker 0 (or the
`chief` task) is the chief. Nothing here imports TensorFlow: the host's tests check it, and a bad
value is one line before TensorFlow takes seconds to import.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_COLLECTIVE_TIMEOUT = 300
# The keys a pod of the training Job has; JOB_COMPLETION_INDEX is Kubernetes' own.
POD_KEYS = ("JOB_COMPLETION_INDEX", "TRAIN_WORKERS", "TRAIN_JOB", "TRAIN_SERVICE", "TRAIN_PORT")
# RFC 1123 label: what Kubernetes accepts as a Job or Service name that becomes part of a hostname.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_ROLES = ("chief", "worker")
_DIGITS = re.compile(r"[0-9]+")


class ClusterError(Exception):
    """The environment describes no valid cluster; the message names the variable and what is
    wrong."""


@dataclass(frozen=True)
class Cluster:
    """This process's place: `workers` processes train together; this one is number `index`, 0 the
    chief."""

    workers: int = 1
    index: int = 0
    # TF_CONFIG's "cluster" and "task", when there are several workers; None for one process.
    spec: dict | None = None
    task: dict | None = None
    collective_timeout: int = DEFAULT_COLLECTIVE_TIMEOUT

    @property
    def chief(self) -> bool:
        return self.index == 0

    @property
    def chief_address(self) -> str | None:
        """host:port of the chief's TensorFlow server, where there are several workers."""
        if self.spec is None:
            return None
        return (self.spec.get("chief") or self.spec["worker"])[0]

    def describe(self) -> str:
        if self.workers == 1:
            return "one worker"
        role = "the chief" if self.chief else "not the chief"
        return f"worker {self.index} of {self.workers} ({role})"


def pod_tf_config(*, index: int, workers: int, job: str, service: str, port: int) -> dict:
    """TF_CONFIG for pod `index` of an Indexed Job whose pods are `<job>-<i>.<service>`."""
    return {
        "cluster": {"worker": [f"{job}-{number}.{service}:{port}" for number in range(workers)]},
        "task": {"type": "worker", "index": index},
    }


def from_environment(environ: Mapping[str, str]) -> Cluster:
    """The cluster that TF_CONFIG, or else the Job's variables, describe; one process when neither
    is set."""
    timeout = _collective_timeout(environ)
    if environ.get("TF_CONFIG", "").strip():
        return _from_tf_config(environ["TF_CONFIG"], timeout)
    if "TRAIN_WORKERS" not in environ:
        return Cluster(collective_timeout=timeout)
    missing = [key for key in POD_KEYS if not environ.get(key, "").strip()]
    if missing:
        raise ClusterError(
            f"TRAIN_WORKERS is set, so a worker of a training Job needs {', '.join(missing)} too"
        )
    workers = _whole_number(environ, "TRAIN_WORKERS", minimum=1)
    index = _whole_number(environ, "JOB_COMPLETION_INDEX", minimum=0)
    if index >= workers:
        raise ClusterError(f"JOB_COMPLETION_INDEX={index} is not below TRAIN_WORKERS={workers}")
    port = _whole_number(environ, "TRAIN_PORT", minimum=1)
    if port > 65535:
        raise ClusterError(f"TRAIN_PORT={port} is not a port number (1-65535)")
    job, service = environ["TRAIN_JOB"].strip(), environ["TRAIN_SERVICE"].strip()
    for key, name in (("TRAIN_JOB", f"{job}-{workers - 1}"), ("TRAIN_SERVICE", service)):
        if not _LABEL.fullmatch(name):
            raise ClusterError(
                f"{key}={environ[key]!r} does not make a hostname {name!r}: "
                "lower case letters, digits and -, at most 63"
            )
    if workers == 1:
        return Cluster(collective_timeout=timeout)
    config = pod_tf_config(index=index, workers=workers, job=job, service=service, port=port)
    return Cluster(
        workers=workers,
        index=index,
        spec=config["cluster"],
        task=config["task"],
        collective_timeout=timeout,
    )


def _whole_number(environ: Mapping[str, str], key: str, *, minimum: int) -> int:
    value = environ[key].strip()
    # ASCII digits only: str.isdigit() also takes `²` (int() fails) and `٣` (int() makes it 3).
    if not _DIGITS.fullmatch(value) or int(value) < minimum:
        raise ClusterError(f"{key}={environ[key]!r} is not a whole number of at least {minimum}")
    return int(value)


def _collective_timeout(environ: Mapping[str, str]) -> int:
    if not environ.get("TRAIN_COLLECTIVE_TIMEOUT", "").strip():
        return DEFAULT_COLLECTIVE_TIMEOUT
    return _whole_number(environ, "TRAIN_COLLECTIVE_TIMEOUT", minimum=1)


def _from_tf_config(text: str, timeout: int) -> Cluster:
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ClusterError(f"TF_CONFIG is not JSON: {error}") from None
    spec = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(spec, dict) or not isinstance(task, dict):
        raise ClusterError(
            'TF_CONFIG must be an object with "cluster" and "task", as Vertex AI and Ray set it'
        )
    for role, addresses in spec.items():
        if role not in _ROLES:
            raise ClusterError(
                f"TF_CONFIG has {role!r} tasks; "
                "MultiWorkerMirroredStrategy runs only chief and worker tasks"
            )
        if not isinstance(addresses, list) or not all(
            isinstance(address, str) and ":" in address for address in addresses
        ):
            raise ClusterError(f'TF_CONFIG "cluster"."{role}" must be a list of "host:port"')
    if len(spec.get("chief", [])) > 1 or not spec.get("chief") and not spec.get("worker"):
        raise ClusterError("TF_CONFIG must name at most one chief, and a chief or a worker")
    role, number = task.get("type"), task.get("index", 0)
    if (
        role not in spec
        or isinstance(number, bool)
        or not isinstance(number, int)
        or not 0 <= number < len(spec[role])
    ):
        raise ClusterError(
            f'TF_CONFIG "task" {json.dumps(task)} is not one of the tasks in its "cluster"'
        )
    chiefs = len(spec.get("chief", []))
    workers = chiefs + len(spec.get("worker", []))
    if workers == 1:
        return Cluster(collective_timeout=timeout)
    index = number if role == "chief" else chiefs + number
    return Cluster(
        workers=workers,
        index=index,
        spec=spec,
        task={"type": role, "index": number},
        collective_timeout=timeout,
    )


def wait_for_chief(cluster: Cluster) -> None:
    """On a worker other than the chief: stay until the chief's process has ended (at most the
    collective timeout).

    TensorFlow's collectives fetch from the sender: a worker that left straight after the last
    exchange could leave the chief without the last piece it still had to fetch.
    """
    if cluster.chief or cluster.chief_address is None:
        return
    host, _, port = cluster.chief_address.rpartition(":")
    deadline = time.monotonic() + cluster.collective_timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
        except OSError:
            return  # refused, or the name is gone with its container or pod: the chief has ended
        time.sleep(0.2)
