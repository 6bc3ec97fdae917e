"""What a clustering run leaves for people: ``clusters.csv``/``.parquet``, ``duplicates.csv``,
``failed.csv``, one folder per cluster (hard links, else copies; ``noise/`` for HDBSCAN's
noise) with a small ``index.html`` contact sheet each, and ``summary.json``.

An output folder is never emptied: a ``.logosim-cluster.json`` marker lists the files a run
wrote, and only those are replaced by a later run (with ``overwrite``). A folder whose marker
names the same run is complete already: nothing is redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from loguru import logger
from PIL import Image

from logosim.cluster.params import ClusterError
from logosim.cluster.vectors import Metadata
from logosim.core.store import atomic_write_bytes
from logosim.data.decode import ImageDecodeError, decode_image
from logosim.data.sources import SourceSpec, open_source

MARKER = ".logosim-cluster.json"
OWN_FILES = {MARKER, "result.npz", "result.npz.manifest.json"}  # the store's own artifact
NOISE_FOLDER = "noise"
THUMB = 96
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10))} | {
    f"LPT{i}" for i in range(10)
}
_MAGIC = (
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"GIF8", ".gif"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def safe_name(record_id: str, max_len: int = 80) -> str:
    """A file name for ``record_id`` that every filesystem accepts: unsafe characters become
    ``_``; when anything changed, a short hash of the real id keeps names unique."""
    name = _UNSAFE.sub("_", record_id).strip("._") or "image"
    changed = name != record_id or len(name) > max_len or name.split(".")[0].upper() in _RESERVED
    if changed:
        digest = hashlib.sha1(record_id.encode()).hexdigest()[:8]
        name = f"{name[: max_len - 9]}-{digest}"
    return name


def image_suffix(data: bytes, ref: str = "") -> str:
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    suffix = Path(ref.split("#")[0]).suffix.lower()
    return suffix if suffix and len(suffix) <= 5 else ".img"


def folder_name(label: int, width: int) -> str:
    return NOISE_FOLDER if label < 0 else f"{label:0{width}d}"


# -- the output folder -------------------------------------------------------------------------
def read_marker(out: Path) -> dict | None:
    try:
        return json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def prepare_out_dir(out: Path, key: str, overwrite: bool) -> bool:
    """True when ``out`` already holds this run, complete. Otherwise make it ready: refuse a
    folder in use unless ``overwrite``, and then remove only files a previous run wrote."""
    marker = read_marker(out)
    if marker and marker.get("key") == key and marker.get("complete"):
        missing = [f for f in marker.get("files", []) if not (out / f).exists()]
        if not missing:
            return True
        logger.warning(f"{out}: {len(missing)} output files are gone; drawing them again")
    elif marker and marker.get("key") == key:
        pass  # this run, interrupted: its files are rewritten in place
    elif _in_use(out) and not overwrite:
        raise ClusterError(
            f"output folder {out} exists and is not empty; pass --overwrite to write there "
            "(only files an earlier cluster run wrote are replaced, nothing else is deleted) "
            "or choose another --out"
        )
    if out.exists() and not out.is_dir():
        raise ClusterError(f"--out {out} is a file, not a folder")
    if marker:
        remove_written(out, marker.get("files", []))
    out.mkdir(parents=True, exist_ok=True)
    return False


def _in_use(out: Path) -> bool:
    """A folder with anything in it but this package's own computation artifact."""
    if not out.is_dir():
        return out.exists()
    return any(p.name not in OWN_FILES for p in out.iterdir())


def remove_written(out: Path, files: Iterable[str]) -> None:
    """Delete the files a previous run listed (never anything else), then empty folders."""
    root = out.resolve()
    folders: set[Path] = set()
    for rel in files:
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or path == root:
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        folders.update(p for p in path.parents if p.is_relative_to(root) and p != root)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty: user files keep their folder
    (out / MARKER).unlink(missing_ok=True)


def write_marker(out: Path, key: str, files: list[str], complete: bool) -> None:
    payload = {"key": key, "complete": complete, "files": sorted(set(files))}
    atomic_write_bytes(out / MARKER, json.dumps(payload, indent=0).encode())


# -- tables --------------------------------------------------------------------------------------
def clusters_table(
    arrays: dict[str, np.ndarray], methods: list[str], metadata: Metadata
) -> pa.Table:
    """One row per clustered image: the primary method's cluster and probability, the other
    method's cluster, 2-D coordinates, duplicate group, 5 neighbours, source metadata."""
    ids = arrays["ids"].tolist()
    primary = methods[0]
    columns: dict[str, Any] = {
        "id": ids,
        "cluster": arrays[f"{primary}_labels"],
        "probability": np.round(arrays[f"{primary}_probability"], 4),
        "medoid_similarity": np.round(arrays[f"{primary}_closeness"], 4),
        "outlier_score": np.round(1.0 - arrays[f"{primary}_probability"], 4),
    }
    for other in methods[1:]:
        columns[f"{other}_cluster"] = arrays[f"{other}_labels"]
        columns[f"{other}_probability"] = np.round(arrays[f"{other}_probability"], 4)
    columns["x"] = np.round(arrays["xy"][:, 0], 4)
    columns["y"] = np.round(arrays["xy"][:, 1], 4)
    columns["duplicate_group"] = arrays["duplicate_group"]
    id_array = np.asarray(ids, dtype=object)
    for j in range(arrays["nn_index"].shape[1]):
        columns[f"nn{j + 1}_id"] = id_array[arrays["nn_index"][:, j]].tolist()
        columns[f"nn{j + 1}_similarity"] = np.round(arrays["nn_sim"][:, j], 4)
    keys = list(dict.fromkeys(k for i in ids for k in metadata.columns.get(i, {})))
    for key in keys:
        name = key if key not in columns else f"source_{key}"
        values = [metadata.columns.get(i, {}).get(key) for i in ids]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 or kinds - {str, int, float, bool}:
            values = [None if v is None else str(v) for v in values]
        columns[name] = values
    return pa.table(columns)


