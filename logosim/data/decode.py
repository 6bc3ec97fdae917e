"""Safe image decoding, the one entry point every stage uses.

Whatever comes in (palette, transparency, CMYK, 16-bit, grayscale, animations, EXIF-rotated
photos, ICO at its largest frame, SVG rendered at a forced size), what comes out is an 8-bit RGB
image on white; whatever is broken (empty, truncated, not an image, a decompression bomb, an
SVG that does not parse) is refused with a typed error naming the reason.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import re
import time
import warnings
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

WHITE = (255, 255, 255)


class ImageDecodeError(ValueError):
    """An image that cannot be used; ``reason`` is a stable, short machine-readable word."""

    reason = "undecodable"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.reason}: {detail}")
        self.detail = detail


class EmptyImageError(ImageDecodeError):
    reason = "empty"


class FileTooLargeError(ImageDecodeError):
    reason = "file_too_large"


class NotAnImageError(ImageDecodeError):
    reason = "not_an_image"


class TruncatedImageError(ImageDecodeError):
    reason = "truncated"


class DecompressionBombError(ImageDecodeError):
    reason = "decompression_bomb"


class DecodeTimeoutError(ImageDecodeError):
    reason = "decode_timeout"


class UnsupportedImageError(ImageDecodeError):
    reason = "unsupported"


class SvgInvalidError(ImageDecodeError):
    reason = "svg_invalid"


# Per-image time limit. A small file can cost minutes of decoding (a progressive JPEG of
# thousands of scans over 64 Mpx rereads every block per scan); the limit is checked each
# time a decoder asks for more of the file, which it is fed DECODE_FEED_BYTES at a time, so
# the overshoot is the work of one feed (0.06-0.09 s for tests/fuzz_corpus.py's scan bomb).
DECODE_TIME_LIMIT_S = 10.0
DECODE_FEED_BYTES = 4096

# SVG: rendered with the longest side forced to this many pixels. resvg *aborts the process*
# (no exception) on an SVG declaring a huge canvas unless the output size is forced.
SVG_RENDER_SIZE = 512
# A named font: text-only SVG logos otherwise render blank (resvg's default family is
# Times New Roman, absent here). Debian's fonts-dejavu-core; system fonts when missing.
SVG_FONT = "DejaVu Sans"
SVG_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu")
SVG_MAX_DEPTH = 64  # real logos nest a dozen levels; resvg crashes past ~200
_XLINK = "http://www.w3.org/1999/xlink"
_SVG_ROOT = re.compile(rb"<svg[\s>]", re.IGNORECASE)
_HTML_ROOT = re.compile(rb"<(?:!doctype\s+html|html|head|body)[\s>]", re.IGNORECASE)
_HREF = re.compile(r"""((?:xlink:)?href\s*=\s*)(\"[^\"]*\"|'[^']*')""", re.IGNORECASE)
_SAFE_HREF = re.compile(r"^\s*(?:#|data:image/(?:png|jpeg|jpg|gif|webp)[;,])", re.IGNORECASE)
_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(px|pt|pc|mm|cm|in|em|ex)?\s*$")
_UNIT_PX = {None: 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54,
            "in": 96.0, "em": 16.0, "ex": 8.0}  # fmt: skip


