import pytest
from pydantic import ValidationError

from services.matcher.domain.tenant_settings import (
    InvertedQualityFloors,
    MatchPolicy,
    TenantMatchSettings,
    check_policy,
    effective_policy,
)

DEFAULTS = MatchPolicy(match_threshold=0.4, ambiguous_band=0.05, identify_min_quality=0.65, enrol_min_quality=0.8)


def test_no_overrides_is_the_defaults() -> None:
    assert effective_policy(DEFAULTS, TenantMatchSettings()) == DEFAULTS


def test_overrides_replace_only_their_fields() -> None:
    policy = effective_policy(DEFAULTS, TenantMatchSettings(match_threshold=0.5, ambiguous_band=0.0))
    assert policy == MatchPolicy(0.5, 0.0, 0.65, 0.8)


@pytest.mark.parametrize(
    "body",
    [
        {"match_threshold": 1.2},
        {"match_threshold": -0.1},
        {"ambiguous_band": 0.25},
        {"enrol_min_quality": 2},
        {"x": 1},
        {"match_threshold": float("nan")},  # NaN passes ge and le (fuzz lane): it must be refused by name
        {"identify_min_quality": float("inf")},
        {"enrol_min_quality": False},  # lax mode read it as 0.0 (fuzz lane)
        {"match_threshold": "0.5"},
    ],
)
def test_out_of_range_or_unknown_fields_are_refused(body: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        TenantMatchSettings.model_validate(body)


def test_an_enrolment_floor_below_the_identification_floor_is_refused() -> None:
    with pytest.raises(InvertedQualityFloors, match="enrol_min_quality"):
        check_policy(effective_policy(DEFAULTS, TenantMatchSettings(enrol_min_quality=0.6)))
    assert (
        check_policy(effective_policy(DEFAULTS, TenantMatchSettings(identify_min_quality=0.8))).enrol_min_quality == 0.8
    )
