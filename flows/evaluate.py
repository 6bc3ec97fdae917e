"""The evaluate flow: build (or reuse, via the cache) the index over a source with known
groups, then measure leave-one-out retrieval quality of its stored vectors."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows._verified import run_verified
from flows.build import BuildParams, build_flow
from logosim.core.store import ArtifactStore
from logosim.index.params import describe_dba
from logosim.search.evaluate import PAIRS_FILE, TEST_METRICS_FILE
from tasks.evaluate import evaluate_task


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params: BuildParams | None = None) -> dict:
    params = params or BuildParams()
    built = build_flow(params)
    store = ArtifactStore(built.store)
    rerank = params.rerank.model_dump(mode="json") if params.rerank.enabled else None
    manifest = run_verified(
        evaluate_task, str(store.root), source=params.source, index=built.index, rerank=rerank
    )
    metrics = store.read_json(manifest)
    test = store.load_verified(TEST_METRICS_FILE)
    test_metrics = store.read_json(test) if test else {}
    rows = [
        {
            "metric": k,
            "all queries": round(v, 4) if isinstance(v, float) else v,
            "test-split queries": round(t, 4) if isinstance(t := test_metrics.get(k), float) else t,
        }
        for k, v in metrics.items()
    ]
    rows.append({"metric": "α-DBA", "all queries": describe_dba(built.index.meta.get("dba"))})
    pairs = store.load_verified(PAIRS_FILE)
    if pairs is not None:
        pair_rows = store.read_json(pairs).items()
        rows += [{"metric": f"val {k}", "all queries": v} for k, v in pair_rows]
    create_table_artifact(
        rows,
        key="evaluation",
        description="Leave-one-out retrieval quality: every grouped image as a query, and only "
        "the test split's (images the PCA never saw)",
    )
    print(f"metrics: {store.path(manifest.path)}")
    return metrics | ({"test_split": test_metrics} if test_metrics else {})
