"""The examiner's page in a real headless browser (Debian's chromium via Playwright):
upload → results → crop → results change, filters, a result opened large; screenshots.

Screenshots go to ``$LOGOSIM_TEST_ARTIFACTS`` (default: the test's tmp folder)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from api_client import started_engine
from PIL import Image

from logosim.data.decode import decode_image
from logosim.service.app import create_app
from logosim.service.config import ServiceSettings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test.sh installs it)"
)


@pytest.fixture(scope="module")
def live(api_store):
    """The app on a real uvicorn socket on 127.0.0.1."""
    import uvicorn

    root, rows = api_store
    settings = ServiceSettings(  # the graph with a feature-map output: all four terms
        store=root, model=root.parent / "export-local.onnx", rate_per_minute=60_000, rate_burst=1000
    )
    app = create_app(settings, engine=started_engine(settings))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", rows
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def side_by_side(left: bytes, right: bytes) -> bytes:
    """Two marks on one canvas: the whole image matches neither well; its right half is one."""
    a, b = decode_image(left), decode_image(right)  # transparency flattened on white
    side = 224
    canvas = Image.new("RGB", (2 * side, side), "white")
    canvas.paste(a.resize((side, side)), (0, 0))
    canvas.paste(b.resize((side, side)), (side, 0))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


def result_ids(page) -> list[str]:
    return page.eval_on_selector_all("#results .result", "els => els.map(e => e.dataset.id)")


def test_upload_results_crop_changes_results_and_filters(live, browser, tmp_path):
    url, rows = live
    shots = Path(os.environ.get("LOGOSIM_TEST_ARTIFACTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    query = tmp_path / "two-marks.png"
    left, right = rows[10], rows[21]
    query.write_bytes(side_by_side(left["image"], right["image"]))

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_function("document.getElementById('index-info').textContent.includes('marks')")

    page.set_input_files("#file", str(query))
    page.wait_for_selector("#results .result")
    page.wait_for_function("document.getElementById('status').textContent.includes('marks ·')")
    whole = result_ids(page)
    assert len(whole) == 24
    page.wait_for_function(  # thumbnails arrive through fetch (they carry the API key)
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(shots / "page-results.png"), full_page=True)

    # crop: drag over the right half of the preview (the canvas draws the image at its top-left)
    canvas = page.locator("#preview")
    box = canvas.bounding_box()
    width = box["width"]  # the 2:1 image fills the width and half the height
    page.mouse.move(box["x"] + width * 0.52, box["y"] + width * 0.01)
    page.mouse.down()
    page.mouse.move(box["x"] + width * 0.75, box["y"] + width * 0.25, steps=5)
    page.mouse.move(box["x"] + width * 0.99, box["y"] + width * 0.49, steps=5)
    page.mouse.up()
    page.wait_for_function(
        "document.getElementById('status').textContent.includes('selected part')"
    )
    cropped = result_ids(page)
    assert cropped != whole
    assert cropped[0] == right["id"]
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(shots / "page-crop.png"), full_page=True)

    # the word element turns stage 2 on: every hit shows its four terms
    page.fill("#text", right["name"])
    page.dispatch_event("#text", "change")
    page.wait_for_function("document.getElementById('status').textContent.includes('re-ranked')")
    reranked = result_ids(page)
    assert reranked[0] == right["id"]
    terms = page.eval_on_selector_all(
        "#results .result >> nth=0 >> .term", "els => els.map(e => e.textContent)"
    )
    assert [t.split()[0] for t in terms] == ["global", "shape", "word", "colour"]
    assert terms[2] == "word 1.000"
    assert "re-ranked by global + spatial + text + colour" in page.text_content("#status")
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(shots / "page-rerank.png"), full_page=True)
    assert page.is_checked("#rerank")  # the box shows that stage 2 ran

    # once the user sets the box, it wins over the word element's default
    page.uncheck("#rerank")
    page.wait_for_function(
        "(s => s.includes('marks ·') && !s.includes('re-ranked'))"
        "(document.getElementById('status').textContent)"
    )
    assert page.input_value("#text") == right["name"] and not page.is_checked("#rerank")
    page.check("#rerank")
    page.wait_for_function("document.getElementById('status').textContent.includes('re-ranked')")

    # a filter: only marks whose Vienna codes start with 26.04
    page.fill("#vienna", "26.04")
    page.dispatch_event("#vienna", "change")
    page.wait_for_function(
        "[...document.querySelectorAll('#results .meta')].length > 0 &&"
        " [...document.querySelectorAll('#results .meta')].every(m => m.textContent.includes('26.04'))"
    )
    filtered = result_ids(page)
    assert filtered and filtered != cropped

    # open one large
    page.click("#results .result >> nth=0")
    page.wait_for_selector("#modal[open]")
    assert page.text_content("#modal-id") == filtered[0]
    meta = page.text_content("#modal-meta")
    assert "26.04" in meta and "word term" in meta and "shape term" in meta
    page.screenshot(path=str(shots / "page-mark.png"))
    assert errors == []
    page.close()


def test_a_bad_file_shows_the_reason(live, browser, tmp_path):
    url, _ = live
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # a PNG signature and nothing else
    page = browser.new_page()
    page.goto(url)
    page.set_input_files("#file", str(fake))
    page.wait_for_selector("#error:not([hidden])")
    assert "image" in page.text_content("#error")
    page.close()
