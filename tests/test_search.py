"""Search with the real backbone over a small index of demo logos; CLI, sheet, re-rank."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import write_rows_chunk
from PIL import Image
from typer.testing import CliRunner

from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec
from logosim.demo import DEMO_PARQUET
from logosim.embed.pca import PCAParams, fit_and_save_pca
from logosim.index.add import remove_from_index
from logosim.index.build import build_index
from logosim.index.params import IndexParams
from logosim.search.rerank import RerankParams, rerank
from logosim.search.searcher import Searcher, SearchParams


@pytest.fixture(scope="module")
def demo24(tmp_path_factory):
    """24 demo logos and their features from the ImageNet backbone (the search mechanics
    under test are the model's business only through these fixed features: the logo-tuned
    default draws the Adobe icons so close that α-DBA merges them in a 16-d toy PCA)."""
    from logosim.embed.embedder import cached_embedder
    from logosim.embed.params import WHEEL_WEIGHTS, EmbedParams

    root = tmp_path_factory.mktemp("search")
    table = pq.read_table(DEMO_PARQUET).slice(0, 24)
    source_file = root / "demo24.parquet"
    pq.write_table(table, source_file)
    params = EmbedParams(runtime="eager", weights=WHEEL_WEIGHTS)
    rows = table.to_pylist()
    features = cached_embedder(params).embed_images([decode_image(r["image"]) for r in rows])
    return root, source_file, params, rows, features


def build_store(demo24, name: str, index: IndexParams) -> ArtifactStore:
    """The demo features → PCA 16 → an exact index with the given settings."""
    root, source_file, params, rows, features = demo24
    store = ArtifactStore(root / name)
    chunk = write_rows_chunk(store, rows, features)
    pca = fit_and_save_pca(store, [chunk], PCAParams(dims=16), None)
    meta = {
        "embed": params.model_dump(mode="json"),
        "source": SourceSpec(path=str(source_file)).model_dump(mode="json"),
    }
    build_index(store, [chunk], pca, index, meta=meta)
    return store


@pytest.fixture(scope="module")
def built(demo24):
    """The default index: α-DBA (n=2, alpha=3) and α-QE on."""
    return build_store(demo24, "store", IndexParams()), demo24[3]


def test_a_logo_finds_itself_first(built):
    store, rows = built
    hits = Searcher(store).search_images([decode_image(rows[5]["image"])], SearchParams(k=4))[0]
    assert [h.rank for h in hits] == [1, 2, 3, 4]
    assert hits[0].id == rows[5]["id"] and hits[0].score > 0.9
    assert all(a.score >= b.score for a, b in pairwise(hits))


def test_alpha_qe_query_of_every_indexed_image_ranks_it_first(built, demo24):
    """The query (raw features of the indexed pixels) is expanded with its stored neighbours
    the way the index vectors were: each of the 24 images comes first, or level with the
    first (within 1e-3) where a near-duplicate was averaged into the same point by DBA
    (here adobe-after-effects and adobe-animate: 0.9986 vs 0.9990)."""
    store, rows = built
    searcher = Searcher(store)
    assert searcher.index.dba["neighbours"] == 2 and searcher.index.dba["alpha"] == 3.0
    features = demo24[4]
    hits = searcher.search_features(features, SearchParams(k=3))
    firsts = [h[0].id for h in hits]
    assert sum(a == r["id"] for a, r in zip(firsts, rows, strict=True)) >= 22
    for row, found in zip(rows, hits, strict=True):
        own = next(h for h in found if h.id == row["id"])
        assert own.rank <= 2 and own.score > found[0].score - 1e-3
    # the score is the cosine of the expanded query with the stored (augmented) vector
    query = searcher.describe(features[:1])
    stored = searcher.index.vectors([rows[0]["id"]])
    assert firsts[0] == rows[0]["id"]
    expanded = searcher.index.expand(query)
    assert hits[0][0].score == pytest.approx((expanded @ stored.T).item(), abs=1e-5)
    assert hits[0][0].score > (query @ stored.T).item()  # the expansion moved q towards it


def test_without_dba_a_logo_scores_one_with_itself(demo24):
    store = build_store(demo24, "plain", IndexParams(dba_neighbours=0))
    searcher = Searcher(store)
    assert searcher.index.dba is None
    rows = demo24[3]
    hits = searcher.search_features(demo24[4][5:6], SearchParams(k=2))[0]
    assert hits[0].id == rows[5]["id"] and hits[0].score == pytest.approx(1.0, abs=1e-3)


def test_cli_json_sheet_and_bad_query(built, tmp_path):
    from flows.cli import app

    store, rows = built
    queries = []
    for i in (2, 9):
        path = tmp_path / f"q{i}.png"
        decode_image(rows[i]["image"]).save(path)
        queries.append(path)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    sheet = tmp_path / "sheet.png"
    args = ["search", "--store", str(store.root), *map(str, queries), str(bad), "-k", "3"]
    result = CliRunner().invoke(app, [*args, "--json", "--sheet", str(sheet)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["hits"][0]["id"] for line in lines] == [rows[2]["id"], rows[9]["id"]]
    assert all(len(line["hits"]) == 3 for line in lines)
    assert "skipped" in result.stderr and "broken.png" in result.stderr
    with Image.open(sheet) as image:  # 2 query rows × (query + 3 hits)
        assert image.width > 4 * 128 and image.height > 2 * 128


def test_removed_logo_is_not_returned(built):
    store, rows = built
    target = rows[3]["id"]
    remove_from_index(store, [target])
    hits = Searcher(store).search_images([decode_image(rows[3]["image"])], SearchParams(k=5))[0]
    assert target not in [h.id for h in hits]


def square(colour: str, box: tuple[int, int, int, int] = (16, 16, 48, 48)) -> Image.Image:
    image = Image.new("RGB", (64, 64), "white")
    image.paste(Image.new("RGB", (box[2] - box[0], box[3] - box[1]), colour), box[:2])
    return image


def test_rerank_promotes_same_colour_and_keeps_missing_images():
    query = square("red")
    ids = ["blue", "red", "gone"]
    ann = np.array([0.9, 0.85, 0.95], dtype=np.float32)
    images = [square("blue"), square("red"), None]
    order, scores = rerank(
        query, ids, ann, images, RerankParams(weight_colour=0.5, weight_layout=0)
    )
    assert order[0] == "red"
    assert scores[order.index("gone")] == pytest.approx(0.95)  # ANN term only
    same = rerank(query, ids, ann, images, RerankParams(weight_colour=0, weight_layout=0))
    assert same[0] == ["gone", "blue", "red"]
