"""The command lines, as the tasks would run them: build, run, shell, container test, lock, push, clean."""

import pytest

from devkit import locks, sources
from devkit.building import (
    TEMPLATE_BUILD_ARGS,
    build_command,
    parse_build_args,
    pip_config,
    public_source_url,
)
from devkit.containers import (
    parse_command,
    parse_publish,
    remove_containers_command,
    remove_images_command,
)
from devkit.engine import command_line
from devkit.errors import UserError
from devkit.host import run_as_user, user_ids
from devkit.locks import pinned_tensorflow
from devkit.publishing import (
    multi_arch_image,
    push_command,
    registry_image,
    tag_command,
    untag_command,
)
from devkit.runtime import START_LABEL
from devkit.settings import load_settings
from devkit.targets import every_target, notebook_target, project_label
from helpers.command_lines import (
    container_test_command,
    lock_command,
    manifest_commands,
    run_command,
    settings_of,
    shell_command,
    target_of,
    value_after,
)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "proj"
    folder.mkdir()
    return folder


def server_command(settings, target, **options):
    """`docker run` of the server, as `invoke run` without --cmd makes it."""
    return run_command(
        settings,
        target,
        name=target.container,
        ports=[(settings.host_port, settings.container_port)],
        **options,
    )


def test_build_classic_with_buildkit_env(project):
    settings = settings_of(
        project, BASE_IMAGE="mirror.example/python:3.11-slim", CONTAINER_PORT="9000"
    )
    argv = build_command(settings, target_of(settings), buildx=False)
    assert argv[:2] == ["docker", "build"]
    assert value_after(argv, "--platform") == ["linux/amd64"]
    assert value_after(argv, "--file") == [str(project / "Dockerfile")]
    assert value_after(argv, "--tag") == ["tf:latest"]
    assert "BASE_IMAGE=mirror.example/python:3.11-slim" in value_after(argv, "--build-arg")
    assert "CONTAINER_PORT=9000" in value_after(argv, "--build-arg")
    assert argv[-1] == str(project)
    assert "--no-cache" not in argv
    assert "--secret" not in argv


def test_build_with_buildx_loads_the_image(project):
    settings = settings_of(project)
    argv = build_command(settings, target_of(settings), buildx=True, no_cache=True)
    assert argv[:4] == ["docker", "buildx", "build", "--load"]
    assert "--no-cache" in argv


def test_build_gpu_and_arm64(project):
    settings = settings_of(project)
    gpu = build_command(settings, target_of(settings, gpu=True), buildx=False)
    assert value_after(gpu, "--file") == [str(project / "Dockerfile.gpu")]
    assert value_after(gpu, "--platform") == ["linux/amd64"]
    assert value_after(gpu, "--tag") == ["tf:latest-gpu"]
    arm = build_command(settings, target_of(settings, platform="linux/arm64"), buildx=False)
    assert value_after(arm, "--platform") == ["linux/arm64"]
    assert value_after(arm, "--tag") == ["tf:latest-arm64"]


def test_build_ca_bundle_is_a_secret_never_a_build_arg(project):
    (project / "corp ca.pem").write_text("pem")
    settings = settings_of(project, BUILD_CA_BUNDLE="corp ca.pem")
    argv = build_command(settings, target_of(settings), buildx=False)
    assert value_after(argv, "--secret") == [f"id=ca_bundle,src={project / 'corp ca.pem'}"]
    assert not any("ca.pem" in arg for arg in value_after(argv, "--build-arg"))


def test_a_secret_path_with_a_comma_is_quoted_as_csv(project, tmp_path):
    """BuildKit reads `--secret` as CSV: unquoted, `a,b` would end the src field at the comma."""
    (project / "corp,ca.pem").write_text("pem")
    settings = settings_of(project, BUILD_CA_BUNDLE="corp,ca.pem")
    pip_conf = tmp_path / 'a "b",c' / "pip.conf"
    argv = build_command(settings, target_of(settings), buildx=False, pip_config_file=pip_conf)
    quoted_pip_conf = str(pip_conf).replace('"', '""')
    assert value_after(argv, "--secret") == [
        f'id=ca_bundle,"src={project / "corp,ca.pem"}"',
        f'id=pip_conf,"src={quoted_pip_conf}"',
    ]


