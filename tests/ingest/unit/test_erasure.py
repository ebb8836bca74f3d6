"""Which crop erasure batches ingest accepts."""

import uuid

import pytest

from schemas import CropsErasureRequested
from services.common.bus import InvalidEvent
from services.ingest.domain.erasure import crops_to_erase, erasure_step


def request(keys: list[str], batch: int = 0, batches: int = 1) -> CropsErasureRequested:
    return CropsErasureRequested(
        tenant_id="acme",
        operation_id=uuid.uuid4(),
        person_id=uuid.uuid4(),
        batch=batch,
        batches=batches,
        crop_keys=keys,
    )


def test_the_tenants_keys_are_erased_once_each_in_order() -> None:
    keys = ["acme/s/2026/11/02/b.jpg", "acme/s/2026/11/02/a.jpg", "acme/s/2026/11/02/b.jpg"]
    assert crops_to_erase(request(keys)) == keys[:2]
    assert crops_to_erase(request([])) == []


@pytest.mark.parametrize("key", ["other/s/2026/11/02/a.jpg", "acme-2/s/a.jpg", "acmes/a.jpg", "acme/", "/acme/a.jpg"])
def test_a_key_outside_the_tenants_prefix_refuses_the_whole_batch(key: str) -> None:
    with pytest.raises(InvalidEvent, match="outside tenant acme"):
        crops_to_erase(request(["acme/s/2026/11/02/a.jpg", key]))


def test_a_batch_beyond_the_announced_count_is_refused() -> None:
    with pytest.raises(InvalidEvent, match="not below batches"):
        crops_to_erase(request(["acme/a.jpg"], batch=1, batches=1))


def test_each_batch_is_its_own_step() -> None:
    assert erasure_step(request([], batch=3, batches=4)) == "crops/3"
