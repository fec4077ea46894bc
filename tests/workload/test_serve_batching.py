"""Dynamic batching: concurrent requests share model calls, each caller gets exactly its own rows."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from workload.batching import DynamicBatcher


class CountingModel:
    """A real batched function (row-wise affine map) that records the batch sizes it was called with."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self.batch_sizes: list[int] = []

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(inputs))
        if np.isnan(inputs).any():
            raise ValueError("model failed on NaN")
        return inputs * self.scale + 1


async def _with_batcher(max_batch_size: int, timeout_s: float, work):
    sizes: list[int] = []
    batcher = DynamicBatcher(max_batch_size, timeout_s, on_batch=sizes.append)
    batcher.start()
    try:
        return await work(batcher), sizes
    finally:
        await batcher.stop()


def test_concurrent_requests_share_one_call_and_get_their_own_rows():
    model = CountingModel(2.0)
    requests = [np.full((1, 3), float(i)) for i in range(10)]

    async def work(batcher):
        return await asyncio.gather(*(batcher.submit(model.predict, r) for r in requests))

    answers, sizes = asyncio.run(_with_batcher(32, 0.05, work))
    assert model.batch_sizes == [10]
    assert sizes == [10]
    for request, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer, request * 2 + 1)


def test_batches_never_exceed_the_maximum_rows():
    model = CountingModel(1.0)

    async def work(batcher):
        return await asyncio.gather(*(batcher.submit(model.predict, np.ones((2, 1))) for _ in range(7)))

    answers, _ = asyncio.run(_with_batcher(4, 0.05, work))
    assert max(model.batch_sizes) <= 4
    assert sum(model.batch_sizes) == 14
    assert all(a.shape == (2, 1) for a in answers)


def test_a_request_bigger_than_the_maximum_runs_alone():
    model = CountingModel(1.0)

    async def work(batcher):
        return await batcher.submit(model.predict, np.zeros((9, 1)))

    answer, _ = asyncio.run(_with_batcher(4, 0.0, work))
    assert answer.shape == (9, 1)
    assert model.batch_sizes == [9]


def test_requests_for_different_models_are_never_mixed():
    old, new = CountingModel(1.0), CountingModel(10.0)

    async def work(batcher):
        calls = [batcher.submit((old if i % 2 else new).predict, np.full((1, 1), i)) for i in range(6)]
        return await asyncio.gather(*calls)

    answers, _ = asyncio.run(_with_batcher(32, 0.02, work))
    for i, answer in enumerate(answers):
        assert answer[0, 0] == (i * 1.0 + 1 if i % 2 else i * 10.0 + 1)
    assert sum(old.batch_sizes) == 3 and sum(new.batch_sizes) == 3


def test_a_failing_batch_fails_its_callers_and_the_batcher_keeps_working():
    model = CountingModel(1.0)

    async def work(batcher):
        with pytest.raises(ValueError, match="NaN"):
            await batcher.submit(model.predict, np.full((1, 1), np.nan))
        return await batcher.submit(model.predict, np.ones((1, 1)))

    answer, _ = asyncio.run(_with_batcher(8, 0.0, work))
    np.testing.assert_array_equal(answer, [[2.0]])
