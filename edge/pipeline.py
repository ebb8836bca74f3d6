"""From frames to `FaceDetected` events: detect, filter, align, score, track, keep the best crops, embed.

`CameraPipeline` is synchronous CPU work (run in a worker thread); `run_camera` feeds it frames and hands
its events to a sink without blocking the event loop that publishes them.
"""

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from edge.align import align_face, crop_box, encode_jpeg_within, share_inside_frame, template_transform
from edge.appearance import EmbeddedLook
from edge.best_crop import BestCropSelector
from edge.config import Camera, EdgeSettings
from edge.detector import Box, Detection, Detector, Image
from edge.embedder import OnnxEmbedder, Vectors
from edge.metrics import DETECT_SECONDS, EMBED_SECONDS, FACES, FRAMES, STAFF_FILTERED, TRACKS
from edge.pooling import agreeing_faces, pool_embeddings
from edge.publisher import EventSink
from edge.quality import face_quality, unoccluded_score
from edge.sources import Frame
from edge.staff import StaffGallery
from edge.tracker import FaceTracker, Observation, TrackerTuning
from plumbing.logging import get_logger
from schemas.faces import FaceBox, FaceDetected
from schemas.ids import new_event_id

log = get_logger(__name__)

CLEAR = 0.9
"""Unoccluded score from which a face's embedding is trusted by the tracker to tell it from another face."""
HEADERS_ALLOWANCE = 1024
"""Room left under the bus's max_payload for the message headers (Nats-Msg-Id, content-type: about 100 bytes)."""
ALREADY_EMBEDDED_EXTRA = 2
"""A track also holds this many faces after its `track_pooled_faces` best, pooled only if the tracker has
already embedded them: free evidence. On the motion benchmark this pooled as well as embedding the best
five, with a quarter fewer embeddings."""


@dataclass(frozen=True)
class FaceCandidate:
    """A detected face that may be published. Its crop is cut from the frame at once (a small copy), so a
    track holding its few best faces does not hold whole frames; it is JPEG-encoded only if published."""

    detection: Detection
    look: EmbeddedLook
    """The aligned face and, once computed, its embedding."""
    quality: float
    unoccluded: float
    crop: Image | None
    """The box with its margin, None in privacy mode."""
    captured_at: datetime


@dataclass
class PipelineCounters:
    frames: int = 0
    faces: int = 0
    tracks: int = 0
    events: int = 0
    staff_filtered: int = 0
    last_frame: str = ""
    """The last frame processed (an image file, or `frame <n>`): how far a source got."""


def tracker_tuning(settings: EdgeSettings) -> TrackerTuning:
    return TrackerTuning(
        timeout_seconds=settings.track_timeout_seconds,
        max_speed_face_widths=settings.track_max_speed_face_widths,
        motion_gate_face_widths=settings.track_motion_gate_face_widths,
        min_appearance=settings.track_min_appearance,
    )


