"""Motion benchmark (`python -m bench motion`): does the edge count people who walk?

Renders the labelled scenes of `devstack.motion` (random shop-entrance clips and scenes made to break a
tracker), runs each through the edge's real `CameraPipeline` (YuNet, alignment, quality, tracker, best
crop, MobileFaceNet, staff filter with the staff member enrolled from another photo), then assigns the
published events to persons the way the matcher does (its own `assign_batch`, the same threshold, ambiguous
band and quality floors, over an exact search), and scores the result against the truth:

- events per person-visit (a walk across the frame is one person-visit),
- unique visitors found vs true, and pairwise precision / recall / F1 of person assignment over events,
- ambiguous matches (a face in the band started a provisional person; how many of those pairs were in
  truth one person, i.e. a merge an operator would accept),
- staff counted (a staff event that became or joined a person), unidentified sightings,
- edge CPU seconds per second of video at 5 and 10 fps, against a naive per-frame pipeline (detection on
  every frame of a 15 fps camera at full resolution, an embedding for every face).

Every clip is a separate hour of the same site, so a person's walks in different clips are different visits.
"""

import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from bench.report import table, write_section
from devstack.motion import (
    STAFF_ENROLMENT_PHOTO,
    STAFF_PERSON,
    MotionScene,
    Portraits,
    SceneRenderer,
    TruthFace,
    event_box,
    hard_scenes,
    random_scenes,
    whose_face,
)
from devstack.stack import shared_dir
from edge.align import align_face
from edge.bootstrap import build_detector, load_embedder, resolve_detector_model
from edge.config import Camera, EdgeSettings
from edge.detector import Detector, DetectorKind
from edge.embedder import OnnxEmbedder
from edge.enrol import embed_photos
from edge.pipeline import CameraPipeline
from edge.staff import StaffGallery
from schemas import FaceDetected, PersonKind
from schemas.staff import staff_entry
from services.matcher.config import MatcherSettings
from services.matcher.domain.assignment import Candidate, assign_batch, normalize

CLOCK = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TENANT = "bench"
RANDOM_CLIPS = 40
OTHER_SEEDS = (7, 8)
"""The enrolment floor was chosen on the clips of seeds 6 (the default) and 7, the number of pooled faces on
seeds 6, 7 and 8: no draw is held out, so a new seed is the honest check of the figures."""
NAIVE_FPS = 15.0
MATCH = MatcherSettings.model_fields


@dataclass(frozen=True)
class PublishedEvent:
    event: FaceDetected
    truth: TruthFace | None
    scene: str


@dataclass
class SceneRun:
    scene: MotionScene
    events: list[PublishedEvent]
    edge_cpu_seconds: float


def bench_settings(**overrides: object) -> EdgeSettings:
    values: dict[str, object] = {
        "nats_url": "nats://unused:4222",
        "model_dir": shared_dir() / "models",
        "detector": DetectorKind.YUNET_ORT,
        "intra_op_threads": 1,
        "metrics_port": 0,
    }
    return EdgeSettings(**(values | overrides))  # type: ignore[arg-type]


def staff_gallery(detector: Detector, embedder: OnnxEmbedder) -> StaffGallery:
    """The staff member enrolled from a photo the scenes never show."""
    gallery = StaffGallery(TENANT)
    vectors = embed_photos(detector, embedder, [shared_dir() / "faces" / STAFF_ENROLMENT_PHOTO])
    gallery.put(staff_entry(TENANT, "staff-1", embedder.model_id, vectors, "staff"))
    return gallery


def run_scene(
    make_pipeline: Callable[[], CameraPipeline],
    renderer: SceneRenderer,
    scene: MotionScene,
    fps: float,
    clock_start: datetime,
) -> SceneRun:
    """The edge over one scene: its events, each with the truth face it shows, and its CPU time (rendering excluded)."""
    pipeline = make_pipeline()
    truth_at: dict[datetime, list[TruthFace]] = {}
    events: list[FaceDetected] = []
    cpu = 0.0
    for frame, truth in renderer.frames(scene, fps, clock_start):
        truth_at[frame.captured_at] = truth
        started = time.process_time()
        events += pipeline.process(frame)
        cpu += time.process_time() - started
    started = time.process_time()
    events += pipeline.finish()
    cpu += time.process_time() - started
    published = [PublishedEvent(e, whose_face(event_box(e), truth_at[e.captured_at]), scene.name) for e in events]
    return SceneRun(scene, published, cpu)


@dataclass
class ExactStore:
    """The matcher's vector store reduced to an exact in-memory search (the benchmark measures the edge)."""

    vectors: list[np.ndarray] = field(default_factory=list)
    persons: list[uuid.UUID] = field(default_factory=list)

    def best(self, vector: np.ndarray) -> Candidate | None:
        if not self.vectors:
            return None
        similarities = np.asarray(self.vectors) @ vector
        index = int(np.argmax(similarities))
        return Candidate(self.persons[index], float(similarities[index]), PersonKind.CUSTOMER)

    def counts(self) -> dict[uuid.UUID, int]:
        return dict(Counter(self.persons))


