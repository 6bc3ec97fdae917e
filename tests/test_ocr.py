"""Text detection with the real Tesseract on rendered text and on demo wordmarks."""

from __future__ import annotations

import pytest
from helpers import beside_word
from PIL import Image, ImageDraw, ImageFont

from logosim.data.decode import decode_image
from logosim.data.sources import open_source
from logosim.preprocess.letter_rows import letter_rows
from logosim.preprocess.ocr import (
    OcrParams,
    TesseractMissingError,
    WordBox,
    detect_line_words,
    detect_words,
    has_text_strokes,
    metadata_words,
    should_skip,
    tesseract_available,
)
from logosim.preprocess.stage import PreprocessParams, analyse_decoded
from logosim.preprocess.text_mask import MaskFlag

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
pytestmark = pytest.mark.skipif(not tesseract_available(), reason="tesseract not installed")


def logo_with_text(text: str = "ACME Corp", size: int = 224, font_px: int = 28) -> Image.Image:
    """A red disc (the figurative element) above a line of text."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((size * 0.3, size * 0.08, size * 0.7, size * 0.48), fill=(200, 30, 30))
    draw.text(
        (size * 0.09, size * 0.68), text, font=ImageFont.truetype(FONT, font_px), fill="black"
    )
    return image


def shape_only(size: int = 224) -> Image.Image:
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).ellipse((60, 20, 160, 120), fill=(200, 30, 30))
    return image


def test_rendered_words_found_where_they_were_drawn():
    words = detect_words(logo_with_text(), OcrParams())
    assert {w.text for w in words} >= {"ACME", "Corp"}
    for word in words:
        assert 0.6 * 224 < word.top + word.height / 2 < 0.9 * 224  # the text line, not the disc
        assert word.confidence >= 60


def test_no_words_on_a_shape():
    assert detect_words(shape_only(), OcrParams()) == []


def test_downscaled_ocr_reports_boxes_in_original_pixels():
    big = logo_with_text(size=896, font_px=112)
    full = {w.text: w for w in detect_words(big, OcrParams())}
    small = {w.text: w for w in detect_words(big, OcrParams(max_side=448))}
    assert "ACME" in full and "ACME" in small
    assert abs(full["ACME"].left - small["ACME"].left) <= 8
    assert abs(full["ACME"].width - small["ACME"].width) <= 16


def test_metadata_hint_and_skip_policy():
    assert metadata_words("Apache Flink, Inc.") == {"apache", "flink", "inc"}
    assert should_skip("", OcrParams(metadata="skip_empty"))
    assert should_skip(None, OcrParams(metadata="skip_empty"))
    assert not should_skip("ACME", OcrParams(metadata="skip_empty"))
    assert not should_skip("", OcrParams(metadata="hint"))


def test_hint_keeps_low_confidence_words_that_match_the_metadata():
    faint = logo_with_text("Zyqo", font_px=14)
    strict = OcrParams(min_confidence=99.5, hint_confidence=0)
    without = detect_words(faint, strict.model_copy(update={"metadata": "ignore"}), hint="Zyqo")
    hinted = detect_words(faint, strict, hint="Zyqo")
    assert len(hinted) >= len(without)
    assert all(w.confidence >= 99.5 for w in without)


def test_prefilter_separates_text_from_shapes():
    assert has_text_strokes(logo_with_text())
    assert not has_text_strokes(shape_only())
    assert not has_text_strokes(Image.new("RGB", (224, 224), "white"))


def test_demo_wordmarks_are_read():
    """Most demo logos whose metadata has a wordmark get at least one of its words read."""
    checked = read = 0
    for record in open_source("demo").records(0, 300):
        if not record.text:
            continue
        checked += 1
        hints = metadata_words(record.text)
        words = detect_words(decode_image(record.data), OcrParams(), hint=record.text)
        read += any(any(h in w.text.lower() for h in hints) for w in words)
        if checked == 12:
            break
    assert checked == 12
    assert read >= checked // 2, f"only {read} of {checked} wordmarks read"


def test_missing_binary_is_a_clear_error(monkeypatch):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    assert not tesseract_available()
    with pytest.raises(TesseractMissingError):
        detect_words(logo_with_text(), OcrParams())


def test_words_in_reading_order():
    from logosim.preprocess.ocr_words import reading_order

    boxes = [
        WordBox(120, 52, 60, 20, 90.0, "FIT"),  # same line as KWIK, a little lower
        WordBox(10, 50, 80, 20, 90.0, "KWIK"),
        WordBox(10, 120, 90, 18, 90.0, "LIMITED"),
    ]
    assert reading_order(boxes) == "KWIK FIT LIMITED"
    assert reading_order([]) == ""


def test_letter_rows_box_the_line_of_text():
    image = logo_with_text()
    rows = letter_rows(image)
    assert rows, "the text line was not found"
    left, top, right, bottom = max(rows, key=lambda b: b[2] - b[0])
    assert top >= 0.6 * image.height and bottom <= 0.85 * image.height, (top, bottom)
    assert right - left > 0.5 * image.width
    assert letter_rows(shape_only()) == []


def test_the_line_fallback_reads_words_the_page_layout_misses_beside_an_icon():
    """Tesseract's sparse-text layout loses a plain word set beside some large, busy icons;
    read row by row it is found (demo symbols in a 2:1 lock-up, as registers file them)."""
    icons = [r for r in open_source("demo").records(0, 400) if r.id.endswith("-icon")][:16]
    page_only = PreprocessParams(ocr=OcrParams(line_fallback=False))
    found = {True: 0, False: 0}
    for record in icons:
        lockup = beside_word(decode_image(record.data), word="Studio")
        for fallback, params in ((True, PreprocessParams()), (False, page_only)):
            analysis = analyse_decoded(record.id, lockup, None, params)
            words = {box.text for box in analysis.boxes if box.left > lockup.height}
            found[fallback] += analysis.flag == MaskFlag.MASKED and "Studio" in words
    assert len(icons) == 16
    assert found[True] >= 15 and found[True] > found[False], found


def test_the_line_fallback_shares_one_time_limit():
    with pytest.raises(RuntimeError, match="timeout"):
        detect_line_words(logo_with_text(), OcrParams(timeout_s=0.001))
