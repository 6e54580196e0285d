"""The example's training command in a cluster: a bad environment is one line, before TensorFlow."""

import argparse
import sys

import pytest

from app import train

POD = {
    "TRAIN_WORKERS": "0",
    "JOB_COMPLETION_INDEX": "1",
    "TRAIN_JOB": "iris-train",
    "TRAIN_SERVICE": "iris-workers",
    "TRAIN_PORT": "2222",
}


def test_the_train_command_says_it_in_one_line_and_exits_1_before_importing_tensorflow(
    monkeypatch, capsys, tmp_path
):
    for key, value in POD.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert train.main(["--output", str(tmp_path / "models")]) == 1
    assert (
        capsys.readouterr().err == "error: TRAIN_WORKERS='0' is not a whole number of at least 1\n"
    )
    assert "tensorflow" not in sys.modules
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("value", ["²", "٣", "0", "-1", "many"])
def test_epochs_other_than_ascii_digits_of_at_least_1_are_refused_in_one_line(value):
    with pytest.raises(argparse.ArgumentTypeError, match="is not a positive whole number$"):
        train.positive_whole_number(value)
