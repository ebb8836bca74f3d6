"""Reading a bucket's live keys to its last revision (services/common/kv_mirror.py `current_keys`), on real NATS."""

import uuid

from nats.aio.client import Client as NatsClient

from services.common.kv_mirror import current_keys, state_bucket


async def test_every_live_key_and_no_deleted_one(nats_connection: NatsClient) -> None:
    bucket = await state_bucket(nats_connection, f"keys_{uuid.uuid4().hex[:8]}")
    try:
        assert await current_keys(bucket) == set()
        for n in range(300):
            await bucket.put(f"tenant-{n}.models", b"{}")
        await bucket.delete("tenant-7.models")
        await bucket.put("tenant-3.retention", b"{}")
        await bucket.purge("tenant-9.models")

        keys = await current_keys(bucket)

        expected = {f"tenant-{n}.models" for n in range(300)} - {"tenant-7.models", "tenant-9.models"}
        assert keys == expected | {"tenant-3.retention"}
    finally:
        await nats_connection.jetstream().delete_key_value((await bucket.status()).bucket)
