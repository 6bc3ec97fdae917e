#!/usr/bin/env python3
"""Build the embedded logosim demo dataset (``logosim/demo/demo_logos.parquet``).

The demo set is rendered from two CC0 logo collections published on the npm
registry as Iconify JSON packages:

* ``@iconify-json/logos``        -- "SVG Logos" by Gil Barbara (CC0-1.0), colour.
* ``@iconify-json/simple-icons`` -- "Simple Icons" (CC0-1.0), monochrome; rendered
  in black, so the same mark often appears once in colour and once in black.

The matching ``simple-icons`` npm package (same upstream version as the Iconify
set) is read for brand titles and per-icon license data; Simple Icons entries
that declare a license other than CC0-1.0 are left out.

Usage (needs ``npm`` on PATH and access to the npm registry; Python deps:
``resvg-py``, ``pillow``, ``pyarrow``)::

    python scripts/build_demo_data.py                      # default output
    python scripts/build_demo_data.py --out /tmp/demo.parquet --max-images 1500 --size 224

The build is deterministic for fixed package versions and arguments: package
versions are pinned (``--logos-version`` / ``--simple-icons-version``), all
sampling uses ``--seed`` and rows are sorted by ``id``.

Output columns: ``id`` (``"<collection>/<icon-name>"``), ``image`` (RGBA PNG
bytes, transparent background, ``--size`` px on the longer side, aspect ratio
kept, no padding), ``collection``, ``name``, ``text`` (brand name when the
rendition contains a wordmark, else null), ``category`` (null: neither set
carries per-icon categories), ``year`` (always null), ``group`` (brand key shared
by renditions of the same brand, ``""`` for single renditions).

Brand matching (precision over recall):

* SVG Logos names are reduced to a base by repeatedly stripping trailing
  variant tokens (``icon``, ``wordmark``, ``logo``, ``dark``, ``mono``, ``alt``,
  ``color``, ``classic``, ``old``, ``vertical``, ... and numeric tokens such as
  ``2020`` when the shorter name exists); product names (``google-maps``) are
  not reduced to the parent brand (``google``). ``-dark`` variants (drawn for
  dark backgrounds) and renders that mostly vanish on white are left out.
* A Simple Icons icon joins a SVG Logos base when the base with hyphens removed
  equals its slug exactly, or -- if no slug matches -- equals its normalised
  title (``Node.js`` -> ``nodejs``) and that title key is unique in both sets.
* ``text``: in SVG Logos, when both ``x`` and ``x-icon`` exist and their aspect
  ratios differ by >= 1.4x, ``x`` is the full logo with wordmark, so it gets the
  brand name (the Simple Icons title when matched, else the name title-cased).
  Everything else gets null.

Selection: up to ``--max-groups`` brands with >= 2 renditions (seeded sample,
at most 60 % of the rows and bytes), then single-rendition distractors
alternating between the two collections until ``--max-images`` / ``--max-mb``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import resvg_py
from PIL import Image, ImageChops

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "logosim" / "demo" / "demo_logos.parquet"

LOGOS_PKG = "@iconify-json/logos"
SIMPLE_PKG = "@iconify-json/simple-icons"
SIMPLE_META_PKG = "simple-icons"
DEFAULT_LOGOS_VERSION = "1.2.19"
DEFAULT_SIMPLE_VERSION = "1.2.102"

# Trailing name tokens that mark a rendition variant of the same brand in SVG Logos.
VARIANT_TOKENS = {
    "icon",
    "wordmark",
    "logo",
    "dark",
    "light",
    "mono",
    "alt",
    "clean",
    "color",
    "colour",
    "classic",
    "old",
    "vertical",
    "horizontal",
}
# Variants drawn for dark backgrounds (mostly white); left out of the demo set.
EXCLUDED_TOKENS = {"dark"}

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("image", pa.binary(), nullable=False),
        pa.field("collection", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("category", pa.string()),
        pa.field("year", pa.int64()),
        pa.field("group", pa.string(), nullable=False),
    ]
)


@dataclass
class Icon:
    collection: str
    name: str
    svg: str
    text: str | None = None
    category: str | None = None
    brand: str = ""  # brand key before filtering to groups of >= 2


# --------------------------------------------------------------------------- npm


def npm_pack(spec: str, dest: Path) -> Path:
    """``npm pack <spec>`` into *dest*; returns the tarball path."""
    out = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(dest)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    filename = json.loads(out)[0]["filename"]
    # npm reports scoped names as "@scope/name-1.0.0.tgz" but writes "scope-name-1.0.0.tgz"
    path = dest / filename.lstrip("@").replace("/", "-")
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def read_tar_json(tgz: Path, member: str, default=None):
    with tarfile.open(tgz, "r:gz") as tf:
        try:
            f = tf.extractfile(f"package/{member}")
        except KeyError:
            return default
        return json.load(f) if f is not None else default


# ------------------------------------------------------------------------- icons


def icon_svg(icon_set: dict, icon: dict, size: int) -> str | None:
    """Standalone SVG for an Iconify icon, scaled so the longer side is *size* px.

    Returns None for icons using Iconify transformations (rotate/flip), which
    neither source set uses at the pinned versions.
    """
    if icon.get("rotate") or icon.get("hFlip") or icon.get("vFlip"):
        return None
    w = float(icon.get("width", icon_set.get("width", 16)))
    h = float(icon.get("height", icon_set.get("height", 16)))
    left = float(icon.get("left", icon_set.get("left", 0)))
    top = float(icon.get("top", icon_set.get("top", 0)))
    scale = size / max(w, h)
    pw, ph = max(1, round(w * scale)), max(1, round(h * scale))
    body = icon["body"].replace("currentColor", "#000")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" '
        'xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'viewBox="{left:g} {top:g} {w:g} {h:g}" width="{pw}" height="{ph}">'
        f"{body}</svg>"
    )


def visible_icons(icon_set: dict) -> dict[str, dict]:
    """Icons of an Iconify set, without aliases (duplicates) and hidden (deprecated) ones."""
    return {k: v for k, v in sorted(icon_set["icons"].items()) if not v.get("hidden")}


def icon_categories(icon_set: dict) -> dict[str, str]:
    """name -> first Iconify category (``categories`` in icons.json / metadata.json)."""
    cats: dict[str, str] = {}
    for cat, names in sorted((icon_set.get("categories") or {}).items()):
        for n in names:
            cats.setdefault(n, cat)
    return cats


def logos_base(name: str, names: set[str] | dict) -> str:
    """Brand base of a SVG Logos name: strip trailing variant tokens.

    Numeric tokens (``google-calendar-2020``, ``bem-2``) are only stripped when the
    shorter name exists in the set, so ``html-5`` stays ``html-5``.
    """
    tokens = name.split("-")
    while len(tokens) > 1:
        last, rest = tokens[-1], "-".join(tokens[:-1])
        if last in VARIANT_TOKENS or (last.isdigit() and rest in names):
            tokens.pop()
        else:
            break
    return "-".join(tokens)


def key(s: str) -> str:
    """Lowercase alphanumeric key for a name or brand title."""
    s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    s = s.lower().replace("+", "plus").replace("#", "sharp").replace("&", "and")
    return re.sub(r"[^a-z0-9]", "", s)


def _aspect(icon_set: dict, icon: dict) -> float:
    w = float(icon.get("width", icon_set.get("width", 16)))
    h = float(icon.get("height", icon_set.get("height", 16)))
    return w / h


def _aspect_differs(icon_set: dict, a: dict, b: dict, factor: float = 1.4) -> bool:
    ratio = _aspect(icon_set, a) / _aspect(icon_set, b)
    return ratio >= factor or ratio <= 1 / factor


def title_from_name(name: str) -> str:
    return " ".join(t.capitalize() for t in name.split("-"))


def collect_icons(logos: dict, simple: dict, simple_meta: list[dict], size: int) -> list[Icon]:
    logos_icons = visible_icons(logos)
    simple_icons = visible_icons(simple)
    logos_cats = icon_categories(logos)
    simple_cats = icon_categories(simple)

    # Simple Icons metadata: slug (iconify spelling) -> entry
    meta = {m["slug"].replace("_", "-"): m for m in simple_meta}
    non_cc0 = {
        s for s, m in meta.items() if m.get("license") and m["license"].get("type") != "CC0-1.0"
    }
    simple_icons = {k: v for k, v in simple_icons.items() if k not in non_cc0}

    # --- brand keys
    # SVG Logos: base name -> members
    logos_by_base: dict[str, list[str]] = defaultdict(list)
    for name in logos_icons:
        logos_by_base[logos_base(name, logos_icons)].append(name)
    base_by_key: dict[str, list[str]] = defaultdict(list)
    for base in logos_by_base:
        base_by_key[key(base)].append(base)

    slug_index = {key(s): s for s in simple_icons}
    title_index: dict[str, list[str]] = defaultdict(list)
    for s in simple_icons:
        if s in meta:
            title_index[key(meta[s]["title"])].append(s)

    simple_brand: dict[str, str] = {}
    for k, bases in sorted(base_by_key.items()):
        if len(bases) != 1:
            continue  # ambiguous within SVG Logos
        base = bases[0]
        slug = slug_index.get(k)
        if slug is None:
            cands = title_index.get(k, [])
            if len(cands) == 1 and cands[0] not in simple_brand.values():
                slug = cands[0]
        if slug is not None and slug not in simple_brand.values():
            simple_brand[base] = slug

    icons: list[Icon] = []
    for name, ic in logos_icons.items():
        if set(name.split("-")[1:]) & EXCLUDED_TOKENS:
            continue
        base = logos_base(name, logos_icons)
        text = None
        sym = logos_icons.get(f"{name}-icon")
        # x + x-icon: x is the full logo with wordmark -- unless both share a shape
        if sym is not None and _aspect_differs(logos, ic, sym):
            slug = simple_brand.get(base)
            text = meta[slug]["title"] if slug in meta else title_from_name(name)
        svg = icon_svg(logos, ic, size)
        if svg is not None:
            icons.append(Icon("logos", name, svg, text, logos_cats.get(name), base))
    slug_to_base = {s: b for b, s in simple_brand.items()}
    for name, ic in simple_icons.items():
        svg = icon_svg(simple, ic, size)
        if svg is not None:
            brand = slug_to_base.get(name, f"simple-icons:{name}")
            icons.append(Icon("simple-icons", name, svg, None, simple_cats.get(name), brand))
    return icons


# ----------------------------------------------------------------------- render


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def render(svg: str) -> tuple[bytes | None, str]:
    """Render to an optimised RGBA PNG; returns (png or None, reason)."""
    try:
        raw = bytes(resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True))
    except Exception as exc:  # invalid SVGs are skipped, not fatal
        return None, f"render error: {exc}"
    im = Image.open(io.BytesIO(raw)).convert("RGBA")
    alpha_box = im.getchannel("A").point(lambda v: 255 if v >= 128 else 0).getbbox()
    if alpha_box is None:
        return None, "blank"
    # "ink" = what stays visible when composited on white. Marks drawn (partly) in
    # white without an outline, e.g. white wordmarks, lose much of their extent.
    on_white = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im).convert("RGB")
    r, g, b = on_white.split()
    darkest = ImageChops.darker(ImageChops.darker(r, g), b)  # min over channels
    ink_box = darkest.point(lambda v: 255 if v < 225 else 0).getbbox()
    if ink_box is None or _area(ink_box) < 0.5 * _area(alpha_box):
        return None, "near-white"
    out = io.BytesIO()
    im.save(out, "PNG", optimize=True)
    return out.getvalue(), ""


# -------------------------------------------------------------------- selection


def select(
    icons: list[Icon],
    pngs: dict[str, bytes],
    max_images: int,
    max_groups: int,
    max_bytes: int,
    seed: int,
) -> list[tuple[Icon, str]]:
    ok = [ic for ic in icons if f"{ic.collection}/{ic.name}" in pngs]
    by_brand: dict[str, list[Icon]] = defaultdict(list)
    for ic in ok:
        by_brand[ic.brand].append(ic)
    groups = sorted(b for b, m in by_brand.items() if len(m) >= 2)
    singles = sorted(
        (m[0] for b, m in by_brand.items() if len(m) == 1), key=lambda ic: (ic.collection, ic.name)
    )
    rng = random.Random(seed)
    rng.shuffle(groups)
    # mix of singletons from both collections, interleaved
    per_coll: dict[str, list[Icon]] = defaultdict(list)
    for ic in singles:
        per_coll[ic.collection].append(ic)
    for coll in sorted(per_coll):
        rng.shuffle(per_coll[coll])
    interleaved: list[Icon] = []
    for i in range(max(map(len, per_coll.values()), default=0)):
        for coll in sorted(per_coll):
            if i < len(per_coll[coll]):
                interleaved.append(per_coll[coll][i])

    def nbytes(ic: Icon) -> int:
        return len(pngs[f"{ic.collection}/{ic.name}"]) + 64

    chosen: list[tuple[Icon, str]] = []
    total = 0
    # grouped brands take up to 60 % of the image and byte budget
    for b in groups[:max_groups]:
        members = by_brand[b]
        cost = sum(nbytes(m) for m in members)
        if len(chosen) + len(members) > 0.6 * max_images or total + cost > 0.6 * max_bytes:
            break
        gname = b if not b.startswith("simple-icons:") else b.split(":", 1)[1]
        chosen.extend((m, gname) for m in members)
        total += cost
    for ic in interleaved:
        if len(chosen) >= max_images or total + nbytes(ic) > max_bytes:
            break
        chosen.append((ic, ""))
        total += nbytes(ic)
    chosen.sort(key=lambda t: (t[0].collection, t[0].name))
    return chosen


# ------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output parquet path")
    ap.add_argument("--max-images", type=int, default=1800, help="max rows (default 1800)")
    ap.add_argument(
        "--max-groups", type=int, default=400, help="max brands with >= 2 renditions (default 400)"
    )
    ap.add_argument(
        "--max-mb", type=float, default=9.0, help="budget for the PNG payload in MB (default 9.0)"
    )
    ap.add_argument("--size", type=int, default=224, help="longer side in px (default 224)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    ap.add_argument("--logos-version", default=DEFAULT_LOGOS_VERSION)
    ap.add_argument("--simple-icons-version", default=DEFAULT_SIMPLE_VERSION)
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="reuse/keep npm tarballs here instead of a temp dir",
    )
    ap.add_argument("--workers", type=int, default=None, help="render processes")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir or Path(tmp)
        cache.mkdir(parents=True, exist_ok=True)

        def fetch(pkg: str, version: str) -> Path:
            cached = cache / f"{pkg.lstrip('@').replace('/', '-')}-{version}.tgz"
            return cached if cached.exists() else npm_pack(f"{pkg}@{version}", cache)

        logos_tgz = fetch(LOGOS_PKG, args.logos_version)
        simple_tgz = fetch(SIMPLE_PKG, args.simple_icons_version)
        logos = read_tar_json(logos_tgz, "icons.json")
        simple = read_tar_json(simple_tgz, "icons.json")
        for icon_set, tgz in ((logos, logos_tgz), (simple, simple_tgz)):
            md = read_tar_json(tgz, "metadata.json", {}) or {}
            if md.get("categories") and not icon_set.get("categories"):
                icon_set["categories"] = md["categories"]
        simple_info = read_tar_json(simple_tgz, "info.json", {})
        upstream = simple_info.get("version")
        simple_meta: list[dict] = []
        if upstream:
            meta_tgz = fetch(SIMPLE_META_PKG, upstream)
            simple_meta = read_tar_json(meta_tgz, "data/simple-icons.json", [])
            if isinstance(simple_meta, dict):  # older layout: {"icons": [...]}
                simple_meta = simple_meta.get("icons", [])
        print(
            f"{LOGOS_PKG}@{args.logos_version}, {SIMPLE_PKG}@{args.simple_icons_version}, "
            f"{SIMPLE_META_PKG}@{upstream}",
            file=sys.stderr,
        )

    icons = collect_icons(logos, simple, simple_meta, args.size)
    print(f"{len(icons)} candidate icons; rendering ...", file=sys.stderr)
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(render, [ic.svg for ic in icons], chunksize=32))
    pngs: dict[str, bytes] = {}
    dropped: dict[str, int] = defaultdict(int)
    for ic, (png, why) in zip(icons, results, strict=True):
        if png is None:
            dropped[why.split(":")[0]] += 1
        else:
            pngs[f"{ic.collection}/{ic.name}"] = png
    print(f"rendered {len(pngs)}, dropped {dict(dropped)}", file=sys.stderr)

    chosen = select(
        icons, pngs, args.max_images, args.max_groups, int(args.max_mb * 1_000_000), args.seed
    )
    table = pa.table(
        {
            "id": [f"{ic.collection}/{ic.name}" for ic, _ in chosen],
            "image": [pngs[f"{ic.collection}/{ic.name}"] for ic, _ in chosen],
            "collection": [ic.collection for ic, _ in chosen],
            "name": [ic.name for ic, _ in chosen],
            "text": [ic.text for ic, _ in chosen],
            "category": [ic.category for ic, _ in chosen],
            "year": pa.nulls(len(chosen), pa.int64()),
            "group": [g for _, g in chosen],
        },
        schema=SCHEMA,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, args.out, compression="zstd", row_group_size=256)
    n_groups = len({g for _, g in chosen if g})
    print(
        f"wrote {args.out}: {len(chosen)} rows, {n_groups} groups, "
        f"{args.out.stat().st_size / 1e6:.2f} MB",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
