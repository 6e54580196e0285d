"""Build and run the project's TensorFlow images. `invoke --list` shows the tasks, `invoke --help
TASK` one.

Settings come from `.env` (see `.env.example`); invoke's own `--dry` prints the commands without
running them, e.g. `invoke --dry build`. Each task is a few lines over `devkit/`, whose
modules are named for what they do: building, locking, containers, publishing, doctor.
"""

import os
import sys
from pathlib import Path

from invoke import Exit, task

from devkit import (
    building,
    capabilities,
    containers,
    distributed,
    locking,
    publishing,
    sboms,
    workbench,
)
from devkit import doctor as checks
from devkit.engine import Engine
from devkit.errors import UserError, one_line_errors
from devkit.host import container_ids
from devkit.locks import HOST_LOCKS, select_locks
from devkit.platforms import host_platform, normalize_platform
from devkit.settings import load_settings
from devkit.targets import every_target, notebook_target, open_target, tensorboard_target

PROJECT_DIR = Path(__file__).resolve().parent


def _help(name: str, text: str) -> str:
    """The help of a flag of the capability `name` (devkit/capabilities.py): `text` where the
    project has it, else that it was generated without it."""
    return capabilities.flag_help(PROJECT_DIR, name, text)


def _with(name: str, text: str) -> str:
    """`text` where the project has the capability `name`, else nothing."""
    return text if capabilities.present(PROJECT_DIR, name) else ""


_HELP_GPU = _help(
    "gpu",
    "the GPU image (Dockerfile.gpu, tag <IMAGE_TAG>-gpu, linux/amd64) instead of the CPU image",
)
_HELP_GPU_RUN = _help(
    "gpu",
    "the GPU image (Dockerfile.gpu, tag <IMAGE_TAG>-gpu, linux/amd64) instead of the CPU image; "
    "needs the NVIDIA Container Toolkit",
)
_HELP_PLATFORM = "linux/amd64 or linux/arm64; default: PLATFORM from .env, else this host's own"


@task(
    iterable=["build_arg"],
    help={
        "gpu": _HELP_GPU,
        "platform": _HELP_PLATFORM + _with("gpu", " (the GPU image: linux/amd64 only)"),
        "no-cache": "rebuild every layer (the pip download cache is kept)",
        "build-arg": "NAME=VALUE for the Dockerfile, repeatable: "
        "KEEP_TF_HEADERS=1 keeps TensorFlow's C++ headers, "
        "STRIP_TF_LIBRARIES=0 its symbol tables; not what invoke build sets itself (BASE_IMAGE, "
        "CONTAINER_PORT, the labels) or BuildKit does (TARGETARCH and its other platform "
        "arguments: use --platform)",
        "export-cache": "also send the layer cache to BUILD_CACHE (CI on the main branch, say), "
        "which every build takes it from",
    },
)
@one_line_errors
def build(c, gpu=False, platform=None, no_cache=False, build_arg=None, export_cache=False):
    """Build the image from its Dockerfile with BuildKit, for the platform it runs on.

    With BUILD_CACHE set (a registry repository), layers that the registry holds are taken from it
    instead of being rebuilt.
    """
    engine, settings, target = open_target(c, PROJECT_DIR, gpu=gpu, platform=platform)
    building.build(
        engine,
        settings,
        target,
        no_cache=no_cache,
        build_args=build_arg or [],
        export_cache=export_cache,
    )


@task(
    iterable=["publish"],
    help={
        "gpu": _HELP_GPU_RUN,
        "platform": _HELP_PLATFORM,
        "detach": "run in the background and say how to follow it: "
        "`invoke logs --follow`, `invoke stop`",
        "cmd": 'a one-off command instead of the server, e.g. --cmd "python -m app.train": '
        "a container of its own (<IMAGE_NAME>-run-<random>, beside a running server), "
        "no port published unless --publish asks",
        "publish": "with --cmd, publish HOST_PORT (to the app's CONTAINER_PORT) "
        "or HOST_PORT:CONTAINER_PORT on HOST_ADDRESS; repeatable",
        "read-only": "a read-only root filesystem: "
        "only DATA_DIR and an in-memory /tmp are writable",
        "dev": "mount src/ read-only over the image's /app/src: edit, then restart to run the edit",
    },
)
@one_line_errors
def run(
    c, gpu=False, platform=None, detach=False, cmd=None, publish=None, read_only=False, dev=False
):
    """Serve the image on HOST_PORT, or run a one-off --cmd: DATA_DIR at /app/data, .env's app keys.

    Ctrl-C stops and removes the container; so do SIGTERM, and SIGINT where no terminal passes
    Ctrl-C on. It runs as you (as root only where you and DATA_DIR's owner both are), without Linux
    capabilities and with no-new-privileges. Only the image `invoke build` made runs, never one
    pulled. Where src/ or the image's lock changed since that build, a line says so and the run
    goes on with the image as built (no build: a lock's change takes minutes); `invoke build` or
    --dev brings an edit of src/ in.
    """
    engine, settings, target = open_target(c, PROJECT_DIR, gpu=gpu, platform=platform)
    tty = sys.stdin.isatty() and not detach
    containers.run(
        engine,
        settings,
        target,
        detach=detach,
        tty=tty,
        read_only=read_only,
        cmd=cmd,
        publish=tuple(publish or ()),
        dev=dev,
    )


