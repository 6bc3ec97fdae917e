"""The optional PostgreSQL + pgvector backend: the same answers, vectors kept in Postgres.

``--backend pgvector --dsn ...`` copies the published index's stored vectors (α-DBA already
applied) and the filterable metadata into ``logosim_marks_<version>`` (one table per index
version, so a reload loads the new table beside the old and switches), with an HNSW index
using ``vector_ip_ops`` (vectors are unit length: inner product = cosine). The query path
is unchanged up to the ANN step; α-query expansion reads its neighbours from the table.

pgvector facts that shape this: ``hnsw.ef_search`` is capped at 1,000 (set per query with
SET LOCAL); before 0.8 a filtered HNSW scan can return fewer rows than its LIMIT, so
filtered queries here scan the filtered rows exactly (correct, slower on huge registers).
``vector(d)`` rather than ``halfvec``: pgserver bundles pgvector 0.6 (halfvec came in 0.7).
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

import numpy as np
from loguru import logger

from logosim.index.dba import neighbour_augment
from logosim.index.logo_index import LogoIndex

if TYPE_CHECKING:
    from logosim.service.catalog import Catalog
    from logosim.service.engine import SearchOptions

EF_SEARCH_CAP = 1000  # pgvector's limit


def _literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def _parse(text: str) -> np.ndarray:
    return np.array(text.strip("[]").split(","), dtype=np.float32)


class PgVectors:
    """Stored vectors in one PostgreSQL table per index version."""

    def __init__(self, dsn: str, table: str, rows: int, dim: int, ef_search: int) -> None:
        self.dsn, self.table, self.rows, self.dim = dsn, table, rows, dim
        self.default_ef = min(ef_search, EF_SEARCH_CAP)
        self.kind = "pgvector-hnsw"
        self._local = threading.local()
        self.dba: dict | None = None

    def __len__(self) -> int:
        return self.rows

    def _conn(self):
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.dsn)
            self._local.conn = conn
        return conn

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def sync(cls, dsn: str, version: str, index: LogoIndex, catalog: Catalog) -> PgVectors:
        """The table of this index version, copied from the FAISS index when missing."""
        import psycopg

        table = f"logosim_marks_{version}"
        dim = index.index.d
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS logosim_versions "
                "(name text PRIMARY KEY, rows integer, loaded timestamptz DEFAULT now())"
            )
            done = conn.execute(
                "SELECT rows FROM logosim_versions WHERE name = %s", (table,)
            ).fetchone()
            if done is None:
                rows = cls._copy(conn, table, dim, index, catalog)
                conn.execute(
                    "INSERT INTO logosim_versions (name, rows) VALUES (%s, %s)", (table, rows)
                )
            else:
                rows = done[0]
        store = cls(dsn, table, rows, dim, index.params.ef_search)
        store.dba = index.dba
        return store

    @staticmethod
    def _copy(conn, table: str, dim: int, index: LogoIndex, catalog: Catalog) -> int:
        logger.info(f"pgvector: copying {len(index)} vectors into {table}")
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            f"CREATE TABLE {table} (id text PRIMARY KEY, embedding vector({dim}) NOT NULL, "
            "vienna text[] NOT NULL DEFAULT '{}', year integer)"
        )
        rows = 0
        with conn.cursor().copy(f"COPY {table} (id, embedding, vienna, year) FROM STDIN") as copy:
            for ids, vectors in index.live_vectors():
                for mark, vector in zip(ids, vectors, strict=True):
                    meta = catalog.metadata(mark) or {}
                    copy.write_row(
                        (mark, _literal(vector), meta.get("vienna_codes") or [], meta.get("year"))
                    )
                    rows += 1
        m = max(4, min(index.params.m, 48))
        conn.execute(
            f"CREATE INDEX ON {table} USING hnsw (embedding vector_ip_ops) "
            f"WITH (m = {m}, ef_construction = {max(2 * m, min(index.params.ef_construction, 200))})"
        )
        conn.execute(f"ANALYZE {table}")
        return rows

    # -- searching ---------------------------------------------------------------------------
    def _nearest(
        self,
        vector: np.ndarray,
        k: int,
        ef: int,
        where: str = "",
        params: tuple = (),
        with_vectors: bool = False,
    ) -> list[tuple[str, float, str | None]]:
        conn = self._conn()
        with conn.transaction():
            conn.execute(f"SET LOCAL hnsw.ef_search = {int(min(max(ef, k), EF_SEARCH_CAP))}")
            if where:
                conn.execute("SET LOCAL enable_indexscan = off")  # exact over the filtered rows
            q = _literal(vector)
            return conn.execute(
                f"SELECT id, -(embedding <#> %s::vector) AS score, "
                f"{'embedding::text' if with_vectors else 'NULL'} FROM {self.table} "
                f"{where} ORDER BY embedding <#> %s::vector LIMIT %s",
                (q, *params, q, k),
            ).fetchall()

    def expand(self, vectors: np.ndarray, ef_search: int | None) -> np.ndarray:
        """α-query expansion with the index's DBA settings, neighbours read from the table."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not self.dba:
            return vectors
        n, ef = self.dba["neighbours"], ef_search or self.default_ef
        scores = np.zeros((len(vectors), n), dtype=np.float32)
        neighbours = np.zeros((len(vectors), n, self.dim), dtype=np.float32)
        for i, vector in enumerate(vectors):
            for j, (_, score, text) in enumerate(self._nearest(vector, n, ef, with_vectors=True)):
                scores[i, j], neighbours[i, j] = score, _parse(text)
        return neighbour_augment(vectors, scores, neighbours, self.dba["alpha"])

    def search(
        self, vectors: np.ndarray, k: int, options: SearchOptions
    ) -> list[list[tuple[str, float]]]:
        clauses, params = [], []
        if options.vienna_prefix:
            if not re.fullmatch(r"[0-9.]+", options.vienna_prefix):
                raise ValueError("a Vienna prefix is digits and dots")
            clauses.append("EXISTS (SELECT 1 FROM unnest(vienna) v WHERE starts_with(v, %s))")
            params.append(options.vienna_prefix)
        if options.year_min is not None:
            clauses.append("year >= %s")
            params.append(options.year_min)
        if options.year_max is not None:
            clauses.append("year <= %s")
            params.append(options.year_max)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        ef = options.ef_search or self.default_ef
        return [
            [
                (mark, float(score))
                for mark, score, _ in self._nearest(v, k, ef, where, tuple(params))
            ]
            for v in vectors
        ]