@pytest.mark.parametrize(
    ("remote", "label"),
    [
        # GitLab CI's remote carries the job's token.
        (
            "https://gitlab-ci-token:glcbt-s3cret@gitlab.example.com/team/app.git",
            "https://gitlab.example.com/team/app.git",
        ),
        ("https://s3cret@github.com/acme/app?token=s3cret#s3cret", "https://github.com/acme/app"),
        (
            "HTTP://User:s3cret@Git.Example.com:8443/acme/app",
            "http://git.example.com:8443/acme/app",
        ),
        ("git@github.com:acme/app.git", "https://github.com/acme/app.git"),
        ("github.com:acme/app", "https://github.com/acme/app"),
        # Anything else gives no label.
        ("ssh://git@github.com/acme/app.git", ""),
        ("/srv/git/app.git", ""),
        ("file:///srv/git/app.git", ""),
        (r"C:\src\app", ""),
        ("user:s3cret@host:path", ""),
        ("https://host:port/app", ""),
        ("", ""),
    ],
)
def test_the_source_label_keeps_scheme_host_and_path_only(remote, label):
    assert public_source_url(remote) == label


@pytest.mark.parametrize("name", sorted(TEMPLATE_BUILD_ARGS))
def test_a_build_arg_the_template_sets_itself_is_refused(name):
    with pytest.raises(
        UserError, match=rf"^--build-arg {name}: `invoke build` sets it itself, from "
    ):
        parse_build_args([f"{name}=mine"])


def test_build_labels_and_proxies_by_name(project):
    settings = settings_of(project)
    argv = build_command(
        settings,
        target_of(settings),
        buildx=False,
        labels={"REVISION": "abc"},
        proxies=("HTTPS_PROXY",),
    )
    args = value_after(argv, "--build-arg")
    assert "REVISION=abc" in args
    assert "HTTPS_PROXY" in args, (
        "a proxy goes by name, so its value (and any password in it) is not in the command line"
    )
    assert project_label(settings) in value_after(argv, "--label"), (
        "the image carries its project, for invoke clean"
    )


def test_the_project_label_names_the_folder_not_the_image(tmp_path):
    first, second = tmp_path / "a" / "proj", tmp_path / "b" / "proj"
    for folder in (first, second):
        folder.mkdir(parents=True)
    label = project_label(settings_of(first))
    assert label.startswith("org.tensorflow-template.project=")
    assert label == project_label(settings_of(first, IMAGE_TAG="v2")), "stable for one folder"
    assert label != project_label(settings_of(second)), (
        "two checkouts of the same name on one engine are two projects"
    )


def test_run_publishes_mounts_and_names(project):
    settings = settings_of(project, HOST_PORT="9001", CONTAINER_PORT="8080", DATA_DIR="my data")
    argv = server_command(settings, target_of(settings), user="1000:1000")
    assert argv[:4] == ["docker", "run", "--name", "tf"]
    for flag in ("--rm", "--init"):
        assert flag in argv
    assert value_after(argv, "--platform") == ["linux/amd64"]
    assert value_after(argv, "--publish") == ["127.0.0.1:9001:8080"]
    assert value_after(argv, "--mount") == [
        f"type=bind,source={project / 'my data'},target=/app/data"
    ]
    assert value_after(argv, "--user") == ["1000:1000"]
    assert "PORT=8080" in value_after(argv, "--env")
    assert "HOME=/tmp" in value_after(argv, "--env")
    assert argv[-1] == "tf:latest"
    assert "--gpus" not in argv
    assert "--tty" not in argv
    assert "--detach" not in argv


