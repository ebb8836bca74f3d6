"""AWS Signature Version 4 for the one S3 request ingest makes per face: the PUT of its crop.

Why not botocore's signer: it prepares a whole `AWSRequest` (header mappings, body preparation, a canonical form of
every header) for each call, which was about a fifth of ingest's CPU in the pipeline profile. A PUT with a known
payload hash signs three headers (host, x-amz-content-sha256, x-amz-date) and needs only hashlib and hmac; the
signing key changes once a day. The signature is the one botocore's `S3SigV4Auth` computes for the same request
(tests/ingest/unit/test_sigv4.py holds them equal), so MinIO, AWS S3 and the dev server accept it alike."""

import hashlib
import hmac
from datetime import datetime
from urllib.parse import urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"
DEFAULT_PORTS = {"http": 80, "https": 443}


def host_of(url: str) -> str:
    """The Host header a client sends for `url`: its host, and its port unless the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    if parts.port is not None and parts.port != DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


class PutSigner:
    """Signs path-style S3 PUTs of one set of credentials and region."""

    def __init__(self, access_key: str, secret_key: str, region: str, service: str = "s3") -> None:
        self._access_key, self._secret_key, self._region, self._service = access_key, secret_key, region, service
        self._day_keys: dict[str, bytes] = {}

    def headers(self, url: str, payload_sha256: str, now: datetime) -> dict[str, str]:
        """The headers that authenticate a PUT to `url` (already percent-encoded) whose body hashes to
        `payload_sha256`, at `now` (UTC): send them as they are, Host included."""
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day, host = amz_date[:8], host_of(url)
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        canonical_request = "\n".join(
            [
                "PUT",
                urlsplit(url).path or "/",
                "",  # no query
                f"host:{host}",
                f"x-amz-content-sha256:{payload_sha256}",
                f"x-amz-date:{amz_date}",
                "",
                SIGNED_HEADERS,
                payload_sha256,
            ]
        )
        string_to_sign = "\n".join([ALGORITHM, amz_date, scope, _sha256_hex(canonical_request.encode())])
        signature = hmac.new(self._signing_key(day), string_to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "Host": host,
            "X-Amz-Date": amz_date,
            "X-Amz-Content-SHA256": payload_sha256,
            "Authorization": f"{ALGORITHM} Credential={self._access_key}/{scope}, SignedHeaders={SIGNED_HEADERS}, "
            f"Signature={signature}",
        }

    def _signing_key(self, day: str) -> bytes:
        key = self._day_keys.get(day)
        if key is None:
            key = f"AWS4{self._secret_key}".encode()
            for part in (day, self._region, self._service, "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day_keys = {day: key}  # one day at a time: yesterday's key is never needed again
        return key


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
