"""How a track's faces become one event embedding: the agreeing group, pooled by quality."""

import numpy as np

from edge.embedder import l2_normalise
from edge.pooling import agreeing_faces, pool_embeddings


def faces_of(rng: np.random.Generator, person: np.ndarray, count: int, noise: float = 0.3) -> np.ndarray:
    return l2_normalise(person + noise * rng.normal(size=(count, person.size)) / np.sqrt(person.size))


def test_a_face_of_someone_else_taken_for_one_frame_is_left_out_even_when_it_is_the_best():
    rng = np.random.default_rng(1)
    walker, crosser = l2_normalise(rng.normal(size=(2, 128)))
    faces = np.vstack([faces_of(rng, crosser, 1), faces_of(rng, walker, 4)])
    assert agreeing_faces(faces, [0.9, 0.8, 0.8, 0.7, 0.7]) == [1, 2, 3, 4]


def test_faces_that_agree_are_all_kept_in_their_order():
    rng = np.random.default_rng(2)
    faces = faces_of(rng, l2_normalise(rng.normal(size=(1, 128)))[0], 3)
    assert agreeing_faces(faces, [0.9, 0.8, 0.7]) == [0, 1, 2]


def test_on_a_tie_the_best_face_decides():
    rng = np.random.default_rng(3)
    first, second = l2_normalise(rng.normal(size=(2, 128)))
    faces = np.vstack([faces_of(rng, first, 1), faces_of(rng, second, 1)])
    assert agreeing_faces(faces, [0.8, 0.8]) == [0]


def test_pooling_is_unit_length_and_leans_to_the_sharper_face():
    sharp, blurred = np.eye(4, dtype=np.float32)[:2]
    pooled = pool_embeddings(np.vstack([sharp, blurred]), [0.9, 0.3])
    assert abs(float(np.linalg.norm(pooled)) - 1.0) < 1e-6
    assert float(pooled @ sharp) > 0.9 > float(pooled @ blurred)


def test_pooling_faces_of_quality_zero_still_gives_a_vector():
    pooled = pool_embeddings(np.eye(4, dtype=np.float32)[:2], [0.0, 0.0])
    assert abs(float(np.linalg.norm(pooled)) - 1.0) < 1e-6
