"""The sites each tenant registered and their time zones, as identity publishes them in the NATS KV bucket
`registry`. No I/O here.

Reports count days and hours in the site's own zone, so every report names a site the registry knows: a site
it does not know is refused with the reason instead of reported as zeros (a typo in `site_id` looked like a
quiet day).
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from schemas.registry import SiteEntry


class SiteNotRegistered(LookupError):
    """The tenant has no such site in the registry; the message says which and how to register it."""

    def __init__(self, tenant_id: str, site_id: str) -> None:
        super().__init__(f"site {site_id} is not registered for tenant {tenant_id} (PUT /v1/sites/{site_id})")


@dataclass
class SiteZones:
    """Each tenant's registered sites and the ZoneInfo of each; other registry keys (cameras, models,
    retention) are not reporting's concern and are ignored."""

    tenants: dict[str, dict[str, ZoneInfo]] = field(default_factory=dict)

    def apply(self, key: str, value: bytes | None) -> None:
        """One change of the bucket; only `<tenant>.site.<id>` keys matter here. Raises ValueError for a site
        value that is not a SiteEntry of that key."""
        tenant_id, kind, *rest = key.split(".")
        if kind != "site" or len(rest) != 1:
            return
        sites = self.tenants.setdefault(tenant_id, {})
        if value is None:
            sites.pop(rest[0], None)
            return
        try:
            entry = SiteEntry.model_validate_json(value)
        except ValidationError as error:
            raise ValueError(f"registry value of {key} is invalid: {error}") from error
        if (entry.tenant_id, entry.site_id) != (tenant_id, rest[0]):
            raise ValueError(f"registry value of {key} names site {entry.site_id} of tenant {entry.tenant_id}")
        sites[entry.site_id] = ZoneInfo(entry.time_zone)

    def zone_of(self, tenant_id: str, site_id: str) -> ZoneInfo:
        """The site's time zone; raises SiteNotRegistered when the tenant has no such site."""
        zone = self.tenants.get(tenant_id, {}).get(site_id)
        if zone is None:
            raise SiteNotRegistered(tenant_id, site_id)
        return zone

    def sites_of(self, tenant_id: str) -> dict[str, ZoneInfo]:
        """The tenant's sites and their zones (a copy: the mirror changes the original as the bucket does)."""
        return dict(self.tenants.get(tenant_id, {}))

    def all_sites(self) -> list[tuple[str, str, ZoneInfo]]:
        """Every (tenant, site, zone), in a stable order."""
        found = [(tenant, site, zone) for tenant, sites in self.tenants.items() for site, zone in sites.items()]
        return sorted(found, key=lambda entry: (entry[0], entry[1]))


def local_day(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The site's current local day as [start, end) in UTC: 23 or 25 hours on a DST change day."""
    today = now.astimezone(zone).date()
    start = datetime.combine(today, time.min, tzinfo=zone)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)