def write_tables(out: Path, table: pa.Table) -> list[str]:
    pacsv.write_csv(table, out / "clusters.csv")
    pq.write_table(table, out / "clusters.parquet")
    return ["clusters.csv", "clusters.parquet"]


def write_duplicates(out: Path, arrays: dict[str, np.ndarray], primary: str) -> int:
    """``duplicates.csv``: one row per image in a near-duplicate group, largest groups first."""
    dup = arrays["duplicate_group"]
    rows = np.flatnonzero(dup >= 0)
    rows = rows[np.lexsort((rows, dup[rows]))]
    sizes = np.bincount(dup[rows]) if len(rows) else np.zeros(0, dtype=np.int64)
    table = pa.table(
        {
            "duplicate_group": dup[rows],
            "group_size": sizes[dup[rows]] if len(rows) else np.zeros(0, dtype=np.int64),
            "id": arrays["ids"][rows].tolist(),
            "cluster": arrays[f"{primary}_labels"][rows],
        }
    )
    pacsv.write_csv(table, out / "duplicates.csv")
    return len(sizes)


def write_failed(out: Path, failed: list[dict[str, str]]) -> None:
    table = pa.table(
        {"id": [f["id"] for f in failed], "reason": [f["reason"] for f in failed]},
        schema=pa.schema([("id", pa.string()), ("reason", pa.string())]),
    )
    pacsv.write_csv(table, out / "failed.csv")


# -- cluster folders -----------------------------------------------------------------------------
@dataclass
class Placement:
    """Where each clustered image goes: its folder and file name (set when written)."""

    folder: dict[str, str]
    files: dict[str, str] = field(default_factory=dict)  # id → path relative to out
    linked: int = 0
    copied: int = 0


def _place(src: Path | None, data: bytes, dest: Path, placement: Placement) -> None:
    if src is not None:
        try:
            os.link(src, dest)
            placement.linked += 1
            return
        except OSError:
            try:
                shutil.copyfile(src, dest)
                placement.copied += 1
                return
            except OSError:
                pass
    dest.write_bytes(data)
    placement.copied += 1


def write_folders(
    out: Path,
    source: SourceSpec,
    placement: Placement,
    thumbs_wanted: set[str],
) -> dict[str, Image.Image]:
    """One pass over the source: each clustered image into its folder (a hard link to the
    source file when there is one, else its bytes); thumbnails of ``thumbs_wanted`` decoded
    on the way. Returns id → thumbnail."""
    thumbs: dict[str, Image.Image] = {}
    used: set[str] = set()
    for folder in set(placement.folder.values()):
        (out / "clusters" / folder).mkdir(parents=True, exist_ok=True)
    for record in open_source(source).records():
        folder = placement.folder.get(record.id)
        if folder is None or not record.data:
            continue
        name = safe_name(record.id) + image_suffix(record.data, record.ref)
        while f"{folder}/{name}" in used:  # two ids that sanitise alike (hash kept them apart)
            name = "_" + name
        used.add(f"{folder}/{name}")
        dest = out / "clusters" / folder / name
        src = Path(record.ref) if "#" not in record.ref and Path(record.ref).is_file() else None
        dest.unlink(missing_ok=True)
        _place(src, record.data, dest, placement)
        placement.files[record.id] = f"clusters/{folder}/{name}"
        if record.id in thumbs_wanted:
            try:
                image = decode_image(record.data)
                image.thumbnail((THUMB, THUMB))
                thumbs[record.id] = image
            except ImageDecodeError:
                pass
    return thumbs


def write_folder_sheets(
    out: Path,
    placement: Placement,
    probability: dict[str, float],
) -> list[str]:
    """A small ``index.html`` per cluster folder: its logos, best members first."""
    members: dict[str, list[str]] = {}
    for record_id, _rel in placement.files.items():
        members.setdefault(placement.folder[record_id], []).append(record_id)
    written = []
    for folder, ids in sorted(members.items()):
        ids.sort(key=lambda i: (-probability.get(i, 0.0), i))
        title = "noise (no cluster)" if folder == NOISE_FOLDER else f"cluster {int(folder)}"
        cells = "".join(
            f'<figure><a href="{html.escape(Path(placement.files[i]).name)}">'
            f'<img src="{html.escape(Path(placement.files[i]).name)}" loading="lazy"></a>'
            f"<figcaption>{html.escape(i)}<br>p={probability.get(i, 0.0):.2f}</figcaption></figure>"
            for i in ids
        )
        page = (
            f"<!doctype html><meta charset='utf-8'><title>{title}</title>"
            "<style>body{font-family:sans-serif;margin:16px}figure{display:inline-block;"
            "width:136px;margin:4px;vertical-align:top;font-size:11px;word-break:break-all}"
            "img{width:128px;height:128px;object-fit:contain;border:1px solid #ddd}</style>"
            f"<h1>{title}: {len(ids)} logos</h1><p><a href='../../report.html'>report</a></p>"
            f"{cells}"
        )
        (out / "clusters" / folder / "index.html").write_text(page, encoding="utf-8")
        written.append(f"clusters/{folder}/index.html")
    return written
