"""Per-tenant matching settings: a tenant may override the matcher's thresholds and quality floors. No I/O here.

Cameras, lighting and the people a tenant serves differ; one tenant may prefer fewer silent joins (a higher
threshold, a wider ambiguous band), another fewer provisional persons to review. The matcher's own settings
are the defaults; a tenant's overrides replace them one field at a time.
"""

from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field

MAX_AMBIGUOUS_BAND = 0.2
"""Wider than this, most same-person faces (measured from 0.51 up) would wait for review."""


@dataclass(frozen=True)
class MatchPolicy:
    """The thresholds one tenant's faces are decided with."""

    match_threshold: float
    ambiguous_band: float
    identify_min_quality: float
    enrol_min_quality: float


class TenantMatchSettings(BaseModel):
    """A tenant's overrides, as stored (KV bucket `matcher_tenant_settings`) and as `PUT /v1/settings` takes
    them; an absent or null field keeps the matcher's default."""

    # NaN passes ge/le, and lax floats take `false` for 0.0: a threshold is a finite JSON number or null
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    match_threshold: float | None = Field(None, ge=0, le=1, description="Cosine similarity to join a person")
    ambiguous_band: float | None = Field(
        None, ge=0, le=MAX_AMBIGUOUS_BAND, description="Above the threshold by less than this: a provisional person"
    )
    identify_min_quality: float | None = Field(None, ge=0, le=1, description="Edge quality to be searched at all")
    enrol_min_quality: float | None = Field(None, ge=0, le=1, description="Edge quality to start a person")


class InvertedQualityFloors(ValueError):
    """The enrolment floor is below the identification floor."""


def effective_policy(defaults: MatchPolicy, overrides: TenantMatchSettings) -> MatchPolicy:
    """The defaults with the tenant's overrides applied."""
    return replace(defaults, **overrides.model_dump(exclude_none=True))


def check_policy(policy: MatchPolicy) -> MatchPolicy:
    """Refuse floors that would let a face too poor to identify start a person (the matcher's own settings
    refuse the same at start)."""
    if policy.enrol_min_quality < policy.identify_min_quality:
        raise InvertedQualityFloors(
            f"enrol_min_quality ({policy.enrol_min_quality}) is below identify_min_quality"
            f" ({policy.identify_min_quality}): a face that may not be identified could start a person"
        )
    return policy