@task(
    help={
        "gpu": _help(
            "gpu",
            "stop the GPU image's container"
            + _with("notebook", " (with --notebook: the GPU notebook's)"),
        ),
        "platform": _HELP_PLATFORM,
        "tensorboard": "stop what `invoke tensorboard --detach` started instead",
        "notebook": _help("notebook", "stop what `invoke notebook --detach` started instead"),
    }
)
@one_line_errors
def stop(c, gpu=False, platform=None, tensorboard=False, notebook=False):
    """Stop and remove what `invoke run --detach` started (or, by its flag, another task's)."""
    if tensorboard and gpu:
        raise UserError(
            "--tensorboard with --gpu: TensorBoard runs from the CPU image; "
            "stop it alone with `invoke stop --tensorboard`"
        )
    if notebook:
        capabilities.require(PROJECT_DIR, "notebook")
    engine, settings, target = open_target(c, PROJECT_DIR, gpu=gpu, platform=platform)
    chosen = [tensorboard_target(target)] if tensorboard else []
    chosen += [notebook_target(target)] if notebook else []
    for each in chosen or [target]:
        containers.stop(engine, settings, each)


@task(help={"detach": "run in the background; `invoke stop --tensorboard` stops it"})
@one_line_errors
def tensorboard(c, detach=False):
    """Serve TensorBoard over the training logs in DATA_DIR/logs on TENSORBOARD_PORT.

    Ctrl-C stops and removes it.
    It runs from the built CPU image (the CPU lock has TensorBoard), as `invoke run` runs the app:
    as you, without Linux capabilities, on HOST_ADDRESS.
    """
    workbench.tensorboard(*open_target(c, PROJECT_DIR), detach=detach)


@task(
    help={
        "detach": "run in the background; `invoke stop --notebook` stops it",
        "gpu": _help(
            "gpu", "JupyterLab on the GPU image's TensorFlow; needs the NVIDIA Container Toolkit"
        ),
    }
)
@one_line_errors
def notebook(c, detach=False, gpu=False):
    """Serve JupyterLab on NOTEBOOK_PORT with the image's TensorFlow, src/, notebooks/ and DATA_DIR.

    Builds the image's `notebook` stage first where it changed (JupyterLab never enters the image
    `invoke build` makes). A new token guards each start; the URL printed here carries it.
    Ctrl-C stops and removes the container.
    """
    workbench.notebook(*open_target(c, PROJECT_DIR, gpu=gpu), detach=detach)


@task(
    help={
        "gpu": _help("gpu", "the GPU image's container"),
        "platform": _HELP_PLATFORM,
        "follow": "keep showing new output until Ctrl-C",
    }
)
@one_line_errors
def logs(c, gpu=False, platform=None, follow=False):
    """Show the output of the container that `invoke run --detach` started."""
    containers.logs(*open_target(c, PROJECT_DIR, gpu=gpu, platform=platform), follow=follow)


@task(help={"gpu": _HELP_GPU_RUN, "platform": _HELP_PLATFORM})
@one_line_errors
def container_test(c, gpu=False, platform=None):
    """Build the image (seconds when nothing changed), then run the container test in it.

    The container test is tests/container, with the app's own in-container tests.
    pytest is mounted into the container for the run, never installed in the image.
    """
    engine, settings, target = open_target(c, PROJECT_DIR, gpu=gpu, platform=platform)
    building.build(engine, settings, target)
    containers.container_test(engine, settings, target, python=sys.executable)


@task(help={"gpu": _HELP_GPU, "platform": _HELP_PLATFORM})
@one_line_errors
def shell(c, gpu=False, platform=None):
    """Open a bash shell in the image, with DATA_DIR at /app/data and the app's .env keys."""
    result = containers.shell(
        *open_target(c, PROJECT_DIR, gpu=gpu, platform=platform), tty=sys.stdin.isatty()
    )
    if result.failed:
        # The shell's own exit status (or docker's, when it could not start), for scripts that
        # pipe into it.
        raise Exit(code=result.exited)


