"""The example application through the real tasks, as a user meets it:

1. `invoke run --detach --read-only` on a DATA_DIR with only the dataset: the server trains a model first
   (into DATA_DIR, on a read-only root filesystem), then serves;
2. `invoke run --cmd "python -m app.train"`, twice: seeded versions 2 and 3 land in DATA_DIR on the host;
3. `invoke run --detach` again: /health and /predict answer on HOST_PORT with the newest version.

All of it as a non-root caller, who must own what the container writes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.locks import pinned_tensorflow
from example.iris import SETOSA, VERSICOLOR, VIRGINICA
from helpers.engine import docker
from helpers.http_client import call, post_declaring_length, predict, wait_for_json
from helpers.invoking import run_as
from helpers.project import PROJECT_DIR


@dataclass
class Journey:
    data: Path
    url: str
    first_health: dict
    first_log: str
    trainings: list[subprocess.CompletedProcess[str]]


def succeeded(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{result.args}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )
    return result


@pytest.fixture(scope="module")
def journey(invoke, cpu_image, non_root_caller) -> Journey:
    caller, container = non_root_caller, invoke.image_name
    data = caller.folder("app data")
    shutil.copy(PROJECT_DIR / "data" / "iris.csv", data)
    url = f"http://127.0.0.1:{invoke.env['HOST_PORT']}"
    try:
        succeeded(run_as(invoke, caller, "run", "--detach", "--read-only", data=data))
        first_health = wait_for_json(f"{url}/health", timeout=300)
        logs = docker("logs", container)
        succeeded(run_as(invoke, caller, "stop", data=data))
        trainings = [
            run_as(invoke, caller, "run", "--cmd", "python -m app.train", data=data)
            for _ in range(2)
        ]
        succeeded(run_as(invoke, caller, "run", "--detach", data=data))
        wait_for_json(f"{url}/health", timeout=300)
        yield Journey(data, url, first_health, logs.stdout + logs.stderr, trainings)
    finally:
        docker("rm", "--force", container, check=False)


def test_with_no_model_yet_the_server_trains_one_first_and_says_so(journey):
    assert journey.first_health["status"] == "ok"
    assert journey.first_health["version"] == 1
    assert "no model under data/models yet: training one first" in journey.first_log
    assert "serving iris version 1" in journey.first_log
    # Trained on a read-only root filesystem: the model went to DATA_DIR, the one place the app may write.
    assert (journey.data / "models" / "iris" / "1" / "model.keras").is_file()


def test_training_writes_seeded_versions_into_data_dir_owned_by_the_caller(
    journey, non_root_caller
):
    outputs = [succeeded(training).stdout for training in journey.trainings]
    assert "trained iris version 2: accuracy " in outputs[0]
    assert "trained iris version 3: accuracy " in outputs[1]
    models = journey.data / "models" / "iris"
    assert sorted(path.name for path in models.iterdir()) == ["1", "2", "3"]
    metrics = [
        json.loads((models / version / "metrics.json").read_text()) for version in ("2", "3")
    ]
    assert metrics[0] == metrics[1], "the same seed gives the same model"
    assert metrics[0]["accuracy"] >= 0.9, metrics[0]
    for path in [models, *models.rglob("*")]:
        assert path.stat().st_uid == non_root_caller.uid, (
            f"{path} belongs to uid {path.stat().st_uid}"
        )


def test_health_names_the_newest_version(journey):
    status, health = call(f"{journey.url}/health")
    assert status == 200
    assert (health["status"], health["model"], health["version"]) == ("ok", "iris", 3)
    assert health["tensorflow"] == pinned_tensorflow((PROJECT_DIR / "requirements.txt").read_text())


@pytest.mark.parametrize("path", ["/predict", "/v1/models/iris:predict"])
def test_predictions_sum_to_one_per_row_and_name_the_species(journey, path):
    status, body = predict(journey.url, [SETOSA, VERSICOLOR, VIRGINICA], path)
    assert status == 200, body
    rows = body["predictions"]
    assert [len(row) for row in rows] == [3, 3, 3]
    assert all(abs(sum(row) - 1) < 1e-5 for row in rows), rows
    assert [row.index(max(row)) for row in rows] == [0, 1, 2]


def test_a_hundred_rows_get_a_hundred_predictions(journey):
    status, body = predict(journey.url, [SETOSA, VERSICOLOR, VIRGINICA, SETOSA] * 25)
    assert status == 200
    assert len(body["predictions"]) == 100


BAD_REQUESTS = {
    "malformed JSON": (b'{"instances": [[5.1, 3.5', "application/json", 400),
    "three features": (b'{"instances": [[5.1, 3.5, 1.4]]}', "application/json", 400),
    "a non-numeric value": (b'{"instances": [[5.1, "wide", 1.4, 0.2]]}', "application/json", 400),
    "empty batch": (b'{"instances": []}', "application/json", 400),
    "oversized batch": (
        json.dumps({"instances": [SETOSA] * 1001}).encode(),
        "application/json",
        413,
    ),
    "wrong content type": (json.dumps({"instances": [SETOSA]}).encode(), "text/plain", 415),
}


@pytest.mark.parametrize(
    ("body", "content_type", "status"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys()
)
def test_a_bad_request_gets_a_json_4xx_and_the_server_keeps_serving(
    journey, body, content_type, status
):
    answered, error = call(f"{journey.url}/predict", body, content_type)
    assert answered == status
    assert list(error) == ["error"]
    assert error["error"]
    assert predict(journey.url, [SETOSA])[0] == 200


def test_an_oversized_body_gets_a_json_413_before_it_is_sent(journey):
    status, body = post_declaring_length(journey.url, "/predict", 10**9)
    assert status == 413
    assert "larger than" in body["error"]
    assert predict(journey.url, [SETOSA])[0] == 200


def test_each_request_is_one_log_line(journey, invoke):
    def predict_lines() -> list[str]:
        return [
            line
            for line in docker("logs", invoke.image_name).stdout.splitlines()
            if "POST /predict" in line
        ]

    before = len(predict_lines())
    predict(journey.url, [SETOSA])
    call(f"{journey.url}/predict", b"{", "application/json")
    deadline = time.monotonic() + 10  # the engine copies the container's output asynchronously
    while len(lines := predict_lines()) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(lines) == before + 2, lines[before:]
    assert lines[-2].endswith('"POST /predict HTTP/1.1" 200 OK')
    assert lines[-1].endswith('"POST /predict HTTP/1.1" 400 Bad Request')
