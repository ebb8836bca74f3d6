"""Matcher settings: the vector store and the decision thresholds."""

from pydantic import Field

from services.common.settings import ServiceSettings


class MatcherSettings(ServiceSettings):
    http_port: int = 8002
    milvus_uri: str = Field(description="A Milvus server (http://milvus:19530) or a Milvus Lite file path")
    milvus_token: str = ""
    collection_prefix: str = "faces"
    match_threshold: float = Field(
        0.40,
        ge=0,
        le=1,
        description="Cosine similarity at or above which a face is an existing person (see docs/matching.md)",
    )
    max_vectors_per_person: int = Field(5, ge=1)
    duplicate_vector_similarity: float = Field(0.92, description="A sighting this close to a kept vector adds nothing")
    batch_size: int = Field(64, ge=1)
    batch_wait_ms: int = Field(20, ge=0)
