"""Export every event (and KV value) model's JSON Schema to `schemas/json/`: `python -m schemas.export [--check]`.

The exported files are the contract non-Python consumers read; a test fails when they drift.
"""

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas import (
    AuditEntryRecorded,
    CropsErasureRequested,
    FaceDetected,
    FaceIngested,
    FaceMatched,
    FaceRejected,
    FaceUnidentified,
    OperationStepCompleted,
    PersonCreated,
    PersonErased,
    PersonKindChanged,
    PersonsMarkedDifferent,
    PersonsMerged,
    PersonSplit,
    StaffGalleryEntry,
    VisitRecord,
    VisitRemoved,
)
from schemas.registry import CameraEntry, RetentionPolicyEntry, SiteEntry, TenantModelsEntry

EVENT_MODELS: tuple[type[BaseModel], ...] = (
    FaceDetected,
    FaceIngested,
    FaceRejected,
    FaceMatched,
    FaceUnidentified,
    VisitRecord,
    VisitRemoved,
    PersonCreated,
    PersonsMerged,
    PersonSplit,
    PersonErased,
    CropsErasureRequested,
    PersonsMarkedDifferent,
    PersonKindChanged,
    OperationStepCompleted,
    AuditEntryRecorded,
)
KV_MODELS: tuple[type[BaseModel], ...] = (
    StaffGalleryEntry,
    SiteEntry,
    CameraEntry,
    TenantModelsEntry,
    RetentionPolicyEntry,
)
"""Values of NATS KV buckets: versioned contracts too, but not events on a stream."""
EXPORTED_MODELS = EVENT_MODELS + KV_MODELS
SCHEMA_DIR = Path(__file__).parent / "json"
EXAMPLES_DIR = Path(__file__).parent / "examples"


def schema_name(model: type[BaseModel]) -> str:
    default = model.model_fields["schema_name"].default
    assert isinstance(default, str)
    return default


def schema_file(model: type[BaseModel]) -> Path:
    return SCHEMA_DIR / f"{schema_name(model)}.json"


def render_schema(model: type[BaseModel]) -> str:
    schema = model.model_json_schema(by_alias=True, mode="serialization")
    schema["$id"] = f"https://revisit.dev/schemas/{schema_name(model)}.json"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    SCHEMA_DIR.mkdir(exist_ok=True)
    for model in EXPORTED_MODELS:
        path, text = schema_file(model), render_schema(model)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale JSON Schema files (run `python -m schemas.export`): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
