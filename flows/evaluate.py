"""The evaluate flow: build (or reuse, via the cache) the index over a source with known
groups, then measure leave-one-out retrieval quality of its stored vectors."""

from __future__ import annotations

import argparse

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows._verified import run_verified
from flows.build import BuildParams, build_flow
from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec
from logosim.index.params import describe_dba
from logosim.search.evaluate import PAIRS_FILE
from tasks.evaluate import evaluate_task


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params: BuildParams | None = None) -> dict:
    params = params or BuildParams()
    built = build_flow(params)
    store = ArtifactStore(built.store)
    manifest = run_verified(evaluate_task, str(store.root), source=params.source, index=built.index)
    metrics = store.read_json(manifest)
    rows = [
        {"metric": k, "value": round(v, 4) if isinstance(v, float) else v}
        for k, v in metrics.items()
    ]
    rows.append({"metric": "α-DBA", "value": describe_dba(built.index.meta.get("dba"))})
    pairs = store.load_verified(PAIRS_FILE)
    if pairs is not None:
        rows += [{"metric": f"val {k}", "value": v} for k, v in store.read_json(pairs).items()]
    create_table_artifact(rows, key="evaluation", description="Leave-one-out retrieval quality")
    print(f"metrics: {store.path(manifest.path)}")
    return metrics


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run the evaluate flow.")
    parser.add_argument("--source", required=True)
    parser.add_argument("--group-column", default="group")
    parser.add_argument("--store", default=None)
    args = parser.parse_args()
    spec = SourceSpec(path=args.source, group_column=args.group_column)
    print(evaluate_flow(BuildParams(source=spec, store=args.store)))
