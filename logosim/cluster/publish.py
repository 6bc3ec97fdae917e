"""Drawing a clustering run for people: tables, folders, pictures, ``summary.json`` and
``report.html`` in the output folder, from the run's arrays artifact (nothing recomputed)."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from loguru import logger
from PIL import Image

from logosim.cluster import pictures
from logosim.cluster.outputs import (
    Placement,
    clusters_table,
    folder_name,
    prepare_out_dir,
    read_marker,
    write_duplicates,
    write_failed,
    write_folder_sheets,
    write_folders,
    write_marker,
    write_tables,
)
from logosim.cluster.report import ClusterEntry, write_report
from logosim.cluster.vectors import failed_images, read_metadata
from logosim.core.store import ArtifactStore, Manifest, atomic_write_bytes
from logosim.data.sources import SourceSpec

SAMPLE_ROWS, SAMPLE_COLUMNS = 12, 10  # cluster_samples.png
MAP_MEDOIDS = 30  # thumbnails on umap.png
REPORT_CLUSTERS, REPORT_THUMBS = 150, 10  # clusters listed with thumbnails in report.html
REPORT_DUPLICATES = 20
SUMMARY_FILE = "summary.json"
OUTPUTS_VERSION = "3"  # bump when the outputs change: folders holding an older drawing are redrawn


def quality_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per method: the terminal table, the report's table, the Prefect artifact."""
    rows = []
    for method, f in summary["methods"].items():
        row = {
            "method": method,
            "clusters": f["clusters"],
            "largest": f["largest"],
            "median size": f["median_size"],
            "noise share": f["noise_share"],
            "silhouette": f["silhouette"],
        }
        for key in ("ari", "nmi", "purity"):
            if key in f:
                row[key] = f[key]
        row["seconds"] = summary["seconds"].get(method, 0.0)
        rows.append(row)
    return rows


def _top_group(ids: list[str], groups: dict[str, str]) -> str:
    counted = Counter(groups[i] for i in ids if groups.get(i))
    if not counted:
        return ""
    group, count = counted.most_common(1)[0]
    return f"{group} ({count}/{len(ids)})"


