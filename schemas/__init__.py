"""Versioned event contracts shared by every Revisit service and the edge."""

from schemas.audit import AuditEntryRecorded
from schemas.base import Event
from schemas.faces import (
    FaceBox,
    FaceDetected,
    FaceIngested,
    FaceMatched,
    FaceRejected,
    FaceUnidentified,
    PersonKind,
)
from schemas.identity import PersonCreated
from schemas.lifecycle import (
    CropsErasureRequested,
    OperationStepCompleted,
    PersonErased,
    PersonKindChanged,
    PersonsMarkedDifferent,
    PersonsMerged,
    PersonSplit,
)
from schemas.staff import StaffGalleryEntry
from schemas.visits import VisitRecord, VisitRemoved

__all__ = [
    "AuditEntryRecorded",
    "CropsErasureRequested",
    "Event",
    "FaceBox",
    "FaceDetected",
    "FaceIngested",
    "FaceMatched",
    "FaceRejected",
    "FaceUnidentified",
    "OperationStepCompleted",
    "PersonCreated",
    "PersonErased",
    "PersonKind",
    "PersonKindChanged",
    "PersonSplit",
    "PersonsMarkedDifferent",
    "PersonsMerged",
    "StaffGalleryEntry",
    "VisitRecord",
    "VisitRemoved",
]