def decode_image(
    data: bytes,
    *,
    max_pixels: int = 64_000_000,
    max_bytes: int = 64 * 2**20,
    background: tuple[int, int, int] = WHITE,
    time_limit_s: float = DECODE_TIME_LIMIT_S,
    draft_longest: int | None = None,
) -> Image.Image:
    """Decode ``data`` into an RGB image flattened on ``background``; raise ImageDecodeError.

    Decoding stops with ``DecodeTimeoutError`` once it has taken ``time_limit_s``.
    ``draft_longest``: the caller will shrink the image to fit this longest side, so a large
    JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, several times
    faster) as long as its longer side stays at least this long.
    """
    if not data:
        raise EmptyImageError("zero bytes")
    if len(data) > max_bytes:
        raise FileTooLargeError(f"{len(data)} bytes > limit {max_bytes}")
    svg = svg_text(data, max_bytes=max_bytes)
    if svg is not None:
        return render_svg(svg, background=background)
    # Pillow must never silently accept a truncated file.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(_TimedStream(data, time_limit_s))
            image.decodermaxblock = DECODE_FEED_BYTES
            width, height = image.size
            if width <= 0 or height <= 0:
                raise TruncatedImageError(f"invalid size {width}x{height}")
            if width * height > max_pixels:
                raise DecompressionBombError(f"{width}x{height} pixels > limit {max_pixels}")
            if image.format == "ICO" and image.info.get("sizes"):
                # an icon file holds several sizes: the largest stands for the mark
                image.size = max(image.info["sizes"], key=lambda wh: wh[0] * wh[1])
                width, height = image.size
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animations: the first frame stands for the mark
            if draft_longest and image.format == "JPEG":
                draft_jpeg(image, draft_longest)
            image.load()
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:
        raise NotAnImageError("no known image format") from exc
    except Image.DecompressionBombError as exc:
        raise DecompressionBombError(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise TruncatedImageError(f"{type(exc).__name__}: {exc}") from exc
    with contextlib.suppress(Exception):  # a broken EXIF block must not cost us the image
        image = ImageOps.exif_transpose(image) or image
    return to_rgb_on_background(image, background)


class _TimedStream(io.BytesIO):
    """The file as decoders read it: each read past the time limit raises instead."""

    def __init__(self, data: bytes, limit_s: float) -> None:
        super().__init__(data)
        self._limit_s = limit_s
        self._deadline = time.monotonic() + limit_s

    def read(self, size: int | None = -1) -> bytes:
        if time.monotonic() > self._deadline:
            raise DecodeTimeoutError(f"decoding took longer than {self._limit_s:g} s")
        return super().read(size)


def draft_jpeg(image: Image.Image, longest: int) -> None:
    """Ask libjpeg for the smallest 1/2ⁿ scale whose longer side is still ≥ ``longest``
    (Pillow's ``draft`` keeps both sides ≥ the size it is given, so give it the aspect)."""
    width, height = image.size
    side = max(width, height)
    if side < 2 * longest:
        return
    image.draft(image.mode, (max(1, width * longest // side), max(1, height * longest // side)))


def svg_text(data: bytes, *, max_bytes: int = 64 * 2**20) -> str | None:
    """The SVG markup when ``data`` is an SVG (or gzipped SVGZ) document, else None."""
    if data[:2] == b"\x1f\x8b":  # SVGZ; read at most max_bytes of it (a gzip bomb stops)
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as fh:
                data = fh.read(max_bytes + 1)
        except (OSError, EOFError):
            return None
        if len(data) > max_bytes:
            raise FileTooLargeError(f"SVGZ inflates past {max_bytes} bytes")
    head = data[:4096]
    if not _SVG_ROOT.search(head) or _HTML_ROOT.search(head):
        return None
    return data.decode("utf-8", errors="replace").lstrip("\ufeff")


def svg_intrinsic_size(svg: str) -> tuple[float, float] | None:
    """(width, height) the root ``<svg>`` declares, from width/height or the viewBox."""
    root = re.search(r"<svg\b[^>]*>", svg, re.IGNORECASE)
    if root is None:
        return None
    attrs = dict(
        (k.lower(), v1 or v2)
        for k, v1, v2 in re.findall(r"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""", root.group(0))
    )
    width, height = _svg_length(attrs.get("width")), _svg_length(attrs.get("height"))
    box = [
        float(v)
        for v in re.findall(r"-?[0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?", attrs.get("viewbox", ""))
    ]
    if len(box) == 4 and box[2] > 0 and box[3] > 0:
        if width and not height:
            height = width * box[3] / box[2]
        elif height and not width:
            width = height * box[2] / box[3]
        elif not width and not height:
            width, height = box[2], box[3]
    if width and height:
        return width, height
    return None


def _svg_length(value: str | None) -> float | None:
    match = _LENGTH.match(value or "")
    if match is None:
        return None  # missing, a percentage, or junk: the viewBox decides
    number = float(match.group(1)) * _UNIT_PX[match.group(2)]
    return number if number > 0 else None


def svg_output_size(svg: str, size: int = SVG_RENDER_SIZE) -> tuple[int, int]:
    """The forced render size: the longest side ``size``, the declared aspect ratio kept."""
    declared = svg_intrinsic_size(svg)
    if declared is None:
        return size, size
    width, height = declared
    if width >= height:
        return size, max(1, min(size, round(size * height / width)))
    return max(1, min(size, round(size * width / height))), size


def check_svg_structure(svg: str, max_depth: int = SVG_MAX_DEPTH) -> None:
    """Refuse markup that is not well-formed XML, or nests deeper than ``max_depth`` counting
    ``<use>`` references: resvg recurses on both and **segfaults** past ~200 levels."""
    try:
        root = ElementTree.fromstring(svg)
    except (ElementTree.ParseError, ValueError) as exc:  # also entity bombs (expat refuses)
        raise SvgInvalidError(f"not well-formed XML: {exc}") from exc
    ids = {el.get("id"): el for el in root.iter() if el.get("id")}
    height: dict[int, int] = {}  # element → levels below it (references followed)
    too_deep = SvgInvalidError(f"nested (with <use>) deeper than {max_depth} levels")

    def below(element: ElementTree.Element, level: int) -> int:
        if level > max_depth:
            raise too_deep  # also ends reference cycles, at once
        if id(element) not in height:
            children = list(element)
            if element.tag.rsplit("}", 1)[-1] == "use":
                ref = element.get("href") or element.get(f"{{{_XLINK}}}href") or ""
                if ref.startswith("#") and ref[1:] in ids:
                    children.append(ids[ref[1:]])
            height[id(element)] = 1 + max((below(c, level + 1) for c in children), default=0)
        if level + height[id(element)] > max_depth + 1:
            raise too_deep
        return height[id(element)]

    below(root, 0)


def _safe_href(match: re.Match, max_pixels: int) -> str:
    value = match.group(2)[1:-1]
    if value.lstrip().startswith("#"):
        return match.group(0)
    if _SAFE_HREF.match(value):
        head, _, payload = value.partition(",")
        try:
            raw = base64.b64decode(payload, validate=False) if ";base64" in head else b""
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(raw)) as embedded:
                    width, height = embedded.size
            if width * height <= max_pixels:
                return match.group(0)
        except Exception:  # undecodable: dropped like any other reference
            pass
    return f'{match.group(1)}""'


def render_svg(
    svg: str,
    *,
    size: int = SVG_RENDER_SIZE,
    background: tuple[int, int, int] = WHITE,
    max_pixels: int = 16_000_000,
) -> Image.Image:
    """Render SVG markup to RGB on ``background``, at a forced size and with a named font.

    References to anything but the document itself (``#id``) or an embedded raster
    ``data:`` image are dropped first (an untrusted SVG must not read local files), and so
    are embedded rasters over ``max_pixels`` (resvg would decode a bomb in full).
    """
    import resvg_py

    markup = _HREF.sub(lambda m: _safe_href(m, max_pixels), svg)
    check_svg_structure(markup)
    width, height = svg_output_size(markup, size)
    font_dirs = [d for d in SVG_FONT_DIRS if Path(d).is_dir()]
    try:
        png = resvg_py.svg_to_bytes(
            svg_string=markup,
            width=width,
            height=height,
            font_dirs=font_dirs or None,
            skip_system_fonts=bool(font_dirs),
            font_family=SVG_FONT,
            serif_family=SVG_FONT,
            sans_serif_family=SVG_FONT,
            cursive_family=SVG_FONT,
            fantasy_family=SVG_FONT,
            monospace_family=SVG_FONT,
        )
        image = Image.open(io.BytesIO(png))
        image.load()
    except (ValueError, OSError) as exc:
        raise SvgInvalidError(str(exc)[:200]) from exc
    return to_rgb_on_background(image, background)


def to_rgb_on_background(
    image: Image.Image, background: tuple[int, int, int] = WHITE
) -> Image.Image:
    """Any Pillow mode → 8-bit RGB, transparent areas composited over ``background``."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _high_bit_depth_to_l(image)
        mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif (
        mode in ("LA", "La", "PA", "RGBa")
        or (mode == "L" and "transparency" in image.info)
        or (mode == "RGB" and "transparency" in image.info)
    ):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        flat = Image.new("RGB", image.size, background)
        flat.paste(image, mask=image.getchannel("A"))
        return flat
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
        except (ValueError, OSError) as exc:
            raise UnsupportedImageError(f"mode {image.mode}") from exc
    return image


def _high_bit_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit or float grayscale → 8-bit, stretched by the image's own range."""
    array = np.asarray(image, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return Image.fromarray(((array - low) * scale).clip(0, 255).astype(np.uint8), mode="L")
