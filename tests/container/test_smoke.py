"""The TensorFlow smoke test: run inside the image by `nox -s container_test` (`-- --gpu` for the GPU image)."""

import os
import platform
import uuid
from pathlib import Path

import numpy as np
import pytest

# Where the container finds DATA_DIR: fixed by the app contract.
DATA_DIR = Path("/app/data")

# The kernel's name for each image platform: what an emulated container reports too.
MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


def test_the_container_runs_the_platform_the_image_was_built_for():
    expected = os.environ["EXPECTED_PLATFORM"]
    assert platform.machine() == MACHINES[expected], (
        f"asked for {expected}, the container runs on {platform.machine()}"
    )


def test_tensorflow_is_the_version_in_the_lock(tf):
    expected = os.environ["EXPECTED_TENSORFLOW_VERSION"]
    assert tf.__version__ == expected, (
        f"the image runs TensorFlow {tf.__version__}, the lock pins {expected}: rebuild with `invoke build`"
    )


def _model(tf):
    tf.keras.utils.set_random_seed(7)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(4,)),
            tf.keras.layers.Dense(16, activation="relu"),
            tf.keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    return model


def _data():
    rng = np.random.default_rng(7)
    features = rng.normal(size=(256, 4)).astype("float32")
    labels = (features[:, 0] + features[:, 1] > 0).astype("int64") + (features[:, 2] > 1).astype(
        "int64"
    )
    return features, labels


def test_a_keras_model_trains_and_its_loss_falls(tf):
    features, labels = _data()
    history = _model(tf).fit(features, labels, epochs=5, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] * 0.8, f"the loss did not fall: {losses}"


def test_a_saved_model_reloads_and_predicts_the_same(tf, tmp_path):
    features, labels = _data()
    model = _model(tf)
    model.fit(features, labels, epochs=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = tf.keras.models.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(features, verbose=0),
        model.predict(features, verbose=0),
        rtol=1e-6,
        atol=1e-6,
    )


def test_the_data_mount_is_readable_and_writable_as_the_container_user():
    mounts = Path("/proc/self/mounts").read_text().split()
    assert str(DATA_DIR) in mounts, (
        f"{DATA_DIR} is not a mount: DATA_DIR did not reach the container"
    )
    probe = DATA_DIR / f".container-test-{uuid.uuid4().hex}"
    try:
        probe.write_text("written in the container")
        assert probe.read_text() == "written in the container"
    except PermissionError as error:
        pytest.fail(
            f"uid {os.getuid()} cannot write {DATA_DIR}: {error}; on Linux, `invoke run` runs as your uid, so DATA_DIR must be yours"
        )
    finally:
        probe.unlink(missing_ok=True)


def test_the_expected_devices_are_visible(tf):
    if os.environ.get("EXPECT_GPU") == "1":
        gpus = tf.config.list_physical_devices("GPU")
        assert gpus, (
            "the container sees no GPU. Likely causes: the host has no NVIDIA driver (`nvidia-smi` fails there), "
            "the NVIDIA Container Toolkit is missing, or the container was started without `--gpus all`; "
            f"TensorFlow built with CUDA: {tf.test.is_built_with_cuda()}"
        )
    else:
        assert tf.config.list_physical_devices("CPU"), "TensorFlow sees no CPU device"
