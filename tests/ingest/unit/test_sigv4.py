"""Ingest's own SigV4 signature of a crop's PUT is the one botocore's S3 signer computes for the same request."""

import hashlib
from datetime import UTC, datetime

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from services.ingest.adapters.sigv4 import PutSigner, host_of

AT = datetime(2026, 11, 26, 23, 59, 58, tzinfo=UTC)


def botocore_authorization(url: str, body: bytes, at: datetime, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: at.replace(tzinfo=None))
    request = AWSRequest(
        method="PUT", url=url, data=body, headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    )
    S3SigV4Auth(Credentials("revisit-dev", "revisit-dev-secret"), "s3", "eu-west-3").add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:19000/revisit-crops/acme/store-1/2026/11/26/0193a3b4-1111-7222-8333-444455556666.jpg",
        "https://minio.example.com/revisit-crops/t1/s_2/2026/01/02/x.jpg",
        "http://s3.local:80/bucket/a/b.jpg",
    ],
)
def test_signature_is_botocores(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"\xff\xd8\xff\xe0 a face"
    signer = PutSigner("revisit-dev", "revisit-dev-secret", "eu-west-3")
    for at in (AT, AT.replace(day=27)):  # the signing key of the next day too
        ours = signer.headers(url, hashlib.sha256(body).hexdigest(), at)
        assert ours["Authorization"] == botocore_authorization(url, body, at, monkeypatch)
        assert ours["X-Amz-Date"] == at.strftime("%Y%m%dT%H%M%SZ")


def test_host_is_what_a_client_sends() -> None:
    assert host_of("http://127.0.0.1:19000/b/k") == "127.0.0.1:19000"
    assert host_of("http://s3.local:80/b/k") == "s3.local"
    assert host_of("https://minio.example.com/b/k") == "minio.example.com"
    assert host_of("http://[::1]:9000/b/k") == "[::1]:9000"
