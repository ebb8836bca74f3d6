"""The event contracts: exported JSON Schema files match the models, and the examples satisfy both."""

import json
import uuid
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from schemas import FaceDetected
from schemas.export import EXAMPLES_DIR, EXPORTED_MODELS, render_schema, schema_file, schema_name
from schemas.ids import derive_event_id, new_event_id


@pytest.mark.parametrize("model", EXPORTED_MODELS, ids=lambda m: m.__name__)
def test_exported_schema_matches_model(model: type[BaseModel]) -> None:
    assert schema_file(model).read_text() == render_schema(model), "run `python -m schemas.export`"


@pytest.mark.parametrize("model", EXPORTED_MODELS, ids=lambda m: m.__name__)
def test_example_is_valid_for_model_and_json_schema(model: type[BaseModel]) -> None:
    example_path = EXAMPLES_DIR / f"{schema_name(model)}.json"
    example = json.loads(example_path.read_text())
    jsonschema.validate(example, json.loads(schema_file(model).read_text()))
    parsed = model.model_validate_json(example_path.read_text())
    assert json.loads(parsed.model_dump_json(by_alias=True)) == example


def test_every_schema_file_has_a_model() -> None:
    exported = {path.name for path in schema_file(EXPORTED_MODELS[0]).parent.glob("*.json")}
    assert exported == {f"{schema_name(model)}.json" for model in EXPORTED_MODELS}


def test_json_schema_rejects_what_the_model_rejects() -> None:
    example = json.loads((EXAMPLES_DIR / "FaceDetected.v1.json").read_text())
    example["tenant_id"] = "Not A Token!"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, json.loads(schema_file(FaceDetected).read_text()))
    with pytest.raises(ValidationError):
        FaceDetected.model_validate(example)


def test_schema_version_is_pinned() -> None:
    example = json.loads((EXAMPLES_DIR / "FaceDetected.v1.json").read_text())
    example["schema"] = "FaceDetected.v2"
    with pytest.raises(ValidationError):
        FaceDetected.model_validate(example)


def test_derived_event_ids_are_deterministic_uuid7_with_the_source_time() -> None:
    source = new_event_id()
    derived = derive_event_id(source, "ingested")
    assert derived == derive_event_id(source, "ingested")
    assert derived != derive_event_id(source, "matched")
    assert derived.version == 7 and derived.variant == uuid.RFC_4122
    assert derived.int >> 80 == source.int >> 80


def test_examples_folder_is_not_empty() -> None:
    assert len(list(Path(EXAMPLES_DIR).glob("*.json"))) == len(EXPORTED_MODELS)
