"""Querying the index: the searcher, re-ranking of candidates, retrieval metrics and the
evaluation of an index against known-similar pairs.

Public names load lazily (``logosim.search.NAME`` imports only the module that defines it).
"""

from logosim._lazy import lazy_exports

_EXPORTS = {
    "METRICS_FILE": "evaluate",
    "EVAL_VERSION": "evaluate",
    "PAIRS_FILE": "evaluate",
    "source_groups": "evaluate",
    "indexed_vectors": "evaluate",
    "stored_vectors": "evaluate",
    "evaluate_build": "evaluate",
    "METRIC_KEYS": "metrics",
    "group_codes": "metrics",
    "relevant_ranks": "metrics",
    "summarize": "metrics",
    "leave_one_out": "metrics",
    "pair_recall": "metrics",
    "LAYOUT_SIDE": "rerank",
    "COLOUR_BINS": "rerank",
    "RerankParams": "rerank",
    "colour_histogram": "rerank",
    "layout_map": "rerank",
    "cues": "rerank",
    "combine": "rerank",
    "SearchHit": "searcher",
    "SearchParams": "searcher",
    "Searcher": "searcher",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
