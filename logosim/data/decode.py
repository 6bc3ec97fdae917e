"""Safe image decoding, the one entry point every stage uses.

Whatever comes in (palette, transparency, CMYK, 16-bit, grayscale, animations, EXIF-rotated
photos), what comes out is an 8-bit RGB image on white; whatever is broken (empty, truncated,
not an image, a decompression bomb) is refused with a typed error naming the reason.
"""

from __future__ import annotations

import contextlib
import io
import warnings

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


class UnsupportedImageError(ImageDecodeError):
    reason = "unsupported"


def decode_image(
    data: bytes,
    *,
    max_pixels: int = 64_000_000,
    max_bytes: int = 64 * 2**20,
    background: tuple[int, int, int] = WHITE,
) -> Image.Image:
    """Decode ``data`` into an RGB image flattened on ``background``; raise ImageDecodeError."""
    if not data:
        raise EmptyImageError("zero bytes")
    if len(data) > max_bytes:
        raise FileTooLargeError(f"{len(data)} bytes > limit {max_bytes}")
    # Pillow must never silently accept a truncated file.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0:
                raise TruncatedImageError(f"invalid size {width}x{height}")
            if width * height > max_pixels:
                raise DecompressionBombError(f"{width}x{height} pixels > limit {max_pixels}")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animations: the first frame stands for the mark
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
