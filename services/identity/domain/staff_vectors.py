"""Whether a staff entry's vectors can ever match: they must come from a known embedding model and have
its dimension. An entry that cannot match leaves its staff member counted as a visitor, silently."""

from collections.abc import Mapping, Sequence

from schemas.models import embedding_dimension


class InvalidStaffVectors(ValueError):
    """The vectors do not fit the embedding model they claim (or it is unknown): the reason is the message."""


def check_staff_vectors(embedding_model: str, embeddings: Sequence[Sequence[float]], known: Mapping[str, int]) -> None:
    """Raise InvalidStaffVectors unless `embedding_model` is a known model id and every vector has its dimension.

    `known` (model name to dimension) is passed in so that a tenant's own models can be added to the registry."""
    dimension = embedding_dimension(embedding_model, known)
    if dimension is None:
        names = ", ".join(f"{name}@<first 8 hex of its sha256>" for name in sorted(known))
        raise InvalidStaffVectors(f"unknown embedding model {embedding_model!r}; known: {names}")
    wrong = [index for index, vector in enumerate(embeddings) if len(vector) != dimension]
    if wrong:
        raise InvalidStaffVectors(
            f"embeddings {wrong} have {len(embeddings[wrong[0]])} numbers, "
            f"but {embedding_model} vectors have {dimension}"
        )
