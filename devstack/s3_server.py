"""`python -m devstack.s3_server`: the S3 endpoint of `make dev` and the tests; never production (MinIO).

Why our own: every embedded S3 the registries offer was measured here and is too slow or incomplete for a
pipeline meant to store 1,000 crops a second (docs/BENCHMARKS.md, "Embedded S3"): moto's server keeps memory
only and its request recorder, replayed at start to keep crops, corrupted under concurrent uploads. This one
speaks the part of the S3 REST API the services use through aioboto3 unchanged (bucket create/head, object
put/get/head/delete, multi-object delete, ListObjectsV2 with prefix, delimiter and pages, presigned GET),
checks every request's AWS Signature V4 (header or presigned) against one access key, and keeps objects in
one SQLite file (WAL): what a request was answered for is on disk, a kill -9 loses nothing acknowledged,
and a restart is an open, not a replay. Path-style addressing only (endpoints are http://127.0.0.1:port).
"""

import argparse
import base64
import hashlib
import hmac
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote, unquote
from xml.etree import ElementTree

from aiohttp import web

S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_KEYS = 1000
MAX_CLOCK_SKEW_SECONDS = 15 * 60
SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    content_type TEXT NOT NULL, modified REAL NOT NULL, body BLOB NOT NULL, PRIMARY KEY (bucket, key)
);
"""


class S3Error(Exception):
    """An S3 error response: its HTTP status, S3 code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    etag: str
    content_type: str
    modified: float


class ObjectStore:
    """Buckets and objects in one SQLite database. Each write is its own transaction; WAL with
    synchronous=NORMAL survives a killed process (not a power cut, which dev and tests need not)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def bucket_exists(self, bucket: str) -> bool:
        return self._db.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone() is not None

    def create_bucket(self, bucket: str) -> bool:
        """True if created, False if it existed."""
        cursor = self._db.execute("INSERT OR IGNORE INTO buckets VALUES (?, ?)", (bucket, time.time()))
        return cursor.rowcount == 1

    def delete_bucket(self, bucket: str) -> None:
        if self._db.execute("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (bucket,)).fetchone():
            raise S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty")
        self._db.execute("DELETE FROM buckets WHERE name = ?", (bucket,))

    def bucket_names(self) -> list[tuple[str, float]]:
        return list(self._db.execute("SELECT name, created FROM buckets ORDER BY name"))

    def put(self, bucket: str, key: str, body: bytes, content_type: str) -> str:
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        self._db.execute(
            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
            (bucket, key, len(body), etag, content_type, time.time(), body),
        )
        return etag

    def head(self, bucket: str, key: str) -> StoredObject | None:
        row = self._db.execute(
            "SELECT key, size, etag, content_type, modified FROM objects WHERE bucket = ? AND key = ?", (bucket, key)
        ).fetchone()
        return StoredObject(*row) if row else None

    def get(self, bucket: str, key: str) -> tuple[StoredObject, bytes] | None:
        row = self._db.execute(
            "SELECT key, size, etag, content_type, modified, body FROM objects WHERE bucket = ? AND key = ?",
            (bucket, key),
        ).fetchone()
        return (StoredObject(*row[:5]), row[5]) if row else None

    def delete(self, bucket: str, keys: list[str]) -> None:
        self._db.executemany("DELETE FROM objects WHERE bucket = ? AND key = ?", [(bucket, key) for key in keys])

    def keys_from(self, bucket: str, start: str, prefix: str) -> Iterator[StoredObject]:
        """Objects whose key starts with `prefix`, from `start` on (inclusive), in key order, read in chunks."""
        end = after_prefix(prefix)
        while True:
            rows = self._db.execute(
                "SELECT key, size, etag, content_type, modified FROM objects "
                "WHERE bucket = ? AND key >= ? AND (? IS NULL OR key < ?) ORDER BY key LIMIT 500",
                (bucket, start, end, end),
            ).fetchall()
            yield from (StoredObject(*row) for row in rows)
            if len(rows) < 500:
                return
            start = rows[-1][0] + "\0"


def after_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound)."""
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass(frozen=True)
class Listing:
    objects: list[StoredObject]
    common_prefixes: list[str]
    next_start: str | None