def test_run_detached_command_and_tty(project):
    settings = settings_of(project)
    detached = server_command(
        settings, target_of(settings), user=None, detach=True, command=["python", "-m", "app.train"]
    )
    assert "--detach" in detached
    assert "--user" not in detached
    assert detached[-4:] == ["tf:latest", "python", "-m", "app.train"]
    interactive = server_command(settings, target_of(settings), user=None, tty=True)
    assert "--interactive" in interactive
    assert "--tty" in interactive


def test_a_one_off_publishes_only_what_it_is_asked_to(project):
    settings = settings_of(project, HOST_ADDRESS="192.0.2.7")
    target = target_of(settings)
    one_off = run_command(
        settings,
        target,
        name="tf-run-1",
        user=None,
        ports=[],
        command=["python", "-m", "app.train"],
    )
    assert value_after(one_off, "--name") == ["tf-run-1"]
    assert "--publish" not in one_off
    asked = run_command(
        settings,
        target,
        name="tf-run-2",
        user=None,
        ports=parse_publish(["9000", "6006:6007"], 8888),
    )
    assert value_after(asked, "--publish") == ["192.0.2.7:9000:8888", "192.0.2.7:6006:6007"]


@pytest.mark.parametrize(
    "value", ["", "abc", "0", "70000", "9000:", ":9000", "9000:0", "²", "9000:8888:1"]
)
def test_a_bad_publish_is_one_clear_error(value):
    with pytest.raises(
        UserError,
        match=r"expected HOST_PORT or HOST_PORT:CONTAINER_PORT, each 1-65535; e\.g\. --publish 9000$",
    ):
        parse_publish([value], 8888)


def test_run_gpu_asks_for_all_gpus(project):
    settings = settings_of(project)
    argv = server_command(settings, target_of(settings, gpu=True), user=None)
    assert value_after(argv, "--gpus") == ["all"]
    assert value_after(argv, "--name") == ["tf-gpu"]
    assert argv[-1] == "tf:latest-gpu"


def test_app_keys_reach_the_container_in_an_env_file_only(project):
    settings = settings_of(project)
    argv = server_command(settings, target_of(settings), user=None, env_file=project / "app.env")
    assert value_after(argv, "--env-file") == [str(project / "app.env")]
    assert value_after(argv, "--env") == ["PORT=8888"], (
        "no app key by name: docker would read it from its own environment"
    )


def test_mount_of_a_path_with_a_comma_is_quoted(project):
    settings = settings_of(project, DATA_DIR="a,b")
    argv = server_command(settings, target_of(settings), user=None)
    assert value_after(argv, "--mount") == [
        f'type=bind,"source={project / "a,b"}",target=/app/data'
    ]


def test_shell_has_the_same_mounts_and_no_port(project):
    settings = settings_of(project)
    argv = shell_command(
        settings, target_of(settings, gpu=True), name="tf-gpu-shell-1", user="1000:1000", tty=True
    )
    assert argv[:7] == [
        "docker",
        "run",
        "--name",
        "tf-gpu-shell-1",
        "--interactive",
        "--tty",
        "--rm",
    ]
    assert value_after(argv, "--mount") == [f"type=bind,source={project / 'data'},target=/app/data"]
    assert value_after(argv, "--gpus") == ["all"]
    assert "--publish" not in argv
    assert argv[-2:] == ["tf:latest-gpu", "bash"]


def test_stop_removes_by_name(project):
    settings = settings_of(project)
    assert remove_containers_command(settings, [target_of(settings, gpu=True).container]) == [
        "docker",
        "container",
        "rm",
        "--force",
        "tf-gpu",
    ]


@pytest.mark.parametrize(
    ("system", "uid", "gid", "sudo_caller", "data_dir_owner", "expected"),
    [
        ("Linux", 1001, 1002, None, None, "1001:1002"),
        ("Linux", 1001, 1002, None, (1500, 1500), "1001:1002"),
        # A root caller: the user behind sudo, else DATA_DIR's owner; root only where both are root.
        ("Linux", 0, 0, (1001, 1002), (1500, 1500), "1001:1002"),
        ("Linux", 0, 0, None, (1500, 1501), "1500:1501"),
        ("Linux", 0, 0, None, (0, 0), "0:0"),
        ("Linux", 0, 0, None, None, "0:0"),
        ("Darwin", 501, 20, None, None, None),
        ("Windows", 0, 0, None, None, None),
    ],
)
def test_run_as_user(system, uid, gid, sudo_caller, data_dir_owner, expected):
    assert (
        run_as_user(system, uid, gid, sudo_caller=sudo_caller, data_dir_owner=data_dir_owner)
        == expected
    )


