"""The staff gallery's matching: best cosine similarity per face, same embedding model only, live changes."""

import numpy as np
import pytest

from edge.embedder import l2_normalise
from edge.staff import StaffGallery, max_similarities
from schemas.staff import staff_entry

MODEL = "mobilefacenet_arcface_128@e72a5710"


def unit(*values: float, dim: int = 64) -> list[float]:
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
    assert list(max_similarities(faces, np.zeros((0, 64), np.float32))) == [-1, -1, -1]


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
