"""The library's layering: logosim never imports Prefect, and no package imports one that
stands later in the pipeline (docs/architecture.md)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "logosim"

# The pipeline order of logosim's packages: a package may import its own and earlier ones.
# train and report stand last, side by side, and do not import each other.
ORDER = {
    "core": 0,
    "data": 1,
    "demo": 1,
    "preprocess": 2,
    "embed": 3,
    "index": 4,
    "search": 5,
    "train": 6,
    "report": 6,
    # grouping: the embed stage's descriptors → kNN graph, UMAP, HDBSCAN/KMeans, reports
    "cluster": 6,
    # the search service: serves what the pipeline built (index, exported model, re-rank)
    "service": 7,
    # logos from websites: a source of images, before everything that consumes one
    "web": 2,
}
# Named exceptions (importer module → imported package), each with its reason.
ALLOWED = {
    # The export stage packs a fine-tuned checkpoint (train.checkpoint) and calibrates on
    # training images (train.data): train → export → re-embed closes the pipeline's loop.
    ("logosim.embed.export", "train"),
}

PROBE = """
import importlib, json, pkgutil, sys
import logosim
names = [m.name for m in pkgutil.walk_packages(logosim.__path__, "logosim.")]
for name in names:
    importlib.import_module(name)
import logosim.store, logosim.sources  # old paths (logosim._moved) load the same modules
print(json.dumps({"modules": names, "prefect": sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))}))
"""


def test_library_imports_no_prefect():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {
        "logosim.data.sources",
        "logosim.data.decode",
        "logosim.core.store",
        "logosim.data.stats",
        "logosim.index.build",
        "logosim.search.searcher",
    } <= set(report["modules"])
    assert report["prefect"] == [], f"logosim pulled in Prefect: {report['prefect'][:5]}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path) -> set[str]:
    """Every logosim module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("logosim")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "logosim":
                found |= {f"logosim.{a.name}" for a in node.names}
            elif node.module.startswith("logosim."):
                found.add(node.module)
    return found


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def test_every_package_has_a_place_in_the_pipeline_order():
    packages = {p.name for p in LIBRARY.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ORDER), "give a new package its place in ORDER (and the docs)"


def test_no_package_imports_a_later_stage():
    violations = []
    for path in sorted(LIBRARY.rglob("*.py")):
        importer = _module_name(path)
        own = _package(importer)
        if own is None:  # logosim/__init__, _lazy, _moved: plumbing of the package itself
            continue
        for imported in _imported_modules(path):
            other = _package(imported)
            if other is None or other == own or (importer, other) in ALLOWED:
                continue
            if ORDER[other] > ORDER[own] or {own, other} == {"train", "report"}:
                violations.append(f"{importer} imports {imported}")
    assert not violations, "later-stage imports:\n" + "\n".join(violations)


def test_old_module_paths_are_the_moved_modules():
    import logosim._moved as moved

    for old, new in moved.MOVED.items():
        assert not (ROOT / (old.replace(".", "/") + ".py")).exists(), old
        assert (ROOT / (new.replace(".", "/") + ".py")).exists(), new


# PyTorch is the `train` extra: only these modules may import it (or a module that does) at
# their top level; everything a plain install runs (build, search, evaluate, cluster, the API)
# imports them inside the functions that need them, if at all (tests/test_lean_install.py
# runs those commands with torch blocked).
TORCH = ("torch", "torchvision", "timm", "open_clip")
TORCH_SIDE = {
    "logosim.embed.models",
    "logosim.embed.runtime",
    "logosim.embed.local_head",
    "logosim.embed.export",
    "logosim.embed.open_clip_backbone",
    "logosim.train.moco",
    "logosim.train.loop",
    "logosim.train.validate",
    "logosim.train.data",
    "logosim.train.checkpoint",
    "logosim.train.soup",
    "tasks.train",
    "flows.train",
}


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported by the file's own body (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_torch_stays_behind_the_train_extra():
    files = [p for d in ("logosim", "flows", "tasks") for p in (ROOT / d).rglob("*.py")]
    imports = {_module_name(p): _top_level_imports(p) for p in files}
    torch_side = {m for m, names in imports.items() if any(n.split(".")[0] in TORCH for n in names)}
    while True:  # close over the library's own top-level imports
        more = {m for m, names in imports.items() if names & torch_side} - torch_side
        if not more:
            break
        torch_side |= more
    assert torch_side == TORCH_SIDE, (
        f"new: {sorted(torch_side - TORCH_SIDE)}; gone: {sorted(TORCH_SIDE - torch_side)}"
    )
