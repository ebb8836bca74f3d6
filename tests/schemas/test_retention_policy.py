"""The retention policy contract refuses what would leave data inconsistent."""

import pytest
from pydantic import ValidationError

from schemas.registry import RetentionPolicyEntry

VALID = {"tenant_id": "acme", "crops_days": 30, "vectors_unseen_days": 365, "sightings_days": 400, "visits_days": 400}


def test_visits_are_kept_at_least_as_long_as_sightings_and_crops_no_longer() -> None:
    RetentionPolicyEntry.model_validate(VALID)
    with pytest.raises(ValidationError, match="visits_days"):
        RetentionPolicyEntry.model_validate({**VALID, "visits_days": 399})
    with pytest.raises(ValidationError, match="crops_days"):
        RetentionPolicyEntry.model_validate({**VALID, "crops_days": 401})
    with pytest.raises(ValidationError):
        RetentionPolicyEntry.model_validate({**VALID, "crops_days": 0})
