"""One artifact for this server, TensorFlow Serving and KServe, inside the image: each version folder is a
SavedModel whose serving_default signature this server serves; which version is served, and which are skipped."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app import server, store, train
from app.server import Options
from example.iris import CENTRES, write_iris_like
from example.serving import EPOCHS, serving, wait_until_failed, wait_until_ready
from helpers.http_client import predict

ROWS = [
    list(CENTRES["setosa"]),
    list(CENTRES["versicolor"]),
    list(CENTRES["virginica"]),
    [4.4, 2.9, 1.4, 0.2],
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A models folder with one trained version, 1; tests copy it, never change it."""
    folder = tmp_path_factory.mktemp("trained")
    train.train(write_iris_like(folder / "iris.csv"), folder / "models", epochs=EPOCHS)
    return folder / "models" / store.MODEL_NAME / "1"


def copy_version(trained: Path, models: Path, name: str) -> Path:
    folder = models / store.MODEL_NAME / name
    shutil.copytree(trained, folder)
    return folder


def saved_model_cli(*args: str) -> str:
    result = subprocess.run(
        ["saved_model_cli", "show", *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_version_holds_metrics_the_keras_file_and_a_saved_model(trained):
    names = {path.name for path in trained.iterdir()}
    assert {
        store.METRICS_FILE,
        store.MODEL_FILE,
        store.SAVED_MODEL_FILE,
        store.VARIABLES_DIR,
    } <= names
    assert json.loads((trained / store.METRICS_FILE).read_text())["accuracy"] >= 0.9


def test_saved_model_cli_lists_serving_default_taking_float32_rows_of_4_giving_3_probabilities(
    trained,
):
    assert '"serving_default"' in saved_model_cli("--dir", str(trained), "--tag_set", "serve")
    signature = saved_model_cli(
        "--dir", str(trained), "--tag_set", "serve", "--signature_def", "serving_default"
    )
    inputs, outputs = signature.split("output(s):")
    assert "dtype: DT_FLOAT" in inputs
    assert "shape: (-1, 4)" in inputs
    assert "shape: (-1, 3)" in outputs
    assert "Method name is: tensorflow/serving/predict" in signature


def test_the_saved_model_called_directly_gives_the_probabilities_predict_gives(trained, tmp_path):
    import tensorflow as tf

    copy_version(trained, tmp_path / "models", "1")
    signature = tf.saved_model.load(str(trained)).signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]
    direct = next(
        iter(signature(**{input_name: tf.constant(ROWS, dtype=tf.float32)}).values())
    ).numpy()
    with serving(tmp_path / "models", tmp_path / "unused.csv") as url:
        wait_until_ready(url)
        status, body = predict(url, ROWS)
    assert status == 200, body
    np.testing.assert_allclose(body["predictions"], direct, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(direct.sum(axis=1), 1.0, atol=1e-5)


def test_publishing_flushes_every_file_and_folder_to_disk_before_the_rename_and_the_rename_after(
    tmp_path, monkeypatch
):
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def rename(source, target):
        events.append(("rename", str(target)))
        real_rename(source, target)

    def write(folder: Path) -> None:
        (folder / "a.txt").write_text("a")
        (folder / "sub").mkdir()
        (folder / "sub" / "b.txt").write_text("b")

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    version, folder = store.publish(tmp_path, write)
    renamed = events.index(("rename", str(folder)))
    flushed = {Path(path).name for _, path in events[:renamed]}
    assert {"a.txt", "b.txt", "sub"} <= flushed
    assert any(name.startswith(".incomplete-") for name in flushed), "the version's folder itself"
    assert events[renamed + 1 :] == [("fsync", str(tmp_path / store.MODEL_NAME))], (
        "the models folder, so that the rename lasts"
    )


# --- which version is served -----------------------------------------------------------------


def damaged_models(trained: Path, models: Path) -> dict[str, str]:
    """Version 1 valid; every newer entry damaged or no version at all; what the log says of each."""
    copy_version(trained, models, "1")
    (models / store.MODEL_NAME / "2").mkdir()
    truncated = copy_version(trained, models, "3") / store.SAVED_MODEL_FILE
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    variables = copy_version(trained, models, "4") / store.VARIABLES_DIR
    for data in variables.glob("variables.data-*"):
        data.write_bytes(data.read_bytes()[:100])
    (copy_version(trained, models, "5") / store.METRICS_FILE).write_text("[0.9]")
    (models / store.MODEL_NAME / "6").symlink_to(models / store.MODEL_NAME / "1")
    copy_version(trained, models, "07")
    copy_version(trained, models, "²")
    copy_version(trained, models, ".incomplete-0123")
    return {
        "2": "no SavedModel",
        "3": "the SavedModel does not load",
        "4": "the SavedModel does not load",
        "5": "metrics.json is not a JSON object",
        "6": "a symbolic link",
        "07": "not a version number",
        "²": "not a version number",
    }


def test_the_newest_valid_version_is_served_and_each_bad_one_is_logged_and_skipped(
    trained, tmp_path, caplog
):
    reasons = damaged_models(trained, tmp_path / "models")
    with (
        caplog.at_level("INFO", logger="app"),
        serving(tmp_path / "models", tmp_path / "unused.csv") as url,
    ):
        health = wait_until_ready(url)
        assert predict(url, ROWS)[0] == 200
    assert health["version"] == 1
    skipped = [
        record.getMessage()
        for record in caplog.records
        if record.getMessage().startswith("skipping")
    ]
    for name, reason in reasons.items():
        assert any(f"{store.MODEL_NAME}/{name}" in line and reason in line for line in skipped), (
            name,
            skipped,
        )
    assert not any(".incomplete" in line for line in skipped), "a version being written is no error"
    assert len(skipped) == len(reasons)


@contextlib.contextmanager
def unreadable(folder: Path):
    """The folder with no permission for anyone (`chmod 000`), for the block; restored after."""
    folder.chmod(0)
    try:
        # The container runs without capabilities (--cap-drop ALL): not even root may read it.
        assert not os.access(folder, os.R_OK | os.X_OK), f"{folder} is still readable here"
        yield folder
    finally:
        folder.chmod(0o755)


def test_an_unreadable_version_is_logged_and_skipped_and_an_older_valid_one_is_served(
    trained, tmp_path, caplog
):
    models = tmp_path / "models"
    copy_version(trained, models, "1")
    with (
        unreadable(copy_version(trained, models, "2")),
        caplog.at_level("INFO", logger="app"),
        serving(models, tmp_path / "unused.csv") as url,
    ):
        health = wait_until_ready(url, timeout=60)
        assert predict(url, ROWS)[0] == 200
    assert health["version"] == 1
    skipped = [message for message in caplog.messages if message.startswith("skipping")]
    assert len(skipped) == 1, skipped
    assert f"{store.MODEL_NAME}/2" in skipped[0]
    assert "Permission denied" in skipped[0]


def test_an_unreadable_pinned_version_is_a_503_with_the_reason(trained, tmp_path):
    models = tmp_path / "models"
    copy_version(trained, models, "1")
    with (
        unreadable(copy_version(trained, models, "2")) as folder,
        serving(models, tmp_path / "unused.csv", Options(model_version=2)) as url,
    ):
        health = wait_until_failed(url)
        status, _ = predict(url, ROWS)
    assert health["error"].startswith(f"MODEL_VERSION=2: {folder} cannot be served: ")
    assert "Permission denied" in health["error"]
    assert status == 503


def test_model_version_pins_an_older_version(trained, tmp_path):
    copy_version(trained, tmp_path / "models", "1")
    copy_version(trained, tmp_path / "models", "2")
    with serving(tmp_path / "models", tmp_path / "unused.csv", Options(model_version=1)) as url:
        assert wait_until_ready(url)["version"] == 1


@pytest.mark.parametrize(
    ("pinned", "error"),
    [
        (9, "MODEL_VERSION=9: there is no version folder {models}/iris/9 (versions there: 1, 2)"),
        (
            2,
            "MODEL_VERSION=2: {models}/iris/2 cannot be served: no SavedModel: saved_model.pb is missing or empty",
        ),
    ],
    ids=["missing", "invalid"],
)
def test_a_missing_or_invalid_pinned_version_is_a_503_with_the_reason_and_a_log_line(
    trained, tmp_path, caplog, pinned, error
):
    models = tmp_path / "models"
    copy_version(trained, models, "1")
    (models / store.MODEL_NAME / "2").mkdir()
    with (
        caplog.at_level("INFO", logger="app"),
        serving(models, tmp_path / "iris.csv", Options(model_version=pinned)) as url,
    ):
        health = wait_until_failed(url)
        status, body = predict(url, ROWS)
    assert health["error"] == error.format(models=models)
    assert (status, body) == (
        503,
        {"error": "the model is not ready yet (failed); GET /health says when it is"},
    )
    assert f"cannot serve a model: {health['error']}" in caplog.messages
    assert store.versions(models) == [1, 2], "a pinned version is never trained in its place"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "MODEL_VERSION",
            "latest",
            "MODEL_VERSION='latest': a version number as in the folder's name",
        ),
        ("MODEL_VERSION", "02", "MODEL_VERSION='02': a version number"),
        (
            "BATCH_MAX_ROWS",
            "-1",
            "BATCH_MAX_ROWS='-1': a whole number of rows, or 0 to turn batching off",
        ),
        ("BATCH_TIMEOUT_MS", "fast", "BATCH_TIMEOUT_MS='fast': milliseconds from 0 to 1000"),
        ("BATCH_TIMEOUT_MS", "5000", "BATCH_TIMEOUT_MS='5000': milliseconds from 0 to 1000"),
        ("ACCESS_LOG", "off", "ACCESS_LOG='off': 1 for a log line per request, 0 for none"),
    ],
)
def test_a_bad_app_key_stops_the_server_at_start_in_one_line(key, value, message):
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env={**os.environ, key: value},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.count("\n") == 1, result.stderr


