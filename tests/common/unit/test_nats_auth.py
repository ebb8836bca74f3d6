"""The JWTs and permissions the bus's auth is built from, without a server."""

import base64

import nacl.signing
import nkeys

from services.common.nats_auth import (
    SERVICE_ACCESS,
    DeviceScope,
    account_claims,
    decode_jwt,
    device_permissions,
    encode_jwt,
    jwt_of_credentials,
    mint_device_credentials,
    new_seed,
    public_key,
    service_permissions,
    with_revocations,
)


def raw_public_key(key: str) -> bytes:
    """The 32 ed25519 bytes of an nkey public key (prefix byte and CRC stripped)."""
    return base64.b32decode(key + "=" * (-len(key) % 8))[1:33]


def test_a_jwt_is_signed_by_its_issuer_and_says_so() -> None:
    operator = new_seed(nkeys.PREFIX_BYTE_OPERATOR)
    account = public_key(new_seed(nkeys.PREFIX_BYTE_ACCOUNT))
    token = encode_jwt(account_claims(account, "REVISIT", [], jetstream=True), operator)
    claims = decode_jwt(token)
    assert claims["iss"] == public_key(operator) and claims["sub"] == account and claims["jti"]
    assert claims["nats"]["limits"]["disk_storage"] == -1  # JetStream enabled, unlimited
    signing_input, _, signature = token.rpartition(".")
    verifier = nacl.signing.VerifyKey(raw_public_key(public_key(operator)))
    verifier.verify(signing_input.encode(), base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))


def test_revoking_keeps_earlier_revocations_and_issues_a_newer_jwt() -> None:
    operator = new_seed(nkeys.PREFIX_BYTE_OPERATOR)
    account = public_key(new_seed(nkeys.PREFIX_BYTE_ACCOUNT))
    first = with_revocations(encode_jwt(account_claims(account, "A", [], True), operator), ["UONE"], operator, 100)
    second = with_revocations(first, ["UTWO"], operator, 200)
    assert decode_jwt(second)["nats"]["revocations"] == {"UONE": 100, "UTWO": 200}
    assert decode_jwt(second)["iat"] > decode_jwt(first)["iat"]  # the resolver keeps only a newer JWT


def test_a_device_may_publish_its_cameras_and_watch_its_tenants_staff_only() -> None:
    permissions = device_permissions(DeviceScope("acme", "s1", ("door", "till")), "UDEVICE")
    assert permissions.publish is not None and permissions.subscribe == ("_INBOX.UDEVICE.>",)
    assert sorted(permissions.publish) == sorted(
        [
            "faces.detected.acme.s1.door",
            "faces.detected.acme.s1.till",
            "$JS.API.CONSUMER.CREATE.KV_staff_gallery.*.$KV.staff_gallery.acme.*",
            "$JS.API.CONSUMER.INFO.KV_staff_gallery.*",
            "$JS.FC.KV_staff_gallery.>",
        ]
    )


def test_minted_credentials_carry_the_device_user_and_its_account() -> None:
    account_signing = new_seed(nkeys.PREFIX_BYTE_ACCOUNT)
    minted = mint_device_credentials(DeviceScope("acme", "s1", ("door",)), "edge-1", "AACCOUNT", account_signing)
    claims = decode_jwt(jwt_of_credentials(minted.text))
    assert claims["sub"] == minted.public_key and claims["iss"] == public_key(account_signing)
    assert claims["nats"]["issuer_account"] == "AACCOUNT" and claims["name"] == "edge-1"
    assert "-----BEGIN USER NKEY SEED-----" in minted.text


def test_ingest_may_not_publish_matches_nor_delete_streams() -> None:
    publish = service_permissions("ingest").publish or ()
    assert "faces.ingested.>" in publish and "faces.matched.>" not in publish
    assert not [subject for subject in publish if ".STREAM.DELETE." in subject]
    writable = {subject.split(".")[1] for subject in publish if subject.startswith("$KV.")}
    assert writable == {"retention_leases"}  # its retention job's lease; the registry it only reads


def test_only_identity_writes_the_registry() -> None:
    writers = {name for name in SERVICE_ACCESS if "$KV.registry.>" in (service_permissions(name).publish or ())}
    assert writers == {"identity"}
