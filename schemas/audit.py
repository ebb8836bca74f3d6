"""Admin actions and data changes that any service reports to the audit log."""

from typing import Any, Literal

from pydantic import Field

from schemas.base import Event


class AuditEntryRecorded(Event):
    """An action to append to the audit chain; published on `audit.<service>.<action>.<tenant>`."""

    schema_name: Literal["AuditEntryRecorded.v1"] = Field("AuditEntryRecorded.v1", alias="schema")
    service: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    action: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    actor: str = Field(min_length=1, max_length=200, description="User, device or service that acted")
    resource: str = Field(min_length=1, max_length=200, description="What it acted on, e.g. person/<id>")
    details: dict[str, Any] = Field(default_factory=dict)
