"""Server-side batching: the rows of requests that arrive together go to the model in one call.

A call of the model costs about the same for 8 rows as for 256: what costs is the call. So, as
TensorFlow Serving does, requests that are in the server at the same time share one call, and each
gets its own rows back. The first request of a batch waits for nobody when the server has nothing
else to do; while other requests are being read, it waits for them, at most `timeout` seconds and
until `max_rows` rows. Meanwhile, the model computes the previous batch in a thread of its own, and
the requests that arrive during that call form the next batch.

On one CPU (`inline`), the model computes in the event loop's own thread instead: a second thread
only takes turns with the first, at a hand-off's cost each way, and under a CPU quota (`--cpus 1`, a
Kubernetes limit) two busy threads spend the period's quota in half of it, after which the kernel
stops the whole process until the next period (tens of ms added to whatever was in flight). The
requests that arrive during a call are read in the next turn of the loop and form the next batch.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from starlette.concurrency import run_in_threadpool

Model = Callable[[np.ndarray], np.ndarray]  # float32 [rows, features] -> [rows, outputs]


class Batcher:
    """Gathers concurrent requests' rows into one call of `model`."""

    def __init__(self, model: Model, *, max_rows: int, timeout: float, inline: bool = False):
        self._model = model
        self._inline = inline
        self._max_rows = max_rows
        self._timeout = timeout
        self._pending: deque[tuple[np.ndarray, asyncio.Future]] = deque()
        self._pending_rows = 0
        self._arriving = 0
        self._wakeup = asyncio.Event()

    @contextlib.contextmanager
    def arriving(self):
        """Around reading and parsing a request: a batch being gathered waits for it (within its
        timeout)."""
        self._arriving += 1
        try:
            yield
        finally:
            self._arriving -= 1
            self._wakeup.set()

    async def predict(self, rows: np.ndarray) -> np.ndarray:
        """The model's output for `rows`, computed in a batch with the rows of other requests."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        self._pending_rows += len(rows)
        self._wakeup.set()
        return await future

    @contextlib.asynccontextmanager
    async def running(self):
        """Batches are computed while this context is open (the application's lifespan)."""
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="model") as executor:
            task = asyncio.create_task(self._serve(executor), name="batcher")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _serve(self, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                await self._next_event()
            await self._gather(loop.time() + self._timeout)
            await self._compute(executor, self._take())

    async def _next_event(self, timeout: float | None = None) -> None:
        """Until a request arrives or gives up, or `timeout` seconds have passed."""
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()

    async def _gather(self, deadline: float) -> None:
        """Wait, while the batch has room and time, for the requests being read, and for one more
        turn of the event loop as long as the last one brought requests."""
        loop = asyncio.get_running_loop()
        submitted = -1
        while self._pending_rows < self._max_rows and (remaining := deadline - loop.time()) > 0:
            if self._arriving:
                await self._next_event(remaining)
            elif len(self._pending) > submitted:
                # A turn: the requests whose bytes came in the last one submit.
                submitted = len(self._pending)
                await asyncio.sleep(0)
            else:
                return

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        """Whole requests, oldest first, up to max_rows rows: at least one, however many rows it
        has."""
        batch = [self._pending.popleft()]
        rows = len(batch[0][0])
        while self._pending and rows + len(self._pending[0][0]) <= self._max_rows:
            batch.append(self._pending.popleft())
            rows += len(batch[-1][0])
        self._pending_rows -= rows
        return batch

    async def _compute(
        self, executor: ThreadPoolExecutor, batch: list[tuple[np.ndarray, asyncio.Future]]
    ) -> None:
        loop = asyncio.get_running_loop()
        inputs = np.concatenate([rows for rows, _ in batch])
        try:
            if self._inline:
                outputs = self._model(inputs)
            else:
                outputs = await loop.run_in_executor(executor, self._model, inputs)
        except Exception as error:  # noqa: BLE001 (it goes to the request that caused it)
            if len(batch) == 1:
                _settle(batch[0][1], error=error)
                return
            # Each request alone, so that an error stays with the request that causes it.
            for request in batch:
                await self._compute(executor, [request])
            return
        start = 0
        for rows, future in batch:
            _settle(future, result=outputs[start : start + len(rows)])
            start += len(rows)


def _settle(future: asyncio.Future, *, result=None, error: Exception | None = None) -> None:
    if future.done():  # the request was cancelled: its client is gone
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class Unbatched:
    """Batching off: each request calls the model on its own rows, in a thread of Starlette's
    pool."""

    def __init__(self, model: Model):
        self._model = model

    def arriving(self):
        return contextlib.nullcontext()

    async def predict(self, rows: np.ndarray) -> np.ndarray:
        return await run_in_threadpool(self._model, rows)

    @contextlib.asynccontextmanager
    async def running(self):
        yield