@dataclass(frozen=True)
class Assigned:
    published: PublishedEvent
    person_id: uuid.UUID | None
    """None: an unidentified sighting (below the quality floor, or below the enrolment floor and matching nobody)."""
    ambiguous_with: uuid.UUID | None = None
    """The candidate of a provisional person (the duplicate suggestion the matcher records)."""


def assign_persons(runs: list[SceneRun], quality_floor: float, enrol_floor: float) -> list[Assigned]:
    """Each clip's events as one matcher batch, in clip order, with the matcher's own decision rules."""
    store, assigned = ExactStore(), []
    for run in runs:
        identifiable = [p for p in run.events if p.event.quality >= quality_floor]
        assigned += [Assigned(p, None) for p in run.events if p.event.quality < quality_floor]
        if not identifiable:
            continue
        vectors = normalize(np.asarray([p.event.embedding for p in identifiable], dtype=np.float32))
        decided = assign_batch(
            vectors,
            [store.best(vector) for vector in vectors],
            store.counts(),
            MATCH["match_threshold"].default,
            MATCH["max_vectors_per_person"].default,
            MATCH["duplicate_vector_similarity"].default,
            uuid.uuid4,
            [p.event.quality >= enrol_floor for p in identifiable],
            ambiguous_band=MATCH["ambiguous_band"].default,
        )
        for published, decision, vector in zip(identifiable, decided, vectors, strict=True):
            if decision is None:
                assigned.append(Assigned(published, None))
            else:
                assigned.append(Assigned(published, decision.person_id, decision.ambiguous_with))
            if decision is not None and decision.keep_vector:
                store.vectors.append(vector)
                store.persons.append(decision.person_id)
    return assigned


@dataclass(frozen=True)
class Score:
    visits: int
    events: int
    unmatched_events: int
    true_visitors: int
    found_visitors: int
    precision: float
    recall: float
    f1: float
    ambiguous: int
    ambiguous_same: int
    staff_events: int
    staff_counted: int
    unidentified: int
    missed_visits: int
    edge_cpu_per_s: float

    @property
    def events_per_visit(self) -> float:
        return self.events / self.visits

    @property
    def visitor_error(self) -> float:
        return abs(self.found_visitors - self.true_visitors) / self.true_visitors


