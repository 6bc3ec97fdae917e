"""``report.html``: one self-contained page (pictures and thumbnails inlined as data URIs)
with the summary, quality figures, the pictures, near-duplicate groups and a browsable list
of clusters linking to their folders."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1300px;color:#222}
h1{margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;
text-align:right}th{background:#f4f6fa}td:first-child,th:first-child{text-align:left}
img.pic{max-width:100%;border:1px solid #ddd}
details{margin:4px 0;border:1px solid #e4e4e4;border-radius:6px;padding:4px 8px}
summary{cursor:pointer;font-weight:600}
.thumbs img{width:72px;height:72px;object-fit:contain;margin:2px;border:1px solid #eee;
background:#fff}.muted{color:#777;font-weight:normal}
input{padding:6px;width:320px;margin:8px 0}
.dup{display:inline-block;vertical-align:top;margin:4px;padding:4px 6px;border:1px solid #e4e4e4;
border-radius:6px}.dup .thumbs img{width:56px;height:56px}table.facts td{text-align:left}
"""

SCRIPT = """
function filterClusters(q){q=q.toLowerCase();for(const d of document.querySelectorAll(
'#clusters details')){d.style.display=d.dataset.text.includes(q)?'':'none'}}
"""


@dataclass
class ClusterEntry:
    label: int
    size: int
    folder: str  # relative link to the folder's index.html
    top_group: str
    thumbs: Sequence[tuple[str, Image.Image | None]]
    ids: Sequence[str]


def data_uri(image: Image.Image, fmt: str = "JPEG") -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, quality=80)
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode()


def png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _value(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.3f}"
    return html.escape(str(v))


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{_value(v)}</td>" for v in r.values()) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _thumbs(items: Sequence[tuple[str, Image.Image | None]]) -> str:
    return "".join(
        f'<img src="{data_uri(img)}" title="{html.escape(i)}" alt="{html.escape(i)}">'
        for i, img in items
        if img is not None
    )


def write_report(
    path: Path,
    title: str,
    facts: list[tuple[str, str]],
    quality_rows: list[dict[str, Any]],
    pictures: list[tuple[str, Path]],
    clusters: list[ClusterEntry],
    more_clusters: int,
    duplicates: list[tuple[int, int, Sequence[tuple[str, Image.Image | None]]]],
    duplicate_groups: int = 0,
) -> None:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<table class='facts'>"
        + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
        + "</table>",
        "<h2>Clusterings</h2>",
        _table(quality_rows),
        "<p class='muted'>ari / nmi / purity: against the source's groups, over the images "
        "whose group is not empty; noise points count as singletons.</p>",
    ]
    for caption, picture in pictures:
        parts.append(f"<h2>{html.escape(caption)}</h2><img class='pic' src='{png_uri(picture)}'>")
    if duplicates:
        parts.append(
            f"<h2>Near-duplicate groups (largest {len(duplicates)} of {duplicate_groups:,})</h2>"
        )
        for group, size, items in duplicates:
            parts.append(
                f"<div class='dup'><b>group {group}</b> <span class='muted'>{size} logos"
                f"</span><div class='thumbs'>{_thumbs(items)}</div></div>"
            )
    parts.append(
        "<h2 id='list'>Clusters</h2><input placeholder='filter by cluster, id or group' "
        "oninput='filterClusters(this.value)'><div id='clusters'>"
    )
    for entry in clusters:
        text = " ".join([str(entry.label), entry.top_group, *entry.ids]).lower()
        group = f" · most common group: {html.escape(entry.top_group)}" if entry.top_group else ""
        parts.append(
            f"<details data-text='{html.escape(text, quote=True)}'{' open' if entry.label < 3 else ''}>"
            f"<summary>cluster {entry.label} <span class='muted'>{entry.size} logos{group} · "
            f"<a href='{html.escape(entry.folder)}'>folder</a></span></summary>"
            f"<div class='thumbs'>{_thumbs(entry.thumbs)}</div></details>"
        )
    parts.append("</div>")
    if more_clusters:
        parts.append(
            f"<p class='muted'>…and {more_clusters:,} smaller clusters: see clusters.csv and "
            "the clusters/ folders.</p>"
        )
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
