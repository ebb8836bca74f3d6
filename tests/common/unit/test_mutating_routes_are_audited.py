"""Every route that changes something is audited: this test enumerates the mutating routes of every service
and fails for one that no audit test covers (or that is not exempted with its reason).

The behaviour is proven where the routes run: `tests/identity/integration/test_audited_routes.py` calls each
identity route once and checks its audit entry; the matcher's settings route is checked by
`tests/matcher/integration/test_band_and_settings.py`.
"""

from fastapi.routing import APIRoute

from services.identity.api import router as persons
from services.identity.registry import router as registry
from services.identity.staff import router as staff
from services.ingest.api import router as ingest
from services.matcher.api import router as matcher

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
IDENTITY_AUDITED: dict[tuple[str, str], str] = {
    ("POST", "/v1/persons/{person_id}/merge"): "persons_merged",
    ("POST", "/v1/persons/{person_id}/split"): "person_split",
    ("PUT", "/v1/persons/{person_id}/kind"): "person_kind_changed",
    ("POST", "/v1/persons/{person_id}/not-same"): "persons_marked_different",
    ("DELETE", "/v1/persons/{person_id}"): "person_erased",
    ("POST", "/v1/operations/{operation_id}/undo"): "person_split",
    ("PUT", "/v1/staff/{staff_id}"): "staff_enrolled",
    ("DELETE", "/v1/staff/{staff_id}"): "staff_removed",
    ("PUT", "/v1/sites/{site_id}"): "site_put",
    ("DELETE", "/v1/sites/{site_id}"): "site_deleted",
    ("PUT", "/v1/cameras/{camera_id}"): "camera_put",
    ("DELETE", "/v1/cameras/{camera_id}"): "camera_deleted",
    ("PUT", "/v1/embedding-models"): "models_set",
    ("PUT", "/v1/retention"): "retention_policy_set",
}
"""Identity's mutating routes and the audit action each writes (checked by calling them)."""
OTHER_AUDITED = {
    ("matcher", "PUT", "/v1/settings"): "settings_changed",  # tests/matcher/integration/test_band_and_settings.py
    ("identity", "POST", "/v1/devices"): "device_created",  # tests/identity/integration/test_devices.py
    ("identity", "DELETE", "/v1/devices/{device_id}"): "device_revoked",  # (needs the NATS keys)
}
EXEMPT = {
    ("ingest", "POST", "/v1/faces"): "a device's sighting, the data flow itself (as on NATS), not an admin action;"
    " refused ones are FaceRejected events"
}


def mutating_routes() -> set[tuple[str, str, str]]:
    found = set()
    for service, router in (
        ("identity", persons),
        ("identity", staff),
        ("identity", registry),
        ("ingest", ingest),
        ("matcher", matcher),
    ):
        for route in router.routes:
            if isinstance(route, APIRoute):
                found |= {(service, method, route.path) for method in (route.methods or set()) & MUTATING}
    return found


def test_every_mutating_route_is_audited_or_exempted_with_a_reason() -> None:
    covered = {("identity", method, path) for method, path in IDENTITY_AUDITED} | set(OTHER_AUDITED) | set(EXEMPT)
    assert mutating_routes() == covered
