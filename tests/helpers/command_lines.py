"""What the engine-free tests of the tasks share: settings of a throwaway project, its targets, the
values of a command line's flags, and invoke's context under `--dry`."""

from pathlib import Path

from invoke import Config, MockContext, Result

from devkit import containers, locking, runtime, workbench
from devkit.engine import Dialect, Engine
from devkit.settings import Settings, load_settings
from devkit.targets import Target, resolve_target


def settings_of(project: Path, image_name: str = "tf", **environ: str) -> Settings:
    """The settings of `project`, as these keys in the environment (and nothing of this
    machine's) make them."""
    return load_settings(project, environ={"IMAGE_NAME": image_name, **environ})


def target_of(
    settings: Settings, gpu: bool = False, platform: str | None = None, host: str = "linux/amd64"
) -> Target:
    """The image a task is about, on an x86-64 host unless told otherwise."""
    return resolve_target(settings, gpu=gpu, platform_flag=platform, host=host)


def value_after(argv: list[str], flag: str) -> list[str]:
    """The values that follow each occurrence of `flag`."""
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def dry_context() -> MockContext:
    """invoke's context as `invoke --dry` makes it: every action is only recorded."""
    return MockContext(config=Config(overrides={"run": {"dry": True}}), run=Result())


def commands_run(context: MockContext) -> list[str]:
    """The command lines a dry context was given, in order."""
    return [call.args[0] for call in context.run.call_args_list]


def argv_of(spec, docker: str = "docker", **options) -> list[str]:
    """The `docker run` of a container spec, as `runtime.start` runs it."""
    return runtime.command(Engine(docker), spec, **options)


def run_command(settings, target, *, env_file=None, detach=False, tty=False, **spec):
    """`invoke run`'s `docker run`: the server's or a one-off's."""
    return argv_of(
        containers.run_spec(settings, target, **spec),
        settings.docker,
        detach=detach,
        tty=tty,
        env_file=env_file,
    )


def shell_command(settings, target, *, name, user, tty):
    spec = containers.shell_spec(settings, target, name=name, user=user)
    return argv_of(spec, settings.docker, interactive=True, tty=tty)


def container_test_command(settings, target, **spec):
    return argv_of(containers.container_test_spec(settings, target, **spec), settings.docker)


def lock_command(settings, lock, **spec):
    return argv_of(locking.lock_spec(settings, lock, **spec), settings.docker)


def tensorboard_command(settings, target, *, user, detach=False):
    spec = workbench.tensorboard_spec(settings, target, user=user)
    return argv_of(spec, settings.docker, detach=detach)


def notebook_command(settings, target, *, user, detach=False, token="t0ken"):  # noqa: S107
    spec = workbench.notebook_spec(settings, target, user=user, token=token)
    return argv_of(spec, settings.docker, detach=detach)


def manifest_commands(settings, name, images, *, insecure, digest_file="/tmp/push-1/digest"):
    return Dialect(settings.docker).manifest_commands(
        name, images, insecure=insecure, digest_file=digest_file
    )
