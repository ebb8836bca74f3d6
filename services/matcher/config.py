"""Matcher settings: the vector store and the decision thresholds (the defaults of tenants' own, `PUT /v1/settings`)."""

from typing import Self

from pydantic import AliasChoices, Field, model_validator

from services.common.settings import RestServiceSettings, RetentionSettings
from services.matcher.domain.tenant_settings import MAX_AMBIGUOUS_BAND, MatchPolicy


class MatcherSettings(RestServiceSettings, RetentionSettings):
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
    ambiguous_band: float = Field(
        0.0,
        ge=0,
        le=MAX_AMBIGUOUS_BAND,
        validation_alias=AliasChoices("ambiguous_band", "REVISIT_MATCHER_AMBIGUOUS_BAND"),
        description=(
            "A face whose best person is at least the match threshold but less than threshold + band is not"
            " joined to that person: it starts a provisional person (or is unidentified if it may not enrol) and"
            " the pair is returned by GET /v1/persons/duplicates for an operator to merge or mark not the same."
            " 0 (the default) joins every face at or above the threshold: counts stay automatic. A tenant whose"
            " operators review duplicates sets a band (PUT /v1/settings); at 0.05 on the motion benchmark one"
            " walk in 86 became a provisional person, a true match each time (docs/BENCHMARKS.md)"
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
    enrol_min_quality: float = Field(
        0.80,
        ge=0,
        le=1,
        validation_alias=AliasChoices("enrol_min_quality", "REVISIT_MATCHER_ENROL_MIN_QUALITY"),
        description=(
            "Edge quality (0..1) a face needs to start a person or add a vector to one; between the identify"
            " floor and this, a face only joins a person it matches, else it is an unidentified sighting."
            " 0.80: chosen on two draws of the motion benchmark's entrance clips (at 0.75 degraded faces of"
            " two people started one person), exact on a third, docs/BENCHMARKS.md"
        ),
    )
    staff_threshold: float = Field(
        0.45,
        ge=0,
        le=1,
        validation_alias=AliasChoices("staff_threshold", "REVISIT_MATCHER_STAFF_THRESHOLD"),
        description=(
            "Cosine similarity to a staff vector of the tenant's gallery (same embedding model) at or above which"
            " a face is published as staff and not stored; 0.45 is the edge's own staff filter default"
        ),
    )
    max_vectors_per_person: int = Field(5, ge=1, description="Vectors kept per person (bounded, diverse set)")
    duplicate_vector_similarity: float = Field(0.92, description="A sighting this close to a kept vector adds nothing")
    batch_size: int = Field(64, ge=1, description="Faces matched in one batch (one search of the tenant) at most")
    lease_ttl_seconds: float = Field(
        6.0,
        gt=0,
        description=(
            "Life of a tenant's lease without renewal: a holder renews it every third of this, so a replica"
            " killed while holding tenants hands them over within this time"
        ),
    )
    lease_wait_seconds: float = Field(
        20.0,
        gt=0,
        description=(
            "How long a batch waits for its tenant's lease while another replica holds it (renewed, it may hold it"
            " longer than the TTL) before its faces are retried later; below the consumer's 30 s ack wait"
        ),
    )
    max_vectors_in_memory: int = Field(
        1_000_000,
        ge=1,
        validation_alias=AliasChoices("max_vectors_in_memory", "REVISIT_MATCHER_MAX_VECTORS_IN_MEMORY"),
        description=(
            "Vectors a replica keeps in its in-memory copies of tenants (the exact search); past it the copies used"
            " least recently are dropped and loaded again from Milvus when next needed. A copy costs dim x 4 bytes"
            " per vector plus about 0.6 KB: 1,000,000 vectors of 512-d about 2.7 GB, of 128-d about 1.1 GB."
            " A single tenant larger than this is still kept while it is matched"
        ),
    )

    @property
    def default_policy(self) -> MatchPolicy:
        """The thresholds of every tenant that overrides none of them."""
        return MatchPolicy(self.match_threshold, self.ambiguous_band, self.identify_min_quality, self.enrol_min_quality)

    @model_validator(mode="after")
    def enrolment_asks_at_least_identification(self) -> Self:
        if self.enrol_min_quality < self.identify_min_quality:
            raise ValueError(
                f"REVISIT_MATCHER_ENROL_MIN_QUALITY ({self.enrol_min_quality}) is below"
                f" REVISIT_MATCHER_IDENTIFY_MIN_QUALITY ({self.identify_min_quality}): a face that may not be"
                " identified could start a person"
            )
        return self
