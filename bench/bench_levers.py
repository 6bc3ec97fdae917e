"""Inference-time levers for issue 16, each through the real pipeline (build: embed →
train-split PCA → α-DBA/QE index; evaluate: leave-one-out) on the dev bench's test split and
on the dev copy-detection set. One store per setting and source under ``--stores``.
Merges its figures into bench/results/levers.json.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_levers.py trim --normalize trim

Descriptor settings after the embedding (PCA, α-DBA) are levers too: ``--pca`` / ``--index``
take JSON updates of ``PCAParams`` / ``IndexParams``, and ``--reuse NAME`` starts each store
from setting NAME's embeddings (same embed settings), so only PCA, index and evaluation run:

    bench/bench_levers.py v3-dba3 --reuse v3-same --index '{"dba_neighbours": 3}'

With the logo weights the PCA stage publishes their shipped projection (learned whitening);
``--pca '{"projection": "collection"}'`` fits a PCA on each store's train split instead.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from bench_data import COPY_SET, DEV_BENCH, rounded

import flows  # noqa: F401  (Prefect defaults before Prefect is imported)
from flows.build import BuildParams
from flows.evaluate import evaluate_flow
from logosim.data.sources import SourceSpec
from logosim.embed.params import EmbedParams
from logosim.embed.pca import PCAParams
from logosim.index.params import IndexParams

RESULTS = Path(__file__).parent / "results" / "levers.json"
KEYS = ("recall@1", "recall@10", "recall@100", "map", "nar", "queries")


# What an embedding pass leaves in a store; the rest is rebuilt from it.
EMBEDDING_PARTS = ("splits", "stats", "embeddings", "local", "errors")  # errors/: a chunk's log


def reuse(done: Path, store: Path) -> None:
    """Start ``store`` from the embeddings of ``done`` (a store of the same embed settings)."""
    if store.exists():
        return
    store.mkdir(parents=True)
    for part in EMBEDDING_PARTS:
        for path in done.glob(part + "*"):
            copy = shutil.copytree if path.is_dir() else shutil.copy2
            copy(path, store / path.name)


def run(
    source: str,
    store: Path,
    embed: EmbedParams,
    pca: PCAParams,
    index: IndexParams,
    text_mask: bool = False,
) -> tuple[dict, float]:
    params = BuildParams(
        source=SourceSpec(path=source, group_column="group"),
        store=str(store),
        embed=embed,
        pca=pca,
        index=index,
        text_mask=text_mask,
    )
    started = time.perf_counter()
    metrics = evaluate_flow(params)
    return metrics, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="Name of the setting in levers.json.")
    parser.add_argument("--normalize", default="pad")
    parser.add_argument("--model", default=EmbedParams().model)
    parser.add_argument("--weights", default=EmbedParams().weights)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--blur", type=float, default=EmbedParams().blur, help="Input blur σ.")
    parser.add_argument("--stores", type=Path, default=Path("/tmp/tuned-stores"))
    parser.add_argument("--skip-copies", action="store_true")
    parser.add_argument("--pca", type=json.loads, default={}, help="PCAParams update (JSON).")
    parser.add_argument("--index", type=json.loads, default={}, help="IndexParams update (JSON).")
    parser.add_argument("--reuse", help="Start from this setting's embeddings.")
    parser.add_argument("--text-mask", action="store_true", help="OCR and inpaint text first.")
    args = parser.parse_args()
    pca = PCAParams().model_copy(update=args.pca)
    index = IndexParams().model_copy(update=args.index)
    embed = EmbedParams(
        model=args.model,
        weights=args.weights,
        image_size=args.image_size,
        normalize=args.normalize,
        blur=args.blur,
    )
    entry: dict = {
        "embed": embed.model_dump(include={"model", "weights", "image_size", "normalize", "blur"})
    }
    entry |= {"pca": args.pca, "index": args.index} if args.pca or args.index else {}
    entry |= {"text_mask": True} if args.text_mask else {}

    def store(kind: str) -> Path:
        path = args.stores / f"{args.name}-{kind}"
        if args.reuse:
            reuse(args.stores / f"{args.reuse}-{kind}", path)
        return path

    bench, seconds = run(DEV_BENCH, store("bench"), embed, pca, index, args.text_mask)
    entry["test_split"] = rounded(bench.get("test_split", {}), KEYS)
    entry["all_queries"] = rounded(bench, KEYS)
    entry["bench_seconds"] = round(seconds, 1)
    if not args.skip_copies:
        copies, seconds = run(COPY_SET, store("copy"), embed, pca, index, args.text_mask)
        entry["copies"] = rounded(copies, KEYS)
        entry["copy_seconds"] = round(seconds, 1)
    print(json.dumps(entry, indent=1))
    report = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    report[args.name] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