def test_user_ids_of_the_image_user_and_of_a_caller():
    assert user_ids(None) == (1000, 1000)
    assert user_ids("1001:1002") == (1001, 1002)


def test_every_container_drops_all_capabilities_and_new_privileges(project):
    settings = settings_of(project)
    target = target_of(settings)
    for argv in (
        server_command(settings, target, user=None),
        shell_command(settings, target, name="tf-shell-1", user=None, tty=False),
        container_test_command(
            settings, target, user=None, tools_dir=project, tensorflow_version="2.21.0"
        ),
    ):
        assert value_after(argv, "--cap-drop") == ["ALL"]
        assert value_after(argv, "--security-opt") == ["no-new-privileges"]
        project_labels = [label for label in value_after(argv, "--label") if "start" not in label]
        assert project_labels == [project_label(settings)], (
            "clean, stop and run act only on what carries it"
        )
        (start,) = [label for label in value_after(argv, "--label") if label not in project_labels]
        assert start.startswith(f"{START_LABEL}="), "the clean-up after a start knows its own"


def test_read_only_run_has_a_tmpfs_for_tmp(project):
    settings = settings_of(project)
    assert "--read-only" not in server_command(settings, target_of(settings), user=None)
    argv = server_command(settings, target_of(settings), user=None, read_only=True)
    assert "--read-only" in argv
    assert value_after(argv, "--tmpfs") == ["/tmp"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("python -m app.train", ["python", "-m", "app.train"]),
        ("""sh -c 'echo "a b"'""", ["sh", "-c", 'echo "a b"']),
    ],
)
def test_parse_command(value, words):
    assert parse_command(value) == words


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("python -c 'x", '--cmd "python -c \'x": No closing quotation; quote it as a shell would'),
        ("  ", "--cmd is empty; give a command"),
    ],
)
def test_parse_command_refuses_what_a_shell_would(value, message):
    with pytest.raises(UserError) as error:
        parse_command(value)
    assert str(error.value).startswith(message)


def test_lock_per_target(project):
    settings = settings_of(project)
    assert target_of(settings).lock.output == "requirements.txt"
    assert target_of(settings, platform="linux/arm64").lock.output == "requirements-arm64.txt"
    assert target_of(settings, gpu=True).lock.output == "requirements-gpu.txt"


@pytest.mark.parametrize(
    ("lock", "expected"),
    [
        (
            'tensorflow-cpu==2.21.0 ; platform_machine == "x86_64" \\\n    --hash=sha256:aa\n',
            "2.21.0",
        ),
        ("tensorflow[and-cuda]==2.20.1 \\\n", "2.20.1"),
        ("tensorflow==2.19.0\n", "2.19.0"),
        ("tensorflow-io==0.37.0\nkeras==3.0\n", "unknown"),
    ],
)
def test_pinned_tensorflow(lock, expected):
    assert pinned_tensorflow(lock) == expected


def test_command_line_quotes_for_the_shell():
    assert (
        command_line(["docker", "run", "--cmd", "python -c 'x'", "a b"])
        == "docker run --cmd 'python -c '\"'\"'x'\"'\"'' 'a b'"
    )


