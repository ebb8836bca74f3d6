"""Faces and facts for the matcher's integration tests (its fixture lives in tests/matcher/integration/conftest.py)."""

import json
import uuid

import numpy as np
from nats.aio.client import Client as NatsClient

from schemas import FaceIngested, FaceMatched, subjects
from schemas.base import Event
from schemas.export import EXAMPLES_DIR
from schemas.ids import new_event_id
from tests.support import collect_messages

MODEL = "test-model@1"


def ingested(tenant: str, vector: np.ndarray, model: str = MODEL, quality: float = 0.81) -> FaceIngested:
    example = json.loads((EXAMPLES_DIR / "FaceIngested.v1.json").read_text())
    example |= {
        "tenant_id": tenant,
        "event_id": str(new_event_id()),
        "embedding": [float(x) for x in vector],
        "embedding_model": model,
        "quality": quality,
    }
    return FaceIngested.model_validate(example)


async def publish(connection: NatsClient, events: list[FaceIngested]) -> None:
    js = connection.jetstream()
    for event in events:
        await js.publish(
            subjects.face_ingested(event.tenant_id, event.site_id),
            event.to_json_bytes(),
            headers={"Nats-Msg-Id": str(event.event_id)},
        )


async def publish_again(connection: NatsClient, subject: str, event: Event) -> None:
    """The same event JSON under a new `Nats-Msg-Id`: JetStream stores it, so the consumer gets it again
    (as after an edge replay beyond the duplicate window)."""
    await connection.jetstream().publish(subject, event.to_json_bytes(), headers={"Nats-Msg-Id": uuid.uuid4().hex})


def person_vectors(rng: np.random.Generator, count: int, noise: float = 0.3) -> np.ndarray:
    base = rng.normal(size=128)
    return base + noise * rng.normal(size=(count, 128))


async def matched_by_source(
    connection: NatsClient, tenant: str, count: int, timeout: float = 20
) -> dict[uuid.UUID, FaceMatched]:
    messages = await collect_messages(connection, f"faces.matched.{tenant}.>", count, timeout)
    events = [FaceMatched.model_validate_json(m.data) for m in messages]
    return {e.source_event_id: e for e in events}


def axis_mix(*weights: float, dim: int = 128) -> np.ndarray:
    """A unit vector from weights on the first axes: similarities between such faces are set exactly."""
    vector = np.zeros(dim, dtype=np.float32)
    vector[: len(weights)] = weights
    result: np.ndarray = vector / np.linalg.norm(vector)
    return result


def at_similarity(similarity: float, dim: int = 128) -> np.ndarray:
    """A unit vector whose cosine similarity to `axis_mix(1)` is exactly `similarity`."""
    return axis_mix(similarity, float(np.sqrt(1 - similarity**2)), dim=dim)
