"""Does the OCR words' text term help stage 2 (issue 12)? The dev bench and the dev copy set
carry no word elements (``id``/``name``/``collection`` are file names, never read as text), so
the only text a mark has here is what Tesseract reads on its image, as the preprocess stage
stores it (``logosim.preprocess.ocr_words``).

    flock /tmp/logosim-heavy.lock python bench/bench_rerank_ocr.py --ocr-only --budget-s 540
    python bench/bench_rerank_ocr.py --out bench/results/rerank_ocr.json

1. OCR every image of the copy set (dev bench + copies) with the preprocess stage's own
   analysis (default settings: prefilter on, psm 11), resumable in time-boxed runs
   (``--budget-s``), words cached in ``<cache>/ocr_words.parquet``;
2. the components of ``bench_rerank.py`` (same cache: embeddings, splits, candidates);
3. the text term = vectorised ALINE over the OCR words (absent where either side has none);
   its weight is chosen on **train-split** queries and reported on the **test split**, on top
   of the global score alone and of the composite fitted in ``rerank_logo.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from bench_rerank import components, embed_all, embed_variants, splits_of

from logosim.preprocess.ocr_pool import OcrPool
from logosim.preprocess.ocr_words import reading_order
from logosim.preprocess.stage import OcrItem, PreprocessParams, analyse_records
from logosim.search.composite import CompositeParams, composite
from logosim.search.phonetic import TextTable


def ocr_words(
    path: str, cache: Path, budget_s: float, first: set[str] | None = None
) -> dict[str, str]:
    """id → OCR words for every image done so far (resumes where the last run stopped);
    the ids in ``first`` are read before the others."""
    file = cache / "ocr_words.parquet"
    done: dict[str, str] = {}
    if file.exists():
        t = pq.read_table(file)
        done = dict(zip(t.column("id").to_pylist(), t.column("words").to_pylist(), strict=True))
    table = pq.read_table(path, columns=["id", "image"])
    marks = table.column("id").to_pylist()
    todo = [i for i, mark in enumerate(marks) if mark not in done]
    if first:
        todo.sort(key=lambda i: marks[i] not in first)  # stable: file order within each part
    if not todo or budget_s <= 0:
        return done
    params = PreprocessParams()
    started = time.perf_counter()
    ids, images = table.column("id"), table.column("image")
    with OcrPool(params.workers, timeout_s=params.ocr.timeout_s) as pool:
        for start in range(0, len(todo), 200):
            batch = [
                OcrItem(ids[i].as_py(), "", images[i].as_py(), None)
                for i in todo[start : start + 200]
            ]
            for result in analyse_records(batch, params, pool):
                done[result.id] = reading_order(result.boxes)
            pq.write_table(pa.table({"id": list(done), "words": list(done.values())}), file)
            rate = (start + len(batch)) / (time.perf_counter() - started)
            print(f"OCR {len(done)}/{len(table)} ({rate:.1f} img/s)", flush=True)
            if time.perf_counter() - started > budget_s:
                break
    return done


def recall1(comps, groups, qrows, params: CompositeParams, text, use_variants: bool) -> float:
    hits = []
    for c, r, t in zip(comps, qrows, text, strict=True):
        v = len(c["global"]) if use_variants else 1
        spatial = c[params.spatial] if params.weight_spatial > 0 else None
        scored = composite(
            c["global"][:v],
            params,
            spatial=None if spatial is None else spatial[:v],
            colour=c["colour"] if params.weight_colour > 0 else None,
            text=t if params.weight_text > 0 else None,
        )
        hits.append(bool(groups[c["cand"][scored.order[0]]] == groups[r]))
    return round(float(np.mean(hits)), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", default="/tmp/bench/copy_dev.parquet")
    ap.add_argument("--bench", default="../shared/bench/logo_bench_dev.parquet")
    ap.add_argument("--cache", default="/tmp/bench_rerank_logo")
    ap.add_argument("--ocr-cache", default="/tmp/engine-ocr")
    ap.add_argument("--fitted", default="bench/results/rerank_logo.json")
    ap.add_argument("--out", default="bench/results/rerank_ocr.json")
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--variants", default="flip,rot90,rot270")
    ap.add_argument("--train-sample", type=int, default=400)
    ap.add_argument("--budget-s", type=float, default=540)
    ap.add_argument("--ocr-only", action="store_true")
    ap.add_argument(
        "--partial",
        action="store_true",
        help="score with the words read so far: every query and its group's members first, "
        "other images only as far as the budget went (they count as text-absent)",
    )
    ap.add_argument("--coverage", help="write the light coverage report (no embeddings) here")
    args = ap.parse_args()
    ocr_cache = Path(args.ocr_cache)
    ocr_cache.mkdir(parents=True, exist_ok=True)
    if args.coverage:
        coverage(args.copies, args.bench, ocr_words(args.copies, ocr_cache, 0), Path(args.coverage))
        return
    cache = Path(args.cache)
    ids, features, blocks, _ = embed_all(args.copies, cache)
    pos = {v: i for i, v in enumerate(ids)}
    benches = {
        "copies": {"split": splits_of(args.copies)},
        "brands": {"split": splits_of(args.bench)},
    }
    rng = np.random.default_rng(0)  # the same query samples as bench_rerank.py
    for b in benches.values():
        sp = b["split"]
        count = Counter(g for g, _ in sp.values() if g)
        b["groups"] = np.array([sp.get(i, ("", ""))[0] or f"-{i}" for i in ids])
        qs = [i for i, (g, _) in sp.items() if g and count[g] >= 2]
        b["test"] = np.array(sorted(pos[i] for i in qs if sp[i][1] == "test"))
        train = [pos[i] for i in qs if sp[i][1] == "train"]
        b["train"] = np.sort(rng.choice(train, min(args.train_sample, len(train)), replace=False))
    first: set[str] = set()  # the queries and every member of their groups
    for b in benches.values():
        asked = {b["groups"][r] for part in ("test", "train") for r in b[part]}
        first |= {ids[r] for r in np.flatnonzero(np.isin(b["groups"], list(asked)))}
    words = ocr_words(args.copies, ocr_cache, args.budget_s, first)
    total = len(ids)
    if args.ocr_only or (len(words) < total and not (args.partial and first <= set(words))):
        print(f"OCR words for {len(words)} of {total} images; run again to finish")
        return
    table = TextTable([words.get(i) for i in ids])
    with_text = int((table.lengths > 0).sum())
    variants = [v for v in args.variants.split(",") if v]
    qrows = np.unique(np.concatenate([b[s] for b in benches.values() for s in ("test", "train")]))
    vfeat, vblocks = embed_variants(args.copies, qrows, variants, cache)
    at = {r: n for n, r in enumerate(qrows)}
    comps, texts = {}, {}
    for name, b in benches.items():
        for split in ("test", "train"):
            rows = b[split]
            sel = [at[r] for r in rows]
            c = components(b, ids, features, blocks, rows, vfeat[sel], vblocks[sel], args.k)
            comps[(name, split)] = c
            texts[(name, split)] = [
                table.scores(_query(table, r), ci["cand"]) for ci, r in zip(c, rows, strict=True)
            ]
    fitted_cfg = json.loads(Path(args.fitted).read_text())["fitted"]
    use_var = bool(fitted_cfg.pop("variants_on", False))
    fitted_cfg.pop("train_mean_r1", None)
    bases = {
        "global only": (CompositeParams(enabled=True, weight_spatial=0, weight_colour=0), False),
        "fitted composite": (CompositeParams.model_validate(fitted_cfg), use_var),
    }
    report: dict = {"images": len(ids), "ocr_read": len(words), "queries_and_groups": len(first),
                    "with_ocr_words": with_text, "method": table.method,
                    "queries": {n: {s: len(b[s]) for s in ("test", "train")} for n, b in benches.items()}}  # fmt: skip
    for label, (base, var) in bases.items():
        rows = {}
        for wt in (0.0, 0.05, 0.1, 0.2, 0.35):
            p = base.model_copy(update={"weight_text": wt})
            row = {f"{n}_{s}": recall1(comps[(n, s)], benches[n]["groups"], benches[n][s], p, texts[(n, s)], var)
                   for n in benches for s in ("train", "test")}  # fmt: skip
            row["train_mean"] = round((row["copies_train"] + row["brands_train"]) / 2, 4)
            rows[str(wt)] = row
            print(
                f"{label:18s} w_text {wt:<5} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()),
                flush=True,
            )
        best = max(rows, key=lambda w: rows[w]["train_mean"])
        report[label] = {"by_weight_text": rows, "fitted_weight_text": float(best),
                         "test_at_fitted": {k: v for k, v in rows[best].items() if k.endswith("test")},
                         "test_without_text": {k: v for k, v in rows["0.0"].items() if k.endswith("test")}}  # fmt: skip
    queried = [r for b in benches.values() for r in np.concatenate([b["test"], b["train"]])]
    report["queries_with_words"] = round(float(np.mean([table.lengths[r] > 0 for r in queried])), 4)
    print(json.dumps({k: v for k, v in report.items() if k not in bases}, indent=1))
    Path(args.out).write_text(json.dumps(report, indent=1))


def coverage(path: str, bench: str, words: dict[str, str], out: Path) -> None:
    """Without embeddings (light): for every grouped query whose image was OCR'd, does it
    have words, and does a relevant image (its group) have words that sound alike? That
    bounds how many queries a text term could move at all."""
    ids = [i for i in pq.read_table(path, columns=["id"]).column("id").to_pylist() if i in words]
    table = TextTable([words[i] for i in ids])
    at = {m: n for n, m in enumerate(ids)}
    rng = np.random.default_rng(0)
    report: dict = {"ocr_read": len(ids), "with_words": int((table.lengths > 0).sum())}
    for name, file in (("copies", path), ("brands", bench)):
        split = splits_of(file)
        members: dict[str, list[int]] = {}
        for mark, (group, _) in split.items():
            if group and mark in at:
                members.setdefault(group, []).append(at[mark])
        queries = [(m, g) for m, (g, _) in split.items() if g and m in at and len(members[g]) >= 2]
        with_words = [(m, g) for m, g in queries if table.lengths[at[m]] > 0]
        sound_alike = 0
        for m, g in with_words:
            others = np.array([r for r in members[g] if r != at[m]])
            sims = table.scores(_query(table, at[m]), others)
            sound_alike += bool(np.nanmax(sims, initial=0.0) >= 0.5)
        worded = np.flatnonzero(table.lengths > 0)
        false_hits = []
        for m, g in with_words[:300]:  # unrelated worded images that sound alike
            sample = rng.choice(worded, min(200, len(worded)), replace=False)
            sample = sample[[ids[r] not in split or split[ids[r]][0] != g for r in sample]]
            false_hits.append(float(np.mean(table.scores(_query(table, at[m]), sample) >= 0.5)))
        report[name] = {
            "queries_read": len(queries),
            "with_words": len(with_words),
            "relevant_sounds_alike": sound_alike,
            "unrelated_sounds_alike_share": round(float(np.mean(false_hits or [0])), 4),
        }
        print(name, report[name], flush=True)
    out.write_text(json.dumps(report, indent=1))


def _query(table: TextTable, row: int):
    """The query's own codes from the table (its OCR words, phonemised once)."""
    n = int(table.lengths[row])
    if not n:
        return None
    return table.codes[row, :n], float(table.self_scores[row])


if __name__ == "__main__":
    main()