@task(
    iterable=["platform"],
    help={
        "gpu": _help("gpu", "push the GPU image, as <REGISTRY>/<IMAGE_NAME>:<IMAGE_TAG>-gpu"),
        "platform": "a CPU image to push, repeatable: "
        "`--platform linux/amd64 --platform linux/arm64` publishes both under one "
        "multi-architecture tag; default: PLATFORM from .env, else this host's own",
    },
)
@one_line_errors
def push(c, gpu=False, platform=None):
    """Push the built images to REGISTRY: the CPU ones under one multi-architecture tag.

    Each CPU image also goes out as <IMAGE_TAG>-<arch>, which the multi-architecture tag lists: a
    Mac and a Linux server pull the same name and each gets its own. Run `docker login` first where
    the registry asks for credentials. Records the digest of what went out in .push-digests.json.
    """
    settings = load_settings(PROJECT_DIR)
    publishing.push(Engine(settings.docker, c), settings, gpu=gpu, platforms=platform or [])


@task(
    help={
        "gpu": _help("gpu", "the GPU image's SBOM (read on any machine: it needs no GPU)"),
        "platform": _HELP_PLATFORM,
        "output": "the file to write; default: sbom/<IMAGE_NAME>-<IMAGE_TAG>-<ARCH>.cdx.json in "
        "the project (git ignores sbom/), ARCH amd64 or arm64" + _with("gpu", ", or gpu"),
    }
)
@one_line_errors
def sbom(c, gpu=False, platform=None, output=None):
    """Write the built image's CycloneDX SBOM to the host as JSON, and print the file's path.

    The build made it: every package of the image's lock with its version, purl and hashes, and the
    base image (by digest where BASE_IMAGE names one; a line says when it is by tag alone). Only the
    image `invoke build` made is read, never one pulled.
    """
    engine, settings, target = open_target(c, PROJECT_DIR, gpu=gpu, platform=platform)
    path = sboms.write(engine, settings, target, Path(output) if output else None)
    if path is not None:
        print(path)


@task(
    help={
        "all": "also the pip download cache of `invoke lock` (<IMAGE_NAME>-lock-cache) "
        "and the engine's unused build cache: `docker builder prune`, which is the whole engine's, "
        "every project's, so every next build downloads again"
    }
)
@one_line_errors
def clean(c, all_=False):
    """Remove this project's containers, its images under IMAGE_TAG and its untagged ones.

    The images under every tag the tasks give them. Only what carries this project's
    label. Never DATA_DIR, the locks or what you pushed; without --all, neither the caches that
    make the next lock and build fast. Says what it removed and what stays.
    """
    settings = load_settings(PROJECT_DIR)
    engine = Engine(settings.docker, c)
    targets = every_target(settings, host=engine.native_platform())
    targets = [*targets, *workbench.tool_targets(targets)]
    containers.clean(
        engine, settings, targets, cache_volume=locking.cache_volume(settings), everything=all_
    )


@task(
    help={
        "gpu": _help(
            "gpu",
            "also require what the GPU image needs to run: "
            "the NVIDIA runtime, an x86-64 host, more disk",
        )
    }
)
@one_line_errors
def doctor(c, gpu=False):
    """Check this machine for `invoke build` and `invoke run`: a line per check, a fix per fault.

    Exits 1 when something they need is broken; warnings do not count.
    """
    if gpu:
        capabilities.require(PROJECT_DIR, "gpu")
    machine = checks.Machine(
        project_dir=PROJECT_DIR,
        environ=os.environ,
        host=host_platform(),
        container_ids=container_ids,
    )
    broken = checks.report(machine, gpu=gpu)
    if broken:
        raise UserError(
            f"{broken} check{'s' * (broken > 1)} failed",
            "fix what the lines marked FAIL say, then run `invoke doctor` again",
        )