def publish_run(
    store: ArtifactStore,
    result: Manifest,
    source: SourceSpec,
    out: Path,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write every output of the run ``result`` under ``out``; return the summary. A folder
    that already holds this run complete is left as it is."""
    started = time.perf_counter()
    key = f"{result.meta['key']}-outputs{OUTPUTS_VERSION}"
    summary = dict(result.meta["summary"])
    out = out.expanduser().resolve()
    if prepare_out_dir(out, key, overwrite):
        logger.info(f"cluster outputs: {out} is up to date")
        return json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    write_marker(out, key, list((read_marker(out) or {}).get("files", [])), complete=False)
    arrays = store.read_arrays(result)
    ids = arrays["ids"].tolist()
    methods = list(summary["methods"])
    primary = methods[0]
    labels = arrays[f"{primary}_labels"]
    closeness = arrays[f"{primary}_closeness"]
    metadata = read_metadata(source)
    failed = failed_images(store, metadata.ids, ids)
    files = write_tables(out, clusters_table(arrays, methods, metadata))
    write_duplicates(out, arrays, primary)
    write_failed(out, failed)
    files += ["duplicates.csv", "failed.csv"]

    width = len(str(max(int(labels.max()), 0)))
    placement = Placement({i: folder_name(int(c), width) for i, c in zip(ids, labels, strict=True)})
    n_clusters = int(labels.max()) + 1
    sample_rows = [
        pictures.best_members(labels, closeness, c, SAMPLE_COLUMNS)
        for c in range(min(SAMPLE_ROWS, n_clusters))
    ]
    listed = [
        pictures.best_members(labels, closeness, c, REPORT_THUMBS)
        for c in range(min(REPORT_CLUSTERS, n_clusters))
    ]
    heat_rows = arrays["heatmap_rows"]
    map_medoids = {m: arrays[f"{m}_medoids"][:MAP_MEDOIDS] for m in methods}
    dup = arrays["duplicate_group"]
    dup_rows = [np.flatnonzero(dup == g)[:8] for g in range(min(REPORT_DUPLICATES, dup.max() + 1))]
    wanted = {
        ids[i]
        for group in (*sample_rows, *listed, heat_rows, *map_medoids.values(), *dup_rows)
        for i in group
    }
    thumbs = write_folders(out, source, placement, wanted)
    probability = dict(zip(ids, arrays[f"{primary}_probability"].tolist(), strict=True))
    files += list(placement.files.values())
    files += write_folder_sheets(out, placement, probability)
    seconds_folders = time.perf_counter() - started

    def thumb(i: int) -> Image.Image | None:
        return thumbs.get(ids[i])

    groups = metadata.groups

    def members(c: int) -> list[str]:
        return [ids[i] for i in np.flatnonzero(labels == c)]

    pictures.samples_grid(
        out / "cluster_samples.png",
        [
            (
                f"cluster {c} · {int((labels == c).sum())} logos"
                + (f" · group {g}" if (g := _top_group(members(c), groups)) else ""),
                [thumb(i) for i in rows],
            )
            for c, rows in enumerate(sample_rows)
        ],
    )
    if len(heat_rows) > 1:
        pictures.heatmap(
            out / "similarity_heatmap.png",
            arrays["heatmap_vectors"],
            labels[heat_rows],
            [thumb(i) for i in heat_rows],
            f"Cosine similarity, {len(heat_rows)} logos from the largest {primary} clusters",
        )
        files.append("similarity_heatmap.png")
    images = [("Largest clusters", out / "cluster_samples.png")]
    if "similarity_heatmap.png" in files:
        images.append(("Similarity heatmap", out / "similarity_heatmap.png"))
    for method in methods:
        name = "umap.png" if method == primary else f"umap_{method}.png"
        method_labels = arrays[f"{method}_labels"]
        pictures.umap_map(
            out / name,
            arrays["xy"],
            method_labels,
            [(int(method_labels[i]), int(i), thumbs.get(ids[i])) for i in map_medoids[method]],
            f"UMAP, {method}",
        )
        files.append(name)
        images.append((f"UMAP map ({method})", out / name))
    files.append("cluster_samples.png")

    summary |= {
        "run": result.meta["run"],
        "source": source.path,
        "out": str(out),
        "failed": len(failed),
        "files": {
            "clusters_csv": "clusters.csv",
            "clusters_parquet": "clusters.parquet",
            "duplicates": "duplicates.csv",
            "failed": "failed.csv",
            "report": "report.html",
            "folders": "clusters/",
        },
        "folders": {"linked": placement.linked, "copied": placement.copied},
    }
    summary["seconds"] = dict(summary["seconds"]) | {
        "folders": round(seconds_folders, 3),
        "outputs": round(time.perf_counter() - started, 3),
    }
    entries = [
        ClusterEntry(
            label=c,
            size=int((labels == c).sum()),
            folder=f"clusters/{folder_name(c, width)}/index.html",
            top_group=_top_group(members(c), groups),
            thumbs=[(ids[i], thumb(i)) for i in rows],
            ids=[ids[i] for i in rows],
        )
        for c, rows in enumerate(listed)
    ]
    write_report(
        out / "report.html",
        f"Logo clusters — {source.path}",
        _facts(summary),
        quality_rows(summary),
        images,
        entries,
        max(0, n_clusters - len(entries)),
        [
            (g, int((dup == g).sum()), [(ids[i], thumb(i)) for i in rows])
            for g, rows in enumerate(dup_rows)
        ],
        summary["duplicates"]["groups"],
    )
    files.append("report.html")
    atomic_write_bytes(out / SUMMARY_FILE, json.dumps(_clean(summary), indent=1).encode())
    files.append(SUMMARY_FILE)
    write_marker(out, key, files, complete=True)
    return _clean(summary)


def _facts(summary: dict[str, Any]) -> list[tuple[str, str]]:
    dup = summary["duplicates"]
    return [
        ("images clustered", f"{summary['images']:,}"),
        ("failed to decode (not clustered)", f"{summary['failed']:,} (failed.csv)"),
        ("descriptor", f"{summary['dims']}-d"),
        (
            "near-duplicate groups",
            f"{dup['groups']:,} groups, {dup['images']:,} images (cosine ≥ {dup['threshold']})",
        ),
        ("run", summary["run"]),
        ("seconds", ", ".join(f"{k} {v:.1f}" for k, v in summary["seconds"].items())),
    ]


def _clean(value: Any) -> Any:
    """NaN → None, so summary.json is valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def summary_table(summary: dict[str, Any]) -> str:
    """The terminal summary: one line per method, then where the outputs are."""
    rows = quality_rows(summary)
    header = list(rows[0]) if rows else []
    cells = [[_cell(row[k]) for k in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = [
        "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
        *("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells),
    ]
    dup, out = summary["duplicates"], summary["out"]
    lines += [
        "",
        f"images clustered: {summary['images']:,}; failed to decode: {summary['failed']:,}; "
        f"near-duplicate groups (cosine ≥ {dup['threshold']}): {dup['groups']:,} "
        f"({dup['images']:,} images)",
        f"seconds: {summary['seconds']}",
        f"report:   {out}/report.html",
        f"clusters: {out}/clusters.csv, {out}/clusters/",
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
