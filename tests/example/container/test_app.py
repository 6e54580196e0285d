"""Unit tests of the example application (src/app), inside the image: they need its TensorFlow and uvicorn.

Each test works in its own temporary folder with a small Iris-like dataset, so DATA_DIR is never touched.
The server is the real one (uvicorn and Starlette on a free port), called over HTTP.
"""

import http.client
import json
import os
from pathlib import Path

import numpy as np
import pytest

from app import dataset, server, store, train
from app.server import MAX_BODY_BYTES, MAX_REQUEST_ROWS
from example.iris import CENTRES, HEADER, write_iris_like
from example.serving import EPOCHS, serving, wait_until_failed, wait_until_ready
from helpers.http_client import call, post_declaring_length, predict


@pytest.fixture
def iris_csv(tmp_path) -> Path:
    return write_iris_like(tmp_path / "iris.csv")


# --- the dataset -----------------------------------------------------------------------------


def test_the_dataset_loads_with_sorted_class_names(iris_csv):
    data = dataset.load(iris_csv)
    assert data.classes == ("setosa", "versicolor", "virginica")
    assert len(data.features) == len(data.labels) == 60
    assert all(len(row) == 4 for row in data.features)
    assert sorted(set(data.labels)) == [0, 1, 2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no dataset at"),
        ("a,b,c,d,e\n1,2,3,4,setosa\n", "the first line must be the header"),
        (
            f"{HEADER}\n1,2,3,4,setosa\n1,2,x,4,virginica\n",
            "line 3: the measurements must be numbers",
        ),
        (f"{HEADER}\n1,2,3,setosa\n", "line 2: 4 values, expected 5"),
        (f"{HEADER}\n1,2,3,inf,setosa\n", "line 2: the measurements must be finite numbers"),
        (f"{HEADER}\n1,2,3,4,setosa\n", "at least two species"),
    ],
)
def test_a_bad_dataset_is_named_with_its_line(tmp_path, content, message):
    path = tmp_path / "iris.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(dataset.DatasetError, match=message):
        dataset.load(path)


def test_the_split_is_stratified_disjoint_and_seeded(iris_csv):
    data = dataset.load(iris_csv)
    train_rows, test_rows = dataset.split(data, 0.2, seed=1)
    assert not set(train_rows) & set(test_rows)
    assert sorted(train_rows + test_rows) == list(range(60))
    assert [data.labels[row] for row in test_rows].count(0) == 4, "20% of each class is held out"
    assert dataset.split(data, 0.2, seed=1) == (train_rows, test_rows)
    assert dataset.split(data, 0.2, seed=2) != (train_rows, test_rows)


# --- versions on disk ------------------------------------------------------------------------


def test_the_newest_version_is_the_highest_number_and_incomplete_ones_are_ignored(tmp_path):
    for name in ["2", "10", "9", ".incomplete-abc", "notes"]:
        (tmp_path / store.MODEL_NAME / name).mkdir(parents=True)
    assert store.versions(tmp_path) == [2, 9, 10]
    assert store.scan(tmp_path)[0][0] == (10, tmp_path / store.MODEL_NAME / "10")
    assert store.scan(tmp_path / "nothing here") == ([], [])


def test_a_failed_write_publishes_nothing_and_leaves_nothing(tmp_path):
    def failing_write(folder):
        (folder / "model.keras").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.publish(tmp_path, failing_write)
    assert list((tmp_path / store.MODEL_NAME).iterdir()) == []


def test_unfinished_versions_of_killed_trainings_are_removed_and_a_running_ones_kept(tmp_path):
    folder = tmp_path / store.MODEL_NAME
    killed, running = folder / ".incomplete-killed", folder / ".incomplete-running"
    for unfinished in (killed, running):
        (unfinished / "variables").mkdir(parents=True)
    os.utime(killed, (1, 1))  # written before this process started
    version, published = store.publish(
        tmp_path, lambda new: (new / "metrics.json").write_text("{}")
    )
    assert sorted(entry.name for entry in folder.iterdir()) == [".incomplete-running", "1"]
    assert (version, published) == (1, folder / "1")


# --- training --------------------------------------------------------------------------------


