"""Stage 2 wired to a store: query variants → ANN top K → composite re-ranking → hits.

Only the query is embedded at query time: the image and its variants (mirror, 90° turns,
``CompositeParams.variants``) in one batch, with their local descriptor blocks. The ANN
returns the top K (default 1,000; ``efSearch`` is raised to K) for the original; every term
is then computed for those K from stored data (``logosim.search.composite``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

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
    query_spatial: bool = True,
) -> Scored:
    """The composite ordering of K candidates from what is stored for them.

    ``variant_globals``: (V-1, K) cosines of the extra query variants (the original's are the
    ANN scores); ``query_blocks`` (V, slots, 64); ``cand_blocks`` (K, slots, 64) with ``cand_ok``
    False where a candidate has none (its spatial and colour terms are then absent).
    ``query_spatial`` False: the query's blocks hold its colour only (a query model without a
    feature-map output), so the spatial term is absent for every candidate.
    """
    from logosim.embed.local_features import Layout

    g = np.asarray(ann_scores, dtype=np.float32)[None, :]
    if variant_globals is not None and len(variant_globals):
        g = np.concatenate([g, np.asarray(variant_globals, dtype=np.float32)])
    spatial = colour = None
    if query_blocks is not None and cand_blocks is not None and cand_ok is not None:
        layout = Layout(_grid(cand_blocks.shape[1]))
        if query_spatial and query_blocks.shape[1] == cand_blocks.shape[1]:
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


def candidate_union(found_ids: Sequence[Sequence[str]]) -> list[str]:
    """The candidates of every variant's search, the original's first, each once."""
    return list(dict.fromkeys(i for hits in found_ids for i in hits))


def score_query(
    ids: list[str],
    vectors: np.ndarray,
    first: dict[str, float],
    params: CompositeParams,
    *,
    stored: Callable[[list[str]], np.ndarray],
    blocks: np.ndarray | None = None,
    query_spatial: bool = True,
    local=None,
    text: np.ndarray | None = None,
) -> Scored:
    """Stage 2 for one query whose variants (``vectors`` (V, D), the original first) have
    searched the index: ``ids`` their candidate union, ``first`` the original's ANN scores.

    ``stored(ids)`` gives the candidates' stored vectors (needed when there are variants:
    a candidate found by one variant has no ANN score for the others); ``blocks`` (V, slots,
    64) are the query's local blocks and ``local`` the store's (``LocalTable``); ``text`` the
    candidates' text scores (NaN = absent). Shared by ``Searcher`` and the API engine.
    """
    extra = None
    if len(vectors) > 1 and ids:
        found = stored(ids)
        ann = vectors[0] @ found.T
        extra = vectors[1:] @ found.T
    else:
        ann = np.array([first[i] for i in ids], dtype=np.float32)
    qb = cb = ok = None
    if blocks is not None and local is not None and len(local) and ids:
        qb = blocks
        cb, ok = local.gather(ids)
    return rerank_candidates(
        ann, params, variant_globals=extra, query_blocks=qb, cand_blocks=cb, cand_ok=ok,
        text=text, query_spatial=query_spatial,
    )  # fmt: skip


def ranked_terms(scored: Scored, k: int) -> list[tuple[int, float, dict[str, float | None]]]:
    """The top ``k``: (candidate position, composite score, terms with None = absent)."""
    out = []
    for rank, pos in enumerate(scored.order[:k]):
        terms = {
            t: None if np.isnan(scored.terms[t][rank]) else float(scored.terms[t][rank])
            for t in TERMS
        }
        out.append((int(pos), float(scored.score[rank]), terms))
    return out


def text_scores(text_table, query_text: str | None, ids: list[str]) -> np.ndarray | None:
    """Candidates' phonetic similarity to the query's word element (NaN = no text), or None
    when there is nothing to compare (no table, no query text)."""
    if text_table is None or not query_text:
        return None
    table, rows = text_table
    positions = np.array([rows.get(i, -1) for i in ids], dtype=np.int64)
    out = np.full(len(ids), np.nan, dtype=np.float32)
    known = positions >= 0
    out[known] = table.scores(table.query(query_text), positions[known])
    return out


def search_composite(searcher, images: list[Image.Image], params, texts=None) -> list:
    """``Searcher.search_images`` with stage 2 on (see the module docstring)."""
    from logosim.search.searcher import SearchHit

    cp: CompositeParams = params.composite
    per_query = [query_variants(image, list(cp.variants)) for image in images]
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
        vq = vectors[lo:hi]
        found = searcher.index.search(vq, depth, ef_search=ef)  # every variant searches
        ids = candidate_union(found.ids)
        started = time.perf_counter()
        query_text = texts[qi] if texts is not None and qi < len(texts) else None
        scored = score_query(
            ids,
            vq,
            dict(zip(found.ids[0], found.scores[0], strict=True)),
            cp,
            stored=searcher.index.vectors,
            blocks=blocks[lo:hi] if blocks is not None else None,
            local=local,
            text=text_scores(text_table, query_text, ids),
        )
        logger.debug(f"stage 2: {len(ids)} candidates in {time.perf_counter() - started:.3f}s")
        results.append(
            [
                SearchHit(id=ids[pos], score=score, rank=rank, terms=terms)
                for rank, (pos, score, terms) in enumerate(ranked_terms(scored, params.k), 1)
            ]
        )
    return results
