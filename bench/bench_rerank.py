"""Stage-2 re-ranking (issue 12): quality on the dev brand bench and the dev copy set, with and
without each term, and the re-ranker's latency for 1,000 candidates.

    python bench/bench_rerank.py --copies /tmp/bench/copy_dev.parquet \
        --bench ../shared/bench/logo_bench_dev.parquet --out bench/results/rerank.json

Protocol (notes/issue-12-rerank.md):
- every image of the copy set (= the dev bench + 1,500 edited copies) is embedded once by the
  library's embedder with local descriptors on (the same graph ``logosim build`` runs);
- splits come from the splits flow's function on each file (groups never cross splits); the
  global PCA is fitted on each file's train split, as a build does;
- a query's candidates are the exact top K (1,000) of the global descriptor, itself excluded;
- weights are chosen on **train-split** queries (both benches, mean R@1) and reported on the
  **test-split** queries; the copy set's test split is small (120 queries), so R@1 over all
  3,000 copy queries is shown too (in-sample for the weights: 3 numbers fitted);
- query variants (mirror, 90° turns) are embedded for the test-split queries and a sample of
  the train-split ones only (what a query pays at query time);
- the benchmark files carry no word elements (``id``/``name`` are file names), so the text
  term is absent here: only its latency is measured, on synthetic names.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec, open_source
from logosim.data.splits import SplitsParams, assign_splits, read_items
from logosim.embed.embedder import Embedder
from logosim.embed.local_features import Layout
from logosim.embed.params import EmbedParams
from logosim.embed.pca import PCAParams, fit_pca
from logosim.search.composite import CompositeParams, composite, spatial_scores
from logosim.search.stage2 import query_variants, rerank_candidates

LAYOUT = Layout()


def embed_all(path: str, cache: Path) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    file = cache / "gallery.npz"
    if file.exists():
        with np.load(file) as d:
            return d["ids"].tolist(), d["features"], d["blocks"], float(d["throughput"])
    embedder = Embedder(EmbedParams(local=True))
    result = embedder.embed_records(open_source(SourceSpec(path=path)).records(), desc="gallery")
    blocks = result.local_blocks()
    features = result.matrix(embedder.dim)
    np.savez(file, ids=np.array(result.ids), features=features, blocks=blocks,
             throughput=result.throughput)  # fmt: skip
    return result.ids, features, blocks, result.throughput


def splits_of(path: str) -> dict[str, tuple[str, str]]:
    params = SplitsParams()
    items = read_items(open_source(SourceSpec(path=path, group_column="group")), params)
    assign_splits(items, params)
    return {it.id: (it.group or "", it.split) for it in items}


def embed_variants(path: str, rows: np.ndarray, variants: list[str], cache: Path):
    file = cache / f"variants-{'-'.join(variants)}-{len(rows)}.npz"
    if file.exists():
        with np.load(file) as d:
            return d["features"], d["blocks"]
    import pyarrow.parquet as pq

    images = pq.read_table(path, columns=["image"]).column("image")
    embedder = Embedder(EmbedParams(local=True))
    feats, blocks = [], []
    for start in range(0, len(rows), 16):
        batch = [v for r in rows[start : start + 16]
                 for v in query_variants(decode_image(images[int(r)].as_py()), variants)]  # fmt: skip
        f, b = embedder.embed_images_local(batch)
        feats.append(f)
        blocks.append(b)
    n = 1 + len(variants)
    features = np.concatenate(feats).reshape(len(rows), n, -1)
    out = np.concatenate(blocks).reshape(len(rows), n, *blocks[0].shape[1:])
    np.savez(file, features=features, blocks=out)
    return features, out


def components(bench, ids, features, blocks, qrows, vfeat, vblocks, k):
    """Per query: candidates, and the global (V, K), spatial (2, V, K), colour (K,) terms."""
    split = bench["split"]
    train = {i for i, (_, s) in split.items() if s == "train"}
    pca = fit_pca([(np.array(ids), features)], PCAParams(), train_ids=train)
    g = pca.transform(features)
    gal = np.array([i in split for i in ids])
    galrows = np.flatnonzero(gal)
    out = []
    for n, r in enumerate(qrows):
        sims = g[galrows] @ g[r]
        sims[galrows == r] = -9
        top = np.argpartition(-sims, k)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        cand = galrows[top]
        qv = pca.transform(vfeat[n])  # (V, D): the original first
        qb = vblocks[n]
        cb = blocks[cand]
        out.append({
            "cand": cand,
            "global": qv @ g[cand].T,
            "patches": spatial_scores(qb, cb, LAYOUT, "patches"),
            "regions": spatial_scores(qb, cb, LAYOUT, "regions"),
            "colour": cb[:, LAYOUT.colour].astype(np.float32) @ qb[0, LAYOUT.colour].astype(np.float32),
        })  # fmt: skip
    return out


def recall(comps, groups, qrows, params: CompositeParams, use_variants: bool, ks=(1, 10)):
    hits = {k: [] for k in ks}
    for c, r in zip(comps, qrows, strict=True):
        v = len(c["global"]) if use_variants else 1
        if params.enabled:
            spatial = (
                c[params.spatial]
                if params.spatial != "both"
                else 0.5 * (c["patches"] + c["regions"])
            )
            scored = composite(c["global"][:v], params, spatial=spatial[:v],
                               colour=c["colour"] if params.weight_colour > 0 else None)  # fmt: skip
            order = scored.order
        else:
            order = np.argsort(-c["global"][:v].max(axis=0), kind="stable")
        rel = groups[c["cand"][order]] == groups[r]
        for k in ks:
            hits[k].append(bool(rel[:k].any()))
    return {f"recall@{k}": round(float(np.mean(h)), 4) for k, h in hits.items()}


def latency(blocks: np.ndarray, cache: Path, k: int, variants: int, runs: int = 200):
    """Re-rank K candidates gathered from a memory-mapped file (sorted rows), p50/p99 ms."""
    file = cache / "blocks.npy"
    if not file.exists():
        np.save(file, blocks)
    mm = np.load(file, mmap_mode="r")
    rng = np.random.default_rng(0)
    params = CompositeParams(enabled=True)
    times = []
    for _ in range(runs):
        rows = np.sort(rng.choice(len(mm), k, replace=False))
        q = np.asarray(mm[rng.choice(len(mm), variants)])
        started = time.perf_counter()
        cb = np.asarray(mm[rows])
        rerank_candidates(rng.random(k).astype(np.float32), params,
                          variant_globals=rng.random((variants - 1, k)).astype(np.float32),
                          query_blocks=q, cand_blocks=cb, cand_ok=np.ones(k, bool))  # fmt: skip
        times.append(time.perf_counter() - started)
    t = np.array(times) * 1000
    return {
        "p50_ms": round(float(np.percentile(t, 50)), 2),
        "p99_ms": round(float(np.percentile(t, 99)), 2),
    }


def text_latency(k: int, runs: int = 100):
    from logosim.search.phonetic import TextTable

    rng = np.random.default_rng(0)
    syll = ["ka", "lo", "mi", "ter", "vex", "an", "dro", "ly", "fit", "kwik", "son", "tek"]
    names = [" ".join("".join(rng.choice(syll, rng.integers(1, 4))) for _ in range(rng.integers(1, 3)))
             for _ in range(k)]  # fmt: skip
    started = time.perf_counter()
    table = TextTable(names)
    build = (time.perf_counter() - started) / k * 1000
    q = table.query("Kwik Fit")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        table.scores(q, np.arange(k))
        times.append(time.perf_counter() - started)
    t = np.array(times) * 1000
    return {"method": table.method, "index_ms_per_name": round(build, 3),
            "p50_ms": round(float(np.percentile(t, 50)), 2), "p99_ms": round(float(np.percentile(t, 99)), 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", default="/tmp/bench/copy_dev.parquet")
    ap.add_argument("--bench", default="../shared/bench/logo_bench_dev.parquet")
    ap.add_argument("--cache", default="/tmp/bench_rerank")
    ap.add_argument("--out", default="bench/results/rerank.json")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--variants", default="flip,rot90,rot270")
    ap.add_argument("--train-sample", type=int, default=400)
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    variants = [v for v in args.variants.split(",") if v]
    ids, features, blocks, throughput = embed_all(args.copies, cache)
    pos = {v: i for i, v in enumerate(ids)}
    benches = {
        "copies": {"split": splits_of(args.copies)},
        "brands": {"split": splits_of(args.bench)},
    }
    rng = np.random.default_rng(0)
    for b in benches.values():
        sp = b["split"]
        count = Counter(g for g, _ in sp.values() if g)
        b["groups"] = np.array([sp.get(i, ("", ""))[0] or f"-{i}" for i in ids])
        qs = [i for i, (g, _) in sp.items() if g and count[g] >= 2]
        b["test"] = np.array(sorted(pos[i] for i in qs if sp[i][1] == "test"))
        train = [pos[i] for i in qs if sp[i][1] == "train"]
        b["train"] = np.sort(rng.choice(train, min(args.train_sample, len(train)), replace=False))
        b["all"] = np.array(sorted(pos[i] for i in qs))
    qrows = np.unique(np.concatenate([b[s] for b in benches.values() for s in ("test", "train")]))
    vfeat, vblocks = embed_variants(args.copies, qrows, variants, cache)
    at = {r: n for n, r in enumerate(qrows)}
    report: dict = {"embed_throughput_img_s": round(throughput, 1), "k": args.k,
                    "variants": variants, "storage_bytes_per_image": int(blocks[0].nbytes)}  # fmt: skip
    comps = {}
    for name, b in benches.items():
        rows = np.concatenate([b["test"], b["train"]])
        sel = [at[r] for r in rows]
        c = components(b, ids, features, blocks, rows, vfeat[sel], vblocks[sel], args.k)
        comps[name] = {"test": c[: len(b["test"])], "train": c[len(b["test"]) :]}
        if name == "copies":  # every copy query, without variants (the reference protocol)
            allrows = b["all"]
            one_f = features[allrows][:, None]
            one_b = blocks[allrows][:, None]
            comps[name]["all"] = components(b, ids, features, blocks, allrows, one_f, one_b, args.k)
    # the weights: chosen on train-split queries (mean R@1 over both benches)
    grid = []
    for ws, wc, spatial, var in itertools.product(
        (0.0, 0.05, 0.1, 0.2, 0.35), (0.0, 0.05, 0.1, 0.2), ("patches", "regions"), (False, True)
    ):
        p = CompositeParams(enabled=True, weight_global=0.5, weight_spatial=ws, weight_text=0.1,
                            weight_colour=wc, spatial=spatial)  # fmt: skip
        score = np.mean([recall(comps[n]["train"], benches[n]["groups"], benches[n]["train"], p, var)["recall@1"]
                         for n in benches])  # fmt: skip
        grid.append((score, ws, wc, spatial, var))
    best = max(grid, key=lambda x: x[0])
    fitted = CompositeParams(enabled=True, weight_global=0.5, weight_spatial=best[1],
                             weight_colour=best[2], spatial=best[3])  # fmt: skip
    configs = {
        "global (no re-rank)": (CompositeParams(enabled=False), False),
        "global + variants": (CompositeParams(enabled=False), True),
        "composite, issue weights (0.50/0.35/-/0.05), patches": (CompositeParams(enabled=True), False),
        "composite, issue weights + variants": (CompositeParams(enabled=True), True),
        "fitted": (fitted, best[4]),
        "fitted − spatial": (fitted.model_copy(update={"weight_spatial": 0.0}), best[4]),
        "fitted − colour": (fitted.model_copy(update={"weight_colour": 0.0}), best[4]),
        "fitted − variants": (fitted, False),
        "spatial only (patches)": (CompositeParams(enabled=True, weight_global=0.0, weight_colour=0.0), False),
        "spatial only (regions)": (CompositeParams(enabled=True, weight_global=0.0, weight_colour=0.0, spatial="regions"), False),
    }  # fmt: skip
    report["fitted"] = {
        "train_mean_r1": round(best[0], 4),
        **fitted.model_dump(),
        "variants_on": best[4],
    }
    report["quality"] = {}
    for label, (p, var) in configs.items():
        row = {}
        for n, b in benches.items():
            row[f"{n}_test"] = recall(comps[n]["test"], b["groups"], b["test"], p, var)
            if n == "copies" and not var:
                row["copies_all"] = recall(comps[n]["all"], b["groups"], b["all"], p, False)
        report["quality"][label] = row
        print(
            f"{label:55s} " + "  ".join(f"{k}: R@1 {v['recall@1']:.3f}" for k, v in row.items()),
            flush=True,
        )
    report["queries"] = {
        n: {s: len(b[s]) for s in ("test", "train", "all")} for n, b in benches.items()
    }
    report["latency_1000"] = {
        f"V={v}": latency(blocks, cache, args.k, v) for v in (1, 1 + len(variants))
    }
    report["text_latency_1000"] = text_latency(args.k)
    print(
        json.dumps(
            {k: report[k] for k in ("fitted", "latency_1000", "text_latency_1000", "queries")},
            indent=1,
        )
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