def test_two_trainings_with_one_seed_give_the_same_model_as_consecutive_versions(
    iris_csv, tmp_path
):
    import keras

    models = tmp_path / "models"
    first = train.train(iris_csv, models, epochs=EPOCHS, seed=7)
    second = train.train(iris_csv, models, epochs=EPOCHS, seed=7)
    assert (first.version, second.version) == (1, 2)
    assert first.metrics == second.metrics
    assert first.metrics["accuracy"] >= 0.9, first.metrics
    assert json.loads((second.folder / store.METRICS_FILE).read_text()) == second.metrics
    probe = np.asarray([CENTRES["setosa"], CENTRES["virginica"]], dtype="float32")
    predictions = [
        keras.models.load_model(model.folder / store.MODEL_FILE).predict(probe, verbose=0)
        for model in (first, second)
    ]
    np.testing.assert_array_equal(predictions[0], predictions[1])
    assert list(predictions[0].argmax(axis=1)) == [0, 2]
    assert sorted(path.name for path in (models / store.MODEL_NAME).iterdir()) == ["1", "2"], (
        "no incomplete folder is left"
    )


def test_the_train_command_reports_its_accuracy_and_where_it_saved(iris_csv, tmp_path, capsys):
    assert (
        train.main(
            ["--epochs", str(EPOCHS), "--data", str(iris_csv), "--output", str(tmp_path / "out")]
        )
        == 0
    )
    line = capsys.readouterr().out.strip()
    assert line.startswith("trained iris version 1: accuracy ")
    assert line.endswith(f"saved to {tmp_path / 'out' / store.MODEL_NAME / '1'}")


def test_the_train_command_without_a_dataset_fails_in_one_line(tmp_path, capsys):
    assert (
        train.main(["--data", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "models")])
        == 1
    )
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error.startswith(
        f"error: no dataset at {tmp_path / 'missing.csv'} (the template ships data/iris.csv"
    )
    assert not (tmp_path / "models").exists()


# --- the server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """A server on a trained model (version 1)."""
    folder = tmp_path_factory.mktemp("served")
    iris = write_iris_like(folder / "iris.csv")
    train.train(iris, folder / "models", epochs=EPOCHS)
    with serving(folder / "models", iris) as url:
        wait_until_ready(url)
        yield url


def test_health_names_the_model_version_once_loaded(server_url):
    status, body = call(f"{server_url}/health")
    assert status == 200
    assert body["status"] == "ok"
    assert (body["model"], body["version"]) == ("iris", 1)
    assert body["accuracy"] >= 0.9


@pytest.mark.parametrize("path", ["/predict", "/v1/models/iris:predict"])
def test_predictions_are_one_probability_row_per_instance(server_url, path):
    rows = [list(CENTRES["setosa"]), list(CENTRES["versicolor"]), list(CENTRES["virginica"])]
    status, body = predict(server_url, rows, path)
    assert status == 200, body
    predictions = np.asarray(body["predictions"])
    assert predictions.shape == (3, 3)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, atol=1e-5)
    assert list(predictions.argmax(axis=1)) == [0, 1, 2]


def test_a_full_batch_is_answered(server_url):
    status, body = predict(server_url, [[5.0, 3.4, 1.5, 0.2]] * MAX_REQUEST_ROWS)
    assert status == 200
    assert len(body["predictions"]) == MAX_REQUEST_ROWS


