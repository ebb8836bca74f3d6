"""Face vectors in Milvus: one collection per embedding model; tenants by partition key (`tenant_id`).

A collection caps explicit partitions at 1,024-4,096, so tenants are not one partition each: `tenant_id` is the
collection's partition key and every read filters on it. The index is FLAT (exact): the matcher searches its
own in-memory copy of a tenant's rows (`domain.exact_search`), and Milvus is the durable store it is loaded from
and written to; the few searches still made here (`candidates`, for checks) are exact too.

The same pymilvus code talks to Milvus Lite (a local file, the embedded default, or `milvus-lite server` shared
by several processes) and to a Milvus server. Every read uses Strong consistency, so a row written by one
replica is read by the next. pymilvus is synchronous: calls run in a worker thread, one at a time.
"""

import asyncio
import hashlib
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, TypeVar

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from schemas import PersonKind
from services.common.logging import get_logger
from services.matcher.domain.assignment import Candidate, Vectors
from services.matcher.domain.exact_search import StoredVector as StoredVector  # the row type callers import here

log = get_logger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
CONSISTENCY = "Strong"
SEARCH_LIMIT = 8
ROW_FIELDS = ["sighting_id", "person_id", "tenant_id", "kind", "captured_at_ms"]
ITERATOR_BATCH = 5000
DELETE_BATCH = 1000
GET_BATCH = 1000


@dataclass(frozen=True)
class CollectionRows:
    """Stored vectors of one tenant in one embedding model's collection (vectors of different models never mix)."""

    collection: str
    rows: list[StoredVector]


class DimensionMismatch(ValueError):
    """The collection of this embedding model holds vectors of another size."""


def collection_name(prefix: str, embedding_model: str) -> str:
    """Milvus names allow letters, digits and underscores: keep the model readable, add a hash for uniqueness."""
    readable = re.sub(r"[^a-zA-Z0-9]", "_", embedding_model)[:40]
    return f"{prefix}_{readable}_{hashlib.sha256(embedding_model.encode()).hexdigest()[:8]}"


def tenant_filter(tenant_id: str) -> str:
    return f'tenant_id == "{tenant_id}"'


