"""Hostile image files, generated from a seed (never downloaded): named kinds of bad file
plus random header and body mutations of every format the decoder reads."""

from __future__ import annotations

import io
import random
import struct
import zlib

from image_corpus import bomb_png, encode, logo
from PIL import Image, PngImagePlugin


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _with_chunk(png: bytes, chunk: bytes) -> bytes:
    return png[:33] + chunk + png[33:]  # after the signature and IHDR


def _exif_bomb() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 9  # an orientation that does not exist
    exif[0x010E] = "A" * 60_000  # a huge description
    return encode(logo((64, 48)), "JPEG", exif=exif.tobytes())


def _animated_gif(frames: int = 60) -> bytes:
    images = [logo((40, 40), (i * 4 % 256, 0, 255 - i * 4 % 256)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=20, loop=0)
    return buffer.getvalue()


def _deep_palette() -> bytes:
    image = Image.new("P", (64, 64))
    image.putpalette([v for i in range(256) for v in (i, 255 - i, (i * 7) % 256)])
    image.putdata([i % 256 for i in range(64 * 64)])
    return encode(image, "PNG", transparency=bytes(range(256)))


def _zero_width_png() -> bytes:
    png = bytearray(encode(Image.new("RGB", (4, 4)), "PNG"))
    png[16:20] = struct.pack(">I", 0)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def _text_bomb() -> bytes:
    """A zTXt chunk inflating to 64 MiB of text."""
    text = zlib.compress(b"A" * (64 * 2**20), 9)
    return _with_chunk(encode(logo(), "PNG"), _png_chunk(b"zTXt", b"comment\x00\x00" + text))


def _huge_itxt() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "B" * 2_000_000)
    return encode(logo(), "PNG", pnginfo=info)


def _tiff_huge() -> bytes:
    tiff = bytearray(encode(Image.new("L", (8, 8)), "TIFF"))
    # ImageWidth / ImageLength tags rewritten to 2^31 − 1 (first IFD, little-endian SHORT/LONG)
    for tag in (256, 257):
        at = bytes(tiff).find(struct.pack("<H", tag), 8)
        tiff[at + 2 : at + 12] = struct.pack("<HII", 4, 1, 2**31 - 1)
    return bytes(tiff)


def _bmp_absurd() -> bytes:
    bmp = bytearray(encode(logo(), "BMP"))
    bmp[18:26] = struct.pack("<ii", 50_000, -50_000)  # top-down, 2.5 G pixels
    return bytes(bmp)


def _segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_scan_bomb(width: int = 8000, height: int = 8000, scans: int = 12_000) -> bytes:
    """A valid progressive grey JPEG of ``scans`` AC scans (1.1 MB at the defaults): each scan
    makes libjpeg visit every 8×8 block, ~5 ms at 64 Mpx here, so a full decode takes about a
    minute. One Huffman code per table (a 1-bit "0"): DC differences are 0, and each AC
    symbol 0xE0 plus 14 one-bits is an end-of-band run of 32,767 blocks."""
    grey = b"\x01\x11\x00"  # component 1, no subsampling, quantisation table 0
    one_code = bytes([1] + [0] * 15)
    head = b"\xff\xd8" + _segment(0xDB, b"\x00" + bytes([1] * 64))
    head += _segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + grey)
    head += _segment(0xC4, b"\x00" + one_code + b"\x00" + b"\x10" + one_code + b"\xe0")
    head += _segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + b"\x00"  # DC scan
    blocks = -(-width // 8) * -(-height // 8)
    bits = ("0" + "1" * 14) * -(-blocks // 32_767)
    bits += "1" * (-len(bits) % 8)
    body = int(bits, 2).to_bytes(len(bits) // 8, "big").replace(b"\xff", b"\xff\x00")
    ac_scan = _segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + body  # coefficients 1..63
    return head + ac_scan * scans + b"\xff\xd9"


def _ico() -> bytes:
    return encode(logo((64, 64)), "ICO", sizes=[(16, 16), (32, 32), (64, 64)])


def named_kinds() -> dict[str, bytes]:
    """One file per named kind of trouble (or of awkward-but-valid input)."""
    png, jpeg = encode(logo(), "PNG"), encode(logo((64, 48)), "JPEG")
    gif, webp = encode(logo(), "GIF"), encode(logo(), "WEBP")
    return {
        "zero_byte": b"",
        "one_byte": b"\x89",
        "plain_text": b"this is not an image\n" * 20,
        "html_page": b"<!doctype html><html><body>404</body></html>",
        "png_signature_only": png[:8],
        "png_truncated_body": png[: len(png) // 2],
        "png_bad_idat_crc": png[:-20] + bytes([png[-20] ^ 0xFF]) + png[-19:],
        "png_absurd_dimensions": bomb_png(),
        "png_zero_width": _zero_width_png(),
        "png_ztxt_bomb": _text_bomb(),
        "png_huge_text": _huge_itxt(),
        "png_16bit": encode(Image.new("I;16", (32, 32), 40_000), "PNG"),
        "png_deep_palette_alpha": _deep_palette(),
        "jpeg_truncated": jpeg[: len(jpeg) * 2 // 3],
        "jpeg_cmyk": encode(Image.new("CMYK", (32, 32), (0, 255, 0, 0)), "JPEG"),
        "jpeg_exif_bomb": _exif_bomb(),
        "jpeg_progressive_cut": encode(logo((96, 64)), "JPEG", progressive=True)[:300],
        "jpeg_scan_bomb": jpeg_scan_bomb(),
        "gif_animated_60_frames": _animated_gif(),
        "gif_truncated": gif[: len(gif) - 8],
        "webp_truncated": webp[: len(webp) // 2],
        "tiff_huge_dimensions": _tiff_huge(),
        "bmp_absurd_dimensions": _bmp_absurd(),
        "ico_three_sizes": _ico(),
        "ico_truncated": _ico()[:40],
        "svg_markup": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    }


def mutants(seed: int, per_format: int) -> dict[str, bytes]:
    """Random bit flips, byte runs and cuts in the headers and bodies of valid files."""
    rng = random.Random(seed)
    valid = {
        "png": encode(logo(), "PNG"),
        "jpeg": encode(logo((64, 48)), "JPEG"),
        "gif": encode(logo(), "GIF"),
        "webp": encode(logo(), "WEBP"),
        "tiff": encode(logo(), "TIFF"),
        "bmp": encode(logo(), "BMP"),
        "ico": _ico(),
    }
    out = {}
    for fmt, data in valid.items():
        for n in range(per_format):
            blob = bytearray(data)
            where = "header" if n % 2 == 0 else "body"
            lo, hi = (0, min(64, len(blob))) if where == "header" else (64, len(blob))
            for _ in range(rng.randint(1, 6)):
                at = rng.randrange(lo, max(lo + 1, hi))
                if rng.random() < 0.7:
                    blob[at] ^= 1 << rng.randrange(8)
                else:
                    blob[at : at + 4] = bytes(rng.randrange(256) for _ in range(4))
            if rng.random() < 0.2:
                blob = blob[: rng.randrange(1, len(blob))]
            out[f"{fmt}_{where}_mutant_{n:03d}"] = bytes(blob)
    return out
