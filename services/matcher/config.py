"""Matcher settings: the vector store and the decision thresholds."""

from pydantic import AliasChoices, Field

from services.common.settings import ServiceSettings


class MatcherSettings(ServiceSettings):
    http_port: int = Field(8002, description="Port of /healthz, /readyz, /metrics and the REST API")
    milvus_uri: str = Field(description="A Milvus server (http://milvus:19530) or a Milvus Lite file path")
    milvus_token: str = Field("", description="Milvus token (user:password) for a server; empty for Milvus Lite")
    collection_prefix: str = Field("faces", description="Collections are <prefix>_<embedding model>")
    match_threshold: float = Field(
        0.40,
        ge=0,
        le=1,
        description=(
            "Cosine similarity at or above which a face is an existing person; 0.40 lies in the measured gap"
            " between same-person (min 0.51) and different-person (max 0.26) pairs, docs/BENCHMARKS.md"
        ),
    )
    identify_min_quality: float = Field(
        0.65,
        ge=0,
        le=1,
        validation_alias=AliasChoices("identify_min_quality", "REVISIT_MATCHER_IDENTIFY_MIN_QUALITY"),
        description=(
            "Edge quality (0..1) below which a face is counted as an unidentified sighting, never a person:"
            " not searched, not stored in Milvus. 0.65: on the motion benchmark no track best crop below it"
            " was recognisable (similarity to its owner's photos >= 0.40), docs/BENCHMARKS.md"
        ),
    )
    max_vectors_per_person: int = Field(5, ge=1, description="Vectors kept per person (bounded, diverse set)")
    duplicate_vector_similarity: float = Field(0.92, description="A sighting this close to a kept vector adds nothing")
    batch_size: int = Field(64, ge=1, description="Events searched in one Milvus call at most")
    lease_ttl_seconds: float = Field(
        30.0, gt=0, description="Longest a replica may hold a tenant's person-creation lease (a dead one's expires)"
    )
    batch_wait_ms: int = Field(20, ge=0, description="How long a batch waits to fill")