class FaceVectorStore:
    def __init__(self, uri: str, token: str, prefix: str) -> None:
        self._uri, self._token, self._prefix = uri, token, prefix
        self._client: MilvusClient | None = None
        self._lock = threading.Lock()
        self._dims: dict[str, int] = {}

    async def connect(self) -> None:
        await self._run(self._connect)

    async def ping(self) -> None:
        await self._run(lambda: self._milvus.list_collections())

    async def close(self) -> None:
        if self._client is not None:
            await self._run(self._milvus.close)

    def name_of(self, model: str) -> str:
        return collection_name(self._prefix, model)

    def is_loaded(self, name: str) -> bool:
        """Whether this client has created or loaded the collection already (then `collection` makes no call)."""
        return name in self._dims

    async def collection(self, model: str, dim: int) -> str:
        """The model's collection, created and loaded on first use; raises `DimensionMismatch` for another size."""
        return await self._run(self._collection, model, dim)

    async def tenant_vectors(self, collection: str, tenant_id: str) -> tuple[list[StoredVector], Vectors]:
        """Every row of the tenant in the collection (without vector lists) and their vectors as one matrix."""
        return await self._run(self._tenant_vectors, collection, tenant_id)

    async def rows(self, collection: str, tenant_id: str, sightings: Sequence[uuid.UUID]) -> list[StoredVector]:
        """The rows of these sighting ids that exist, with their vectors (by primary key: no scan)."""
        return await self._run(self._get, collection, tenant_id, [str(s) for s in set(sightings)])

    async def find_sightings(
        self, model: str, dim: int, tenant_id: str, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, StoredVector]:
        """Sightings already stored, by sighting id."""
        name = await self.collection(model, dim)
        return {row.sighting_id: row for row in await self.rows(name, tenant_id, ids)}

    async def candidates(
        self, model: str, dim: int, tenant_id: str, vectors: list[list[float]]
    ) -> list[list[Candidate]]:
        """Milvus's own (exact, FLAT) search: per vector, the best hit of each distinct stored person among the
        nearest `SEARCH_LIMIT` vectors, most similar first. The matcher searches its in-memory copy instead;
        this answers the same question from the durable store, for checks."""
        return await self._run(self._search, model, dim, tenant_id, vectors)

    async def count_vectors(
        self, model: str, dim: int, tenant_id: str, persons: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, int]:
        if not persons:
            return {}
        name = await self.collection(model, dim)
        condition = f"person_id in {[str(p) for p in set(persons)]}"
        rows = await self._run(self._query_collection, name, tenant_id, condition, False)
        return dict(Counter(row.person_id for row in rows))

    async def insert(self, model: str, dim: int, rows: Sequence[StoredVector]) -> None:
        if rows:
            name = await self.collection(model, dim)
            await self._run(self._insert, name, rows)

    async def insert_into(self, collection: str, rows: Sequence[StoredVector]) -> None:
        if rows:
            await self._run(self._insert, collection, rows)

    async def vectors_of_persons(
        self, tenant_id: str, persons: Sequence[uuid.UUID], with_vectors: bool = True
    ) -> list[CollectionRows]:
        """Every stored vector of `persons` in the tenant, in each embedding model's collection."""
        condition = f"person_id in {[str(p) for p in set(persons)]}"
        return await self._run(self._query_all_collections, tenant_id, condition, with_vectors)

    async def vectors_of_person_not_of_kind(
        self, tenant_id: str, person_id: uuid.UUID, kind: PersonKind
    ) -> list[CollectionRows]:
        """The stored vectors (with their values) of `person_id` in every collection whose kind is not `kind`:
        exactly the rows a change of the person's kind rewrites, so a repeat finds none."""
        condition = f'person_id == "{person_id}" and kind != "{kind.value}"'
        return await self._run(self._query_all_collections, tenant_id, condition, True)

    async def vectors_of_sightings(self, tenant_id: str, sightings: Sequence[uuid.UUID]) -> list[CollectionRows]:
        """The stored vectors (with their values) of these sighting ids in the tenant, in every collection."""
        condition = f"sighting_id in {[str(s) for s in set(sightings)]}"
        return await self._run(self._query_all_collections, tenant_id, condition, True)

    async def all_vectors(self, tenant_id: str) -> list[CollectionRows]:
        """Every vector of the tenant, per collection (read in pages: the duplicate scan is exact)."""
        return await self._run(self._iterate_all_collections, tenant_id, True)

    async def all_rows(self, tenant_id: str) -> list[CollectionRows]:
        """Every stored row of the tenant without its vector values (ids, person, time), per collection."""
        return await self._run(self._iterate_all_collections, tenant_id, False)

    async def upsert(self, located: Sequence[CollectionRows]) -> None:
        """Write rows back by primary key (sighting id): a relabel repeated is the same write."""
        for part in located:
            if part.rows:
                await self._run(self._upsert, part.collection, part.rows)

    async def delete(self, located: Sequence[CollectionRows]) -> None:
        """Delete rows by primary key; deleting an absent row is a no-op, so a repeat is harmless."""
        for part in located:
            if part.rows:
                await self._run(self._delete, part.collection, [str(r.sighting_id) for r in part.rows])

    async def _run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        def locked() -> T:
            with self._lock:
                return function(*args, **kwargs)

        return await asyncio.to_thread(locked)

    @property
    def _milvus(self) -> MilvusClient:
        if self._client is None:
            raise RuntimeError("FaceVectorStore.connect() was not called")
        return self._client

    def _connect(self) -> None:
        self._client = MilvusClient(uri=self._uri, token=self._token)
        self._client.list_collections()

    def _collection(self, model: str, dim: int) -> str:
        name = collection_name(self._prefix, model)
        if name not in self._dims:
            if not self._milvus.has_collection(name):
                self._create_collection(name, model, dim)
            self._load(name)
        if self._dims[name] != dim:
            raise DimensionMismatch(f"{model} vectors are {self._dims[name]}-d in {name}, this one is {dim}-d")
        return name

    def _load(self, name: str) -> None:
        self._milvus.load_collection(name)
        self._dims[name] = self._collection_dim(name)

    def _create_collection(self, name: str, model: str, dim: int) -> None:
        schema = MilvusClient.create_schema(auto_id=False, description=f"face vectors of {model}")
        schema.add_field("sighting_id", DataType.VARCHAR, is_primary=True, max_length=36)
        schema.add_field("person_id", DataType.VARCHAR, max_length=36)
        schema.add_field("tenant_id", DataType.VARCHAR, max_length=64, is_partition_key=True)
        schema.add_field("kind", DataType.VARCHAR, max_length=16)
        schema.add_field("captured_at_ms", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = MilvusClient.prepare_index_params()
        index.add_index(field_name="vector", index_type="FLAT", metric_type="COSINE")
        self._milvus.create_collection(name, schema=schema, consistency_level=CONSISTENCY)
        # sync=False: waiting for the build asks the server for a timestamp, which Milvus Lite does not implement
        # (it logged a NotImplementedError traceback); a FLAT index has nothing to build
        self._milvus.create_index(name, index, sync=False)

    def _collection_dim(self, name: str) -> int:
        description = self._milvus.describe_collection(name)
        for field in description["fields"]:
            if field["name"] == "vector":
                return int(field["params"]["dim"])
        raise RuntimeError(f"collection {name} has no vector field")

    def _tenant_vectors(self, name: str, tenant_id: str) -> tuple[list[StoredVector], Vectors]:
        """One query for the whole tenant: Milvus Lite walks its rows once per query (in Python), so the query
        iterator, which re-filters per page, took 142 s for 100,000 rows where one query takes about 12 s. A
        server that refuses so large an answer is read page by page instead. `strict_float32` has pymilvus hand
        each row's vector as a slice of one float32 array: decoding rows into lists of Python floats took as long
        as the query itself (7 s of 12 s for 50,000 rows)."""
        fields = [*ROW_FIELDS, "vector"]
        try:
            found = self._milvus.query(
                name,
                filter=tenant_filter(tenant_id),
                output_fields=fields,
                consistency_level=CONSISTENCY,
                strict_float32=True,
            )
        except MilvusException as error:
            log.info("tenant_query_paged", collection=name, reason=str(error))
            found = list(self._iterate_raw(name, tenant_id, fields))
        rows = [_stored_vector({**row, "vector": []}) for row in found]
        vectors: Vectors = np.asarray([row["vector"] for row in found], dtype=np.float32)
        return rows, vectors

    def _get(self, name: str, tenant_id: str, ids: list[str]) -> list[StoredVector]:
        found: list[StoredVector] = []
        for start in range(0, len(ids), GET_BATCH):
            rows = self._milvus.get(name, ids=ids[start : start + GET_BATCH], output_fields=[*ROW_FIELDS, "vector"])
            found += [_stored_vector(row) for row in rows if row["tenant_id"] == tenant_id]
        return found

    def _query_collection(self, name: str, tenant_id: str, condition: str, with_vectors: bool) -> list[StoredVector]:
        rows = self._milvus.query(
            name,
            filter=f"{tenant_filter(tenant_id)} and {condition}",
            output_fields=ROW_FIELDS + (["vector"] if with_vectors else []),
            consistency_level=CONSISTENCY,
        )
        return [_stored_vector(row) for row in rows]

    def _collections(self) -> list[str]:
        """The collections of this prefix (one per embedding model), loaded."""
        names = [name for name in self._milvus.list_collections() if name.startswith(f"{self._prefix}_")]
        for name in names:
            if name not in self._dims:
                self._load(name)
        return names

    def _query_all_collections(self, tenant_id: str, condition: str, with_vectors: bool) -> list[CollectionRows]:
        return [
            CollectionRows(name, self._query_collection(name, tenant_id, condition, with_vectors))
            for name in self._collections()
        ]

    def _iterate_all_collections(self, tenant_id: str, with_vectors: bool) -> list[CollectionRows]:
        return [
            CollectionRows(name, list(self._iterate(name, tenant_id, with_vectors))) for name in self._collections()
        ]

    def _iterate(self, name: str, tenant_id: str, with_vectors: bool) -> Iterator[StoredVector]:
        fields = ROW_FIELDS + (["vector"] if with_vectors else [])
        yield from (_stored_vector(row) for row in self._iterate_raw(name, tenant_id, fields))

    def _iterate_raw(self, name: str, tenant_id: str, fields: list[str]) -> Iterator[dict[str, Any]]:
        iterator = self._milvus.query_iterator(
            name,
            batch_size=ITERATOR_BATCH,
            filter=tenant_filter(tenant_id),
            output_fields=fields,
            consistency_level=CONSISTENCY,
        )
        try:
            while page := iterator.next():
                yield from page
        finally:
            iterator.close()

    def _upsert(self, name: str, rows: Sequence[StoredVector]) -> None:
        self._milvus.upsert(name, data=[_row_data(row) for row in rows])

    def _delete(self, name: str, ids: list[str]) -> None:
        for start in range(0, len(ids), DELETE_BATCH):  # bounded requests: retention may delete many at once
            self._milvus.delete(name, ids=ids[start : start + DELETE_BATCH])

    def _search(self, model: str, dim: int, tenant_id: str, vectors: list[list[float]]) -> list[list[Candidate]]:
        results = self._milvus.search(
            self._collection(model, dim),
            data=vectors,
            limit=SEARCH_LIMIT,
            filter=tenant_filter(tenant_id),
            output_fields=["person_id", "kind"],
            search_params={"metric_type": "COSINE"},
            consistency_level=CONSISTENCY,
        )
        return [_best_per_person(hits) for hits in results]

    def _insert(self, name: str, rows: Sequence[StoredVector]) -> None:
        self._milvus.insert(name, data=[_row_data(row) for row in rows])


def _best_per_person(hits: Sequence[dict[str, Any]]) -> list[Candidate]:
    best: dict[uuid.UUID, Candidate] = {}
    for hit in hits:
        person = uuid.UUID(hit["entity"]["person_id"])
        similarity = float(hit["distance"])
        if person not in best or similarity > best[person].similarity:
            best[person] = Candidate(person, similarity, PersonKind(hit["entity"]["kind"]))
    return sorted(best.values(), key=lambda candidate: candidate.similarity, reverse=True)


def _stored_vector(row: dict[str, Any]) -> StoredVector:
    return StoredVector(
        uuid.UUID(row["sighting_id"]),
        uuid.UUID(row["person_id"]),
        row["tenant_id"],
        PersonKind(row["kind"]),
        int(row["captured_at_ms"]),
        [float(x) for x in row["vector"]] if "vector" in row else [],
    )


def _row_data(row: StoredVector) -> dict[str, Any]:
    return {
        "sighting_id": str(row.sighting_id),
        "person_id": str(row.person_id),
        "tenant_id": row.tenant_id,
        "kind": row.kind.value,
        "captured_at_ms": row.captured_at_ms,
        "vector": row.vector,
    }


def relabelled(
    located: Sequence[CollectionRows], person_id: uuid.UUID, kind: PersonKind | None
) -> list[CollectionRows]:
    """The same rows owned by `person_id` (with `kind` if given, else each row's own)."""
    return [
        CollectionRows(part.collection, [replace(row, person_id=person_id, kind=kind or row.kind) for row in part.rows])
        for part in located
    ]
