"""The search API over a small served store: answers, filters, batch, marks, and every bad
input of the issue answered with its 4xx and a JSON reason while the service keeps serving."""

from __future__ import annotations

import io
import json

import pytest
from api_client import client, png, started_engine
from PIL import Image

from logosim.service.config import ServiceSettings


@pytest.fixture(scope="module")
def served(api_store):
    root, rows = api_store
    settings = ServiceSettings(store=root, rate_per_minute=60_000, rate_burst=1000)
    engine = started_engine(settings)
    with client(settings, engine) as c:
        yield c, rows


def search(c, data: bytes, ctype="image/jpeg", **form):
    return c.post("/v1/search", files={"image": ("q.jpg", data, ctype)}, data=form)


def test_health_and_readiness(served):
    c, rows = served
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz").json()
    assert ready["ready"] and ready["index_size"] == len(rows) and len(ready["index_version"]) == 12
    assert ready["backend"] == "faiss-exact" and ready["runtime"] == "openvino"
    assert ready["api_keys"] is False and ready["ready_after_s"] < 5


def test_a_mark_finds_itself_first_with_metadata_and_thumbnail(served):
    c, rows = served
    r = search(c, rows[5]["image"], k="4")
    assert r.status_code == 200, r.text
    body = r.json()
    hits = body["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4]
    top = hits[0]
    assert top["id"] == rows[5]["id"] and top["score"] > 0.9
    assert top["components"] == {
        "global": top["score"], "spatial": None, "text": None, "colour": None
    }  # fmt: skip
    assert body["rerank"]["on"] is False and body["rerank"]["terms_used"] == ["global"]
    assert top["metadata"]["vienna_codes"] == rows[5]["vienna_codes"]
    assert top["metadata"]["year"] == rows[5]["year"] and body["took_ms"] > 0
    thumb = c.get(top["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 160
    large = c.get(top["thumbnail_url"], params={"size": 400})
    assert max(Image.open(io.BytesIO(large.content)).size) > 160
    bad = c.get(top["thumbnail_url"], params={"size": 5000})
    assert (bad.status_code, bad.json()["reason"]) == (422, "invalid_field")
    mark = c.get(f"/v1/marks/{rows[5]['id']}").json()
    assert (
        mark["metadata"]["text"] == rows[5]["name"]
        and mark["index_version"] == body["index_version"]
    )


def test_word_element_turns_stage_2_on_with_its_terms(served):
    c, rows = served
    body = search(c, rows[7]["image"], text=rows[7]["name"].upper(), k="5").json()
    hits, rerank = body["results"], body["rerank"]
    assert rerank["on"] and hits[0]["id"] == rows[7]["id"]
    assert hits[0]["components"]["text"] == 1.0  # phonetic, case and all
    assert set(rerank["terms_used"]) == {"global", "text", "colour"}
    # the default exported graph has no feature-map output: spatial absent, not zero
    assert all(h["components"]["spatial"] is None for h in hits)
    assert "feature-map output" in rerank["absent"]["spatial"]
    w = rerank["weights"]
    for h in hits:  # the score is the composite of the terms present, renormalised
        parts = {t: v for t, v in h["components"].items() if v is not None}
        expected = sum(w[t] * v for t, v in parts.items()) / sum(w[t] for t in parts)
        assert h["score"] == pytest.approx(expected, abs=1e-5)
    off = search(c, rows[7]["image"], text=rows[7]["name"], rerank="false", k="5").json()
    assert off["rerank"]["on"] is False and off["results"][0]["components"]["text"] is None


def test_weights_per_request_and_bad_weights(served):
    c, rows = served
    colour_only = search(
        c, rows[3]["image"], rerank="true", weight_global="0", weight_spatial="0", k="5"
    ).json()
    assert colour_only["rerank"]["terms_used"] == ["colour"]
    scores = [h["score"] for h in colour_only["results"]]
    assert scores == [h["components"]["colour"] for h in colour_only["results"]]
    assert colour_only["rerank"]["absent"]["global"] == "weight 0"
    zero = {f"weight_{t}": "0" for t in ("global", "spatial", "text", "colour")}
    for form, reason in [
        (zero, "invalid_weights"),
        ({"weight_spatial": "-1"}, "invalid_field"),
        ({"weight_colour": "nan"}, "invalid_field"),
        ({"weight_text": "1e9"}, "invalid_field"),
        ({"weight_global": "heavy"}, "invalid_field"),
        ({"weight_spatial": "inf"}, "invalid_field"),
        ({"text": "KWIK FIT " * 100}, "invalid_field"),
    ]:
        bad = search(c, rows[3]["image"], **{"rerank": "true", **form})
        assert (bad.status_code, bad.json()["reason"]) == (422, reason), (form, bad.text)
    bad = search(c, rows[3]["image"], rerank="maybe")
    assert (bad.status_code, bad.json()["reason"]) == (422, "invalid_field")


def test_a_graph_with_a_local_output_adds_the_spatial_term(api_store):
    """An exported graph that also outputs the local head (the query's patches and regions):
    every stored candidate then has a spatial term, and a mark's own is ~1."""
    root, rows = api_store
    settings = ServiceSettings(
        store=root, model=root.parent / "export-local.onnx", rate_per_minute=60_000
    )
    engine = started_engine(settings)
    assert engine.status()["query_local"] == "head" and engine.status()["local_descriptors"] == 120
    with client(settings, engine) as c:
        body = search(c, rows[11]["image"], rerank="true", k="10").json()
    hits = body["results"]
    assert set(body["rerank"]["terms_used"]) == {"global", "spatial", "colour"}
    assert hits[0]["id"] == rows[11]["id"]
    assert hits[0]["components"]["spatial"] == pytest.approx(1.0, abs=0.01)
    assert all(h["components"]["spatial"] < 0.999 for h in hits[1:])


def test_filters_vienna_prefix_and_year_range(served):
    c, rows = served
    hits = search(c, rows[0]["image"], vienna="26.04", k="50").json()["results"]
    expected = sum(any(v.startswith("26.04") for v in r["vienna_codes"]) for r in rows)
    assert len(hits) == expected
    assert all(any(v.startswith("26.04") for v in h["metadata"]["vienna_codes"]) for h in hits)
    hits = search(c, rows[0]["image"], year_min="2000", year_max="2004", k="100").json()["results"]
    assert hits and all(2000 <= h["metadata"]["year"] <= 2004 for h in hits)
    assert len(hits) == sum(2000 <= r["year"] <= 2004 for r in rows)
    assert search(c, rows[0]["image"], vienna="99.99").json()["results"] == []
    bad = search(c, rows[0]["image"], year_min="2010", year_max="2000")
    assert bad.status_code == 422 and bad.json()["reason"] == "invalid_year_range"
    bad = search(c, rows[0]["image"], vienna="26;drop")
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "vienna"


def test_batch(served):
    c, rows = served
    files = [("images", (f"{i}.jpg", rows[i]["image"], "image/jpeg")) for i in (1, 2, 3)]
    texts = json.dumps([None, rows[2]["name"], None])
    r = c.post("/v1/search/batch", files=files, data={"k": "3", "texts": texts})
    assert r.status_code == 200, r.text
    queries = r.json()["queries"]
    assert [q["results"][0]["id"] for q in queries] == [rows[i]["id"] for i in (1, 2, 3)]
    assert queries[1]["results"][0]["components"]["text"] == 1.0
    assert queries[0]["results"][0]["components"]["text"] is None
    assert queries[1]["rerank"]["absent"] == {"spatial": queries[1]["rerank"]["absent"]["spatial"]}
    assert "word element" in queries[0]["rerank"]["absent"]["text"]
    bad = c.post("/v1/search/batch", files=files, data={"texts": "[not json"})
    assert (bad.status_code, bad.json()["reason"]) == (422, "malformed_json")
    bad = c.post("/v1/search/batch", files=files, data={"texts": '["only one"]'})
    assert (bad.status_code, bad.json()["reason"]) == (422, "invalid_field")
    many = [("images", (f"{i}.jpg", rows[0]["image"], "image/jpeg")) for i in range(17)]
    bad = c.post("/v1/search/batch", files=many)
    assert (bad.status_code, bad.json()["reason"]) == (413, "too_many_images")


def bomb() -> bytes:
    """A 6000×6000 bilevel PNG: a few KB on the wire, 36 M pixels decoded (cap: 25 M)."""
    out = io.BytesIO()
    Image.new("1", (6000, 6000)).save(out, "PNG")
    return out.getvalue()


BAD_INPUTS = {
    # name: (request kwargs, status, reason)
    "empty upload": (dict(files={"image": ("e.png", b"", "image/png")}), 400, "empty"),
    "not an image": (
        dict(files={"image": ("x.png", b"hello, not pixels", "image/png")}),
        400,
        "not_an_image",
    ),
    "text file": (
        dict(files={"image": ("x.txt", b"hello", "text/plain")}),
        415,
        "unsupported_media_type",
    ),
    "truncated": (None, 400, "truncated"),
    "decompression bomb": (
        dict(files={"image": ("b.png", bomb(), "image/png")}),
        413,
        "decompression_bomb",
    ),
    "50 MB body": (
        dict(files={"image": ("big.png", b"\0" * (50 * 2**20), "image/png")}),
        413,
        "body_too_large",
    ),
    "k = 0": (None, 422, "invalid_field"),
    "k = 10000": (None, 422, "invalid_field"),
    "missing field": (
        dict(data={"k": "3"}, files={"other": ("a", b"1", "image/png")}),
        422,
        "missing_field",
    ),
    "malformed JSON body": (
        dict(content=b'{"image": ', headers={"content-type": "application/json"}),
        415,
        "unsupported_media_type",
    ),
    "malformed multipart": (
        dict(
            content=b"--xx\r\nbroken", headers={"content-type": "multipart/form-data; boundary=zz"}
        ),
        None,
        None,
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_gets_a_4xx_with_a_reason_and_the_service_keeps_serving(served, name):
    c, rows = served
    kwargs, status, reason = BAD_INPUTS[name]
    good = rows[4]["image"]
    if name == "truncated":
        kwargs = dict(
            files={"image": ("t.png", png(Image.open(io.BytesIO(good)))[:400], "image/png")}
        )
    elif name.startswith("k = "):
        kwargs = dict(files={"image": ("q.jpg", good, "image/jpeg")}, data={"k": name[4:]})
    r = c.post("/v1/search", **kwargs)
    assert 400 <= r.status_code < 500, r.text
    body = r.json()
    if status is not None:
        assert (r.status_code, body["reason"]) == (status, reason), body
    assert body["reason"] and "detail" in body
    if name.startswith("k = "):
        assert body["detail"][0]["field"] == "k"
    assert search(c, good, k="1").json()["results"][0]["id"] == rows[4]["id"]


def test_a_body_without_content_length_is_capped_while_streaming(api_store):
    root, rows = api_store
    settings = ServiceSettings(store=root, max_body_bytes=64 * 1024)
    engine = started_engine(settings)
    boundary = "b0undary"

    def chunks():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'.encode()
        yield b"Content-Type: image/png\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 4096
        yield f"\r\n--{boundary}--\r\n".encode()

    with client(settings, engine) as c:
        r = c.post(
            "/v1/search",
            content=chunks(),
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
        assert (r.status_code, r.json()["reason"]) == (413, "body_too_large")
        assert search(c, rows[0]["image"], k="1").status_code == 200


def test_unknown_mark_route_and_method(served):
    c, _ = served
    for url in ("/v1/marks/no/such/mark", "/v1/marks/no-such/image"):
        r = c.get(url)
        assert (r.status_code, r.json()["reason"]) == (404, "unknown_mark")
    assert c.get("/v2/nothing").json()["reason"] == "not_found"
    assert c.get("/v1/search").json()["reason"] == "method_not_allowed"


def test_openapi_schema_and_docs(served):
    c, _ = served
    schema = c.get("/openapi.json").json()
    assert {"/v1/search", "/v1/search/batch", "/v1/marks/{mark_id}", "/readyz"} <= set(
        schema["paths"]
    )
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]
    assert c.get("/docs").status_code == 200


def test_cors_is_off_by_default(served):
    c, _ = served
    r = c.get("/healthz", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in r.headers
    r = c.options(
        "/v1/search",
        headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers


def test_the_page_is_served(served):
    c, _ = served
    page = c.get("/")
    assert page.status_code == 200 and 'id="results"' in page.text
    assert c.get("/static/app.js").status_code == 200


def test_without_keys_only_loopback_clients_are_answered(api_store, served):
    root, _ = api_store
    c, _ = served
    settings = ServiceSettings(store=root)
    with client(settings, c.app.state.engine, address=("10.1.2.3", 4000)) as remote:
        r = remote.get("/readyz")
        assert (r.status_code, r.json()["reason"]) == (403, "local_only")


def test_api_keys_and_rate_limits_keyed_on_the_key(api_store, served):
    root, rows = api_store
    c, _ = served
    settings = ServiceSettings(store=root, keys="alpha, beta", rate_per_minute=1, rate_burst=2)
    image = {"image": ("q.jpg", rows[0]["image"], "image/jpeg")}
    # every client behind one proxy address: the limit still follows the key
    with client(settings, c.app.state.engine, address=("10.0.0.1", 1)) as proxy:
        assert proxy.get("/healthz").status_code == 200
        assert proxy.get("/readyz").json()["api_keys"] is True
        r = proxy.post("/v1/search", files=image)
        assert (r.status_code, r.json()["reason"]) == (401, "missing_api_key")
        r = proxy.post("/v1/search", files=image, headers={"X-API-Key": "gamma"})
        assert (r.status_code, r.json()["reason"]) == (401, "invalid_api_key")
        for _ in range(2):
            assert (
                proxy.post("/v1/search", files=image, headers={"X-API-Key": "alpha"}).status_code
                == 200
            )
        r = proxy.post("/v1/search", files=image, headers={"X-API-Key": "alpha"})
        assert (r.status_code, r.json()["reason"]) == (429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        r = proxy.post("/v1/search", files=image, headers={"X-API-Key": "beta"})
        assert r.status_code == 200
        assert (
            proxy.get(f"/v1/marks/{rows[0]['id']}", headers={"X-API-Key": "alpha"}).status_code
            == 200
        )


def test_keys_from_a_file(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# one per line\nfirst\n\nsecond\n")
    settings = ServiceSettings(store=tmp_path, keys="third", keys_file=keys)
    assert settings.api_keys() == {"first", "second", "third"}


def test_a_search_over_its_time_limit_answers_503_with_a_reason(api_store, served):
    root, rows = api_store
    c, _ = served
    settings = ServiceSettings(store=root, timeout_s=1e-6)
    with client(settings, c.app.state.engine) as slow:
        r = search(slow, rows[0]["image"])
        assert (r.status_code, r.json()["reason"]) == (503, "timeout")
    assert search(c, rows[0]["image"], k="1").status_code == 200