def test_container_test_mounts_tests_and_pytest_read_only(project):
    (project / "tests" / "container").mkdir(parents=True)
    settings = settings_of(project)
    argv = container_test_command(
        settings,
        target_of(settings, gpu=True),
        user="1000:1000",
        tools_dir=project / "tools",
        tensorflow_version="2.21.0",
    )
    assert value_after(argv, "--name") == ["tf-gpu-container-test"]
    mounts = value_after(argv, "--mount")
    assert f"type=bind,source={project / 'data'},target=/app/data" in mounts, (
        "the same data mount as `invoke run`"
    )
    assert f"type=bind,source={project / 'tests'},target=/app/tests,readonly" in mounts
    assert f"type=bind,source={project / 'tools'},target=/opt/test-tools,readonly" in mounts
    envs = value_after(argv, "--env")
    assert "PYTHONPATH=/app/src:/app/tests:/opt/test-tools" in envs
    assert "EXPECTED_TENSORFLOW_VERSION=2.21.0" in envs
    assert "EXPECTED_PLATFORM=linux/amd64" in envs
    assert "EXPECT_GPU=1" in envs
    assert value_after(argv, "--gpus") == ["all"]
    assert value_after(argv, "--user") == ["1000:1000"]
    image_at = argv.index("tf:latest-gpu")
    assert argv[image_at + 1 : image_at + 4] == ["python", "-m", "pytest"]
    # A line for each test that did not pass; the output of those that passed stays out (-rA printed
    # it all: 3,400 lines).
    assert "-ra" in argv[image_at:]
    assert not {"-rA", "-rP", "-rp"} & set(argv[image_at:])
    assert argv[-1] == "/app/tests/container", "the example's folder only where it exists"
    assert "--publish" not in argv


def test_container_test_runs_the_examples_tests_where_they_are(project):
    for folder in ("container", "example/container"):
        (project / "tests" / folder).mkdir(parents=True)
    settings = settings_of(project)
    argv = container_test_command(
        settings, target_of(settings), user=None, tools_dir=project, tensorflow_version="2.21.0"
    )
    assert argv[-2:] == ["/app/tests/container", "/app/tests/example/container"]


@pytest.mark.parametrize("command", ["run", "container test"])
def test_the_arm64_image_runs_as_arm64_under_its_own_tag_on_an_amd64_host(project, command):
    """Every run names its platform: without it, a plain `docker run` of a re-pointed tag runs emulated with only a warning."""
    settings = settings_of(project)
    target = target_of(settings, platform="linux/arm64", host="linux/amd64")
    if command == "run":
        argv = server_command(settings, target, user=None)
    else:
        argv = container_test_command(
            settings, target, user=None, tools_dir=project, tensorflow_version="2.21.0"
        )
        assert "EXPECTED_PLATFORM=linux/arm64" in value_after(argv, "--env")
    assert value_after(argv, "--platform") == ["linux/arm64"]
    assert "tf:latest-arm64" in argv
    assert value_after(argv, "--name")[0].startswith("tf-arm64")


def test_lock_command(tmp_path):
    (tmp_path / "ca.pem").write_text("pem")
    settings = load_settings(
        tmp_path, environ={"BASE_IMAGE": "mirror/python:3.11-slim", "BUILD_CA_BUNDLE": "ca.pem"}
    )
    argv = lock_command(
        settings,
        locks.CPU_ARM64,
        work_dir=tmp_path / "w",
        cache_volume="x-lock-cache",
        upgrade_packages=("numpy", "keras"),
        user="1001:1002",
    )
    assert argv[:3] == ["docker", "run", "--name"]
    assert value_after(argv, "--name")[0].startswith("x-lock-"), "a name of its own, to stop it by"
    assert {"--rm", "--init"} <= set(argv)
    assert "TINI_KILL_PROCESS_GROUP=1" in value_after(argv, "--env")
    assert value_after(argv, "--platform") == ["linux/arm64"]
    # The least privilege of every other container of the project, and the caller's uid.
    assert value_after(argv, "--cap-drop") == ["ALL"]
    assert value_after(argv, "--security-opt") == ["no-new-privileges"]
    assert value_after(argv, "--user") == ["1001:1002"]
    assert "HOME=/tmp" in value_after(argv, "--env")
    mounts = value_after(argv, "--mount")
    assert f"type=bind,source={tmp_path},target=/src,readonly" in mounts, (
        "the project is read-only to pip-compile"
    )
    # pip's and pip-tools' caches, on a mount point whose mode (1777) a new volume takes: any uid writes there.
    assert "type=volume,source=x-lock-cache,target=/var/tmp" in mounts
    assert "XDG_CACHE_HOME=/var/tmp" in value_after(argv, "--env")
    assert (
        f"type=bind,source={tmp_path / 'ca.pem'},target=/run/secrets/ca_bundle,readonly" in mounts
    )
    assert "PIP_CERT=/run/secrets/ca_bundle" in value_after(argv, "--env")
    assert argv[-4:-1] == ["mirror/python:3.11-slim", "sh", "-c"]
    script = argv[-1]
    assert "--require-hashes --no-deps -r /lock/tools.txt" in script
    assert "--generate-hashes" in script
    assert "--upgrade-package numpy --upgrade-package keras" in script
    assert "--upgrade " not in script
    assert script.endswith("requirements-cpu.in >&2 && cat /tmp/lock.txt")
    upgrading = lock_command(settings, locks.GPU, work_dir=tmp_path, cache_volume="v", upgrade=True)
    assert "--upgrade --output-file /tmp/lock.txt requirements-gpu.in" in upgrading[-1]
    assert "--user" not in upgrading, (
        "where no user is given (Docker Desktop), the image's own, without capabilities"
    )
    assert value_after(upgrading, "--cap-drop") == ["ALL"]


