"""The embedding models Revisit knows, and the length of their vectors: identity checks staff entries
against them and the edge skips entries that do not fit, so neither has to import the other.

A model id travels as `<name>@<first 8 hex of the model file's sha256>` (the edge's model pack, in every
event and staff entry); the name fixes the dimension. The edge's registry (`edge/models.py`) must agree.
"""

import re
from collections.abc import Mapping

EMBEDDING_DIMENSIONS: Mapping[str, int] = {
    "mobilefacenet_arcface_128": 128,
    "arcface_r50_w600k_512": 512,
    "sface": 128,
}
MODEL_ID_PATTERN = r"^(?P<name>[a-z0-9_]+)@[0-9a-f]{8}$"


def embedding_dimension(model_id: str, known: Mapping[str, int] = EMBEDDING_DIMENSIONS) -> int | None:
    """The vector length of `model_id`'s model, or None when the id is not a known model's."""
    match = re.fullmatch(MODEL_ID_PATTERN, model_id)
    return known.get(match["name"]) if match else None
