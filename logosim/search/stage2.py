"""Stage 2 wired to a store: query variants → ANN top K → composite re-ranking → hits.

Only the query is embedded at query time: the image and its variants (mirror, 90° turns,
``CompositeParams.variants``) in one batch, with their local descriptor blocks. The ANN
returns the top K (default 1,000; ``efSearch`` is raised to K) for the original; every term
is then computed for those K from stored data (``logosim.search.composite``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from loguru import logger
from PIL import Image

from logosim.search.composite import TERMS, CompositeParams, Scored, composite, spatial_scores

VARIANTS = {
    "flip": Image.Transpose.FLIP_LEFT_RIGHT,
    "rot90": Image.Transpose.ROTATE_90,
    "rot270": Image.Transpose.ROTATE_270,
    "rot180": Image.Transpose.ROTATE_180,
}


CROP_ASPECT = 1.5  # a query this much wider than tall (or taller) gets its end squares


def query_variants(image: Image.Image, variants: Sequence[str]) -> list[Image.Image]:
    """The query first, then its variants; ``crops`` adds the two end squares of a wide or
    tall query (a symbol beside its words, a mark on a banner) and nothing for a squarish one."""
    out = [image]
    for v in variants:
        if v != "crops":
            out.append(image.transpose(VARIANTS[v]))
            continue
        w, h = image.size
        side = min(w, h)
        if max(w, h) >= CROP_ASPECT * side:
            out += [image.crop((0, 0, side, side)), image.crop((w - side, h - side, w, h))]
    return out


def rerank_candidates(
    ann_scores: np.ndarray,
    params: CompositeParams,
    *,
    variant_globals: np.ndarray | None = None,
    query_blocks: np.ndarray | None = None,
    cand_blocks: np.ndarray | None = None,
    cand_ok: np.ndarray | None = None,
    text: np.ndarray | None = None,
) -> Scored:
    """The composite ordering of K candidates from what is stored for them.

    ``variant_globals``: (V-1, K) cosines of the extra query variants (the original's are the
    ANN scores); ``query_blocks`` (V, slots, 64); ``cand_blocks`` (K, slots, 64) with ``cand_ok``
    False where a candidate has none (its spatial and colour terms are then absent).
    """
    from logosim.embed.local_features import Layout

    g = np.asarray(ann_scores, dtype=np.float32)[None, :]
    if variant_globals is not None and len(variant_globals):
        g = np.concatenate([g, np.asarray(variant_globals, dtype=np.float32)])
    spatial = colour = None
    if query_blocks is not None and cand_blocks is not None and cand_ok is not None:
        layout = Layout(_grid(query_blocks.shape[1]))
        v = min(len(query_blocks), len(g))
        spatial = np.full((len(g), g.shape[1]), np.nan, dtype=np.float32)
        if cand_ok.any():
            spatial[:v, cand_ok] = spatial_scores(
                query_blocks[:v], cand_blocks[cand_ok], layout, params.spatial
            )
        colour = np.where(cand_ok, cand_blocks[:, layout.colour].astype(np.float32)
                          @ query_blocks[0, layout.colour].astype(np.float32), np.nan)  # fmt: skip
    return composite(g, params, spatial=spatial, colour=colour, text=text)


def _grid(slots: int) -> tuple[int, int]:
    """The square grid whose layout has ``slots`` slots (2 + 14 regions + h·w patches)."""
    side = round((slots - 16) ** 0.5)
    return side, side


def search_composite(searcher, images: list[Image.Image], params, texts=None) -> list:
    """``Searcher.search_images`` with stage 2 on (see the module docstring)."""
    from logosim.search.searcher import SearchHit

    cp: CompositeParams = params.composite
    variants = list(cp.variants)
    per_query = [query_variants(image, variants) for image in images]
    batch = [v for group in per_query for v in group]
    features, blocks = searcher.embedder.embed_images_local(batch)
    vectors = searcher.index.expand(searcher.describe(features), ef_search=params.ef_search)
    bounds = np.cumsum([0] + [len(group) for group in per_query])
    depth = max(params.candidates, params.k)
    ef = max(params.ef_search or 0, depth) or None
    local = searcher.local if blocks is not None else None
    text_table = searcher.texts if cp.weight_text > 0 else None
    results = []
    for qi in range(len(images)):
        lo, hi = bounds[qi], bounds[qi + 1]
        n_var = hi - lo
        vq = vectors[lo:hi]
        found = searcher.index.search(vq, depth, ef_search=ef)  # every variant searches
        ids = list(dict.fromkeys(i for hits in found.ids for i in hits))
        first = dict(zip(found.ids[0], found.scores[0], strict=True))
        started = time.perf_counter()
        extra = None
        if n_var > 1 and ids:
            stored = searcher.index.vectors(ids)
            ann = vq[0] @ stored.T
            extra = vq[1:] @ stored.T
        else:
            ann = np.array([first[i] for i in ids], dtype=np.float32)
        qb = cb = ok = None
        if local is not None and len(local) and ids:
            qb = blocks[lo:hi]
            cb, ok = local.gather(ids)
        text = None
        query_text = texts[qi] if texts is not None and qi < len(texts) else None
        if text_table is not None and query_text:
            table, rows = text_table
            q = table.query(query_text)
            positions = np.array([rows.get(i, -1) for i in ids])
            text = np.full(len(ids), np.nan, dtype=np.float32)
            known = positions >= 0
            text[known] = table.scores(q, positions[known])
        scored = rerank_candidates(
            ann, cp, variant_globals=extra, query_blocks=qb, cand_blocks=cb, cand_ok=ok, text=text
        )
        logger.debug(f"stage 2: {len(ids)} candidates in {time.perf_counter() - started:.3f}s")
        hits = []
        for rank, pos in enumerate(scored.order[: params.k], start=1):
            terms = {
                t: (
                    None
                    if np.isnan(scored.terms[t][rank - 1])
                    else float(scored.terms[t][rank - 1])
                )
                for t in TERMS
            }
            hits.append(
                SearchHit(id=ids[pos], score=float(scored.score[rank - 1]), rank=rank, terms=terms)
            )
        results.append(hits)
    return results
