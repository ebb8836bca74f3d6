"""The short video through the tracking pipeline: one event per person track, not one per frame."""

import itertools
from datetime import timedelta
from pathlib import Path

from edge.sources import SourceKind, source_kind, video_file_frames


def test_video_frames_are_sampled_at_the_target_fps_and_stamped_from_clock_start(faces_dir, clock_start):
    clip = faces_dir / "misc" / "short_hamilton_clip.mp4"
    assert source_kind(str(clip)) is SourceKind.VIDEO
    stamps = [frame.captured_at for frame in video_file_frames(clip, clock_start, fps=5.0)]
    assert stamps[0] == clock_start
    assert 40 <= len(stamps) <= 50  # 275 frames at 29.97 fps = 9.2 s
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(stamps)]
    assert all(0.15 < gap < 0.25 for gap in gaps)


def test_tracking_publishes_far_fewer_events_than_frames_with_faces(faces_dir, make_pipeline, clock_start):
    clip = Path(faces_dir / "misc" / "short_hamilton_clip.mp4")
    pipeline = make_pipeline(tracking=True, source=str(clip))
    events, frames_with_faces = [], 0
    for frame in video_file_frames(clip, clock_start, fps=5.0):
        faces_before = pipeline.counters.faces
        events += pipeline.process(frame)
        frames_with_faces += pipeline.counters.faces > faces_before
    events += pipeline.finish()
    counters = pipeline.counters
    print(f"frames {counters.frames}, with faces {frames_with_faces}, faces {counters.faces}, events {len(events)}")
    assert frames_with_faces >= 30 and counters.faces >= 60
    assert 0 < len(events) <= frames_with_faces / 2
    assert len(events) <= counters.faces / 4
    assert len({event.track_id for event in events}) == len(events) == counters.tracks
    assert all(clock_start <= event.captured_at <= clock_start + timedelta(seconds=10) for event in events)


def test_people_crossing_the_frame_make_about_one_event_each(make_pipeline, edge_settings, clock_start, tmp_path):
    """N people walk across a 720p scene (partly overlapping in time): about N events, not one per frame."""
    from devstack.scenes import face_crops, write_video
    from edge.bootstrap import build_detector, resolve_detector_model

    crops = face_crops(build_detector(edge_settings, resolve_detector_model(edge_settings)))
    video = tmp_path / "walkers.mp4"
    people = write_video(video, crops, (1280, 720), fps=15, seconds=20)
    pipeline = make_pipeline(tracking=True, source=str(video))
    events = [e for frame in video_file_frames(video, clock_start, fps=5.0) for e in pipeline.process(frame)]
    events += pipeline.finish()
    print(f"{people} people, {pipeline.counters.faces} detections, {len(events)} events")
    assert pipeline.counters.faces >= 10 * people
    assert people <= len(events) <= people + 2
