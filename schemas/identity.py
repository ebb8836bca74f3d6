"""Identity events: the person directory's changes."""

import uuid
from typing import Literal

from pydantic import AwareDatetime, Field

from schemas.base import Event
from schemas.faces import PersonKind, Token


class PersonCreated(Event):
    """A person first recorded by identity; published on `identity.person_created.<tenant>`."""

    schema_name: Literal["PersonCreated.v1"] = Field("PersonCreated.v1", alias="schema")
    person_id: uuid.UUID
    person_kind: PersonKind
    first_site_id: Token
    first_seen_at: AwareDatetime
