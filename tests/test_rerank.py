"""Stage 2 (issue 12): local descriptors at embed time, the composite re-ranker, phonetic text."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import write_rows_chunk

from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec
from logosim.demo import DEMO_PARQUET
from logosim.embed.local_features import Layout, describe_maps, load_projection, region_masks
from logosim.embed.pca import PCAParams, fit_and_save_pca
from logosim.index.build import build_index
from logosim.index.params import IndexParams
from logosim.search.composite import CompositeParams, composite, spatial_scores
from logosim.search.searcher import Searcher, SearchParams


def test_regions_are_one_four_nine():
    masks = region_masks(7, 7)
    assert masks.shape == (14, 49)
    assert np.allclose(masks.sum(axis=1), 1.0)
    assert (masks[0] > 0).all()  # the whole map first


def test_absent_terms_are_renormalised_not_zero():
    params = CompositeParams(weight_global=0.5, weight_spatial=0.35, weight_text=0.1)
    g = np.array([0.8, 0.8, 0.5], dtype=np.float32)
    spatial = np.array([np.nan, 0.2, 0.9], dtype=np.float32)  # candidate 0 has no local data
    scored = composite(g, params, spatial=spatial, text=np.full(3, np.nan, np.float32))
    by_pos = dict(zip(scored.order.tolist(), scored.score.tolist(), strict=True))
    assert by_pos[0] == pytest.approx(0.8)  # global alone, renormalised
    assert by_pos[1] == pytest.approx((0.5 * 0.8 + 0.35 * 0.2) / 0.85, abs=1e-6)
    assert np.isnan(scored.terms["text"]).all() and np.isnan(scored.terms["colour"]).all()


def test_best_query_variant_wins_per_candidate():
    params = CompositeParams(weight_spatial=0.0, weight_colour=0.0, weight_text=0.0)
    g = np.array([[0.2, 0.9], [0.95, 0.1]], dtype=np.float32)  # variant 1 fits candidate 0
    scored = composite(g, params)
    assert scored.order.tolist() == [0, 1]
    assert scored.variant.tolist() == [1, 0]


@pytest.fixture(scope="module")
def demo24(tmp_path_factory):
    from logosim.embed.embedder import Embedder
    from logosim.embed.params import EmbedParams

    root = tmp_path_factory.mktemp("rerank")
    table = pq.read_table(DEMO_PARQUET).slice(0, 24)
    source_file = root / "demo24.parquet"
    pq.write_table(table, source_file)
    params = EmbedParams(runtime="eager")
    rows = table.to_pylist()
    embedder = Embedder(params)
    features, blocks = embedder.embed_images_local([decode_image(r["image"]) for r in rows])
    return root, source_file, params, rows, features, blocks


def test_local_blocks_from_the_embedder(demo24):
    *_, features, blocks = demo24
    layout = Layout()
    assert blocks.shape == (24, layout.slots, 64) and blocks.dtype == np.float16
    assert features.shape == (24, 1280)
    patches = blocks[:, layout.patch_slice].astype(np.float32)
    assert np.allclose(np.linalg.norm(patches, axis=2), 1.0, atol=1e-2)
    same = spatial_scores(blocks[:1], blocks[:2], layout, "patches")[0]
    assert same[0] == pytest.approx(1.0, abs=1e-2) and same[1] < same[0]


def test_describe_maps_matches_projection():
    projection = load_projection("random-test", 32)
    maps = np.random.default_rng(0).random((3, 32, 7, 7), dtype=np.float32)
    pixels = np.full((3, 224, 224, 3), 255, np.uint8)
    pixels[:, 50:100, 50:100] = (200, 10, 10)
    blocks = describe_maps(maps, pixels, projection)
    layout = Layout()
    ink = blocks[0, layout.ink, :49].astype(np.float32).reshape(7, 7)
    assert ink[0, 0] == 0 and ink[2, 2] > 0.5


def build(
    demo24, name: str, *, local: bool = True, corrupt: bool = False, source=None
) -> ArtifactStore:
    root, source_file, params, rows, features, blocks = demo24
    source_file = source or source_file
    store = ArtifactStore(root / name)
    chunk = write_rows_chunk(store, rows, features)
    if local:
        from logosim.embed.local_features import LOCAL_VERSION

        def save(tmp):
            with open(tmp, "wb") as fh:
                np.save(fh, blocks)

        store.write_with(
            "local/test.npy", save, kind="local", rows=24, versions={"local": LOCAL_VERSION},
            meta={"layout": Layout().describe()},
        )  # fmt: skip
        if corrupt:
            path = store.path("local/test.npy")
            path.write_bytes(path.read_bytes()[:-100])
    pca = fit_and_save_pca(store, [chunk], PCAParams(dims=16), None)
    meta = {
        "embed": params.model_dump(mode="json"),
        "source": SourceSpec(path=str(source_file)).model_dump(mode="json"),
    }
    build_index(store, [chunk], pca, IndexParams(), meta=meta)
    return store


@pytest.mark.parametrize("variants", [[], ["flip", "rot90"]])
def test_composite_search_finds_itself_with_its_terms(demo24, variants):
    store = build(demo24, f"ok{len(variants)}")
    rows = demo24[3]
    params = SearchParams(k=5, composite=CompositeParams(enabled=True, variants=variants))
    hits = Searcher(store).search_images([decode_image(rows[5]["image"])], params)[0]
    assert hits[0].id == rows[5]["id"]
    assert hits[0].terms["spatial"] == pytest.approx(1.0, abs=0.02)
    assert hits[0].terms["colour"] is not None and hits[0].terms["text"] is None
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


@pytest.mark.parametrize("case", ["missing", "corrupt"])
def test_candidates_without_local_descriptors_keep_their_other_terms(demo24, case):
    store = (
        build(demo24, case, local=False, corrupt=False)
        if case == "missing"
        else build(demo24, case, corrupt=True)
    )
    rows = demo24[3]
    params = SearchParams(k=24, composite=CompositeParams(enabled=True))
    hits = Searcher(store).search_images([decode_image(rows[2]["image"])], params)[0]
    assert len(hits) == 24 and hits[0].id == rows[2]["id"]
    assert all(h.terms["spatial"] is None and h.terms["global"] is not None for h in hits)


# -- text --------------------------------------------------------------------------------------
def _nltk_aline(a, b) -> float:
    from nltk.metrics import aline

    m, n = len(a), len(b)
    s = np.zeros((m + 1, n + 1))
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            edits = [
                s[i - 1, j] + aline.sigma_skip(a[i - 1]),
                s[i, j - 1] + aline.sigma_skip(b[j - 1]),
                s[i - 1, j - 1] + aline.sigma_sub(a[i - 1], b[j - 1]),
            ]
            if i > 1:
                edits.append(s[i - 2, j - 1] + aline.sigma_exp(b[j - 1], a[i - 2 : i]))
            if j > 1:
                edits.append(s[i - 1, j - 2] + aline.sigma_exp(a[i - 1], b[j - 2 : j]))
            s[i, j] = max([*edits, 0])
    return float(s.max())


def test_vectorised_aline_equals_the_reference():
    pytest.importorskip("nltk")
    from logosim.search.phonetic import _tables, aline_scores

    code = _tables()[0]
    segments = list(code)
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = list(rng.choice(segments, rng.integers(1, 8)))
        cands = [list(rng.choice(segments, rng.integers(1, 8))) for _ in range(5)]
        width = max(map(len, cands))
        padded = np.zeros((5, width), np.int16)
        for row, c in enumerate(cands):
            padded[row, : len(c)] = [code[x] for x in c]
        got = aline_scores(np.array([code[x] for x in a]), padded, np.array(list(map(len, cands))))
        want = [_nltk_aline(a, c) for c in cands]
        assert np.allclose(got, want, atol=1e-3)


def test_normalize_text():
    from logosim.search.phonetic import normalize_text

    assert normalize_text("ＫＷＩＫ-FIT™ Ltd.") == "kwik fit"
    assert normalize_text("Siemens AG") == "siemens"
    assert normalize_text("®") == "" and normalize_text(None) == ""


@pytest.mark.parametrize("espeak", [True, False])
def test_sound_alike_names_score_higher_and_no_text_is_absent(espeak, monkeypatch):
    pytest.importorskip("nltk")
    from logosim.search import phonetic

    phonemizer = phonetic.Phonemizer()
    if not espeak:
        phonemizer.backend = None
    elif phonemizer.backend is None:
        pytest.skip("espeak-ng is not installed")
    table = phonetic.TextTable(["Quick Fit", "Microsoft", "", "Kwik-Fit GmbH"], phonemizer)
    assert table.method == ("aline-ipa" if espeak else "metaphone")
    scores = table.scores(table.query("KWIK FIT"), np.arange(4))
    assert scores[3] == pytest.approx(1.0) and scores[0] > 0.6 and scores[1] < 0.3
    assert np.isnan(scores[2])
    assert table.query("™ ®") is None
    assert np.isnan(table.scores(None, np.arange(4))).all()


def test_a_store_embedded_without_local_descriptors_gets_them_per_chunk(demo24, tmp_path):
    from flows.embed import embed_jobs
    from logosim.embed.params import EmbedParams
    from logosim.embed.runner import embed_chunk, ensure_local
    from logosim.embed.writer import local_path

    _, source_file, *_ = demo24
    store = ArtifactStore(tmp_path / "old")
    params = EmbedParams(runtime="eager", local=False)  # as before issue 12
    (job,) = embed_jobs(SourceSpec(path=str(source_file)), str(store.root), params, 100)
    embeddings = embed_chunk(job)
    assert store.read_manifest(local_path(job)) is None
    added = ensure_local(job)
    assert added is not None and added.rows == embeddings.rows == 24
    assert added.meta["embeddings"] == embeddings.sha256
    assert ensure_local(job) == added  # cached: the network does not run again
    assert store.read_manifest("embeddings/" + job.cache_key + ".npz") == embeddings


def test_crops_variant_finds_a_mark_beside_a_banner(demo24):
    from PIL import Image, ImageDraw

    from logosim.search.stage2 import query_variants

    store = build(demo24, "crops")
    rows = demo24[3]
    mark = decode_image(rows[7]["image"]).convert("RGB").resize((224, 224))
    wide = Image.new("RGB", (448, 224), "white")
    wide.paste(mark, (0, 0))
    ImageDraw.Draw(wide).rectangle((260, 90, 430, 130), fill="black")  # the banner's "word"
    assert len(query_variants(wide, ["crops"])) == 3
    assert len(query_variants(mark, ["crops"])) == 1  # a square query gets no crops
    params = SearchParams(k=3, composite=CompositeParams(enabled=True, variants=["crops"]))
    hits = Searcher(store).search_images([wide], params)[0]
    assert hits[0].id == rows[7]["id"]


def test_ocr_words_are_the_text_term_where_the_source_has_none(demo24):
    """The demo source has no text column values: the words OCR read (as the preprocess
    stage stores them) become the marks' word elements; file names never do."""
    from flows.commands.search import _mark_texts
    from logosim.preprocess.ocr_words import write_words

    root, source_file, *_ = demo24
    wordless = root / "wordless.parquet"  # the demo without its text column
    pq.write_table(pq.read_table(source_file).drop(["text"]), wordless)
    store = build(demo24, "ocr", source=wordless)
    rows = demo24[3]
    searcher = Searcher(store)
    assert _mark_texts(searcher) == {}  # no metadata text, no OCR words: no text at all
    write_words(searcher.store, "masks/chunk.npz", [r["id"] for r in rows[:3]],
                ["KWIK FIT", "", "ACME"])  # fmt: skip
    searcher.mark_texts = _mark_texts(searcher)
    assert searcher.mark_texts == {rows[0]["id"]: "KWIK FIT", rows[2]["id"]: "ACME"}
    params = SearchParams(k=24, composite=CompositeParams(enabled=True, variants=[]))
    hits = searcher.search_images([decode_image(rows[0]["image"])], params, ["Quick Fit"])[0]
    terms = {h.id: h.terms["text"] for h in hits}
    assert hits[0].id == rows[0]["id"] and terms[rows[0]["id"]] > 0.5
    assert terms[rows[1]["id"]] is None and terms[rows[2]["id"]] < terms[rows[0]["id"]]


def test_cli_is_off_by_default_and_the_copies_profile_re_ranks(demo24, tmp_path):
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    store = build(demo24, "cli")
    rows = demo24[3]
    query = tmp_path / "q.png"
    decode_image(rows[4]["image"]).save(query)
    base = ["search", "--store", str(store.root), str(query), "-k", "3", "--json"]
    plain = CliRunner().invoke(app, base)
    assert plain.exit_code == 0, plain.output
    hits = json.loads(plain.stdout.splitlines()[-1])["hits"]
    assert hits[0]["id"] == rows[4]["id"] and hits[0]["terms"] is None  # no stage 2
    copies = CliRunner().invoke(app, [*base, "--profile", "copies"])
    assert copies.exit_code == 0, copies.output
    hits = json.loads(copies.stdout.splitlines()[-1])["hits"]
    assert hits[0]["id"] == rows[4]["id"]
    assert hits[0]["terms"]["spatial"] is not None and hits[0]["terms"]["colour"] is not None
    bad = CliRunner().invoke(app, [*base, "--profile", "brands"])
    assert bad.exit_code == 2 and "copies" in bad.output
