"""Nightly reindex: new, changed and deleted images reach the existing index in place."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import demo_rows

from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec
from logosim.index.logo_index import LogoIndex
from logosim.index.reindex import live_ids
from logosim.search.searcher import Searcher


@pytest.fixture(scope="module")
def demo_tables():
    return demo_rows(24, 8), demo_rows(0, 7, skip_others=8)


def test_reindex_adds_changed_and_new_and_drops_deleted(prefect_server, demo_tables, tmp_path):
    from flows.build import BuildParams, build_flow
    from flows.reindex import reindex_flow

    base, extra = demo_tables
    path = tmp_path / "logos.parquet"
    pq.write_table(base, path)
    source = SourceSpec(path=str(path))
    store_root = str(tmp_path / "store")
    params = BuildParams.model_validate(
        {
            "source": {"path": str(path)},
            "store": store_root,
            "chunk_size": 16,
            "pca": {"dims": 8},
            "embed": {"runtime": "eager", "batch_size": 8},
        }
    )
    build_flow(params)
    store = ArtifactStore(store_root)

    first = reindex_flow(source, store_root, chunk_size=16)  # seeds the fingerprint table
    assert (first.new, first.changed, first.deleted, first.embedded) == (0, 0, 0, 0)

    # the register moves on: 3 marks withdrawn, 2 replaced by new artwork, 5 filed
    rows = base.to_pylist()
    deleted = [r["id"] for r in rows[:3]]
    kept = rows[3:]
    new_rows = extra.to_pylist()
    kept[0]["image"], kept[1]["image"] = new_rows[5]["image"], new_rows[6]["image"]
    added = new_rows[:5]
    pq.write_table(pa.Table.from_pylist(kept + added, schema=base.schema), path)

    second = reindex_flow(source, store_root, chunk_size=16)
    assert (second.new, second.changed, second.deleted) == (5, 2, 3)
    assert second.embedded == 7
    expected = {r["id"] for r in kept + added}
    assert live_ids(store) == expected
    index = LogoIndex.load(store)
    assert len(index) == len(expected)

    # a new mark and a replaced one are found by their own (new) artwork
    searcher = Searcher(store)
    for row in (added[0], kept[0]):
        hits = searcher.search_images([decode_image(row["image"])])[0]
        assert hits[0].id == row["id"], (row["id"], hits[:3])
    assert not set(deleted) & {
        h.id for h in searcher.search_images([decode_image(rows[0]["image"])])[0]
    }

    third = reindex_flow(source, store_root, chunk_size=16)  # nothing moved since
    assert (third.new, third.changed, third.deleted, third.embedded) == (0, 0, 0, 0)


def test_reindex_without_an_index_says_to_build_first(prefect_server, tmp_path):
    from flows.reindex import reindex_flow
    from logosim.index.params import IndexUnavailableError

    with pytest.raises(IndexUnavailableError, match="run the build flow"):
        reindex_flow(SourceSpec(path="demo"), str(tmp_path / "empty"))