def test_build_args_of_the_user_come_last_so_they_win(project):
    settings = settings_of(project)
    build_args = parse_build_args(["KEEP_TF_HEADERS=1", "STRIP_TF_LIBRARIES=0", "EMPTY="])
    argv = build_command(
        settings,
        target_of(settings),
        buildx=False,
        labels={"REVISION": "abc"},
        build_args=build_args,
    )
    assert value_after(argv, "--build-arg")[-3:] == [
        "KEEP_TF_HEADERS=1",
        "STRIP_TF_LIBRARIES=0",
        "EMPTY=",
    ]


@pytest.mark.parametrize("value", ["KEEP_TF_HEADERS", "=1", "1ABC=2", "A B=1"])
def test_a_malformed_build_arg_is_one_clear_error(value):
    with pytest.raises(UserError, match=r"expected NAME=VALUE, e.g. KEEP_TF_HEADERS=1"):
        parse_build_args([value])


def test_a_package_index_reaches_builds_as_a_secret_pip_conf_and_locks_by_name(project, tmp_path):
    index = "https://user:t0ken@pypi.example.com/simple"
    settings = settings_of(
        project,
        PIP_INDEX_URL=index,
        PIP_EXTRA_INDEX_URL="https://a.example/simple https://b.example/simple",
    )
    assert pip_config(settings.package_index) == (
        "[global]\nindex-url = https://user:t0ken@pypi.example.com/simple\nextra-index-url = https://a.example/simple https://b.example/simple\n"
    )
    build = build_command(
        settings, target_of(settings), buildx=False, pip_config_file=tmp_path / "pip.conf"
    )
    assert value_after(build, "--secret") == [f"id=pip_conf,src={tmp_path / 'pip.conf'}"]
    lock = lock_command(
        settings,
        locks.select_locks(gpu=False, platform=None, dev=False)[0],
        work_dir=tmp_path,
        cache_volume="v",
    )
    assert {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"} <= set(value_after(lock, "--env"))
    assert not any("t0ken" in arg for arg in build + lock)
    assert "PIP_INDEX_URL" not in settings.app_env, (
        "index credentials never reach the app's container"
    )


@pytest.mark.parametrize("host", ["linux/amd64", "linux/arm64"])
def test_push_names_each_architecture_and_the_tag_that_lists_them(project, host):
    settings = settings_of(project, REGISTRY="ghcr.io/acme/", IMAGE_TAG="v2")
    cpu = [target_of(settings, platform=name, host=host) for name in ("linux/amd64", "linux/arm64")]
    # Whichever architecture is native here (tag v2) or not (v2-arm64, v2-amd64), the registry names carry it.
    assert [registry_image(settings, target) for target in cpu] == [
        "ghcr.io/acme/tf:v2-amd64",
        "ghcr.io/acme/tf:v2-arm64",
    ]
    assert (
        registry_image(settings, target_of(settings, gpu=True, host=host))
        == "ghcr.io/acme/tf:v2-gpu"
    )
    assert multi_arch_image(settings) == "ghcr.io/acme/tf:v2"


def test_push_one_image_tags_pushes_and_untags_its_registry_name(project):
    settings = settings_of(project, REGISTRY="127.0.0.1:5000", DOCKER="/usr/bin/docker")
    name = "127.0.0.1:5000/tf:latest-arm64"
    assert tag_command(settings, "tf:latest-arm64", name) == [
        "/usr/bin/docker",
        "tag",
        "tf:latest-arm64",
        name,
    ]
    # docker prints the pushed digest itself: no file for it.
    assert push_command(settings, name, "/tmp/push-1/digest") == ["/usr/bin/docker", "push", name]
    assert untag_command(settings, name) == ["/usr/bin/docker", "image", "rm", name]


def test_push_without_registry_is_refused_with_the_fix(project):
    with pytest.raises(
        UserError,
        match=r"^REGISTRY is not set, so there is nowhere to push; set it in \.env, e\.g\. REGISTRY=ghcr\.io/acme$",
    ):
        multi_arch_image(settings_of(project))


@pytest.mark.parametrize("insecure", [False, True])
def test_manifest_list_drops_a_stale_draft_creates_and_publishes(project, insecure):
    settings = settings_of(project, REGISTRY="127.0.0.1:5000")
    images = ["127.0.0.1:5000/tf:latest-amd64", "127.0.0.1:5000/tf:latest-arm64"]
    drop, create, publish = manifest_commands(
        settings, "127.0.0.1:5000/tf:latest", images, insecure=insecure
    )
    flag = ["--insecure"] if insecure else []
    assert drop == ["docker", "manifest", "rm", "127.0.0.1:5000/tf:latest"]
    assert create == ["docker", "manifest", "create", *flag, "127.0.0.1:5000/tf:latest", *images]
    assert publish == ["docker", "manifest", "push", "--purge", *flag, "127.0.0.1:5000/tf:latest"]


@pytest.mark.parametrize(
    ("host", "cpu_images", "foreign_container"),
    [
        ("linux/amd64", ["tf:v2", "tf:v2-arm64"], "tf-arm64"),
        ("linux/arm64", ["tf:v2-amd64", "tf:v2"], "tf-amd64"),
    ],
)
def test_clean_covers_every_image_and_container_of_the_project(
    project, host, cpu_images, foreign_container
):
    settings = settings_of(project, IMAGE_TAG="v2")
    targets = every_target(settings, host=host)
    assert [target.image for target in targets] == [*cpu_images, "tf:v2-gpu"]
    containers = sorted(
        name for target in targets for name in (target.container, target.container_test_container)
    )
    expected = [
        "tf",
        "tf-container-test",
        foreign_container,
        f"{foreign_container}-container-test",
        "tf-gpu",
        "tf-gpu-container-test",
    ]
    assert containers == sorted(expected)
    assert remove_containers_command(settings, containers) == [
        "docker",
        "container",
        "rm",
        "--force",
        *containers,
    ]
    images = [target.image for target in targets]
    assert remove_images_command(settings, images) == ["docker", "image", "rm", *images]


def test_the_runtime_image_records_what_it_is_made_of(project):
    (project / "src").mkdir(exist_ok=True)
    (project / "src" / "main.py").write_text("print(1)\n")
    settings = settings_of(project)
    argv = build_command(settings, target_of(settings), buildx=False)
    labels = dict(label.split("=", 1) for label in value_after(argv, "--label"))
    assert labels[sources.SOURCE_LABEL] == sources.source_digest(project)
    assert labels[sources.LOCK_LABEL] == sources.lock_digest(project / "requirements.txt")
    notebook = build_command(settings, notebook_target(target_of(settings)), buildx=False)
    assert sources.SOURCE_LABEL not in " ".join(notebook), "the notebook image has no src/"
