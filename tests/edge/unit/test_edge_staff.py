"""The staff gallery's matching: best cosine similarity per face, same embedding model only, live changes."""

import numpy as np
import pytest
from nats.js.kv import KeyValue
from structlog.testing import capture_logs

from edge.embedder import l2_normalise
from edge.models import EMBEDDERS
from edge.staff import InvalidStaffEntry, StaffGallery, StaffGalleryWatcher, max_similarities
from schemas.models import EMBEDDING_DIMENSIONS
from schemas.staff import staff_entry

MODEL = "mobilefacenet_arcface_128@e72a5710"


def unit(*values: float, dim: int = 128) -> list[float]:
    vector = np.zeros(dim, dtype=np.float32)
    vector[: len(values)] = values
    return [float(v) for v in vector / np.linalg.norm(vector)]


def test_max_similarities_takes_the_best_gallery_row_per_face():
    faces = l2_normalise(np.array([unit(1, 0), unit(0, 1), unit(1, 1)], dtype=np.float32))
    gallery = l2_normalise(np.array([unit(1, 0), unit(1, 0.2)], dtype=np.float32))
    best = max_similarities(faces, gallery)
    assert best[0] == pytest.approx(1.0)
    assert best[1] == pytest.approx(0.2 / np.hypot(1, 0.2), abs=1e-5)
    assert best[2] == pytest.approx((1 + 0.2) / (np.sqrt(2) * np.hypot(1, 0.2)), abs=1e-5)
    assert list(max_similarities(faces, np.zeros((0, 128), np.float32))) == [-1, -1, -1]


def test_gallery_compares_only_vectors_of_the_same_model_and_applies_removals():
    gallery = StaffGallery("acme")
    gallery.put(staff_entry("acme", "jane", MODEL, [unit(1, 0), unit(0, 0, 1)]))
    gallery.put(staff_entry("acme", "old", "other_model@12345678", [unit(0, 1)]))
    faces = l2_normalise(np.array([unit(1, 0.1), unit(0, 1)], dtype=np.float32))

    same_model = gallery.similarities(faces, MODEL)
    assert same_model[0] > 0.99 and same_model[1] == pytest.approx(0.0, abs=1e-6)
    assert gallery.similarities(faces, "other_model@12345678")[1] == pytest.approx(1.0)
    assert list(gallery.similarities(faces, "unknown@00000000")) == [-1, -1]

    gallery.remove("jane")
    assert "jane" not in gallery and len(gallery) == 1
    assert list(gallery.similarities(faces, MODEL)) == [-1, -1]


def test_a_replaced_entry_drops_its_old_vectors():
    gallery = StaffGallery("acme")
    gallery.put(staff_entry("acme", "jane", MODEL, [unit(1, 0)]))
    gallery.put(staff_entry("acme", "jane", MODEL, [unit(0, 1)]))
    face = l2_normalise(np.array([unit(1, 0)], dtype=np.float32))
    assert gallery.similarities(face, MODEL)[0] == pytest.approx(0.0, abs=1e-6)


def test_gallery_refuses_another_tenants_entry():
    with pytest.raises(ValueError, match="tenant"):
        StaffGallery("acme").put(staff_entry("globex", "jane", MODEL, [unit(1, 0)]))


def test_entry_bounds_come_from_the_contract():
    with pytest.raises(ValueError):
        staff_entry("acme", "jane", MODEL, [unit(1, 0)] * 11)
    with pytest.raises(ValueError):
        staff_entry("acme", "Jane Doe", MODEL, [unit(1, 0)])
    with pytest.raises(ValueError):
        staff_entry("acme", "jane", MODEL, [[1.0] * 32])


def test_an_entry_that_cannot_match_is_refused_alone_and_the_others_still_filter():
    """Once, a 64-number entry under the 128-d model id made every later valid entry be refused too."""
    gallery = StaffGallery("acme")
    gallery.put(staff_entry("acme", "jane", MODEL, [unit(1, 0)]))
    with pytest.raises(InvalidStaffEntry, match="64 numbers"):
        gallery.put(staff_entry("acme", "short", MODEL, [unit(0, 1, dim=64)]))
    with pytest.raises(InvalidStaffEntry, match="different lengths"):
        gallery.put(staff_entry("acme", "ragged", "custom@12345678", [unit(0, 1, dim=64), unit(0, 1)]))
    with pytest.raises(InvalidStaffEntry):
        gallery.put(staff_entry("acme", "jane", MODEL, [unit(0, 1, dim=64)]))  # jane's valid vectors stay
    gallery.put(staff_entry("acme", "bob", MODEL, [unit(0, 1)]))
    gallery.put(staff_entry("acme", "narrow", "custom@12345678", [unit(0, 1, dim=64)]))
    gallery.put(staff_entry("acme", "wide", "custom@12345678", [unit(1, 0)]))  # unknown models: by length

    assert sorted(gallery._entries) == ["bob", "jane", "narrow", "wide"]
    faces = l2_normalise(np.array([unit(1, 0), unit(0, 1)], dtype=np.float32))
    assert list(np.round(gallery.similarities(faces, MODEL), 5)) == [1.0, 1.0]
    assert gallery.similarities(faces, "custom@12345678")[0] == pytest.approx(1.0)
    narrow = l2_normalise(np.array([unit(0, 1, dim=64)], dtype=np.float32))
    assert gallery.similarities(narrow, "custom@12345678")[0] == pytest.approx(1.0)


class FakeEntry:
    """What a KV watch yields: a key, a revision, an operation and the value's bytes."""

    def __init__(self, key: str, revision: int, value: bytes) -> None:
        self.key, self.revision, self.value, self.operation = key, revision, value, None


def test_the_watcher_skips_an_invalid_entry_with_one_log_line_and_applies_the_valid_ones():
    watcher = StaffGalleryWatcher(KeyValue.__new__(KeyValue), StaffGallery("acme"))
    entries = [
        staff_entry("acme", "short", MODEL, [unit(1, dim=64)]),
        staff_entry("acme", "jane", MODEL, [unit(1, 0)]),
        staff_entry("acme", "bob", MODEL, [unit(0, 1)]),
    ]
    with capture_logs() as logs:
        for revision, entry in enumerate(entries, start=1):
            watcher._apply(FakeEntry(f"acme.{entry.staff_id}", revision, entry.to_json_bytes()))  # type: ignore[arg-type]
    assert "short" not in watcher.gallery and "jane" in watcher.gallery and "bob" in watcher.gallery
    faces = l2_normalise(np.array([unit(1, 0), unit(0, 1)], dtype=np.float32))
    assert list(np.round(watcher.gallery.similarities(faces, MODEL), 5)) == [1.0, 1.0]
    skipped = [log for log in logs if log["event"] == "staff_entry_skipped"]
    assert len(skipped) == 1 and skipped[0]["key"] == "acme.short" and "64 numbers" in skipped[0]["error"]


def test_the_edge_registry_agrees_with_the_shared_one():
    """Identity checks staff entries against schemas.models; the edge's own registry must say the same."""
    assert {name: spec.dim for name, spec in EMBEDDERS.items()} == dict(EMBEDDING_DIMENSIONS)