class CameraPipeline:
    """One camera's processing. With `tracking`, one event per track period; without, one per face."""

    def __init__(
        self,
        camera: Camera,
        settings: EdgeSettings,
        detector: Detector,
        embedder: OnnxEmbedder,
        tracking: bool,
        staff: StaffGallery | None = None,
    ) -> None:
        """`staff` None publishes every face (no gallery: tests and benchmarks of the bare path)."""
        self.camera, self._settings = camera, settings
        self._detector, self._embedder, self._staff = detector, embedder, staff
        self._tracker = FaceTracker(tracker_tuning(settings)) if tracking else None
        self._selector: BestCropSelector[FaceCandidate] = BestCropSelector(
            settings.track_emit_interval_seconds, settings.track_pooled_faces + ALREADY_EMBEDDED_EXTRA
        )
        self._track_prefix = new_event_id().hex[-12:]  # unique per run: track ids never repeat across restarts
        self._max_payload = settings.max_payload_bytes
        self._untracked = 0
        self.counters = PipelineCounters()

    def use_staff_gallery(self, staff: StaffGallery) -> None:
        self._staff = staff

    def limit_payload(self, server_max_payload: int) -> None:
        """Fit events under the server's max_payload too, when it is below the configured one."""
        self._max_payload = min(self._settings.max_payload_bytes, server_max_payload)

    def process(self, frame: Frame) -> list[FaceDetected]:
        """The events due after this frame."""
        started = time.perf_counter()
        detections = [d for d in self._detector.detect(frame.image) if self._accept(d)]
        DETECT_SECONDS.observe(time.perf_counter() - started)
        self._count(frames=1, faces=len(detections))
        self.counters.last_frame = frame.name
        candidates = [self._candidate(d, frame, [o.box for o in detections if o is not d]) for d in detections]
        if self._tracker is None:
            return self._embed_and_build([(self._new_untracked_id(), [c]) for c in candidates if self._good(c)])
        now = frame.captured_at.timestamp()
        observations = [Observation(c.detection.box, c.look, c.quality, c.unoccluded >= CLEAR) for c in candidates]
        update = self._tracker.update(observations, now)
        self._count(tracks=len(update.started))
        for track_id, candidate in zip(update.track_ids, candidates, strict=True):
            if self._good(candidate):
                self._selector.offer(track_id, candidate, now)
        due = self._selector.take_due([track.track_id for track in update.ended], now)
        return self._embed_and_build([(self._track_id(track_id), best) for track_id, best in due])

    def finish(self) -> list[FaceDetected]:
        """The events of the tracks still open when the source ended."""
        if self._tracker is None:
            return []
        self._tracker.finish()
        return self._embed_and_build([(self._track_id(track_id), best) for track_id, best in self._selector.take_all()])

    def _accept(self, detection: Detection) -> bool:
        return (
            detection.score >= self._settings.detection_score_threshold
            and detection.box.short_side >= self.camera.min_face_px
        )

    def _good(self, candidate: FaceCandidate) -> bool:
        return candidate.quality >= self._settings.min_quality

    def _candidate(self, detection: Detection, frame: Frame, others: list[Box]) -> FaceCandidate:
        transform = template_transform(detection.landmarks)
        aligned = align_face(frame.image, detection.landmarks, transform)
        height, width = frame.image.shape[:2]
        unoccluded = unoccluded_score(detection.box, share_inside_frame(transform, width, height), others)
        quality = face_quality(detection.box.short_side, aligned, detection.landmarks, detection.score, unoccluded)
        look = EmbeddedLook(aligned, self._embedder)
        crop = crop_box(frame.image, detection.box, self._settings.crop_margin) if self._settings.send_crops else None
        return FaceCandidate(detection, look, quality, unoccluded, crop, frame.captured_at)

    def _embed_and_build(self, held: list[tuple[str, list[FaceCandidate]]]) -> list[FaceDetected]:
        """One event per entry (a track's best candidates, best first): the crop of the best face that agrees
        with the others on who it is, and the embedding pooled from those that agree (`edge.pooling`)."""
        if not held:
            return []
        chosen = [(track_id, self._worth_embedding(best)) for track_id, best in held]
        vectors = self._embed([candidate.look for _, best in chosen for candidate in best])
        faces, pooled, start = [], [], 0
        for _, best in chosen:
            own = vectors[start : start + len(best)]
            group = agreeing_faces(own, [c.quality for c in best])
            faces.append(best[group[0]])
            pooled.append(pool_embeddings(own[group], [best[i].quality for i in group]))
            start += len(best)
        staff = self._is_staff(np.asarray(pooled, dtype=np.float32))
        events = [
            self._event(track_id, face, [float(v) for v in vector])
            for (track_id, _), face, vector, is_staff in zip(chosen, faces, pooled, staff, strict=True)
            if not is_staff
        ]
        self._count(events=len(events), staff_filtered=len(chosen) - len(events))
        return events

    def _worth_embedding(self, best: list[FaceCandidate]) -> list[FaceCandidate]:
        """The `track_pooled_faces` best, and the others held whose embedding the tracker already computed."""
        count = self._settings.track_pooled_faces
        return best[:count] + [candidate for candidate in best[count:] if candidate.look.computed]

    def _embed(self, looks: list[EmbeddedLook]) -> Vectors:
        """The embedding of each face: the tracker's when it already asked for it, else computed in one batch."""
        missing = [look for look in looks if not look.computed]
        if missing:
            started = time.perf_counter()
            vectors = self._embedder.embed([look.aligned for look in missing])
            per_face = (time.perf_counter() - started) / len(missing)
            for look, vector in zip(missing, vectors, strict=True):
                look.use(vector)
                EMBED_SECONDS.observe(per_face)
        return np.asarray([look.vector for look in looks], dtype=np.float32)

    def _is_staff(self, vectors: Vectors) -> list[bool]:
        if self._staff is None or len(self._staff) == 0:
            return [False] * len(vectors)
        similarities = self._staff.similarities(vectors, self._embedder.model_id)
        return [bool(value >= self._settings.staff_threshold) for value in similarities]

    def _event(self, track_id: str, candidate: FaceCandidate, embedding: list[float]) -> FaceDetected:
        detection = candidate.detection
        event = FaceDetected(
            tenant_id=self.camera.tenant_id,
            site_id=self.camera.site_id,
            camera_id=self.camera.camera_id,
            captured_at=candidate.captured_at,
            track_id=track_id,
            embedding_model=self._embedder.model_id,
            box=FaceBox(x=detection.box.x, y=detection.box.y, width=detection.box.width, height=detection.box.height),
            landmarks=list(detection.landmarks),
            detector_score=detection.score,
            quality=min(max(candidate.quality, 0.0), 1.0),
            embedding=embedding,
        )
        return event if candidate.crop is None else self._with_crop(event, candidate.crop)

    def _with_crop(self, event: FaceDetected, crop: Image) -> FaceDetected:
        """The event with its crop, encoded to fit both ingest's crop limit and the bus's max_payload, so no
        event can block the outbox or be refused for its size."""
        budget = min(self._settings.max_crop_bytes, crop_budget(len(event.to_json_bytes()), self._max_payload))
        jpeg = encode_jpeg_within(crop, self._settings.jpeg_quality, budget)
        if jpeg is None:
            log.warning("crop_dropped_too_large", camera=self.camera.camera_id, shape=crop.shape, budget=budget)
            return event
        return event.model_copy(update={"crop_jpeg": jpeg})

    def _track_id(self, track_number: int) -> str:
        return f"{self._track_prefix}-{track_number}"

    def _new_untracked_id(self) -> str:
        self._untracked += 1
        self._count(tracks=1)
        return self._track_id(self._untracked)

    def _count(
        self, frames: int = 0, faces: int = 0, tracks: int = 0, events: int = 0, staff_filtered: int = 0
    ) -> None:
        counters, camera = self.counters, self.camera.camera_id
        counters.frames += frames
        counters.faces += faces
        counters.tracks += tracks
        counters.events += events
        counters.staff_filtered += staff_filtered
        STAFF_FILTERED.labels(camera).inc(staff_filtered)
        FRAMES.labels(camera).inc(frames)
        FACES.labels(camera).inc(faces)
        TRACKS.labels(camera).inc(tracks)


def crop_budget(event_bytes_without_crop: int, max_payload: int) -> int:
    """The largest crop, in bytes, an event of `event_bytes_without_crop` (its `"crop_jpeg":null`) can carry
    under `max_payload`: the crop travels as base64 (4 characters per 3 bytes) between quotes."""
    base64_room = max_payload - HEADERS_ALLOWANCE - event_bytes_without_crop + len("null") - len('""')
    return max(base64_room // 4 * 3, 0)


def _next_events(pipeline: CameraPipeline, frames: Iterator[Frame]) -> list[FaceDetected] | None:
    """Read and process one frame (in a worker thread); None when the source has ended."""
    frame = next(frames, None)
    return None if frame is None else pipeline.process(frame)


async def run_camera(pipeline: CameraPipeline, frames: Iterator[Frame], sink: EventSink, stop: asyncio.Event) -> None:
    """Process a source to its end or until `stop`, then publish the open tracks' best crops.

    Decoding and inference run in a worker thread, so the event loop keeps publishing meanwhile.
    """
    while not stop.is_set() and (events := await asyncio.to_thread(_next_events, pipeline, frames)) is not None:
        for event in events:
            await sink.send(event)
    for event in await asyncio.to_thread(pipeline.finish):
        await sink.send(event)
