"""α-DBA of an IVF index in place, one inverted list at a time.

At register scale the α-DBA pass dominates the build: it searches the index once per stored
vector. Two things make it cheap on an IVF-flat index (1M × 512 on 2 cores: ~270 s in chunk
order at 16 lists, 67 s this way; ``bench/bench_index_scale.py --library-build``):

- **queries in list order**: the vectors of one list probe nearly the same lists, so a batch
  of them scans lists that are already in the CPU cache (chunk order jumps across all lists);
- **few lists** (``DBA_NPROBE``): α = 3 weighs a neighbour by similarity³, so only close
  neighbours move a vector, and those share its list or the next ones (top-2 recall 0.992 at
  4 lists vs 0.993 at 16 on the 1M bench vectors; on the real dev-bench descriptors every
  probe count from 1 to 16 retrieves within noise of the exact pass: ``bench/bench_dba_ivf.py``).

The augmented vectors replace the stored ones in their own list (same position, same id), so
the direct map, the id map and the trained centroids stay valid and no second index is held:
they wait in an unlinked scratch file until every list has been searched against the
original vectors. A vector keeps the list of its original: its augmented self moved towards
its nearest neighbours, which sit in that list or the next, and searches probe many lists.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import faiss
import numpy as np
from loguru import logger

from logosim.index import ivf
from logosim.index.dba import augment

DBA_NPROBE = 4  # lists each vector's neighbours are searched in (see the module docstring)
BATCH_ROWS = 16384  # vectors searched per FAISS call (whole lists, in list order)


def list_contents(inner: faiss.IndexIVF, list_no: int) -> tuple[np.ndarray, np.ndarray]:
    """The (internal ids, float32 vectors) stored in one list of an IVF-flat index."""
    lists = inner.invlists
    size = lists.list_size(list_no)
    if not size:
        return np.empty(0, np.int64), np.empty((0, inner.d), np.float32)
    ids = faiss.rev_swig_ptr(lists.get_ids(list_no), size).copy()
    codes = faiss.rev_swig_ptr(lists.get_codes(list_no), size * lists.code_size).copy()
    return ids, codes.view(np.float32).reshape(size, inner.d)


def _batches(inner: faiss.IndexIVF) -> Iterator[list[int]]:
    """Consecutive non-empty lists, about ``BATCH_ROWS`` vectors a batch."""
    batch, rows = [], 0
    for list_no in range(inner.nlist):
        size = inner.invlists.list_size(list_no)
        if not size:
            continue
        batch.append(list_no)
        rows += size
        if rows >= BATCH_ROWS:
            yield batch
            batch, rows = [], 0
    if batch:
        yield batch


def augment_in_place(
    index: faiss.Index,
    n: int,
    alpha: float,
    scratch: Path,
    selector: faiss.IDSelector | None = None,
    advance: Callable[[int], None] | None = None,
) -> dict:
    """Replace every vector of an id-mapped IVF-flat ``index`` by its α-DBA average with its
    ``n`` nearest other stored vectors (``selector``: the slots searches may return;
    ``advance(rows)`` after each batch).

    Peak memory is the index plus one batch; the augmented vectors (as many bytes as the
    index's vectors) go to an unlinked file in ``scratch`` until the last list is searched.
    """
    inner = ivf.inner_ivf(index)
    assert inner is not None, "augment_in_place() is for IVF indexes"
    labels_of = faiss.vector_to_array(index.id_map)
    params = faiss.SearchParametersIVF(nprobe=min(DBA_NPROBE, inner.nlist), sel=selector)
    done, next_log = 0, 0.1
    written: list[tuple[int, np.ndarray]] = []  # (list, internal ids) in spill order
    with tempfile.TemporaryFile(dir=scratch, prefix=".dba-") as spill:
        for batch in _batches(inner):
            parts = [list_contents(inner, list_no) for list_no in batch]
            ids = np.concatenate([p[0] for p in parts])
            vectors = np.concatenate([p[1] for p in parts])
            augmented = augment(index, vectors, n, alpha, own=labels_of[ids], params=params)
            spill.write(np.ascontiguousarray(augmented, dtype=np.float32).tobytes())
            written += [(list_no, part[0]) for list_no, part in zip(batch, parts, strict=True)]
            done += len(ids)
            if advance is not None:
                advance(len(ids))
            if done >= next_log * index.ntotal:
                logger.info(f"index: α-DBA {done:,}/{index.ntotal:,} vectors")
                next_log += 0.1
        spill.seek(0)
        for list_no, ids in written:
            codes = np.frombuffer(spill.read(len(ids) * inner.code_size), dtype=np.uint8)
            inner.invlists.update_entries(
                list_no, 0, len(ids), faiss.swig_ptr(ids), faiss.swig_ptr(codes)
            )
    return {"nprobe": int(params.nprobe)}
