"""Dynamic batching: concurrent requests share one model call, like TF Serving's batching.

A model call costs nearly the same for one image as for 32, so under load the server queues requests
and hands the model up to `max_batch_size` rows at once. The first request of a batch waits at most
`timeout_s` for company; requests that piled up while the model was busy go out together at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

BatchFunction = Callable[[np.ndarray], np.ndarray]


@dataclass
class _Pending:
    run: BatchFunction
    inputs: np.ndarray
    result: asyncio.Future[np.ndarray]


class DynamicBatcher:
    """Queues `submit(run, inputs)` calls and runs them in batches on one worker thread.

    Requests for different models (e.g. two versions during a hot swap) are never mixed in one batch;
    each carries the function that runs its model, so swapping versions needs no coordination here.
    """

    def __init__(
        self,
        max_batch_size: int,
        timeout_s: float,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self.max_batch_size = max_batch_size
        self.timeout_s = max(0.0, timeout_s)
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._held_over: _Pending | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="batcher")

    async def stop(self) -> None:
        """Stop taking batches; requests still queued are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while not self._queue.empty():
            self._queue.get_nowait().result.cancel()
        self._executor.shutdown(wait=True)

    async def submit(self, run: BatchFunction, inputs: np.ndarray) -> np.ndarray:
        """Rows of `run(batch)` for these inputs, once their batch has run."""
        result: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(run, inputs, result))
        return await result

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            await self._run(batch)

    async def _collect(self) -> list[_Pending]:
        """The next batch: one model, at most max_batch_size rows (a bigger single request runs alone)."""
        first = self._held_over or await self._queue.get()
        self._held_over = None
        batch, rows = [first], len(first.inputs)
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while rows < self.max_batch_size:
            item = await self._next_within(deadline)
            if item is None:
                break
            if item.run != first.run or rows + len(item.inputs) > self.max_batch_size:
                self._held_over = item
                break
            batch.append(item)
            rows += len(item.inputs)
        return batch

    async def _next_within(self, deadline: float) -> _Pending | None:
        if not self._queue.empty():
            return self._queue.get_nowait()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), remaining)
        except TimeoutError:
            return None

    async def _run(self, batch: list[_Pending]) -> None:
        live = [item for item in batch if not item.result.done()]
        if not live:
            return
        inputs = live[0].inputs if len(live) == 1 else np.concatenate([item.inputs for item in live])
        if self._on_batch is not None:
            self._on_batch(len(inputs))
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(self._executor, live[0].run, inputs)
        except Exception as error:
            for item in live:
                if not item.result.done():
                    item.result.set_exception(error)
            return
        start = 0
        for item in live:
            end = start + len(item.inputs)
            if not item.result.done():
                item.result.set_result(outputs[start:end])
            start = end
