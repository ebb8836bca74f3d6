"""Detection, alignment and embedding on the labelled photos, through the real image-folder pipeline."""

import itertools
from collections import defaultdict
from datetime import timedelta

import cv2
import numpy as np

from edge.sources import image_folder_frames
from schemas.faces import FaceDetected

SAME_PERSON_MIN = 0.45
OTHER_PERSON_MAX = 0.35


def labelled_events(faces_dir, pipeline, clock_start) -> dict[str, list[list[FaceDetected]]]:
    """Person -> the events of each of their photos (one list per photo)."""
    by_person: dict[str, list[list[FaceDetected]]] = defaultdict(list)
    for person_dir in sorted(path for path in faces_dir.iterdir() if path.is_dir() and path.name != "misc"):
        for frame in image_folder_frames(person_dir, clock_start, 1.0):
            by_person[person_dir.name].append(pipeline.process(frame))
    return by_person


def test_labelled_photos_give_one_face_each_and_embeddings_separate_people(faces_dir, make_pipeline, clock_start):
    by_person = labelled_events(faces_dir, make_pipeline(tracking=False), clock_start)
    counts = {person: [len(events) for events in photos] for person, photos in by_person.items()}
    assert sum(len(photos) for photos in by_person.values()) >= 20
    assert all(count == 1 for photos in counts.values() for count in photos), counts

    people = [(person, np.asarray(events[0].embedding)) for person, photos in by_person.items() for events in photos]
    same: list[float] = []
    other: list[float] = []
    for (person_a, a), (person_b, b) in itertools.combinations(people, 2):
        (same if person_a == person_b else other).append(float(a @ b))
    print(f"same-person min {min(same):.3f}, different-person max {max(other):.3f}")
    assert min(same) > SAME_PERSON_MIN
    assert max(other) < OTHER_PERSON_MAX


def test_events_carry_a_normalised_embedding_model_id_box_and_crop(faces_dir, make_pipeline, clock_start):
    frames = list(image_folder_frames(faces_dir / "kit_harington", clock_start, 2.5))
    events = [event for frame in frames for event in make_pipeline(tracking=False).process(frame)]
    assert [event.captured_at for event in events] == [clock_start + timedelta(seconds=2.5 * i) for i in range(3)]
    for event, frame in zip(events, frames, strict=True):
        assert event.embedding_model == "mobilefacenet_arcface_128@e72a5710"
        assert len(event.embedding) == 128 and abs(np.linalg.norm(event.embedding) - 1) < 1e-4
        height, width = frame.image.shape[:2]
        assert 0 <= event.box.x + event.box.width / 2 <= width and 0 <= event.box.y + event.box.height / 2 <= height
        assert all(
            event.box.x <= x <= event.box.x + event.box.width and event.box.y <= y <= event.box.y + event.box.height
            for x, y in event.landmarks
        )
        crop = cv2.imdecode(np.frombuffer(event.crop_jpeg or b"", np.uint8), cv2.IMREAD_COLOR)
        assert crop is not None and crop.shape[0] >= event.box.height * 0.9
        assert 0 < event.quality <= 1 and 0.7 <= event.detector_score <= 1
        assert FaceDetected.model_validate_json(event.to_json_bytes()) == event
    assert len({event.track_id for event in events}) == 3


def test_group_photo_gives_six_events_and_privacy_mode_sends_no_crop(
    faces_dir, make_pipeline, edge_settings, clock_start, tmp_path
):
    group = tmp_path / "group"
    group.mkdir()
    (group / "six.jpg").symlink_to(faces_dir / "misc" / "group_of_six.jpg")
    private = edge_settings.model_copy(update={"send_crops": False})
    [frame] = image_folder_frames(group, clock_start, 1.0)
    events = make_pipeline(tracking=False, settings=private).process(frame)
    assert len(events) == 6
    assert all(event.crop_jpeg is None for event in events)
    assert b'crop_jpeg":null' in events[0].to_json_bytes()
