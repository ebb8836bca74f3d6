"""The sites each tenant registered and their time zones, as identity publishes them in the NATS KV bucket
`registry`. No I/O here. (The tenant-wide reports count each visit on its site's local date.)"""

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from schemas.registry import SiteEntry


@dataclass
class SiteZones:
    """Each tenant's registered sites and the zone of each; the registry's other keys are not reporting's."""

    tenants: dict[str, dict[str, ZoneInfo]] = field(default_factory=dict)

    def apply(self, key: str, value: bytes | None) -> None:
        """One change of the bucket; only `<tenant>.site.<id>` keys matter here."""
        tenant_id, kind, *rest = key.split(".")
        if kind != "site" or len(rest) != 1:
            return
        sites = self.tenants.setdefault(tenant_id, {})
        if value is None:
            sites.pop(rest[0], None)
            return
        entry = SiteEntry.model_validate_json(value)
        sites[entry.site_id] = ZoneInfo(entry.time_zone)

    def sites_of(self, tenant_id: str) -> dict[str, ZoneInfo]:
        """The tenant's sites and their zones (a copy: the mirror changes the original as the bucket does)."""
        return dict(self.tenants.get(tenant_id, {}))
