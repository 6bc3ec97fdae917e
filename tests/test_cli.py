"""The command line: a light ``--help``, options defined once, one exit code per error kind."""

from __future__ import annotations

import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "faiss", "pyarrow", "cv2", "onnxruntime", "openvino", "prefect", "timm")


def test_help_loads_no_heavy_library():
    probe = (
        "import json, sys\nsys.argv = ['logosim', '--help']\nimport flows.cli\n"
        "try:\n    flows.cli.main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "build" in done.stdout and "evaluate" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_source_format_choices_match_the_library():
    from flows.commands._options import SourceFormat
    from logosim.data.sources import SourceFormat as library

    assert typing.get_args(SourceFormat) == typing.get_args(library)


def test_build_and_evaluate_share_their_options():
    from flows.cli import app

    runner = CliRunner()
    build = runner.invoke(app, ["build", "--help"], env={"COLUMNS": "200"}).output
    evaluate = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"}).output
    options = [line.split()[1] for line in build.splitlines() if line.startswith("│ --")]
    assert "--text-mask" in options and "--dba-neighbours" in options and "--local" in options
    assert options == [line.split()[1] for line in evaluate.splitlines() if line.startswith("│ --")]


def test_error_kinds_have_their_exit_codes(tmp_path):
    from flows.cli import app
    from flows.commands._options import Exit

    runner = CliRunner()
    missing = runner.invoke(app, ["build", "--source", str(tmp_path / "nowhere")])
    assert missing.exit_code == Exit.BAD_INPUT
    query = tmp_path / "q.png"
    query.write_bytes(b"not a png")
    no_index = runner.invoke(app, ["search", "--store", str(tmp_path / "store"), str(query)])
    assert no_index.exit_code == Exit.MISSING


@pytest.mark.slow  # two small builds through the CLI (~40 s on 2 cores)
def test_no_local_build_stores_no_local_descriptors_and_a_later_build_adds_them(
    prefect_server, demo_subset, tmp_path
):
    import os

    from prefect.settings import PREFECT_API_URL

    source, store = demo_subset(24, 16), tmp_path / "store"
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value()}

    def build(*extra: str) -> None:
        command = ["build", "--source", str(source), "--store", str(store), "--pca-dims", "16"]
        done = subprocess.run(
            [sys.executable, "-m", "flows.cli", *command, *extra],
            env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]

    build("--no-local")
    embeddings = {p.name: p.stat().st_mtime_ns for p in (store / "embeddings").glob("*.npz")}
    assert embeddings and not list(store.glob("local/*.npy"))
    build()  # the default: local descriptors on, added per chunk; the embeddings are reused
    assert {p.name: p.stat().st_mtime_ns for p in (store / "embeddings").glob("*.npz")} == (
        embeddings
    )
    assert len(list(store.glob("local/*.npy"))) == len(embeddings)
