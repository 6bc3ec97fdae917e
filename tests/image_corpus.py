"""A corpus of bad and awkward image files, generated (never downloaded) for the tests.

Each entry: file name → (bytes, expected) where expected is a decode failure reason, or
"ok" for a file that must decode to RGB.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path

from PIL import Image

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 160, 0), (0, 0, 255), (255, 255, 255)


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def logo(size: tuple[int, int] = (48, 32), colour=RED) -> Image.Image:
    """A small mark: a coloured block on white, so orientation and colour are checkable."""
    image = Image.new("RGB", size, WHITE)
    image.paste(colour, (0, 0, size[0] // 2, size[1] // 2))
    return image


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid tiny PNG whose header declares a huge size (its IHDR rewritten, CRC fixed)."""
    data = bytearray(encode(Image.new("1", (1, 1)), "PNG"))
    ihdr = 8 + 8  # signature, then length + b"IHDR"
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def exif_rotated_jpeg() -> bytes:
    """48×32 pixels stored, EXIF orientation 6: viewers (and decode_image) show it 32×48."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(logo((48, 32)), "JPEG", exif=exif.tobytes())


def palette_with_transparency() -> bytes:
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)  # index 0 is transparent
    return encode(image, "PNG", transparency=0)


def rgba_on_white() -> bytes:
    image = Image.new("RGBA", (16, 16), (0, 0, 255, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black must become white
    return encode(image, "PNG")


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (20, 20), c) for c in (RED, GREEN, BLUE)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def sixteen_bit_png() -> bytes:
    image = Image.new("I;16", (16, 16))
    image.putdata([i * 256 for i in range(256)])
    return encode(image, "PNG")


def good_files() -> dict[str, bytes]:
    rgb = logo()
    return {
        "good.png": encode(rgb, "PNG"),
        "good.jpg": encode(rgb, "JPEG"),
        "good.webp": encode(rgb, "WEBP"),
        "good.bmp": encode(rgb, "BMP"),
        "good.tiff": encode(rgb, "TIFF"),
        "palette_transparent.png": palette_with_transparency(),
        "la.png": encode(Image.new("LA", (16, 16), (40, 128)), "PNG"),
        "cmyk.jpg": encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"),
        "gray16.png": sixteen_bit_png(),
        "gray.png": encode(Image.new("L", (16, 16), 90), "PNG"),
        "exif_rotated.jpg": exif_rotated_jpeg(),
        "animated.gif": animated_gif(),
        "one_bit.png": encode(Image.new("1", (16, 16), 1), "PNG"),
        "rgba.png": rgba_on_white(),
    }


def bad_files() -> dict[str, tuple[bytes, str]]:
    """name → (bytes, the reason decode_image must give)."""
    jpeg, png = encode(logo((64, 64)), "JPEG"), encode(logo((64, 64)), "PNG")
    return {
        "zero_bytes.png": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "random.jpg": (random.Random(7).randbytes(4096), "not_an_image"),
        "text_named.png": (b"this is a text file, not a PNG\n" * 20, "not_an_image"),
        "bomb.png": (bomb_png(), "decompression_bomb"),
    }


def write_corpus(folder: Path) -> tuple[dict[str, bytes], dict[str, tuple[bytes, str]]]:
    """Write every file of the corpus under ``folder`` (bad ones in a subfolder)."""
    good, bad = good_files(), bad_files()
    for name, data in good.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "bad").mkdir(parents=True, exist_ok=True)
    for name, (data, _) in bad.items():
        (folder / "bad" / name).write_bytes(data)
    (folder / "README.txt").write_text("not an image suffix: ignored by the folder source")
    return good, bad
