"""Server-side batching (src/app/batching.py), inside the image: concurrent requests share one model call,
each gets its own rows back, an error stays with its request, and nobody waits when nothing else comes."""

import asyncio
import json
import threading
import time

import numpy as np
import pytest

from app import store, train
from app.batching import Batcher, Unbatched
from app.server import Options
from example.iris import write_iris_like
from example.serving import EPOCHS, serving, wait_until_ready
from helpers.http_client import predict


class Model:
    """A stand-in for the SavedModel: each row's output is the row times two; records each call's row count.
    A row with a negative value makes the call fail, as a model's error would."""

    def __init__(self, seconds: float = 0.0):
        self.calls: list[int] = []
        self.seconds = seconds

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        self.calls.append(len(rows))
        time.sleep(self.seconds)
        if (rows < 0).any():
            raise ValueError("a negative measurement")
        return rows * 2


def rows_of(request: int, count: int = 2) -> np.ndarray:
    return np.full((count, 4), request, dtype="float32")


async def in_turn(batcher, coroutine):
    async with batcher.running():
        return await coroutine


async def all_of(batcher, requests: list[np.ndarray]) -> list:
    async with batcher.running():
        return await asyncio.gather(
            *(batcher.predict(rows) for rows in requests), return_exceptions=True
        )


def test_concurrent_requests_share_calls_and_each_gets_its_own_rows():
    model = Model(seconds=0.01)
    requests = [rows_of(request, count=1 + request % 3) for request in range(40)]
    answers = asyncio.run(all_of(Batcher(model, max_rows=256, timeout=0.002), requests))
    for rows, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer, rows * 2)
    assert sum(model.calls) == sum(len(rows) for rows in requests)
    assert len(model.calls) < len(requests) / 4, model.calls


def test_a_batch_holds_whole_requests_up_to_max_rows_and_a_larger_request_goes_alone():
    model = Model(seconds=0.01)
    requests = [rows_of(request, count=3) for request in range(10)] + [rows_of(10, count=20)]
    answers = asyncio.run(all_of(Batcher(model, max_rows=8, timeout=0.002), requests))
    for rows, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer, rows * 2)
    assert all(calls % 3 == 0 and calls <= 8 for calls in model.calls[:-1]), model.calls
    assert model.calls[-1] == 20


def test_an_error_stays_with_the_request_that_causes_it():
    model = Model(seconds=0.01)
    requests = [rows_of(request) for request in range(6)]
    requests[3] = -requests[3] - 1
    answers = asyncio.run(all_of(Batcher(model, max_rows=256, timeout=0.002), requests))
    assert isinstance(answers[3], ValueError)
    for request in (0, 1, 2, 4, 5):
        np.testing.assert_array_equal(answers[request], requests[request] * 2)


def test_a_request_alone_waits_for_nobody():
    batcher = Batcher(Model(), max_rows=256, timeout=5.0)

    async def timed() -> float:
        started = time.perf_counter()
        await batcher.predict(rows_of(1))
        return time.perf_counter() - started

    assert asyncio.run(in_turn(batcher, timed())) < 1.0


def test_a_batch_waits_for_a_request_being_read_within_its_timeout():
    model = Model()
    batcher = Batcher(model, max_rows=256, timeout=1.0)

    async def read_then_predict(seconds: float):
        with batcher.arriving():
            await asyncio.sleep(seconds)
        return await batcher.predict(rows_of(2))

    async def both():
        async with batcher.running():
            arriving = asyncio.create_task(read_then_predict(0.2))
            await asyncio.sleep(0)  # it has started reading
            return await asyncio.gather(batcher.predict(rows_of(1)), arriving)

    first, second = asyncio.run(both())
    np.testing.assert_array_equal(first, rows_of(1) * 2)
    np.testing.assert_array_equal(second, rows_of(2) * 2)
    assert model.calls == [4], "both requests in one call"


def test_the_wait_for_a_stalled_request_is_bounded_by_the_timeout():
    batcher = Batcher(Model(), max_rows=256, timeout=0.1)

    async def stalled():
        with batcher.arriving():
            await asyncio.sleep(30)

    async def timed() -> float:
        async with batcher.running():
            reading = asyncio.create_task(stalled())
            await asyncio.sleep(0)
            started = time.perf_counter()
            await batcher.predict(rows_of(1))
            reading.cancel()
            return time.perf_counter() - started

    assert 0.09 < asyncio.run(timed()) < 2.0


@pytest.mark.parametrize("inline", [False, True], ids=["model thread", "inline"])
def test_requests_that_come_in_consecutive_turns_of_the_loop_share_a_call(inline):
    model = Model()
    batcher = Batcher(model, max_rows=256, timeout=1.0, inline=inline)

    async def after_turns(turns: int, request: int):
        for _ in range(turns):
            await asyncio.sleep(0)
        return await batcher.predict(rows_of(request))

    async def all_three():
        async with batcher.running():
            return await asyncio.gather(*(after_turns(turns, turns) for turns in (0, 1, 2)))

    for request, answer in enumerate(asyncio.run(all_three())):
        np.testing.assert_array_equal(answer, rows_of(request) * 2)
    assert model.calls == [6], "the three requests in one call"


@pytest.mark.parametrize("inline", [False, True], ids=["model thread", "inline"])
def test_inline_the_model_computes_in_the_event_loops_thread_else_in_its_own(inline):
    threads = []

    def model(rows: np.ndarray) -> np.ndarray:
        threads.append(threading.get_ident())
        return rows

    batcher = Batcher(model, max_rows=256, timeout=0.002, inline=inline)
    asyncio.run(in_turn(batcher, batcher.predict(rows_of(1))))
    assert (threads == [threading.get_ident()]) == inline, threads


def test_unbatched_each_request_calls_the_model_on_its_own_rows():
    model = Model()
    requests = [rows_of(request) for request in range(5)]
    answers = asyncio.run(all_of(Unbatched(model), requests))
    for rows, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer, rows * 2)
    assert model.calls == [2] * 5


# --- through the real server -----------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batching")
    train.train(write_iris_like(folder / "iris.csv"), folder / "models", epochs=EPOCHS)
    return folder / "models"


@pytest.mark.parametrize("batch_max_rows", [256, 0], ids=["batching", "no batching"])
def test_concurrent_clients_each_get_the_probabilities_of_their_own_rows(
    models, tmp_path, batch_max_rows
):
    import tensorflow as tf

    generator = np.random.default_rng(3)
    requests = [
        (generator.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(8, 4)))
        .round(2)
        .tolist()
        for _ in range(48)
    ]
    signature = tf.saved_model.load(str(models / store.MODEL_NAME / "1")).signatures[
        store.SIGNATURE
    ]
    answers: list = [None] * len(requests)
    with serving(models, tmp_path / "unused.csv", Options(batch_max_rows=batch_max_rows)) as url:
        wait_until_ready(url)

        def client(index: int) -> None:
            answers[index] = predict(url, requests[index])

        threads = [threading.Thread(target=client, args=(index,)) for index in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for rows, (status, body) in zip(requests, answers, strict=True):
        assert status == 200, body
        expected = signature(measurements=tf.constant(rows, dtype=tf.float32))["output_0"].numpy()
        np.testing.assert_allclose(
            body["predictions"], expected, rtol=1e-5, atol=1e-6, err_msg=json.dumps(rows)
        )
