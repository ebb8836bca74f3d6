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
from schemas.staff import StaffGalleryEntry
from schemas.visits import VisitRecord

__all__ = [
    "AuditEntryRecorded",
    "Event",
    "FaceBox",
    "FaceDetected",
    "FaceIngested",
    "FaceMatched",
    "FaceRejected",
    "FaceUnidentified",
    "PersonCreated",
    "PersonKind",
    "StaffGalleryEntry",
    "VisitRecord",
]
