"""Dev-bench and dev copy-set figures per split (issue 16): choose on val, report on test.

- Bench store: leave-one-out over the whole bench, queries from each split's groups.
- Copy-set store: the copy set's 1,500 sources come from all three bench splits; queries are
  the copies and originals of each split's sources (gallery = all 12,390 images). Choosing on
  the copies of *val* sources keeps the test figure honest when training imitates register
  edits. R@1 per edit type (copy queries) says which edits still move the descriptor.
Both read a built store's live index vectors (as evaluate scores them) and a built dev-bench
store's splits; prints JSON.

    .venv/bin/python bench/figures_by_split.py --bench-store B --copy-store C --splits-from /tmp/devbench

``--twin-bench-store`` / ``--twin-copy-store`` name stores built with ``--text-mask`` (see
bench_levers.py): an image whose text was masked gets that store's vector as a twin, and a
pair scores the best of the four pairings (the text-masked twin descriptor).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np
import pyarrow.parquet as pq
from bench_data import COPY_SET, DEV_BENCH, rounded

from logosim.core.store import ArtifactStore
from logosim.data.splits import load_split_ids
from logosim.index.logo_index import LogoIndex
from logosim.preprocess.mask_store import MaskReader
from logosim.preprocess.text_mask import MaskFlag
from logosim.search.evaluate import stored_vectors
from logosim.search.metrics import leave_one_out

SPLITS = ("train", "val", "test")


def _columns(path: str, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    table = pq.read_table(path, columns=["id", *names])
    ids = table.column("id").to_pylist()
    return {n: dict(zip(ids, table.column(n).to_pylist(), strict=True)) for n in names}


def live_vectors(store: ArtifactStore) -> tuple[list[str], np.ndarray]:
    """A built store's live index vectors (as evaluate scores them), float32 and contiguous."""
    ids, vectors = stored_vectors(store, LogoIndex.load(store).manifest)
    return ids, np.ascontiguousarray(vectors, np.float32)


def twin_vectors(store: ArtifactStore, ids: list[str], plain: np.ndarray) -> np.ndarray:
    """Each image's vector from the text-masked ``store`` where its text was masked, else
    its plain vector (so the twin adds nothing for images without text)."""
    masked_ids, vectors = stored_vectors(store, LogoIndex.load(store).manifest)
    row = {image: i for i, image in enumerate(masked_ids)}
    reader = MaskReader.of_store(store)
    twin = plain.copy()
    for i, image in enumerate(ids):
        if reader.flag_for(image) == MaskFlag.MASKED and image in row:
            twin[i] = vectors[row[image]]
    return twin


def per_split(
    store: ArtifactStore,
    splits_from: ArtifactStore,
    groups_of: dict[str, str],
    split_key: Callable[[str, str | None], str | None],
    twin_store: ArtifactStore | None = None,
) -> tuple[dict, list[str], np.ndarray, list[str | None], np.ndarray | None]:
    ids, x = live_vectors(store)
    twin = None if twin_store is None else twin_vectors(twin_store, ids, x)
    groups = [groups_of[i] or None for i in ids]
    figures = {}
    for split in SPLITS:
        members = load_split_ids(splits_from, split)
        mask = np.array([split_key(i, g) in members for i, g in zip(ids, groups, strict=True)])
        figures[split] = rounded(leave_one_out(x, groups, mask, twin))
    return figures, ids, x, groups, twin


def bench_figures(
    store: ArtifactStore, splits_from: ArtifactStore, twin_store: ArtifactStore | None = None
) -> dict:
    groups = _columns(DEV_BENCH, ("group",))["group"]
    return per_split(store, splits_from, groups, lambda image, group: image, twin_store)[0]


def copy_figures(
    store: ArtifactStore,
    splits_from: ArtifactStore,
    copy_set: str,
    twin_store: ArtifactStore | None = None,
) -> dict:
    columns = _columns(copy_set, ("group", "edit"))
    # A copy's group is its source's id, and a source's group is its own id.
    figures, ids, x, groups, twin = per_split(
        store, splits_from, columns["group"], lambda image, group: group, twin_store
    )
    edit_of = columns["edit"]
    edits = sorted({e for i in ids for e in (edit_of[i] or "").split("+") if e})
    figures["copy queries by edit"] = {
        edit: rounded(
            leave_one_out(
                x, groups, np.array([edit in (edit_of[i] or "").split("+") for i in ids]), twin
            )
        )
        for edit in edits
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-store")
    parser.add_argument("--copy-store")
    parser.add_argument("--splits-from", required=True)
    parser.add_argument("--copy-set", default=COPY_SET)
    parser.add_argument("--twin-bench-store", help="Text-masked store for --bench-store.")
    parser.add_argument("--twin-copy-store", help="Text-masked store for --copy-store.")
    args = parser.parse_args()
    splits = ArtifactStore(args.splits_from)

    def twin(path: str | None) -> ArtifactStore | None:
        return ArtifactStore(path) if path else None

    figures = {}
    if args.bench_store:
        figures["bench"] = bench_figures(
            ArtifactStore(args.bench_store), splits, twin(args.twin_bench_store)
        )
    if args.copy_store:
        figures["copies"] = copy_figures(
            ArtifactStore(args.copy_store), splits, args.copy_set, twin(args.twin_copy_store)
        )
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
