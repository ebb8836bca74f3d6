import asyncio
import json

from schemas import FaceIngested, FaceMatched
from schemas.export import EXAMPLES_DIR
from services.matcher.consumers import match_batcher

EVENT = FaceIngested.model_validate_json((EXAMPLES_DIR / "FaceIngested.v1.json").read_text())
MATCHED = FaceMatched.model_validate(json.loads((EXAMPLES_DIR / "FaceMatched.v1.json").read_text()))


async def test_events_arriving_during_a_batch_form_the_next_batch() -> None:
    batches: list[int] = []

    async def slow_match(events):
        batches.append(len(events))
        await asyncio.sleep(0.05)
        return [MATCHED for _ in events]

    batcher = match_batcher(slow_match, max_batch=64, max_wait=0.001)
    first = asyncio.create_task(batcher.submit(EVENT))
    await asyncio.sleep(0.01)  # the first batch (of one) is running now
    rest = [asyncio.create_task(batcher.submit(EVENT)) for _ in range(30)]
    await asyncio.gather(first, *rest)
    assert batches == [1, 30]


async def test_a_failing_event_does_not_fail_its_batch() -> None:
    bad = EVENT.model_copy(update={"track_id": "bad"})

    async def match(events):
        if any(e.track_id == "bad" for e in events):
            raise ValueError("bad event")
        return [MATCHED for _ in events]

    batcher = match_batcher(match, max_batch=8, max_wait=0.001)
    results = await asyncio.gather(*(batcher.submit(e) for e in (EVENT, bad, EVENT)), return_exceptions=True)
    assert isinstance(results[1], ValueError)
    assert results[0] == MATCHED and results[2] == MATCHED


async def test_max_batch_is_respected() -> None:
    sizes: list[int] = []

    async def match(events):
        sizes.append(len(events))
        return [MATCHED for _ in events]

    batcher = match_batcher(match, max_batch=4, max_wait=0.001)
    await asyncio.gather(*(batcher.submit(EVENT) for _ in range(10)))
    assert max(sizes) <= 4 and sum(sizes) == 10


async def test_a_timeout_fails_the_whole_batch_at_once() -> None:
    """A tenant's lease held elsewhere is no event's fault: retrying each event alone would wait once per event."""
    calls: list[int] = []

    async def match(events):
        calls.append(len(events))
        raise TimeoutError("lease held by another matcher")

    batcher = match_batcher(match, max_batch=8, max_wait=0.001)
    results = await asyncio.gather(*(batcher.submit(EVENT) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(result, TimeoutError) for result in results)
    assert calls == [3]


async def test_an_outage_fails_the_whole_batch_at_once() -> None:
    """NATS gone while publishing: every event would fail alike, so the batch is not retried event by event; each
    worker's guard waits the outage out with its message."""
    import nats.js.errors

    calls: list[int] = []

    async def match(events):
        calls.append(len(events))
        raise RuntimeError("publishing FaceMatched failed") from nats.js.errors.NoStreamResponseError()

    batcher = match_batcher(match, max_batch=8, max_wait=0.001)
    results = await asyncio.gather(*(batcher.submit(EVENT) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    assert calls == [3]


async def test_an_outage_met_one_by_one_fails_the_rest_without_trying_them() -> None:
    """A bad event sent the batch one by one, then the dependency went away: the events left are not each tried
    against it (each would wait as long), they go back to their workers at once."""
    import nats.errors

    bad = EVENT.model_copy(update={"track_id": "bad"})
    calls: list[int] = []

    async def match(events):
        calls.append(len(events))
        if len(events) > 1:
            raise ValueError("bad event")
        raise nats.errors.ConnectionClosedError()

    batcher = match_batcher(match, max_batch=8, max_wait=0.001)
    results = await asyncio.gather(*(batcher.submit(e) for e in (bad, EVENT, EVENT)), return_exceptions=True)
    assert all(isinstance(result, nats.errors.ConnectionClosedError) for result in results)
    assert calls == [3, 1]
