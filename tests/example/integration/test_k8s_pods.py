"""The training Job that `invoke k8s` renders, its pods started as containers as Kubernetes would start them.

No cluster can start here, so the test plays the kubelet for one Indexed Job: a container per
completion index on one network of its own, with the pod's environment plus the JOB_COMPLETION_INDEX
Kubernetes adds, the hostname `<job>-<index>` reachable as `<job>-<index>.<service>` (the headless
Service's subdomain), the pod's user, a read-only root with an empty /tmp, no capabilities, the CPU and
memory limits, and a folder where the data volume is mounted. Two such pods train one model together.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import yaml

from helpers.engine import DOCKER, docker
from helpers.project import PROJECT_DIR

REGISTRY = "registry.example.com/team"
WORKERS = 2
# A dead worker fails the other within a minute instead of holding the suite for the manifest's 300 s.
COLLECTIVE_TIMEOUT = "60"
TRAINING_TIMEOUT = 600


def _cpus(quantity: str) -> str:
    """A Kubernetes CPU quantity (`2`, `500m`) as docker's --cpus."""
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else quantity


def _memory(quantity: str) -> str:
    """A Kubernetes memory quantity (`4Gi`, `512Mi`) as docker's --memory."""
    return quantity[:-2] + quantity[-2].lower() if quantity.endswith(("Gi", "Mi")) else quantity


def pod_command(
    job: dict, index: int, *, image: str, name: str, network: str, data: str
) -> list[str]:
    """`docker run` of the Job's pod number `index`, from its manifest."""
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    security, limits = container["securityContext"], container["resources"]["limits"]
    hostname = f"{job['metadata']['name']}-{index}"
    argv = ["run", "--detach", "--name", name, "--network", network]
    argv += ["--hostname", hostname, "--network-alias", f"{hostname}.{pod['subdomain']}"]
    argv += [
        "--user",
        f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}",
    ]
    assert security == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    argv += ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    argv += ["--cpus", _cpus(limits["cpu"]), "--memory", _memory(limits["memory"])]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            argv += ["--tmpfs", mount["mountPath"]]
        else:
            assert "persistentVolumeClaim" in volume
            argv += ["--mount", f"type=bind,source={data},target={mount['mountPath']}"]
    env = {variable["name"]: variable["value"] for variable in container["env"]}
    env.update(JOB_COMPLETION_INDEX=str(index), TRAIN_COLLECTIVE_TIMEOUT=COLLECTIVE_TIMEOUT)
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, image, *container["command"]]


def wait(name: str) -> str:
    """The container's exit status once it ends, or why there is none."""
    try:
        result = subprocess.run(
            [DOCKER, "wait", name],
            capture_output=True,
            text=True,
            timeout=TRAINING_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"nothing: still running after {TRAINING_TIMEOUT} s"
    return result.stdout.strip()


def test_two_pods_of_the_rendered_job_train_one_model_together(invoke, cpu_image, tmp_path):
    rendered = invoke("k8s", "--workers", str(WORKERS), env={"REGISTRY": REGISTRY})
    assert rendered.returncode == 0, rendered.stderr
    job = next(
        document for document in yaml.safe_load_all(rendered.stdout) if document["kind"] == "Job"
    )
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{REGISTRY}/{cpu_image}", (
        "the image invoke push publishes; here, the same image built locally"
    )
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == WORKERS

    # The data volume: the dataset in it, writable by the pods' user (fsGroup does that on a cluster).
    data = tmp_path / "volume"
    data.mkdir()
    shutil.copy(PROJECT_DIR / "data" / "iris.csv", data)
    data.chmod(0o777)
    suffix = uuid.uuid4().hex[:8]
    network = f"{invoke.image_name}-k8s-{suffix}"
    names = [f"{job['metadata']['name']}-{index}-{suffix}" for index in range(WORKERS)]
    docker("network", "create", network)
    try:
        for index, name in enumerate(names):
            docker(
                *pod_command(
                    job, index, image=cpu_image, name=name, network=network, data=str(data)
                )
            )
        statuses = [wait(name) for name in names]
        logs = [docker("logs", name, check=False) for name in names]
        report = "\n".join(
            f"--- {name} exited {status}\n{log.stdout}{log.stderr[-3000:]}"
            for name, status, log in zip(names, statuses, logs, strict=True)
        )
        assert statuses == ["0"] * WORKERS, report
    finally:
        docker("rm", "--force", *names, check=False)
        docker("network", "rm", network, check=False)
    assert docker("ps", "--all", "--quiet", "--filter", f"name={suffix}").stdout == "", (
        "no container is left"
    )
    assert docker("network", "ls", "--quiet", "--filter", f"name={network}").stdout == "", (
        "no network is left"
    )

    for log in logs:
        assert (
            f"MultiWorkerMirroredStrategy over {WORKERS} workers, {WORKERS} replicas in sync"
            in log.stderr
        ), report
    assert logs[0].stdout.startswith("trained iris version 1: "), report
    assert ": done, held-out accuracy " in logs[1].stdout, report
    assert sorted(os.listdir(data / "models" / "iris")) == ["1"], "exactly one version, the chief's"
    metrics = json.loads((data / "models" / "iris" / "1" / "metrics.json").read_text())
    assert (metrics["workers"], metrics["replicas"]) == (WORKERS, WORKERS)
    assert metrics["accuracy"] >= 0.9, metrics
    assert sorted(os.listdir(data / "logs" / "iris")) == ["1"], "one TensorBoard run, the chief's"
