"""The pgvector backend against a real PostgreSQL 16 + pgvector, started and stopped here
(the ``pgserver`` wheel bundles both and runs without root): the same answers as FAISS."""

from __future__ import annotations

import pytest
from api_client import client, started_engine

from logosim.service.config import ServiceSettings

pgserver = pytest.importorskip("pgserver")
pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def both(api_store, postgres):
    root, rows = api_store
    limits = {"rate_per_minute": 60_000, "rate_burst": 1000}
    faiss = ServiceSettings(store=root, **limits)
    pg = ServiceSettings(store=root, backend="pgvector", dsn=postgres, **limits)
    with client(faiss, started_engine(faiss)) as a, client(pg, started_engine(pg)) as b:
        yield a, b, rows


def ask(c, image: bytes, **form) -> list[dict]:
    r = c.post("/v1/search", files={"image": ("q.jpg", image, "image/jpeg")}, data=form)
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_pgvector_answers_like_faiss(both):
    a, b, rows = both
    ready = b.get("/readyz").json()
    assert ready["backend"] == "pgvector-hnsw" and ready["index_size"] == len(rows)
    assert ready["index_version"] == a.get("/readyz").json()["index_version"]
    for i in (0, 13, 57, 99):
        fa, pg = ask(a, rows[i]["image"], k="10"), ask(b, rows[i]["image"], k="10")
        assert pg[0]["id"] == fa[0]["id"] == rows[i]["id"]
        assert pg[0]["score"] == pytest.approx(fa[0]["score"], abs=1e-4)  # α-QE from the table
        assert len({h["id"] for h in fa} & {h["id"] for h in pg}) >= 9


def test_pgvector_filters_return_every_matching_row(both):
    a, b, rows = both
    for form in ({"vienna": "26.04"}, {"year_min": "2000", "year_max": "2004"}):
        fa = ask(a, rows[2]["image"], k="100", **form)
        pg = ask(b, rows[2]["image"], k="100", **form)
        assert [h["id"] for h in pg] == [h["id"] for h in fa]  # exact over the filtered rows


def test_pgvector_rerank_and_text(both):
    _, b, rows = both
    hits = ask(b, rows[8]["image"], k="5", rerank="true", text=rows[8]["name"])
    assert hits[0]["id"] == rows[8]["id"]
    assert hits[0]["components"]["text"] == 1.0 and hits[0]["components"]["colour"] > 0.99
