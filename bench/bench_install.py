"""Install size and time of logosim with and without the ``train`` extra (issue 17, part 5).

Each variant: a fresh venv under /tmp, ``pip install <committed tree>[extras]`` timed, then the venv's
size on disk (``du``), whether torch and the CUDA libraries came in, and a smoke check that
the installed package imports its embed stage. Run under the locks (it downloads or unpacks
several GB for ``train``):

    flock /tmp/logosim-pip.lock flock /tmp/logosim-heavy.lock \
        python bench/bench_install.py --out bench/results/install.json

pip's own configuration applies (index, wheel cache): say which when quoting the figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = Path("/tmp/lean-install-src")  # the committed tree (pip would write build/ into REPO)
SMOKE = (
    "import importlib.util, json, logosim.embed.embedder as e, logosim.embed.packaged as p;"
    "print(json.dumps({'torch': importlib.util.find_spec('torch') is not None,"
    " 'packaged_graph': p.read_packaged() is not None}))"
)


def du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def install(variant: str, extras: str, python: str, keep: bool) -> dict:
    venv = Path(f"/tmp/lean-venv-{variant}")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q"]
    target = f"{SOURCE}[{extras}]" if extras else str(SOURCE)
    started = time.perf_counter()
    done = subprocess.run([*pip, target], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return {"variant": variant, "error": done.stderr[-2000:]}
    listed = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    packages = {p["name"].lower(): p["version"] for p in json.loads(listed.stdout)}
    smoke = subprocess.run(
        [str(venv / "bin/python"), "-c", SMOKE], capture_output=True, text=True, cwd="/tmp"
    )
    site = next((venv / "lib").glob("python3*/site-packages"))
    nvidia = site / "nvidia"
    sizes = subprocess.run(
        ["du", "-sm", *[str(p) for p in site.iterdir()]], capture_output=True, text=True
    ).stdout.splitlines()
    largest = sorted(((int(mb), Path(path).name) for mb, path in (s.split("\t") for s in sizes)))
    result = {
        "variant": variant,
        "extras": extras or None,
        "install_seconds": round(seconds, 1),
        "venv_bytes": du_bytes(venv),
        "venv_gb": round(du_bytes(venv) / 1e9, 3),
        "packages": len(packages),
        "torch": packages.get("torch"),
        "nvidia_libs_gb": round(du_bytes(nvidia) / 1e9, 3) if nvidia.exists() else 0.0,
        "largest_mb": {name: mb for mb, name in largest[::-1][:25]},
        "smoke": json.loads(smoke.stdout.strip().splitlines()[-1])
        if smoke.returncode == 0
        else smoke.stderr[-500:],
    }
    if not keep:
        shutil.rmtree(venv, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["plain", "train"])
    parser.add_argument("--python", default=str(Path(sys.base_prefix) / "bin" / "python3"))
    parser.add_argument("--keep", action="store_true", help="keep the venvs under /tmp")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/install.json")
    args = parser.parse_args()
    extras = {"plain": "", "train": "train", "api": "api", "dev": "dev,train"}
    pip_config = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    shutil.rmtree(SOURCE, ignore_errors=True)
    SOURCE.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(SOURCE)], input=archive.stdout, check=True)
    results = []
    for variant in args.variants:
        result = install(variant, extras[variant], args.python, args.keep)
        print(json.dumps(result), flush=True)
        results.append(result)
    report = {"python": args.python, "pip_config": pip_config.splitlines(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
