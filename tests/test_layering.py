"""The library stays free of Prefect: importing every logosim module leaves it unloaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import importlib, json, pkgutil, sys
import logosim
names = [m.name for m in pkgutil.walk_packages(logosim.__path__, "logosim.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "prefect": sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))}))
"""


def test_library_imports_no_prefect():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"logosim.sources", "logosim.decode", "logosim.store", "logosim.stats"} <= set(
        report["modules"]
    )
    assert report["prefect"] == [], f"logosim pulled in Prefect: {report['prefect'][:5]}"
