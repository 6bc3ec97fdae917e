"""The evaluate flow: build (or reuse, via the cache) the index over a source with known
groups, then measure leave-one-out retrieval quality of its stored vectors."""

from __future__ import annotations

import argparse

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows._verified import run_verified
from flows.build import BuildParams, build_flow
from logosim.evaluate import PAIRS_FILE, TEST_METRICS_FILE
from logosim.index import describe_dba
from logosim.sources import SourceSpec
from logosim.store import ArtifactStore
from tasks.evaluate import evaluate_task


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params: BuildParams | None = None) -> dict:
    params = params or BuildParams()
    built = build_flow(params)
    store = ArtifactStore(built.store)
    manifest = run_verified(evaluate_task, str(store.root), source=params.source, index=built.index)
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run the evaluate flow.")
    parser.add_argument("--source", required=True)
    parser.add_argument("--group-column", default="group")
    parser.add_argument("--store", default=None)
    args = parser.parse_args()
    spec = SourceSpec(path=args.source, group_column=args.group_column)
    print(evaluate_flow(BuildParams(source=spec, store=args.store)))
