"""The preprocess stage end to end: isolation (hang, crash, missing binary), signals, the
Prefect flow with its cache, the embed hook spec, and the preview command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytesseract
import pytest
from loguru import logger
from PIL import Image, ImageDraw, ImageFont

from logosim.core.records import LogoRecord
from logosim.data.chunks import plan_chunks
from logosim.data.sources import SourceSpec, open_source
from logosim.preprocess import stage as preprocess_module
from logosim.preprocess.mask_store import MaskReader, masked_prepare
from logosim.preprocess.ocr import OcrParams
from logosim.preprocess.ocr_pool import Failure, OcrPool
from logosim.preprocess.ocr_words import read_words, words_path
from logosim.preprocess.stage import PreprocessParams, preprocess_chunk, preprocess_job
from logosim.preprocess.text_mask import MaskFlag

ROOT = Path(__file__).resolve().parents[1]

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
EVERY_IMAGE = OcrParams(prefilter=False)  # Tesseract on every image, whatever it looks like


@pytest.fixture
def logo_folder(tmp_path):
    """Six logos: three with a word under a disc, two shapes only, one broken file."""
    folder = tmp_path / "logos"
    folder.mkdir()
    font = ImageFont.truetype(FONT, 26)
    for n, word in enumerate(["ACME", "ZENITH", "BOLT", None, None]):
        image = Image.new("RGB", (224, 224), "white")
        draw = ImageDraw.Draw(image)
        draw.ellipse((60, 10, 160, 110), fill=(40 * n, 90, 200))
        if word:
            draw.text((50, 150), word, font=font, fill="black")
        image.save(folder / f"logo{n}.png")
    (folder / "logo9.png").write_bytes(b"not a png at all")
    return folder


def _job(store, folder, params, chunk_size=3, available=True):
    spec = SourceSpec(path=str(folder))
    chunks = plan_chunks(open_source(spec), chunk_size)
    return [preprocess_job(str(store.root), spec, c, params, available) for c in chunks]


def _fake_tesseract(tmp_path, body: str) -> str:
    """A Tesseract that reports its version (pytesseract asks first) and then runs ``body``."""
    script = tmp_path / "fake-tesseract"
    version = 'if [ "$1" = "--version" ]; then echo "tesseract 5.3.0"; exit 0; fi'
    script.write_text(f"#!/bin/sh\n{version}\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_chunk_masks_real_text_and_logs_bad_files(store, logo_folder):
    params = PreprocessParams(workers=2, ocr=EVERY_IMAGE)
    manifests = [preprocess_chunk(job) for job in _job(store, logo_folder, params)]
    reader = MaskReader(store, manifests)
    flags = {f"logo{n}.png": reader.flag_for(f"logo{n}.png") for n in range(5)}
    assert [flags[f"logo{n}.png"] for n in range(3)] == [MaskFlag.MASKED] * 3
    assert reader.mask_for("logo0.png").shape == (224, 224)
    assert flags["logo3.png"] == flags["logo4.png"] == MaskFlag.NO_TEXT
    assert reader.flag_for("logo9.png") == MaskFlag.FAILED
    words = read_words(store)  # the words OCR read, kept for stage 2's text term
    assert [words.get(f"logo{n}.png") for n in range(5)] == ["ACME", "ZENITH", "BOLT", None, None]
    errors = preprocess_module.collect_preprocess_errors(store)
    lines = store.read_bytes(errors).decode().splitlines()
    assert len(lines) == 1 and '"not_an_image"' in lines[0] and '"preprocess"' in lines[0]


def test_tesseract_hang_times_out_per_image_and_the_pool_survives(
    store, logo_folder, tmp_path, monkeypatch
):
    monkeypatch.setattr(
        pytesseract.pytesseract, "tesseract_cmd", _fake_tesseract(tmp_path, "sleep 60")
    )
    params = PreprocessParams(workers=2, ocr=OcrParams(timeout_s=1, prefilter=False))
    started = time.monotonic()
    manifest = preprocess_chunk(_job(store, logo_folder, params, chunk_size=10)[0])
    assert time.monotonic() - started < 20  # per-image timeouts, not the hard deadline
    assert manifest.meta["flags"]["failed"] == 6
    errors = store.path("errors/preprocess/chunk-00000.jsonl").read_text()
    assert errors.count("ocr_timeout") == 5 and errors.count("not_an_image") == 1


def test_tesseract_segfault_is_logged_and_the_run_continues(
    store, logo_folder, tmp_path, monkeypatch
):
    monkeypatch.setattr(
        pytesseract.pytesseract, "tesseract_cmd", _fake_tesseract(tmp_path, "kill -SEGV $$")
    )
    manifest = preprocess_chunk(
        _job(store, logo_folder, PreprocessParams(workers=2, ocr=EVERY_IMAGE), 10)[0]
    )
    assert manifest.rows == 6 and manifest.meta["flags"]["failed"] == 6
    errors = store.path("errors/preprocess/chunk-00000.jsonl").read_text()
    assert errors.count("ocr_failed") == 5


def die_on_three(n: int) -> int:
    """Pool worker: a hard crash (as a segfault in a C library would be) on one item."""
    if n == 3:
        os._exit(139)
    return n * n


def test_a_crashed_worker_is_replaced_and_only_its_image_fails():
    with OcrPool(workers=2, timeout_s=5) as pool:
        results = list(pool.map(die_on_three, range(8)))
        assert pool.restarts >= 1
    failures = [r for r in results if isinstance(r, Failure)]
    assert [f.item for f in failures] == [3] and failures[0].reason == "worker_crashed"
    assert [r for r in results if not isinstance(r, Failure)] == [n * n for n in range(8) if n != 3]


def test_missing_tesseract_continues_without_masks_and_warns_once(
    store, logo_folder, monkeypatch, prefect_server
):
    from flows.preprocess import embed_prepare, preprocess_flow

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    monkeypatch.setattr(preprocess_module, "_warned_missing", False)
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        manifests = preprocess_flow(SourceSpec(path=str(logo_folder)), str(store.root), None, 2)
    finally:
        logger.remove(sink)
    assert len(manifests) == 3
    assert sum(m.meta["flags"]["no_ocr"] for m in manifests) == 6
    assert sum("TESSERACT NOT FOUND" in m for m in messages) == 1
    spec = embed_prepare(manifests, PreprocessParams())
    image = Image.open(logo_folder / "logo0.png").convert("RGB")
    prepare = masked_prepare(store, **spec.options)
    assert prepare(LogoRecord(id="logo0.png", ref="", row=0), image) is image


def test_flow_caches_chunks_and_feeds_the_embed_hook(store, logo_folder, prefect_server):
    from flows.preprocess import embed_prepare, preprocess_flow

    source = SourceSpec(path=str(logo_folder))
    params = PreprocessParams(workers=2, ocr=EVERY_IMAGE)
    first = preprocess_flow(source, str(store.root), params, 2)
    again = preprocess_flow(source, str(store.root), params.model_copy(update={"workers": 1}), 2)
    assert [m.path for m in first] == [m.path for m in again]
    assert [m.created for m in first] == [m.created for m in again]  # cached, not recomputed
    # a store preprocessed before OCR words were kept gets them once; its masks do not change
    for manifest in first:
        store.path(words_path(manifest.path)).unlink()
    added = preprocess_flow(source, str(store.root), params, 2)
    assert [m.sha256 for m in added] == [m.sha256 for m in first]
    assert read_words(store)["logo1.png"] == "ZENITH"
    assert store.path("preprocessing_errors.jsonl").read_text().count("not_an_image") == 1
    other = preprocess_flow(
        source, str(store.root), PreprocessParams(ocr=OcrParams(psm=6, prefilter=False)), 2
    )
    assert {m.path for m in other}.isdisjoint(m.path for m in first)  # settings in the key
    spec = embed_prepare(first, params)
    assert spec is not None and embed_prepare(first, PreprocessParams(text_mask=False)) is None
    prepare = masked_prepare(store, **spec.options)
    image = Image.open(logo_folder / "logo0.png").convert("RGB")
    assert prepare(LogoRecord(id="logo0.png", ref="", row=0), image) is not image


def test_sigterm_leaves_no_half_written_file_and_a_rerun_completes(tmp_path, logo_folder):
    store_root = tmp_path / "store"
    script = tmp_path / "run_chunk.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, pytesseract
            from logosim.data.chunks import plan_chunks
            from logosim.preprocess.ocr import OcrParams
            from logosim.preprocess.stage import PreprocessParams, preprocess_chunk, preprocess_job
            from logosim.data.sources import SourceSpec, open_source

            if __name__ == "__main__":
                if sys.argv[1] == "slow":
                    pytesseract.pytesseract.tesseract_cmd = {_fake_tesseract(tmp_path, "sleep 30")!r}
                spec = SourceSpec(path={str(logo_folder)!r})
                params = PreprocessParams(workers=2, ocr=OcrParams(timeout_s=20, prefilter=False))
                chunk = plan_chunks(open_source(spec), 10)[0]
                preprocess_chunk(preprocess_job({str(store_root)!r}, spec, chunk, params, True))
                print("done")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's code, not an installed one
    slow = subprocess.Popen([sys.executable, str(script), "slow"], stdout=subprocess.PIPE, env=env)
    time.sleep(6)  # workers started and blocked in the fake Tesseract
    slow.send_signal(signal.SIGTERM)
    slow.wait(timeout=60)
    assert slow.returncode != 0
    leftovers = [p for p in store_root.rglob("*") if p.is_file()] if store_root.exists() else []
    assert leftovers == []  # nothing half-written, no temporary files
    done = subprocess.run(
        [sys.executable, str(script), "real"], capture_output=True, timeout=120, env=env
    )
    assert done.returncode == 0 and b"done" in done.stdout
    assert len(list((store_root / "masks").glob("*.npz"))) == 1


def test_preview_command_writes_a_grid(tmp_path, logo_folder):
    from typer.testing import CliRunner

    from flows.cli import app

    out = tmp_path / "grid.png"
    result = CliRunner().invoke(
        app, ["preprocess", "--source", str(logo_folder), "--preview", "4", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    grid = Image.open(out)
    assert grid.size == (3 * 224, 4 * (224 + 18))


def test_run_command_stores_masks_with_a_progress_bar(tmp_path, logo_folder, prefect_server):
    from typer.testing import CliRunner

    from flows.cli import app

    store = tmp_path / "cli-store"
    result = CliRunner().invoke(
        app,
        ["preprocess", "--source", str(logo_folder), "--store", str(store), "--chunk-size", "3"],
    )
    assert result.exit_code == 0, result.output
    assert "masked: 3" in result.output  # the pre-filter (on by default) lets words through
    assert "skipped: 2" in result.output  # and skips the two shapes
    assert len(list((store / "masks").glob("*.npz"))) == 2
