"""Face events: detected on the edge, ingested (crop stored), rejected, matched to a person or left unidentified."""

import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.base import TOKEN_PATTERN, Event

Token = Annotated[str, Field(pattern=TOKEN_PATTERN)]
Embedding = Annotated[list[float], Field(min_length=64, max_length=2048)]
Point = Annotated[tuple[float, float], Field(description="x, y in pixels of the full frame")]


class PersonKind(StrEnum):
    CUSTOMER = "customer"
    STAFF = "staff"


class FaceBox(BaseModel):
    """Axis-aligned face box in pixels of the full-resolution frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: float
    y: float
    width: float = Field(gt=0)
    height: float = Field(gt=0)


class _Sighting(Event):
    """What every face event says about where and when a face was seen."""

    site_id: Token
    camera_id: Token
    captured_at: AwareDatetime = Field(description="Frame time of the crop, edge clock")
    track_id: str = Field(min_length=1, max_length=64)
    embedding_model: str = Field(min_length=1, max_length=128, description="Model id of the embedding")
    box: FaceBox
    landmarks: list[Point] = Field(min_length=5, max_length=5, description="eyes, nose, mouth corners")
    detector_score: float = Field(ge=0, le=1)
    quality: float = Field(ge=0, le=1, description="0..1, higher is a better crop to recognise")


class FaceDetected(_Sighting):
    """One face track's best crop, as the edge publishes it on `faces.detected.<tenant>.<site>.<camera>`."""

    schema_name: Literal["FaceDetected.v1"] = Field("FaceDetected.v1", alias="schema")
    embedding: Embedding
    crop_jpeg: bytes | None = Field(
        None, description="JPEG of the face, base64url (standard base64 accepted); absent in no-crop mode"
    )


class FaceIngested(_Sighting):
    """A validated detection whose crop is stored; published by ingest on `faces.ingested.<tenant>.<site>`."""

    schema_name: Literal["FaceIngested.v1"] = Field("FaceIngested.v1", alias="schema")
    source_event_id: uuid.UUID = Field(description="event_id of the FaceDetected it came from")
    embedding: Embedding
    crop_key: str | None = Field(None, description="Object key of the crop in the crops bucket")


class FaceRejected(Event):
    """An event ingest refused, with why; published on `faces.rejected.<tenant>` for operators."""

    schema_name: Literal["FaceRejected.v1"] = Field("FaceRejected.v1", alias="schema")
    subject: str
    reason: str
    raw_event: str = Field(description="The refused payload as text (truncated to 64 KiB)")


class FaceMatched(Event):
    """A sighting assigned to a person; published by matcher on `faces.matched.<tenant>.<site>`."""

    schema_name: Literal["FaceMatched.v1"] = Field("FaceMatched.v1", alias="schema")
    source_event_id: uuid.UUID = Field(description="event_id of the FaceIngested it came from")
    site_id: Token
    camera_id: Token
    captured_at: AwareDatetime
    person_id: uuid.UUID
    person_kind: PersonKind = PersonKind.CUSTOMER
    is_new_person: bool
    similarity: float | None = Field(None, description="Cosine similarity to the matched person; None if new")
    embedding_model: str
    crop_key: str | None = None


class FaceUnidentified(Event):
    """A sighting whose crop was too poor to recognise: counted, never made a person, its embedding never kept.
    Published by matcher on `faces.unidentified.<tenant>.<site>`."""

    schema_name: Literal["FaceUnidentified.v1"] = Field("FaceUnidentified.v1", alias="schema")
    source_event_id: uuid.UUID = Field(description="event_id of the FaceIngested it came from")
    site_id: Token
    camera_id: Token
    captured_at: AwareDatetime
    track_id: str = Field(min_length=1, max_length=64)
    quality: float = Field(ge=0, le=1, description="The edge's quality of the crop, below the matcher's floor")
    embedding_model: str
    crop_key: str | None = None
