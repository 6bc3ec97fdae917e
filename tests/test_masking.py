"""Masks: run-length round trips, inpainting, wordmark flag, the store cache and the hook."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from logosim.core.records import LogoRecord
from logosim.core.store import CorruptArtifactError
from logosim.preprocess.mask_store import (
    ImageMask,
    MaskReader,
    decode_rle,
    encode_rle,
    masked_prepare,
    prepare_spec,
    write_mask_chunk,
)
from logosim.preprocess.ocr import WordBox
from logosim.preprocess.text_mask import (
    MaskFlag,
    MaskParams,
    apply_mask,
    boxes_to_mask,
    classify,
    inpaint,
    text_share,
)

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def disc_and_text() -> tuple[Image.Image, WordBox]:
    image = Image.new("RGB", (224, 224), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 10, 160, 110), fill=(200, 30, 30))
    font = ImageFont.truetype(FONT, 24)
    draw.text((30, 150), "ACME", font=font, fill="black")
    left, top, right, bottom = draw.textbbox((30, 150), "ACME", font=font)
    return image, WordBox(left, top, right - left, bottom - top, 95.0, "ACME")


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((5, 7), bool),
        np.ones((5, 7), bool),
        np.eye(6, dtype=bool),
        np.random.default_rng(0).random((31, 17)) > 0.5,
    ],
)
def test_rle_round_trip(mask):
    runs = encode_rle(mask)
    assert runs.dtype == np.uint32 and int(runs.sum()) == mask.size
    np.testing.assert_array_equal(decode_rle(runs, mask.shape), mask)


def test_rle_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match="pixels"):
        decode_rle(encode_rle(np.ones((4, 4), bool)), (5, 5))


def test_boxes_are_dilated_and_clipped():
    mask = boxes_to_mask((20, 10), [WordBox(0, 2, 5, 3, 90, "x")], dilate_px=2)
    assert mask.shape == (10, 20)
    assert mask[0:7, 0:7].all() and not mask[8:, :].any() and not mask[:, 8:].any()


def test_inpainting_removes_the_words_and_keeps_the_figure():
    image, box = disc_and_text()
    params = MaskParams()
    mask = boxes_to_mask(image.size, [box], params.dilate_px)
    assert classify(image, mask, params) == MaskFlag.MASKED
    painted = np.asarray(inpaint(image, mask, params), dtype=np.int16)
    original = np.asarray(image, dtype=np.int16)
    assert (255 - painted[mask]).max(axis=1).mean() < 10  # text area back to white
    np.testing.assert_array_equal(painted[~mask], original[~mask])  # the disc untouched
    assert text_share(Image.fromarray(painted.astype(np.uint8)), mask) < 0.01


def test_no_text_and_wordmark_keep_the_image():
    image, _ = disc_and_text()
    params = MaskParams()
    empty = boxes_to_mask(image.size, [], 3)
    assert classify(image, empty, params) == MaskFlag.NO_TEXT
    assert apply_mask(image, empty, MaskFlag.NO_TEXT, params) is image
    wordmark = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(wordmark).text((10, 90), "ACME", font=ImageFont.truetype(FONT, 60), fill="black")
    everything = boxes_to_mask(wordmark.size, [WordBox(5, 80, 210, 80, 95, "ACME")], 3)
    assert classify(wordmark, everything, params) == MaskFlag.WORDMARK
    assert apply_mask(wordmark, everything, MaskFlag.WORDMARK, params) is wordmark


def test_both_inpainting_methods_work():
    image, box = disc_and_text()
    mask = boxes_to_mask(image.size, [box], 3)
    for method in ("telea", "ns"):
        out = inpaint(image, mask, MaskParams(method=method))
        assert out.size == image.size and out.mode == "RGB"
    with pytest.raises(ValueError, match="does not fit"):
        inpaint(image, np.zeros((10, 10), bool), MaskParams())


def _chunk(store, image: Image.Image, box: WordBox):
    mask = boxes_to_mask(image.size, [box], 3)
    masks = [
        ImageMask("a", MaskFlag.MASKED, (image.height, image.width), encode_rle(mask)),
        ImageMask("b", MaskFlag.NO_TEXT, (image.height, image.width)),
        ImageMask("c", MaskFlag.WORDMARK, (image.height, image.width), encode_rle(mask)),
    ]
    manifest = write_mask_chunk(store, "masks/test.npz", masks, versions={"preprocess": "t"})
    return manifest, mask


def test_mask_reader_returns_stored_masks(store):
    image, box = disc_and_text()
    manifest, mask = _chunk(store, image, box)
    assert manifest.rows == 3 and manifest.meta["flags"]["masked"] == 1
    reader = MaskReader(store, [manifest.model_dump()])
    np.testing.assert_array_equal(reader.mask_for("a"), mask)
    assert reader.mask_for("b") is None and reader.mask_for("unknown") is None
    assert reader.flag_for("c") == MaskFlag.WORDMARK and reader.flag_for("unknown") is None
    assert reader.mask_for("a") is reader.mask_for("a")  # LRU: decoded once


def test_prepare_hook_inpaints_only_masked_images(store):
    image, box = disc_and_text()
    manifest, _ = _chunk(store, image, box)
    spec = prepare_spec([manifest], MaskParams())
    assert spec["factory"] == "logosim.masks:masked_prepare"
    prepare = masked_prepare(store, **spec["options"])
    out = prepare(LogoRecord(id="a", ref="a", row=0), image)
    assert not np.array_equal(np.asarray(out), np.asarray(image))
    for other in ("b", "c", "never-seen"):
        assert prepare(LogoRecord(id=other, ref=other, row=0), image) is image
    bigger = image.resize((448, 448))  # decoded at another size: the mask follows
    assert prepare(LogoRecord(id="a", ref="a", row=0), bigger).size == (448, 448)


def test_corrupt_mask_chunk_is_refused(store):
    image, box = disc_and_text()
    manifest, _ = _chunk(store, image, box)
    store.path(manifest.path).write_bytes(b"garbage")
    with pytest.raises(CorruptArtifactError):
        MaskReader(store, [manifest]).mask_for("a")
