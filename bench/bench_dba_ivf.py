"""α-DBA of an IVF index on real descriptors: how many lists its neighbour search needs.

The IVF α-DBA pass (``logosim/index/ivf_dba.py``) searches each vector's neighbours in
``DBA_NPROBE`` lists. The 1M bench vectors are synthetic copies around real ones, which
flatter IVF; this bench rebuilds the index of a real built store (the dev bench) as an IVF
with the lists sized like a 1M register's (~240 vectors a list: ``--nlist 64`` at 10,890) and
smaller (``--nlist 512``), for each probe count, and reports against the exact α-DBA build:
the stored vectors' cosine, and retrieval on the **val** split (to choose) and the **test**
split (to report), leave-one-out over the stored vectors as ``logosim evaluate`` does.

    .venv/bin/python bench/bench_dba_ivf.py --store STORE --source \\
        /work/shared/bench/logo_bench_dev.parquet --group-column group

Results: ``bench/results/dba_ivf.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from logosim.core.store import ArtifactStore, Manifest
from logosim.data.sources import SourceSpec
from logosim.data.splits import load_split_ids
from logosim.index import ivf_dba
from logosim.index.build import build_index
from logosim.index.params import INDEX_FILE, IndexParams
from logosim.search.evaluate import source_groups, stored_vectors
from logosim.search.metrics import leave_one_out

RESULTS = Path(__file__).parent / "results" / "dba_ivf.json"


def inputs(store: ArtifactStore) -> tuple[list[Manifest], Manifest | None]:
    """The embedding chunks and PCA the store's index was built from."""
    index = store.read_manifest(INDEX_FILE)
    wanted = set(index.meta["embeddings"])
    chunks = {}
    for path in sorted(store.path("embeddings").glob("*.npz.manifest.json")):
        manifest = store.read_manifest(
            path.relative_to(store.root).as_posix()[: -len(".manifest.json")]
        )
        if manifest and manifest.sha256 in wanted:
            chunks[manifest.sha256] = manifest
    pca = None
    for path in sorted(store.path("pca").glob("*.manifest.json")):
        manifest = store.read_manifest(
            path.relative_to(store.root).as_posix()[: -len(".manifest.json")]
        )
        if manifest and manifest.sha256 == index.meta["pca"]:
            pca = manifest
    return [chunks[sha] for sha in index.meta["embeddings"]], pca


def build(root: Path, scratch: Path, chunks: list[Manifest], pca, params: IndexParams):
    """``build_index`` into a scratch store that sees the real store's chunks and PCA."""
    scratch.mkdir(parents=True, exist_ok=True)
    for folder in ("embeddings", "pca", "local"):
        if (root / folder).exists() and not (scratch / folder).exists():
            # hard links: the store refuses paths that resolve outside its root
            shutil.copytree(root / folder, scratch / folder, copy_function=os.link)
    store = ArtifactStore(scratch)
    started = time.perf_counter()
    manifest = build_index(store, chunks, pca, params)
    seconds = time.perf_counter() - started
    ids, vectors = stored_vectors(store, manifest)
    return ids, vectors, manifest, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--group-column", default="group")
    parser.add_argument("--nlist", type=int, nargs="*", default=[64, 512])
    parser.add_argument("--nprobe", type=int, nargs="*", default=[1, 2, 4, 8, 16])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    store = ArtifactStore(args.store)
    chunks, pca = inputs(store)
    groups = source_groups(SourceSpec(path=args.source, group_column=args.group_column))
    splits = {name: load_split_ids(store, name) for name in ("val", "test")}

    def measure(ids: list[str], vectors: np.ndarray) -> dict:
        labels = [groups.get(i, "") for i in ids]
        out = {}
        for name, members in splits.items():
            mask = np.fromiter((i in members for i in ids), dtype=bool, count=len(ids))
            m = leave_one_out(vectors, labels, query_mask=mask)
            out[name] = {"r@1": round(m["recall@1"], 4), "map": round(m["map"], 4)}
        return out

    rows = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        base = IndexParams(kind="exact")
        ref_ids, reference, _, _ = build(args.store, Path(tmp) / "exact", chunks, pca, base)
        rows.append({"build": "exact α-DBA", **measure(ref_ids, reference)})
        plain = IndexParams(kind="exact", dba_neighbours=0)
        ids, vectors, _, _ = build(args.store, Path(tmp) / "plain", chunks, pca, plain)
        rows.append({"build": "no α-DBA", **measure(ids, vectors)})
        print(rows[0], rows[1], sep="\n", flush=True)
        for nlist in args.nlist:
            for nprobe in args.nprobe:
                ivf_dba.DBA_NPROBE = nprobe  # the module constant the pass reads
                params = IndexParams(kind="ivf", nlist=nlist, ivf_train_per_list=39)
                folder = Path(tmp) / f"ivf-{nlist}-{nprobe}"
                ids, vectors, _, seconds = build(args.store, folder, chunks, pca, params)
                assert ids == ref_ids
                cosine = (vectors * reference).sum(axis=1)
                row = {
                    "build": f"IVF{nlist}, α-DBA in {nprobe} lists",
                    "per_list": round(len(ids) / nlist),
                    "cosine_mean": round(float(cosine.mean()), 6),
                    "cosine_min": round(float(cosine.min()), 4),
                    "changed_rows": int((cosine < 1 - 1e-5).sum()),
                    **measure(ids, vectors),
                    "seconds": round(seconds, 2),
                }
                rows.append(row)
                print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"store": str(args.store), "rows": rows, "measured": time.strftime("%Y-%m-%d %H:%M")},
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
