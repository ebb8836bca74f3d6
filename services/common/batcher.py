"""Gathering messages that concurrent consumer workers handle into batches for one call, while each message
is still acked by its own worker, after the batch's commit, with its own result (or error)."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from services.common.outage import is_outage

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Hands what concurrent workers `submit` to `handle` in batches (at most `max_batch`, waiting at most
    `max_wait` seconds for one to fill), at most `in_flight` batches at a time (1: each sees what the previous
    committed; more only where `handle` orders concurrent batches itself, with locks). If a batch fails, its
    items are handled one by one, so one bad item fails alone; an outage (`services.common.outage.is_outage`: NATS,
    Postgres or S3 unreachable) or an error of a `fail_together` type is nobody's fault (a lease held elsewhere, a
    slow broker) and fails the whole batch at once, since handling the items one by one would wait as long once
    per item. The workers' guard waits an outage out and submits the items again."""

    def __init__(
        self,
        handle: Callable[[Sequence[Item]], Awaitable[list[Result]]],
        max_batch: int,
        max_wait: float,
        in_flight: int = 1,
        fail_together: tuple[type[Exception], ...] = (),
    ) -> None:
        self._handle, self._max_batch, self._max_wait = handle, max_batch, max_wait
        self._fail_together = fail_together
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._lock = asyncio.Semaphore(in_flight)
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_batch:
            self._start_flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_wait, self._start_flush)
        return await future

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = asyncio.create_task(self._flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        async with self._lock:
            # taken only once a batch in flight is done, so everything that arrived meanwhile is one batch
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            if self._pending and self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(self._max_wait, self._start_flush)
            if not batch:
                return
            try:
                results = await self._handle([item for item, _ in batch])
            except Exception as error:
                if isinstance(error, self._fail_together) or is_outage(error):
                    _fail_all(batch, error)
                else:
                    await self._one_by_one(batch)
                return
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _one_by_one(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        for index, (item, future) in enumerate(batch):
            try:
                result = (await self._handle([item]))[0]
            except Exception as error:  # handed to the waiting worker, which retries or dead-letters
                if is_outage(error):  # the rest would wait as long, each: they wait it out with their workers
                    _fail_all(batch[index:], error)
                    return
                if not future.done():
                    future.set_exception(error)
            else:
                if not future.done():
                    future.set_result(result)


def _fail_all(batch: Sequence[tuple[object, asyncio.Future[Result]]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
