"""Safe decoding: awkward images come out RGB on white, broken ones with a typed reason."""

from __future__ import annotations

import numpy as np
import pytest
from image_corpus import bad_files, encode, good_files, logo
from PIL import Image

from logosim.data.decode import (
    DecompressionBombError,
    EmptyImageError,
    FileTooLargeError,
    ImageDecodeError,
    NotAnImageError,
    TruncatedImageError,
    decode_image,
)

GOOD, BAD = good_files(), bad_files()
REASON_TYPES = {
    "empty": EmptyImageError,
    "truncated": TruncatedImageError,
    "not_an_image": NotAnImageError,
    "decompression_bomb": DecompressionBombError,
}


def test_corpus_is_broad_enough():
    assert len(GOOD) + len(BAD) >= 12
    assert len(set(REASON_TYPES)) == len({reason for _, reason in BAD.values()})


@pytest.mark.parametrize("name", sorted(GOOD))
def test_awkward_images_decode_to_rgb(name):
    image = decode_image(GOOD[name])
    assert image.mode == "RGB"
    assert image.width > 0 and image.height > 0
    assert np.asarray(image).dtype == np.uint8


@pytest.mark.parametrize("name", sorted(BAD))
def test_broken_files_raise_their_reason(name):
    data, reason = BAD[name]
    with pytest.raises(REASON_TYPES[reason]) as caught:
        decode_image(data)
    assert caught.value.reason == reason
    assert str(caught.value).startswith(reason)


def test_exif_orientation_is_applied():
    image = decode_image(GOOD["exif_rotated.jpg"])
    assert image.size == (32, 48)  # stored 48×32 with orientation 6 (rotate 90° clockwise)
    # The red block (stored top-left) is top-right after a clockwise quarter turn.
    r, g, b = image.getpixel((28, 4))
    assert r > 200 and g < 80 and b < 80
    assert image.getpixel((4, 44)) == pytest.approx((255, 255, 255), abs=30)


@pytest.mark.parametrize("name", ["rgba.png", "palette_transparent.png"])
def test_transparent_pixels_become_white(name):
    image = decode_image(GOOD[name])
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((8, 8)) != (255, 255, 255)  # the opaque part keeps its colour


def test_la_alpha_composited_on_white():
    # gray 40 at alpha 128/255 over white: about 40·0.5 + 255·0.5
    value = decode_image(GOOD["la.png"]).getpixel((3, 3))
    assert value[0] == value[1] == value[2]
    assert 140 <= value[0] <= 150


def test_cmyk_becomes_rgb_colour():
    r, g, b = decode_image(GOOD["cmyk.jpg"]).getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60  # C=0 M=255 Y=255 K=0 is red


def test_sixteen_bit_is_stretched_to_eight_bit():
    pixels = np.asarray(decode_image(GOOD["gray16.png"]))
    assert pixels.min() == 0 and pixels.max() == 255
    assert (pixels[..., 0] == pixels[..., 1]).all()


def test_animation_keeps_first_frame():
    r, g, b = decode_image(GOOD["animated.gif"]).getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60


def test_one_bit_and_gray_are_gray_rgb():
    assert decode_image(GOOD["one_bit.png"]).getpixel((0, 0)) == (255, 255, 255)
    assert decode_image(GOOD["gray.png"]).getpixel((0, 0)) == (90, 90, 90)


def test_size_limits_are_settable():
    png = encode(logo((100, 100)), "PNG")
    with pytest.raises(DecompressionBombError):
        decode_image(png, max_pixels=99 * 100)
    with pytest.raises(FileTooLargeError):
        decode_image(png, max_bytes=len(png) - 1)
    assert decode_image(png, max_pixels=100 * 100, max_bytes=len(png)).size == (100, 100)


def test_decode_errors_are_value_errors_with_detail():
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    assert isinstance(caught.value, ValueError)
    assert caught.value.detail


def test_decoded_image_is_independent_of_source_mode():
    rgb = logo()
    via_palette = decode_image(encode(rgb.convert("P"), "PNG"))
    assert isinstance(via_palette, Image.Image) and via_palette.mode == "RGB"
    assert via_palette.size == rgb.size


def test_large_jpeg_decodes_at_reduced_size_for_its_target():
    from logosim.data.sources import SourceSpec, open_source
    from logosim.embed.normalize import to_model_input

    mark = decode_image(next(open_source(SourceSpec()).records(0, 1)).data)  # a real demo logo
    data = encode(mark.resize((1800, 600), Image.Resampling.BICUBIC), "JPEG", quality=90)
    full, drafted = decode_image(data), decode_image(data, draft_longest=224)
    assert full.size == (1800, 600)
    assert drafted.size == (225, 75)  # 1/8 scale: the longer side still ≥ 224
    a = np.asarray(to_model_input(full), dtype=np.float32)
    b = np.asarray(to_model_input(drafted), dtype=np.float32)
    assert np.abs(a - b).mean() < 4  # the same 224² network input, up to resampling
    # small JPEGs and other formats decode as before
    small = encode(mark.resize((300, 200)), "JPEG", quality=90)
    assert decode_image(small, draft_longest=224).size == (300, 200)
    png = encode(mark.resize((1800, 600)), "PNG")
    assert decode_image(png, draft_longest=224).size == (1800, 600)
