"""A face's look for the tracker: its embedding, computed the first time the tracker asks for it.

The embedder tells two faces apart far better than any cheap patch descriptor measured here, but at
~5 ms a face it would cost more than detection if run on every face of every frame. The tracker asks
only where motion cannot decide (`edge.tracker`), and the embedding computed then is kept: when the
face turns out to be its track's best crop, the event reuses it instead of embedding again.
"""

import time

import numpy as np

from edge.detector import Image
from edge.embedder import OnnxEmbedder
from edge.metrics import EMBED_SECONDS
from edge.tracker import Look


class EmbeddedLook:
    """The embedding of one aligned face, computed on first use (then cached)."""

    def __init__(self, aligned: Image, embedder: OnnxEmbedder) -> None:
        self.aligned, self._embedder = aligned, embedder
        self._vector: np.ndarray | None = None

    @property
    def computed(self) -> bool:
        return self._vector is not None

    @property
    def vector(self) -> np.ndarray:
        """The L2-normalised embedding."""
        if self._vector is None:
            started = time.perf_counter()
            self.use(self._embedder.embed([self.aligned])[0])
            EMBED_SECONDS.observe(time.perf_counter() - started)
        assert self._vector is not None
        return self._vector

    def use(self, vector: np.ndarray) -> None:
        """Keep a vector computed in a batch elsewhere."""
        self._vector = np.asarray(vector, dtype=np.float32)

    def similarity(self, other: Look) -> float:
        if not isinstance(other, EmbeddedLook):
            raise TypeError(f"cannot compare an embedding with {type(other).__name__}")
        return float(self.vector @ other.vector)