def list_keys(store: ObjectStore, bucket: str, prefix: str, delimiter: str, start: str, max_keys: int) -> Listing:
    """ListObjectsV2's page: keys and common prefixes (each counting one) from `start`, at most `max_keys`."""
    objects, prefixes = list[StoredObject](), list[str]()
    cursor = max(start, prefix)
    while True:
        for item in store.keys_from(bucket, cursor, prefix):
            if len(objects) + len(prefixes) == max_keys:
                return Listing(objects, prefixes, item.key)
            cut = item.key.find(delimiter, len(prefix)) if delimiter else -1
            if cut < 0:
                objects.append(item)
                continue
            common = item.key[: cut + len(delimiter)]
            prefixes.append(common)
            skip = after_prefix(common)
            assert skip is not None
            cursor = skip  # every other key under this common prefix is skipped
            break
        else:
            return Listing(objects, prefixes, None)


class SignatureChecker:
    """AWS Signature Version 4 as botocore signs for S3: the Authorization header or a presigned URL's query."""

    def __init__(self, access_key: str, secret_key: str) -> None:
        self._access_key, self._secret_key = access_key, secret_key
        self._signing_keys: dict[str, bytes] = {}

    def check(self, request: web.Request, body: bytes) -> None:
        header = request.headers.get("Authorization")
        if header is not None:
            self._check_header(request, header, body)
        elif "X-Amz-Signature" in request.query:
            self._check_presigned(request)
        else:
            raise S3Error(403, "AccessDenied", "Anonymous access is not allowed")

    def _check_header(self, request: web.Request, header: str, body: bytes) -> None:
        algorithm, _, rest = header.partition(" ")
        if algorithm != ALGORITHM:
            raise S3Error(400, "InvalidRequest", f"Only {ALGORITHM} is supported")
        fields = dict(part.strip().split("=", 1) for part in rest.split(","))
        payload_hash = request.headers.get("X-Amz-Content-SHA256", "")
        if payload_hash != UNSIGNED_PAYLOAD and payload_hash != hashlib.sha256(body).hexdigest():
            raise S3Error(400, "XAmzContentSHA256Mismatch", "The body does not match its x-amz-content-sha256")
        amz_date = request.headers.get("X-Amz-Date", "")
        self._check_time(amz_date, MAX_CLOCK_SKEW_SECONDS)
        self._verify(request, fields["Credential"], fields["SignedHeaders"], amz_date, payload_hash,
                     fields["Signature"], exclude_query=None)  # fmt: skip

    def _check_presigned(self, request: web.Request) -> None:
        query = request.query
        amz_date = query.get("X-Amz-Date", "")
        issued = self._check_time(amz_date, None)
        if time.time() > issued + int(query.get("X-Amz-Expires", "0")):
            raise S3Error(403, "AccessDenied", "Request has expired")
        self._verify(request, query.get("X-Amz-Credential", ""), query.get("X-Amz-SignedHeaders", ""), amz_date,
                     UNSIGNED_PAYLOAD, query["X-Amz-Signature"], exclude_query="X-Amz-Signature")  # fmt: skip

    @staticmethod
    def _check_time(amz_date: str, max_skew: float | None) -> float:
        try:
            moment = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError as error:
            raise S3Error(403, "AccessDenied", "X-Amz-Date is missing or malformed") from error
        if max_skew is not None and abs(time.time() - moment) > max_skew:
            raise S3Error(403, "RequestTimeTooSkewed", "The difference between the request time and now is too large")
        return moment

    def _verify(
        self,
        request: web.Request,
        credential: str,
        signed_headers: str,
        amz_date: str,
        payload_hash: str,
        signature: str,
        exclude_query: str | None,
    ) -> None:
        access_key, _, scope = credential.partition("/")
        if access_key != self._access_key:
            raise S3Error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records")
        canonical = "\n".join(
            (
                request.method,
                request.raw_path.partition("?")[0],
                canonical_query(request.raw_path.partition("?")[2], exclude_query),
                "".join(
                    f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in signed_headers.split(";")
                ),
                signed_headers,
                payload_hash,
            )
        )
        to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        expected = hmac.new(self._signing_key(scope), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")

    def _signing_key(self, scope: str) -> bytes:
        key = self._signing_keys.get(scope)
        if key is None:
            key = f"AWS4{self._secret_key}".encode()
            for part in scope.split("/"):  # date, region, service, "aws4_request"
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._signing_keys[scope] = key
        return key


def canonical_query(raw_query: str, exclude: str | None) -> str:
    pairs = []
    for item in filter(None, raw_query.split("&")):
        name, _, value = item.partition("=")
        name, value = unquote(name), unquote(value)
        if name != exclude:
            pairs.append((quote(name, safe="-_.~"), quote(value, safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def xml_response(root: ElementTree.Element, status: int = 200) -> web.Response:
    body = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    return web.Response(status=status, body=body, content_type="application/xml")


def element(parent: ElementTree.Element, tag: str, text: object) -> None:
    ElementTree.SubElement(parent, tag).text = str(text)


def error_response(error: S3Error, request: web.Request) -> web.Response:
    if request.method == "HEAD":
        return web.Response(status=error.status)
    root = ElementTree.Element("Error")
    for tag, text in (("Code", error.code), ("Message", error.message), ("Resource", request.path)):
        element(root, tag, text)
    return xml_response(root, error.status)


def iso_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def object_headers(item: StoredObject) -> dict[str, str]:
    return {
        "ETag": f'"{item.etag}"',
        "Last-Modified": formatdate(item.modified, usegmt=True),
        "Content-Type": item.content_type,
        "Accept-Ranges": "bytes",
    }


class S3Handlers:
    """The routes: `/` (list buckets), `/<bucket>` and `/<bucket>/<key>`."""

    def __init__(self, store: ObjectStore, signatures: SignatureChecker) -> None:
        self._store, self._signatures = store, signatures

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
            self._signatures.check(request, body)
            bucket, _, key = request.path.lstrip("/").partition("/")
            if not bucket:
                return self._list_buckets()
            if key:
                return self._object(request, bucket, key, body)
            return self._bucket(request, bucket, body)
        except S3Error as error:
            return error_response(error, request)

    def _require_bucket(self, bucket: str) -> None:
        if not self._store.bucket_exists(bucket):
            raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist")

    def _list_buckets(self) -> web.Response:
        root = ElementTree.Element("ListAllMyBucketsResult", xmlns=S3_NAMESPACE)
        buckets = ElementTree.SubElement(root, "Buckets")
        for name, created in self._store.bucket_names():
            entry = ElementTree.SubElement(buckets, "Bucket")
            element(entry, "Name", name)
            element(entry, "CreationDate", iso_time(created))
        return xml_response(root)

    def _bucket(self, request: web.Request, bucket: str, body: bytes) -> web.Response:
        if request.method == "PUT":
            if not self._store.create_bucket(bucket):
                raise S3Error(409, "BucketAlreadyOwnedByYou", "Your previous request to create the bucket succeeded")
            return web.Response(headers={"Location": f"/{bucket}"})
        self._require_bucket(bucket)
        if request.method == "HEAD":
            return web.Response()
        if request.method == "DELETE":
            self._store.delete_bucket(bucket)
            return web.Response(status=204)
        if request.method == "POST" and "delete" in request.query:
            return self._delete_many(bucket, body)
        if request.method == "GET" and request.query.get("list-type") == "2":
            return self._list_objects(request, bucket)
        raise S3Error(501, "NotImplemented", "This dev S3 server does not implement that bucket request")

    def _object(self, request: web.Request, bucket: str, key: str, body: bytes) -> web.Response:
        self._require_bucket(bucket)
        if request.method == "PUT":
            if "X-Amz-Copy-Source" in request.headers:
                raise S3Error(501, "NotImplemented", "Copying objects is not implemented")
            etag = self._store.put(bucket, key, body, request.headers.get("Content-Type", "binary/octet-stream"))
            return web.Response(headers={"ETag": f'"{etag}"'})
        if request.method == "DELETE":
            self._store.delete(bucket, [key])
            return web.Response(status=204)
        if request.method == "HEAD":
            item = self._store.head(bucket, key)
            if item is None:
                raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
            return web.Response(headers={**object_headers(item), "Content-Length": str(item.size)})
        if request.method == "GET":
            found = self._store.get(bucket, key)
            if found is None:
                raise S3Error(404, "NoSuchKey", "The specified key does not exist.")
            item, data = found
            headers = object_headers(item)
            return web.Response(body=data, headers=headers, content_type=headers.pop("Content-Type"))
        raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    def _delete_many(self, bucket: str, body: bytes) -> web.Response:
        try:
            request = ElementTree.fromstring(body)  # noqa: S314 (signed by the key holder, checked before parsing)
        except ElementTree.ParseError as error:
            raise S3Error(400, "MalformedXML", "The XML you provided was not well-formed") from error
        namespace = f"{{{S3_NAMESPACE}}}" if request.tag.startswith("{") else ""
        keys = [node.text or "" for node in request.iter(f"{namespace}Key")]
        quiet = (request.findtext(f"{namespace}Quiet") or "").lower() == "true"
        if len(keys) > MAX_KEYS:
            raise S3Error(400, "MalformedXML", f"At most {MAX_KEYS} keys per request")
        self._store.delete(bucket, keys)
        root = ElementTree.Element("DeleteResult", xmlns=S3_NAMESPACE)
        for key in [] if quiet else keys:
            element(ElementTree.SubElement(root, "Deleted"), "Key", key)
        return xml_response(root)

    def _list_objects(self, request: web.Request, bucket: str) -> web.Response:
        query = request.query
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = min(int(query.get("max-keys", MAX_KEYS)), MAX_KEYS)
        token = query.get("continuation-token")
        start = base64.urlsafe_b64decode(token).decode() if token else ""
        if not token and query.get("start-after"):
            start = query["start-after"] + "\0"  # the first key after it
        listing = list_keys(self._store, bucket, prefix, delimiter, start, max_keys)
        encode = (lambda text: quote(text, safe="/")) if query.get("encoding-type") == "url" else str
        root = ElementTree.Element("ListBucketResult", xmlns=S3_NAMESPACE)
        for tag, text in (("Name", bucket), ("Prefix", encode(prefix)), ("MaxKeys", max_keys),
                          ("KeyCount", len(listing.objects) + len(listing.common_prefixes)),
                          ("IsTruncated", str(listing.next_start is not None).lower())):  # fmt: skip
            element(root, tag, text)
        if delimiter:
            element(root, "Delimiter", encode(delimiter))
        if "encoding-type" in query:
            element(root, "EncodingType", query["encoding-type"])
        if token:
            element(root, "ContinuationToken", token)
        if listing.next_start is not None:
            element(root, "NextContinuationToken", base64.urlsafe_b64encode(listing.next_start.encode()).decode())
        for item in listing.objects:
            entry = ElementTree.SubElement(root, "Contents")
            element(entry, "Key", encode(item.key))
            element(entry, "LastModified", iso_time(item.modified))
            element(entry, "ETag", f'"{item.etag}"')
            element(entry, "Size", item.size)
            element(entry, "StorageClass", "STANDARD")
        for common in listing.common_prefixes:
            element(ElementTree.SubElement(root, "CommonPrefixes"), "Prefix", encode(common))
        return xml_response(root)


def build_app(store: ObjectStore, access_key: str, secret_key: str, max_body_bytes: int) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes)
    handlers = S3Handlers(store, SignatureChecker(access_key, secret_key))
    app.router.add_route("*", "/{path:.*}", handlers.handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.s3_server", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="directory of the objects database")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--max-object-bytes", type=int, default=64 * 1024 * 1024)
    args = parser.parse_args()
    store = ObjectStore(args.data / "objects.sqlite3")
    try:
        app = build_app(store, args.access_key, args.secret_key, args.max_object_bytes)
        web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    finally:
        store.close()


if __name__ == "__main__":
    main()