@task(
    iterable=["upgrade_package"],
    help={
        "gpu": _help("gpu", "only the GPU lock (requirements-gpu.txt)"),
        "platform": "only the CPU lock of this platform: linux/amd64 (requirements.txt) "
        "or linux/arm64 (requirements-arm64.txt)",
        "dev": "only the host tools' locks ("
        + ", ".join(each.output for each in HOST_LOCKS if (PROJECT_DIR / each.source).is_file())
        + "), compiled on this machine",
        "upgrade": "let every package move to its newest allowed version, and BASE_IMAGE to the "
        "digest its tag names now (default: keep the pins, add what is new)",
        "upgrade-package": "let this package move to its newest allowed version; "
        "repeat for more, or NAME==VERSION",
        "check": "change nothing; exit 1 naming every lock that no longer matches its .in files, "
        "and docker/locks/base-image.txt where it does not pin BASE_IMAGE",
    },
)
@one_line_errors
def lock(c, gpu=False, platform=None, dev=False, upgrade=False, upgrade_package=None, check=False):
    """Compile the .in files into hash-pinned locks, each inside BASE_IMAGE for its platform.

    Only locks whose inputs changed are compiled, unless --upgrade or --upgrade-package asks for
    more. Every chosen lock is compiled, and checked to pin every requirement with a hash, before
    any is replaced: a failed compile or Ctrl-C leaves every lock as it was. BASE_IMAGE's digest
    for each platform is recorded beside them (docker/locks/base-image.txt), and every build starts
    from it. Ends with what changed in each, and the locks it left out of date.
    """
    if gpu:
        capabilities.require(PROJECT_DIR, "gpu")
    chosen = select_locks(
        gpu=gpu, platform=normalize_platform(platform) if platform else None, dev=dev
    )
    # The locks of a capability the project was generated without (their .in files are absent).
    chosen = tuple(each for each in chosen if (PROJECT_DIR / each.source).is_file())
    settings = load_settings(PROJECT_DIR)
    if check:
        locking.check(PROJECT_DIR, chosen, settings.base_image)
        return
    engine = Engine(settings.docker, c)
    locking.lock(
        engine,
        settings,
        chosen,
        upgrade=upgrade,
        packages=tuple(upgrade_package or ()),
        python=sys.executable,
    )


@task(
    help={
        "workers": "training pods that train one model together (default 1)",
        "gpu": _help("gpu", "the GPU image (<IMAGE_TAG>-gpu) and a GPU (nvidia.com/gpu) per pod"),
        "kserve": "also a KServe InferenceService for the SavedModels on the data volume "
        "(needs KServe on the cluster)",
        "model": "the app's model for --kserve: its folder under models/ on the data volume "
        "(default: the one folder under DATA_DIR/models); the InferenceService is named after it",
        "namespace": "the namespace of every object (default: the kubectl context's)",
        "pull-secret": "an imagePullSecret for the pods, a private registry's (GHCR's packages "
        "start private)",
        "service-account": "the pods' serviceAccountName (default: the namespace's default)",
        "storage-class": "the data volume's storageClassName (default: the cluster's default)",
        "cmd": 'the training Job\'s command (default "python -m app.train")',
        "app-secret": "also print the Secret of .env's app keys, their values on standard output "
        "(by default the pods only name it)",
    }
)
@one_line_errors
def k8s(
    c,
    workers="1",
    gpu=False,
    kserve=False,
    model=None,
    namespace=None,
    pull_secret=None,
    service_account=None,
    storage_class=None,
    cmd=None,
    app_secret=False,
):
    """Print the Kubernetes manifests (deploy/k8s/) for the image `invoke push` publishes.

    `invoke k8s | kubectl apply -f -` applies them.
    An Indexed Job of N training workers and its headless Service, the data volume, the serving
    Deployment with its Service, autoscaler and disruption budget, the NetworkPolicies. The image
    is named by the digest `invoke push` recorded, else by its tag (one line on standard error says
    so). When .env holds app keys, the pods read them from a Secret, which --app-secret prints too.
    """
    from devkit import kubernetes  # PyYAML: imported for this task only

    if gpu:
        capabilities.require(PROJECT_DIR, "gpu")

    cluster = kubernetes.Cluster(namespace, pull_secret, service_account, storage_class)
    sys.stdout.write(
        kubernetes.manifests(
            load_settings(PROJECT_DIR),
            workers=workers,
            gpu=gpu,
            kserve=kserve,
            cluster=cluster,
            cmd=cmd,
            model=model,
            app_secret=app_secret,
        )
    )


@task(
    help={
        "workers": "containers that train one model together (default 1)",
        "gpu": _HELP_GPU_RUN,
        "platform": _HELP_PLATFORM,
        "cmd": 'the training command (default "python -m app.train")',
    }
)
@one_line_errors
def train(c, workers="1", gpu=False, platform=None, cmd=None):
    """Train in N containers of the built image, which find each other through TF_CONFIG.

    Worker 0, the chief, publishes the model version; each worker's output shows under its name.
    A worker that fails stops the others; Ctrl-C stops them all. Nothing is left: no container,
    no network.
    """
    distributed.train(
        *open_target(c, PROJECT_DIR, gpu=gpu, platform=platform), workers=workers, cmd=cmd
    )


# A capability the project was generated without (copier.yml) adds no task: `invoke --list` shows
# only what the project has; `copier update --trust --data NAME=true` brings a capability back.
for _name in capabilities.absent_tasks(PROJECT_DIR):
    del globals()[_name]
