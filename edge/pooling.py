"""One embedding for one track's period: the faces that agree on who it is, pooled. No I/O here.

A track's event should not hang on one frame. Its best face alone can be blurred, shadowed or, where two
people cross, someone else's face the tracker took for one frame; averaging cancels the first two only if
the faces averaged are of one person. So the event is built from the largest agreeing group of the
track's best faces: the face most of the others resemble anchors it, the group's best face gives the crop,
and the group's embeddings are averaged with squared-quality weights (the sharp faces lead).

Measured on the motion benchmark (docs/BENCHMARKS.md, section motion): with the best face alone, blurred
60 px faces of two visitors became hubs that other people matched (similarity up to 0.49); pooled over
the five best faces they did not. Faces of one person within a track scored 0.61-1.0 against each other
(one pair at 0.38 in 2,200), faces of different people in one track at most 0.13.
"""

from collections.abc import Sequence

import numpy as np

from edge.embedder import Vectors, l2_normalise

SAME_PERSON = 0.4
"""Similarity from which two faces of one track are taken to show the same person."""


def agreeing_faces(vectors: Vectors, qualities: Sequence[float]) -> list[int]:
    """Indexes of the largest group of faces that resemble one anchor face, in the order given.

    The anchor is the face with the most quality-weighted support (the sum of squared qualities of the faces
    at `SAME_PERSON` or more from it); on a tie the earlier face, so a caller listing faces best first gets
    the best face's group when nothing contradicts it.
    """
    weights = np.square(np.asarray(qualities, dtype=np.float32))
    agrees = (vectors @ vectors.T) >= SAME_PERSON
    support = agrees.astype(np.float32) @ weights
    anchor = int(np.argmax(support))  # argmax returns the first maximum
    return [index for index in range(len(vectors)) if agrees[anchor, index]]


def pool_embeddings(vectors: Vectors, qualities: Sequence[float]) -> Vectors:
    """One L2-normalised vector for several faces of one person: their mean weighted by squared quality."""
    weights = np.maximum(np.square(np.asarray(qualities, dtype=np.float32)), 1e-6)[:, None]  # quality 0 still counts
    pooled: Vectors = l2_normalise((vectors * weights).sum(axis=0, keepdims=True))[0]
    return pooled
