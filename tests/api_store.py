"""A small store the API tests serve: 120 demo logos, PCA 32, an exported 96-px model.

The index is built the usual way (eager backbone features → PCA → α-DBA exact index, local
descriptor blocks beside the embeddings) and the exported graph (backbone + PCA inside)
embeds the queries, as on a real deployment; it is exported without the local output. A
second graph, ``export-local.onnx`` beside the store, is the default export: it also outputs
the query's local descriptors (the in-graph head). The source gets Vienna codes, years and word elements so the
filters have something to do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SIZE = 96
ROWS = 120
VIENNA = [["26.01.03", "27.05.01"], ["26.04.02"], ["01.01.05"], []]


def mark_metadata(i: int) -> dict:
    return {"vienna_codes": VIENNA[i % 4], "year": 1990 + i % 30}


def build_api_store(root: Path) -> tuple[Path, list[dict]]:
    """The store folder and the source rows (with image bytes)."""
    from logosim.core.store import ArtifactStore
    from logosim.data.decode import decode_image
    from logosim.data.sources import SourceSpec
    from logosim.demo import DEMO_PARQUET
    from logosim.embed.embedder import Embedder
    from logosim.embed.export import ExportParams, export_model
    from logosim.embed.params import EmbedParams
    from logosim.embed.pca import PCAParams, fit_and_save_pca
    from logosim.index.build import build_index
    from logosim.index.params import IndexParams

    table = pq.read_table(DEMO_PARQUET).slice(0, ROWS)
    meta = [mark_metadata(i) for i in range(ROWS)]
    table = table.append_column(
        "vienna_codes", pa.array([m["vienna_codes"] for m in meta], pa.list_(pa.string()))
    )
    table = table.set_column(
        table.schema.get_field_index("year"), "year", pa.array([m["year"] for m in meta])
    )
    table = table.set_column(
        table.schema.get_field_index("text"), "text", pa.array(table.column("name").to_pylist())
    )
    source = root / "marks.parquet"
    pq.write_table(table, source)
    rows = table.to_pylist()

    store = ArtifactStore(root / "store")
    params = EmbedParams(image_size=SIZE, runtime="eager")
    features, blocks = Embedder(params).embed_images_local([decode_image(r["image"]) for r in rows])
    chunk = store.write_arrays(
        "embeddings/test.npz",
        {"ids": np.array([r["id"] for r in rows]), "embeddings": features, "rows": np.arange(ROWS)},
        kind="embeddings",
        rows=ROWS,
    )
    write_local_blocks(store, "local/test.npy", blocks)
    pca = fit_and_save_pca(store, [chunk], PCAParams(dims=32), None)
    info = {
        "embed": params.model_dump(mode="json"),
        "source": SourceSpec(path=str(source)).model_dump(mode="json"),
    }
    build_index(store, [chunk], pca, IndexParams(), meta=info)
    # The graph the served engine loads has no local output (the spatial term's absence is
    # what those tests check); export-local.onnx is the default export, with it.
    exported = export_model(store, ExportParams(image_size=SIZE, validate_images=16))
    shutil.copyfile(store.path(exported.path), root / "export-local.onnx")
    export_model(store, ExportParams(image_size=SIZE, validate_images=16, local=False))
    return store.root, rows


def write_local_blocks(store, rel: str, blocks: np.ndarray) -> None:
    """A chunk's local blocks as the embed stage stores them (``local/<key>.npy``)."""
    import io

    from logosim.embed.local_features import LOCAL_VERSION, Layout

    side = round((blocks.shape[1] - 16) ** 0.5)
    data = io.BytesIO()
    np.save(data, blocks)
    store.write_bytes(
        rel,
        data.getvalue(),
        kind="local",
        rows=len(blocks),
        versions={"local": LOCAL_VERSION},
        meta={"layout": Layout((side, side)).describe()},
    )
