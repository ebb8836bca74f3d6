import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas import FaceDetected
from schemas.export import EXAMPLES_DIR
from services.common.bus import InvalidEvent
from services.ingest.domain import validation


@pytest.fixture
def event() -> FaceDetected:
    return FaceDetected.model_validate_json((EXAMPLES_DIR / "FaceDetected.v1.json").read_text())


def test_subject_must_name_the_events_tenant_site_and_camera(event: FaceDetected) -> None:
    validation.check_subject_matches(event, "faces.detected.acme.store-1.entrance")
    with pytest.raises(InvalidEvent, match="does not match"):
        validation.check_subject_matches(event, "faces.detected.other.store-1.entrance")


def test_embedding_must_be_finite_and_non_zero() -> None:
    validation.check_embedding([0.1] * 128)
    with pytest.raises(InvalidEvent, match="NaN"):
        validation.check_embedding([float("nan")] + [0.1] * 127)
    with pytest.raises(InvalidEvent, match="zeros"):
        validation.check_embedding([0.0] * 128)


def test_crop_must_be_a_small_jpeg() -> None:
    validation.check_crop(None, 100)
    validation.check_crop(b"\xff\xd8\xff" + b"0" * 10, 100)
    with pytest.raises(InvalidEvent, match="not a JPEG"):
        validation.check_crop(b"\x89PNG....", 100)
    with pytest.raises(InvalidEvent, match="limit"):
        validation.check_crop(b"\xff\xd8\xff" + b"0" * 200, 100)


def test_capture_time_may_not_be_in_the_future() -> None:
    now = datetime(2026, 11, 2, tzinfo=UTC)
    validation.check_capture_time(now + timedelta(seconds=10), now, timedelta(minutes=5))
    with pytest.raises(InvalidEvent, match="future"):
        validation.check_capture_time(now + timedelta(hours=1), now, timedelta(minutes=5))


def test_crop_key_is_partitioned_by_tenant_site_and_day(event: FaceDetected) -> None:
    assert validation.crop_key(event) == f"acme/store-1/2026/11/02/{event.event_id}.jpg"
    assert json.loads((EXAMPLES_DIR / "FaceIngested.v1.json").read_text())["crop_key"] == validation.crop_key(event)
