import json
from datetime import UTC, datetime, timedelta

import pytest

from schemas import FaceDetected
from schemas.export import EXAMPLES_DIR
from services.common.bus import InvalidEvent
from services.ingest.domain import validation

JPEG_START = b"\xff\xd8\xff"


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


def test_capture_time_may_be_neither_in_the_future_nor_older_than_the_outbox_keeps_events() -> None:
    now, skew, week = datetime(2026, 11, 2, tzinfo=UTC), timedelta(minutes=5), timedelta(days=7)
    validation.check_capture_time(now + timedelta(seconds=10), now, skew, week)
    validation.check_capture_time(now - timedelta(days=6, hours=23), now, skew, week)
    with pytest.raises(InvalidEvent, match="future"):
        validation.check_capture_time(now + timedelta(hours=1), now, skew, week)
    with pytest.raises(InvalidEvent, match=r"1970-01-01.* older than 7 days"):
        validation.check_capture_time(datetime(1970, 1, 1, tzinfo=UTC), now, skew, week)


def test_embedding_model_must_be_known_and_its_vectors_its_length() -> None:
    known = {"mobilefacenet_arcface_128": 128, "arcface_r50_w600k_512": 512}
    validation.check_embedding_model("mobilefacenet_arcface_128@e72a5710", 128, known)
    validation.check_embedding_model("arcface_r50_w600k_512@0123abcd", 512, known)
    for unknown in ("test-model@1", "bench-model@00000000", "mobilefacenet_arcface_128", "sface@0123abcd"):
        with pytest.raises(InvalidEvent, match="not a known model"):
            validation.check_embedding_model(unknown, 128, known)
    with pytest.raises(InvalidEvent, match="has 128 values; arcface_r50_w600k_512@0123abcd gives 512"):
        validation.check_embedding_model("arcface_r50_w600k_512@0123abcd", 128, known)


def test_the_body_limit_holds_the_largest_legal_event(event: FaceDetected) -> None:
    """A crop of the maximum size and the longest embedding, each value as long as JSON writes a float."""
    max_crop = 256 * 1024
    largest = event.model_copy(
        update={"crop_jpeg": JPEG_START + b"\xff" * (max_crop - 3), "embedding": [-1.2345678901234567e-100] * 2048}
    )
    indented = json.dumps(json.loads(largest.to_json_bytes()), indent=2).encode()
    assert len(largest.to_json_bytes()) < len(indented) <= validation.largest_event_bytes(max_crop)
    assert validation.largest_event_bytes(max_crop) == 431_448


def test_crop_key_is_partitioned_by_tenant_site_and_day(event: FaceDetected) -> None:
    assert validation.crop_key(event) == f"acme/store-1/2026/11/02/{event.event_id}.jpg"
    assert json.loads((EXAMPLES_DIR / "FaceIngested.v1.json").read_text())["crop_key"] == validation.crop_key(event)


@pytest.mark.parametrize("track_id", ["t\x00", "t\n1", "\x1b[31m"])
def test_a_track_id_with_a_control_character_is_refused(track_id: str) -> None:
    with pytest.raises(InvalidEvent, match="control character"):
        validation.check_track_id(track_id)
    validation.check_track_id("entrance-000042")
