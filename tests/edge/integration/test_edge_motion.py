"""People who walk, through the real models: the labelled scenes of devstack.motion at 5 fps.

Each event is traced to the walker whose face it shows, so "one person, one track, one event" is
checked against the truth, not only counted."""

import itertools
from collections import Counter
from datetime import datetime

import numpy as np
import pytest

from devstack.motion import MotionScene, Pillar, Portraits, SceneRenderer, Walk, event_box, hard_scenes, whose_face
from edge.pipeline import CameraPipeline

FPS = 5.0


@pytest.fixture(scope="module")
def renderer(edge_settings) -> SceneRenderer:
    from edge.bootstrap import build_detector, resolve_detector_model

    return SceneRenderer(Portraits(build_detector(edge_settings, resolve_detector_model(edge_settings))))


def run(pipeline: CameraPipeline, renderer: SceneRenderer, scene: MotionScene, clock_start: datetime):
    """The events of the scene, each with the walk index of the face it shows."""
    truth_at, events = {}, []
    for frame, truth in renderer.frames(scene, FPS, clock_start):
        truth_at[frame.captured_at] = truth
        events += pipeline.process(frame)
    events += pipeline.finish()
    return [(event, whose_face(event_box(event), truth_at[event.captured_at])) for event in events]


def scene_named(name: str) -> MotionScene:
    return next(scene for scene in hard_scenes() if scene.name == name)


def test_a_person_crossing_a_1280_px_frame_in_2_s_is_one_track_and_one_event(make_pipeline, renderer, clock_start):
    scene = scene_named("fast-crossing-2s")
    assert scene.walks[0].crossing_seconds == 2.0 and renderer.size[0] == 1280
    pipeline = make_pipeline(tracking=True)
    events = run(pipeline, renderer, scene, clock_start)
    assert pipeline.counters.faces >= 8  # seen in most of the ~10 frames of its crossing
    assert pipeline.counters.tracks == 1
    assert [truth.person for _, truth in events if truth] == ["obama"] and len(events) == 1


def test_two_people_passing_each_other_are_two_tracks(make_pipeline, renderer, clock_start):
    scene = scene_named("passing-each-other")
    pipeline = make_pipeline(tracking=True)
    events = run(pipeline, renderer, scene, clock_start)
    walks = Counter(truth.walk for _, truth in events if truth)
    assert walks == {0: 1, 1: 1}, f"events per walk: {walks}"
    assert len({event.track_id for event, _ in events}) == 2


def test_a_face_lost_behind_a_pillar_for_under_a_second_keeps_its_track(make_pipeline, renderer, clock_start):
    walk = Walk("john_lennon", "john_lennon/john_lennon_1.jpg", 0.2, 3.0, face_px=(90, 90))
    scene = MotionScene("pillar", 4.0, (walk,), pillars=(Pillar(0.42, 0.62),))
    visible = [
        frame.captured_at
        for frame, truth in renderer.frames(scene, FPS, clock_start)
        if truth and truth[0].visible_fraction > 0.9
    ]
    longest_gap = max((later - earlier).total_seconds() for earlier, later in itertools.pairwise(visible))
    assert 0.6 <= longest_gap <= 1.0  # the pillar hides the face for 2-4 frames
    pipeline = make_pipeline(tracking=True)
    events = run(pipeline, renderer, scene, clock_start)
    assert pipeline.counters.tracks == 1
    assert len(events) == 1 and events[0][1] is not None and events[0][1].walk == 0


def test_three_people_in_close_file_are_three_tracks_and_three_events(make_pipeline, renderer, clock_start):
    pipeline = make_pipeline(tracking=True)
    events = run(pipeline, renderer, scene_named("close-file"), clock_start)
    assert Counter(truth.walk for _, truth in events if truth) == {0: 1, 1: 1, 2: 1}


def test_people_crossing_head_on_each_get_one_event_with_their_own_face(
    make_pipeline, renderer, clock_start, edge_settings, embedder, faces_dir
):
    """Where the faces meet, the tracker gives one of them to the other's track for a frame, and that frame
    is the track's sharpest: the event still shows, and is embedded from, the track's own walker."""
    from edge.bootstrap import build_detector, resolve_detector_model
    from edge.enrol import embed_photos

    scene = scene_named("head-on-crossing")
    events = run(make_pipeline(tracking=True), renderer, scene, clock_start)
    assert Counter(truth.walk for _, truth in events if truth) == {0: 1, 1: 1}
    detector = build_detector(edge_settings, resolve_detector_model(edge_settings))
    photos = [embed_photos(detector, embedder, [faces_dir / walk.photo])[0] for walk in scene.walks]
    for event, truth in events:
        assert truth is not None
        similarities = [float(np.dot(photo, event.embedding)) for photo in photos]
        assert similarities.index(max(similarities)) == truth.walk, similarities
