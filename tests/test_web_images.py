"""SVG and ICO everywhere: decode_image renders SVG safely and opens ICO at its largest frame;
folder sources list .svg/.ico; the extractor's image judge refuses what is not a logo."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from web_sites import SVG_MARK, SVG_TEXT_ONLY, encode, mark

from logosim.data.decode import (
    DecompressionBombError,
    FileTooLargeError,
    NotAnImageError,
    SvgInvalidError,
    decode_image,
    svg_output_size,
)
from logosim.data.sources import open_source
from logosim.web.images import Rejected, judge

ROOT = Path(__file__).resolve().parents[1]


def test_svg_renders_at_a_forced_size_keeping_its_aspect():
    image = decode_image(SVG_MARK.encode())
    assert image.mode == "RGB" and image.size == (512, 205)
    assert image.getpixel((3, 3)) == (255, 255, 255)  # transparent → white
    assert image.getpixel((100, 100)) != (255, 255, 255)


def test_text_only_svg_renders_with_the_named_font():
    image = decode_image(SVG_TEXT_ONLY.encode()).convert("L")
    assert image.getextrema()[0] < 100


@pytest.mark.parametrize(
    ("root", "size"),
    [
        ('<svg width="200000" height="100000">', (512, 256)),
        ("<svg viewBox='0 0 10 40'>", (128, 512)),
        ('<svg width="2in" height="1in">', (512, 256)),
        ('<svg width="100%" height="100%" viewBox="0 0 300 100">', (512, 171)),
        ("<svg>", (512, 512)),
    ],
)
def test_svg_output_size(root, size):
    assert svg_output_size(root + "</svg>") == size


def test_huge_declared_svg_does_not_take_the_process_down():
    # resvg aborts the interpreter on this unless the output size is forced: run it apart.
    code = (
        "from logosim.decode import decode_image\n"
        'svg = b\'<svg xmlns="http://www.w3.org/2000/svg" width="200000" height="200000">'
        '<rect width="150000" height="150000" fill="red"/></svg>\'\n'
        "print(decode_image(svg).size)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(512, 512)"


def test_broken_and_html_documents():
    with pytest.raises(SvgInvalidError):
        decode_image(b'<svg xmlns="http://www.w3.org/2000/svg"><rect')
    with pytest.raises(NotAnImageError):
        decode_image(b"<!doctype html><html><body><svg></svg></body></html>")


def test_svgz_and_its_bomb():
    assert decode_image(gzip.compress(SVG_MARK.encode())).size == (512, 205)
    bomb = gzip.compress(b"<svg>" + b" " * (8 * 2**20))
    with pytest.raises(FileTooLargeError):
        decode_image(bomb, max_bytes=2**20)


def test_svg_cannot_read_local_files(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(encode(mark((100, 100), (0, 0, 0))))
    markup = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="100" height="100"><image xlink:href="{secret}" width="100" height="100"/>'
        f"<image href='file://{secret}' width='100' height='100'/></svg>"
    )
    image = decode_image(markup.encode())
    assert image.getextrema() == ((255, 255), (255, 255), (255, 255))  # nothing was drawn


def test_ico_opens_at_its_largest_frame():
    data = encode(mark((64, 64)), "ICO", sizes=[(16, 16), (48, 48), (32, 32)])
    assert decode_image(data).size == (48, 48)


def test_folder_source_lists_svg_and_ico(tmp_path):
    (tmp_path / "a.svg").write_text(SVG_MARK)
    (tmp_path / "b.ico").write_bytes(encode(mark((32, 32)), "ICO", sizes=[(32, 32)]))
    (tmp_path / "c.png").write_bytes(encode(mark()))
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(str(tmp_path))
    assert [r.id for r in source.records()] == ["a.svg", "b.ico", "c.png"]
    assert all(decode_image(r.data).size[0] >= 32 for r in source.records())


def test_judge_refuses_blank_tiny_and_transparent():
    with pytest.raises(Rejected, match="blank"):
        judge(encode(mark((200, 80), (255, 255, 255))))
    with pytest.raises(Rejected, match="tiny"):
        judge(encode(mark((12, 12))))
    with pytest.raises(Rejected, match="blank"):
        judge(encode(mark((200, 80), (0, 0, 0, 0), background=(0, 0, 0, 0))))
    with pytest.raises(Rejected) as raised:
        judge(b"<html>soft 404</html>")
    assert raised.value.reason == "not_an_image"
    judged = judge(encode(mark((2000, 800))))
    assert judged.width == 2000 and judged.adjust == 10.0  # stored at 512, scored by size


def test_decompression_bomb_is_too_large():
    with pytest.raises(Rejected) as raised:
        judge(encode(mark((8000, 8000))), max_pixels=10_000_000)
    assert raised.value.reason == "too_large"
    with pytest.raises(DecompressionBombError):
        decode_image(encode(mark((4000, 4000))), max_pixels=1_000_000)


def test_svg_embedded_raster_bomb_is_dropped_small_rasters_kept():
    import base64

    def embedding(size, colour) -> bytes:
        raw = base64.b64encode(encode(Image.new("RGB", size, colour))).decode()
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
            f'<image href="data:image/png;base64,{raw}" width="100" height="100"/></svg>'
        ).encode()

    assert decode_image(embedding((50, 50), "red")).getpixel((256, 256)) == (255, 0, 0)
    bomb = decode_image(embedding((6000, 6000), "red"))  # 36 Mpx > the 16 Mpx limit
    assert bomb.getextrema() == ((255, 255), (255, 255), (255, 255))


HOSTILE_SVGS = r"""
import json
from logosim.decode import ImageDecodeError, decode_image

def chain(n, uses=1):
    defs = '<rect id="g0" width="5" height="5"/>' + "".join(
        f'<g id="g{i}">' + f'<use href="#g{i - 1}"/>' * uses + "</g>" for i in range(1, n)
    )
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><defs>{defs}</defs><use href="#g{n - 1}"/></svg>'

def nested(n):
    return '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">' + "<g>" * n + '<rect width="5" height="5"/>' + "</g>" * n + "</svg>"

ents = '<!ENTITY a0 "ha">' + "".join(f'<!ENTITY a{i} "{("&a%d;" % (i - 1)) * 10}">' for i in range(1, 10))
cases = {
    "nested-20": nested(20), "nested-300": nested(300), "nested-100000": nested(100000),
    "use-chain-20": chain(20), "use-chain-300": chain(300), "use-fan-out-24": chain(24, 2),
    "use-cycle": '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><g id="a"><use href="#b"/></g><g id="b"><use href="#a"/></g></svg>',
    "entities": f'<?xml version="1.0"?><!DOCTYPE svg [{ents}]><svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><text>&a9;</text></svg>',
}
out = {}
for name, svg in cases.items():
    try:
        out[name] = "ok %dx%d" % decode_image(svg.encode()).size
    except ImageDecodeError as exc:
        out[name] = exc.reason
print(json.dumps(out))
"""


def test_hostile_svg_structures_are_refused_not_crashing():
    # resvg segfaults past ~200 levels of nesting or of <use> chains: run them in a child
    # process, so a regression cannot take the test session down with it.
    import json

    done = subprocess.run(
        [sys.executable, "-c", HOSTILE_SVGS], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "nested-20": "ok 512x512",
        "nested-300": "svg_invalid",
        "nested-100000": "svg_invalid",
        "use-chain-20": "ok 512x512",
        "use-chain-300": "svg_invalid",
        "use-fan-out-24": "svg_invalid",  # 2^24 copies: resvg's node limit
        "use-cycle": "svg_invalid",
        "entities": "svg_invalid",
    }