def pairwise(labels: list[tuple[str, uuid.UUID]]) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of a clustering (predicted person) against the truth (person label)."""
    true_pairs = same_pairs = both = 0
    for (truth_a, predicted_a), (truth_b, predicted_b) in itertools.combinations(labels, 2):
        true_pairs += truth_a == truth_b
        same_pairs += predicted_a == predicted_b
        both += truth_a == truth_b and predicted_a == predicted_b
    precision = both / same_pairs if same_pairs else 1.0
    recall = both / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def person_truth(identified: list[Assigned]) -> dict[uuid.UUID, str]:
    """Who each predicted person mostly is (the truth label of most of its events)."""
    labels: dict[uuid.UUID, Counter[str]] = {}
    for a in identified:
        if a.person_id is not None and a.published.truth is not None:
            labels.setdefault(a.person_id, Counter())[a.published.truth.person] += 1
    return {person: counts.most_common(1)[0][0] for person, counts in labels.items()}


def score(runs: list[SceneRun], assigned: list[Assigned]) -> Score:
    visits = sum(len(run.scene.walks) for run in runs)
    walkers = [a for a in assigned if a.published.truth is not None and a.published.truth.person != STAFF_PERSON]
    identified = [a for a in assigned if a.person_id is not None and a.published.truth is not None]
    staff = [a for a in assigned if a.published.truth is not None and a.published.truth.person == STAFF_PERSON]
    seen_walks = {
        (a.published.scene, a.published.truth.walk)
        for a in walkers
        if a.person_id is not None and a.published.truth is not None
    }
    precision, recall, f1 = pairwise([(a.published.truth.person, a.person_id) for a in identified])  # type: ignore[union-attr,misc]
    video_seconds = sum(run.scene.seconds for run in runs)
    truth_of = person_truth(identified)
    provisional = [a for a in identified if a.ambiguous_with is not None]
    return Score(
        visits=visits,
        events=len(assigned),
        unmatched_events=sum(a.published.truth is None for a in assigned),
        true_visitors=len({walk.person for run in runs for walk in run.scene.walks}),
        found_visitors=len({a.person_id for a in assigned if a.person_id is not None}),
        precision=precision,
        recall=recall,
        f1=f1,
        ambiguous=len(provisional),
        ambiguous_same=sum(truth_of.get(a.ambiguous_with) == a.published.truth.person for a in provisional),  # type: ignore[union-attr,arg-type]
        staff_events=len(staff),
        staff_counted=sum(a.person_id is not None for a in staff),
        unidentified=sum(a.person_id is None for a in assigned),
        missed_visits=visits - len(seen_walks),
        edge_cpu_per_s=sum(run.edge_cpu_seconds for run in runs) / video_seconds,
    )


def naive_cpu_per_second(
    detector: Detector,
    score_threshold: float,
    embedder: OnnxEmbedder,
    renderer: SceneRenderer,
    scenes: list[MotionScene],
) -> float:
    """CPU per second of video of the naive pipeline: every frame of a 15 fps camera, full-resolution detection,
    an embedding for every face."""
    cpu, seconds = 0.0, 0.0
    for scene in scenes:
        for frame, _ in renderer.frames(scene, NAIVE_FPS, CLOCK):
            started = time.process_time()
            faces = [d for d in detector.detect(frame.image) if d.score >= score_threshold]
            if faces:
                embedder.embed([align_face(frame.image, face.landmarks) for face in faces])
            cpu += time.process_time() - started
        seconds += scene.seconds
    return cpu / seconds


def run_all(
    scenes: list[MotionScene], fps: float, settings: EdgeSettings, embedder: OnnxEmbedder, renderer: SceneRenderer
) -> list[SceneRun]:
    detector_model = resolve_detector_model(settings)
    gallery = staff_gallery(build_detector(settings, detector_model), embedder)

    def make_pipeline() -> CameraPipeline:
        camera = Camera(tenant_id=TENANT, site_id="s", camera_id="entrance", source="bench", fps=fps, min_face_px=32)
        return CameraPipeline(camera, settings, build_detector(settings, detector_model), embedder, True, gallery)

    return [
        run_scene(make_pipeline, renderer, scene, fps, CLOCK + timedelta(hours=number))
        for number, scene in enumerate(scenes)
    ]


def row(name: str, fps: float, result: Score, naive: float) -> list[object]:
    return [
        name,
        f"{fps:g}",
        result.visits,
        result.events,
        f"{result.events_per_visit:.2f}",
        f"{result.found_visitors} / {result.true_visitors}",
        f"{result.visitor_error:.1%}",
        f"{result.precision:.3f} / {result.recall:.3f} / {result.f1:.3f}",
        f"{result.ambiguous} ({result.ambiguous_same})",
        f"{result.staff_counted} ({result.staff_events} published)",
        result.unidentified,
        result.missed_visits,
        f"{result.edge_cpu_per_s:.3f}",
        f"{naive / result.edge_cpu_per_s:.1f}x",
    ]


def main() -> None:
    cv2.setNumThreads(1)
    started = time.perf_counter()
    settings = bench_settings()
    embedder = load_embedder(settings)
    detector = build_detector(settings, resolve_detector_model(settings))
    renderer = SceneRenderer(Portraits(detector))
    floor, enrol_floor = MATCH["identify_min_quality"].default, MATCH["enrol_min_quality"].default
    suites = {
        "entrance clips": (random_scenes(RANDOM_CLIPS), (5.0, 10.0)),
        "hard scenes": (hard_scenes(), (5.0, 10.0)),
        **{f"entrance clips, seed {seed}": (random_scenes(RANDOM_CLIPS, seed), (5.0,)) for seed in OTHER_SEEDS},
    }
    naive_detector = build_detector(
        settings.model_copy(update={"detector_input_width": 1280}), resolve_detector_model(settings)
    )
    rows, naive_by_suite = [], {}
    for name, (scenes, rates) in suites.items():
        naive = naive_cpu_per_second(naive_detector, settings.detection_score_threshold, embedder, renderer, scenes)
        naive_by_suite[name] = naive
        for fps in rates:
            runs = run_all(scenes, fps, settings, embedder, renderer)
            rows.append(row(name, fps, score(runs, assign_persons(runs, floor, enrol_floor)), naive))
    headers = [
        "scenes", "fps", "person-visits", "events", "events per visit", "visitors found / true", "visitor error",
        "pairwise P / R / F1", "ambiguous (same person)", "staff counted", "unidentified", "visits missed",
        "edge CPU s per s", "naive / edge",
    ]  # fmt: skip
    body = table(headers, rows) + (
        f"\n\nNaive pipeline (every frame of a {NAIVE_FPS:g} fps camera, detection at full 1280 px, an embedding "
        "for every face), on the same scenes: "
        + ", ".join(f"{name} **{naive:.3f}**" for name, naive in naive_by_suite.items())
        + " CPU s per s of video. Persons are "
        f"assigned as the matcher does (threshold {MATCH['match_threshold'].default}, ambiguous band "
        f"{MATCH['ambiguous_band'].default}, quality floor {floor}, enrolment floor {enrol_floor}) over an exact "
        "search, before an operator resolves any suggestion: a provisional person counts as a visitor of its own. "
        "`ambiguous (same person)`: faces in the band that started a provisional person, and how many of those "
        "pairs were one person in truth (a merge an operator would accept). Each clip is a separate hour, so a "
        "visitor's walks in different clips are separate visits. A track's embedding is pooled from its "
        f"{settings.track_pooled_faces} best faces (and two more the tracker already embedded). The entrance clips "
        f"of other seeds are the same kind of scene drawn again: they show how much the figures of the first "
        "depend on its draw."
        f"\n\n_Whole benchmark: {time.perf_counter() - started:.0f} s._"
    )
    write_section("motion", "Edge: counting people who walk (labelled motion scenes)", body)


if __name__ == "__main__":
    main()
