"""The plumbing the fuzz lane's fixes rest on: a NUL-free text type, a 422 that can echo NaN, and a 422 the
OpenAPI document describes truthfully."""

import httpx
import pytest
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ValidationError

from services.common.http import NulFreeText, create_app, json_safe

router = APIRouter()


class Reading(BaseModel):
    value: float
    note: NulFreeText = ""


@router.post("/readings")
async def post_reading(reading: Reading) -> Reading:
    if reading.value < 0:
        raise HTTPException(422, "a reading is never negative")
    return reading


def test_nul_free_text_refuses_a_nul_and_keeps_other_text() -> None:
    assert Reading(value=1, note="café ☕").note == "café ☕"
    with pytest.raises(ValidationError, match="contains NUL"):
        Reading(value=1, note="a\x00b")


def test_json_safe_spells_non_finite_floats() -> None:
    assert json_safe({"a": [float("nan"), float("inf"), 1.5], "b": "x"}) == {"a": ["nan", "inf", 1.5], "b": "x"}


async def test_a_nan_input_gets_a_422_with_the_reason_not_a_500() -> None:
    app = create_app("test", {}, routers=[router])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/readings", content=b'{"value": NaN, "note": 1}', headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert {tuple(error["loc"]) for error in response.json()["detail"]} == {("body", "note")}
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/readings", json={"value": 1, "note": "\x00"})
    assert response.status_code == 422 and "contains NUL" in response.text


def test_the_openapi_422_says_detail_is_a_list_or_a_sentence() -> None:
    schema = create_app("test", {}, routers=[router]).openapi()
    detail = schema["components"]["schemas"]["HTTPValidationError"]["properties"]["detail"]
    assert {"type": "string", "minLength": 1} in detail["anyOf"]
    assert any(option.get("type") == "array" for option in detail["anyOf"])
