"""Queries are masked as the build masked its gallery: a mark beside its name finds the mark.

Real Tesseract, real demo logos, the real build flow under a Prefect server.
"""

from __future__ import annotations

import io
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import beside_word
from PIL import Image, ImageDraw

from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec
from logosim.preprocess.query_mask import mask_query_text, query_prepare
from logosim.preprocess.stage import PreprocessParams
from logosim.preprocess.text_mask import ink


def disc() -> Image.Image:
    image = Image.new("RGB", (220, 220), "white")
    ImageDraw.Draw(image).ellipse((40, 40, 180, 180), fill=(200, 30, 30))
    return image


def test_the_word_beside_a_mark_is_painted_out_and_the_mark_kept():
    query = beside_word(disc())
    masked = mask_query_text(query, PreprocessParams())
    words = np.asarray(masked)[:, 200:]
    assert ink(query.crop((200, 0, query.width, query.height))).sum() > 500
    assert ink(Image.fromarray(words)).sum() < 0.05 * ink(query.crop((200, 0, *query.size))).sum()
    assert np.array_equal(np.asarray(masked)[:, :190], np.asarray(query)[:, :190])


def test_a_query_without_words_goes_in_unchanged():
    plain = disc()
    assert mask_query_text(plain, PreprocessParams()) is plain


def test_queries_are_masked_only_when_the_build_masked_text():
    assert query_prepare({"preprocess": None}) is None and query_prepare({}) is None
    prepare = query_prepare({"preprocess": PreprocessParams().model_dump(mode="json")})
    query = beside_word(disc())
    assert prepare is not None and prepare(query) is not query


def test_an_index_recorded_before_the_line_fallback_keeps_its_ocr():
    """Settings an older build recorded lack the fields added since; its queries and
    reindexed marks must be read as its gallery was, not with today's defaults."""
    recorded = PreprocessParams().model_dump(mode="json")
    del recorded["ocr"]["line_fallback"]
    assert PreprocessParams.as_recorded(recorded).ocr.line_fallback is False
    current = PreprocessParams().model_dump(mode="json")
    assert PreprocessParams.as_recorded(current) == PreprocessParams()


@pytest.mark.slow  # a build of 120 demo logos, an export, two reindexes (~60 s on 2 cores)
def test_a_mark_beside_its_name_finds_the_mark(prefect_server, demo_subset, tmp_path):
    from flows.build import BuildParams, build_flow
    from logosim.embed.pca import PCAParams
    from logosim.index.logo_index import LogoIndex
    from logosim.search.searcher import Searcher

    source = tmp_path / "marks.parquet"
    shutil.copy(demo_subset(80, 40), source)
    built = build_flow(
        BuildParams(source={"path": str(source)}, store=str(tmp_path / "s"), pca=PCAParams(dims=32))
    )
    meta = LogoIndex.load(ArtifactStore(built.store)).manifest.meta
    assert meta["preprocess"] == PreprocessParams().model_dump(mode="json")
    assert meta["embed"]["normalize"] == "trim"

    # Symbols (the demo's "-icon" marks): beside a word, their lock-up is mostly the symbol.
    icons = [r for r in pq.read_table(source).to_pylist() if r["id"].endswith("-icon")][:12]
    queries = [beside_word(decode_image(row["image"])) for row in icons]
    searcher = Searcher(built.store)

    def found() -> tuple[int, list]:
        hits = searcher.search_images(queries)
        return sum(h[0].id == row["id"] for h, row in zip(hits, icons, strict=True)), hits

    masked, masked_hits = found()
    searcher._prepare_query = None  # the query as given: the word drags it to other lock-ups
    unmasked = found()[0]
    print(f"icons beside a word found first: {masked}/12 masked, {unmasked}/12 as given")
    assert masked >= 8 and masked >= unmasked + 4, (masked, unmasked)

    # The service masks its queries too (the exported graph embeds them, the index says how).
    from logosim.embed.export import ExportParams, export_model
    from logosim.service.config import ServiceSettings
    from logosim.service.engine import Engine, Query, SearchOptions

    export_model(ArtifactStore(built.store), ExportParams(validate_images=4))
    engine = Engine(ServiceSettings(store=built.store))
    engine.start()
    assert engine.error is None, engine.error
    rankings, _ = engine.search([Query(q) for q in queries], SearchOptions(k=1))
    served = [ranking.hits[0].id for ranking in rankings]
    assert served == [h[0].id for h in masked_hits], served

    # A lock-up filed later reaches the index masked as the build masked its own marks.
    from flows.reindex import reindex_flow
    from logosim.preprocess.mask_store import MaskReader
    from logosim.preprocess.text_mask import MaskFlag

    spec = SourceSpec(path=str(source))
    reindex_flow(spec, built.store)  # seeds the fingerprint table
    table = pq.read_table(source)
    lockup = dict(icons[2], id="filed/lockup", group="", text=None)
    buffer = io.BytesIO()
    queries[2].save(buffer, format="PNG")
    lockup["image"] = buffer.getvalue()
    pq.write_table(pa.Table.from_pylist([*table.to_pylist(), lockup], schema=table.schema), source)
    assert reindex_flow(spec, built.store).embedded == 1
    store = ArtifactStore(built.store)
    assert MaskReader.of_store(store).flag_for("filed/lockup") == MaskFlag.MASKED
    symbol = decode_image(icons[2]["image"])
    top = [hit.id for hit in Searcher(built.store).search_images([symbol])[0][:2]]
    assert set(top) == {icons[2]["id"], "filed/lockup"}, top