def test_app_keys_set_the_options():
    environ = {
        "BATCH_MAX_ROWS": "64",
        "BATCH_TIMEOUT_MS": "0.5",
        "MODEL_VERSION": "3",
        "ACCESS_LOG": "0",
    }
    assert Options.from_environment(environ) == Options(
        batch_max_rows=64, batch_timeout_ms=0.5, model_version=3, access_log=False
    )
    assert Options.from_environment({"MODEL_VERSION": "", "BATCH_MAX_ROWS": " "}) == Options()


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
        ({}, None),
    ],
    ids=["v2 no limit", "v2 1.5 CPUs", "v2 half a CPU", "v1 no limit", "v1 1 CPU", "no cgroup"],
)
def test_the_cpu_limit_that_sizes_tensorflow_threads_comes_from_the_cgroup(tmp_path, files, cpus):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert server.cpu_limit(tmp_path) == cpus


@pytest.mark.parametrize(
    ("limit", "cores", "cpus"), [(None, 2, 2), (1, 2, 1), (2, 2, 2), (4, 1, 1), (None, 1, 1)]
)
def test_the_usable_cpus_are_the_cgroup_limit_or_fewer_cores(monkeypatch, limit, cores, cpus):
    monkeypatch.setattr(server, "cpu_limit", lambda: limit)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert server.usable_cpus() == cpus


def test_the_loaded_model_is_out_of_the_garbage_collectors_sight(trained, tmp_path):
    """A full collection would walk TensorFlow's objects and stop every request for its length."""
    import gc

    copy_version(trained, tmp_path / "models", "1")
    gc.unfreeze()
    try:
        with serving(tmp_path / "models", tmp_path / "unused.csv") as url:
            wait_until_ready(url)
            assert gc.get_freeze_count() > 100_000
    finally:
        gc.unfreeze()