BAD_REQUESTS = {
    "malformed JSON": (b'{"instances": [[5.1, 3.5', "application/json", 400, "not valid JSON"),
    "not an object": (b"[[5.1, 3.5, 1.4, 0.2]]", "application/json", 400, "must be a JSON object"),
    "no instances": (
        b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}',
        "application/json",
        400,
        "must be a JSON object",
    ),
    "instances not a list": (
        b'{"instances": 5.1}',
        "application/json",
        400,
        "must be a list of rows",
    ),
    "three features": (
        b'{"instances": [[5.1, 3.5, 1.4]]}',
        "application/json",
        400,
        "instance 0 must be a list of 4 numbers",
    ),
    "a flat row": (
        b'{"instances": [5.1, 3.5, 1.4, 0.2]}',
        "application/json",
        400,
        "instance 0 must be a list of 4 numbers",
    ),
    "a string value": (
        b'{"instances": [[5.1, 3.5, 1.4, 0.2], [5.1, "x", 1.4, 0.2]]}',
        "application/json",
        400,
        "instance 1 holds a value",
    ),
    "a boolean value": (
        b'{"instances": [[true, 3.5, 1.4, 0.2]]}',
        "application/json",
        400,
        "not a finite number",
    ),
    "a null value": (
        b'{"instances": [[null, 3.5, 1.4, 0.2]]}',
        "application/json",
        400,
        "not a finite number",
    ),
    "NaN": (
        b'{"instances": [[NaN, 3.5, 1.4, 0.2]]}',
        "application/json",
        400,
        "NaN is not a JSON number",
    ),
    "a number beyond float": (
        b'{"instances": [[1e999, 3.5, 1.4, 0.2]]}',
        "application/json",
        400,
        "not a finite number",
    ),
    "empty batch": (b'{"instances": []}', "application/json", 400, "is empty"),
    "oversized batch": (
        json.dumps({"instances": [[1, 2, 3, 4]] * (MAX_REQUEST_ROWS + 1)}).encode(),
        "application/json",
        413,
        "at most 1000",
    ),
    "form content type": (
        b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
        "application/x-www-form-urlencoded",
        415,
        "Content-Type: application/json",
    ),
    "no content type": (
        b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
        None,
        415,
        "Content-Type: application/json",
    ),
}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys()
)
def test_a_bad_request_gets_a_json_error_and_the_server_keeps_serving(
    server_url, body, content_type, status, message
):
    answered, error = call(f"{server_url}/predict", body, content_type)
    assert (answered, list(error)) == (status, ["error"]), error
    assert message in error["error"]
    assert predict(server_url, [[5.0, 3.4, 1.5, 0.2]])[0] == 200


def test_a_body_declared_too_large_is_refused_before_it_is_sent(server_url):
    status, body = post_declaring_length(server_url, "/predict", MAX_BODY_BYTES + 1)
    assert status == 413
    assert "larger than" in body["error"]
    assert predict(server_url, [[5.0, 3.4, 1.5, 0.2]])[0] == 200


def test_a_chunked_body_is_cut_off_at_the_limit(server_url, monkeypatch):
    # Without a Content-Length, the limit holds while the body streams in (a small one here, so that
    # the whole request fits in the socket's buffers and the client can read the answer).
    monkeypatch.setattr(server, "MAX_BODY_BYTES", 100)
    connection = http.client.HTTPConnection(server_url.removeprefix("http://"), timeout=30)
    body = json.dumps({"instances": [[5.0, 3.4, 1.5, 0.2]] * 10}).encode()
    connection.request(
        "POST",
        "/predict",
        body=iter([body[:50], body[50:]]),
        headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    assert "larger than 100 bytes" in json.load(response)["error"]
    connection.close()


def test_unknown_paths_and_methods_get_json_errors(server_url):
    assert call(f"{server_url}/nothing") == (404, {"error": "Not Found"})
    assert call(f"{server_url}/predict") == (405, {"error": "Method Not Allowed"})


def test_without_a_model_the_server_trains_one_first_and_says_so(tmp_path, caplog):
    iris = write_iris_like(tmp_path / "iris.csv")
    with caplog.at_level("INFO", logger="app"), serving(tmp_path / "models", iris) as url:
        health = wait_until_ready(url)
    assert health["version"] == 1
    assert store.versions(tmp_path / "models") == [1]
    assert "no model under" in caplog.text
    assert "training one first" in caplog.text


def test_without_a_model_or_a_dataset_health_and_predict_answer_503(tmp_path):
    with serving(tmp_path / "models", tmp_path / "missing.csv") as url:
        health = wait_until_failed(url)
        assert health["error"].startswith(f"no dataset at {tmp_path / 'missing.csv'}")
        status, body = predict(url, [[5.0, 3.4, 1.5, 0.2]])
        assert status == 503
        assert "not ready yet (failed)" in body["error"]


@pytest.mark.parametrize("status", [200, 404, 503, 599])
@pytest.mark.parametrize("colours", [False, True], ids=["plain", "colours"])
def test_the_access_line_is_uvicorns_own(status, colours):
    import logging

    from uvicorn.logging import AccessFormatter

    from app.__main__ import AccessLines

    fmt = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
    args = ("172.17.0.1:55512", "POST", "/predict?x=1", "1.1", status)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', args, None
    )
    ours, theirs = (cls(fmt, use_colors=colours) for cls in (AccessLines, AccessFormatter))
    assert ours.format(record) == theirs.format(record)
