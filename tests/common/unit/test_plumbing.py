from pathlib import Path

import jwt
import pytest

from devstack.stack import SigningKeys
from schemas import subjects
from services.common.auth import Role, TokenVerifier, issue_token
from services.common.bus import retry_delay_seconds
from services.common.postgres import migration_files


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("faces.detected.>", "faces.detected.acme.s1.c1", True),
        ("faces.detected.>", "faces.detected", False),
        ("identity.person_created.*", "identity.person_created.acme", True),
        ("identity.person_created.*", "identity.person_created.acme.x", False),
        ("faces.ingested.>", "faces.matched.acme.s1", False),
    ],
)
def test_subject_matching(pattern: str, subject: str, expected: bool) -> None:
    assert subjects.subject_matches(pattern, subject) is expected


def test_every_subject_belongs_to_exactly_one_stream() -> None:
    for subject in (
        "faces.detected.a.b.c",
        "faces.ingested.a.b",
        "faces.matched.a.b",
        "faces.unidentified.a.b",
        "faces.rejected.a",
        "identity.person_created.a",
        "visits.a.b",
        "audit.identity.merge.a",
        "deadletter.ingest.x",
    ):
        owners = [s for s in subjects.ALL_STREAMS if any(subjects.subject_matches(p, subject) for p in s.subjects)]
        assert len(owners) == 1, subject
    with pytest.raises(ValueError):
        subjects.stream_for_subject("unknown.subject")


def test_retry_backoff_grows_and_is_capped() -> None:
    assert [retry_delay_seconds(n) for n in (1, 2, 3)] == [1, 2, 4]
    assert retry_delay_seconds(20) == 30


def test_migrations_must_be_numbered_in_order(tmp_path: Path) -> None:
    (tmp_path / "001_init.sql").write_text("")
    (tmp_path / "002_more.sql").write_text("")
    assert [version for version, _ in migration_files(tmp_path)] == [1, 2]
    (tmp_path / "004_gap.sql").write_text("")
    with pytest.raises(ValueError, match="numbered"):
        migration_files(tmp_path)


def test_service_migrations_are_well_formed() -> None:
    for service in ("identity", "reporting", "audit"):
        assert migration_files(Path("services") / service / "migrations")


def test_token_verification(keys: SigningKeys) -> None:
    verifier = TokenVerifier(keys.public_pem, "revisit", "revisit")
    token = issue_token(
        keys.private_pem, subject="ana", tenant_id="acme", roles=["analyst"], issuer="revisit", audience="revisit"
    )
    principal = verifier.verify(token)
    assert principal.tenant_id == "acme" and principal.roles == {Role.ANALYST}
    assert principal.may_access("acme") and not principal.may_access("other")
    wrong_audience = issue_token(
        keys.private_pem, subject="ana", tenant_id="acme", roles=[], issuer="revisit", audience="x"
    )
    with pytest.raises(jwt.InvalidTokenError):
        verifier.verify(wrong_audience)
    expired = issue_token(
        keys.private_pem, subject="a", tenant_id="acme", roles=[], issuer="revisit", audience="revisit", ttl_seconds=-60
    )
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.verify(expired)
