"""The input blur (issue 16, tenth round): what it does to pixels, how it is recorded, and that
builds and exports made before it existed keep embedding their queries as their gallery."""

from __future__ import annotations

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from logosim.core.digest import stable_digest
from logosim.demo import DEMO_PARQUET
from logosim.embed.embedder import Embedder
from logosim.embed.normalize import to_model_input
from logosim.embed.params import DEFAULT_BLUR, EmbedParams


def _demo_logos(n: int) -> list[Image.Image]:
    rows = pq.read_table(DEMO_PARQUET, columns=["image"]).slice(0, n).to_pylist()
    return [Image.open(io.BytesIO(r["image"])).convert("RGB") for r in rows]


def _pixelated(image: Image.Image, side: int = 40) -> Image.Image:
    """The copy-set's low-resolution edit: shrunk, then blown up with hard pixel blocks."""
    return image.resize((side, side), Image.Resampling.BOX).resize(
        image.size, Image.Resampling.NEAREST
    )


def _gap(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


def test_blur_brings_a_pixelated_copy_closer_to_its_original():
    logos = _demo_logos(12)
    sharp, soft = [], []
    for logo in logos:
        square = to_model_input(logo, 224, "pad")
        copy = _pixelated(square)
        sharp.append(_gap(to_model_input(square, 224, "pad"), to_model_input(copy, 224, "pad")))
        soft.append(
            _gap(to_model_input(square, 224, "pad", 1.5), to_model_input(copy, 224, "pad", 1.5))
        )
    assert np.mean(soft) < 0.8 * np.mean(sharp), (np.mean(soft), np.mean(sharp))
    # blur 0 is the framing alone, pixel for pixel
    square = to_model_input(logos[0], 224, "trim")
    assert np.array_equal(
        np.asarray(to_model_input(logos[0], 224, "trim", 0.0)), np.asarray(square)
    )
    assert to_model_input(logos[0], 224, "trim", 1.5).size == (224, 224)


def test_blur_is_part_of_what_the_vectors_are():
    assert EmbedParams().blur == DEFAULT_BLUR > 0
    plain = EmbedParams(blur=0)
    # chunks embedded before the setting existed keep their cache key
    assert plain.version() == stable_digest("embed", plain.model_version(), plain.normalize, "")
    assert len({EmbedParams(blur=b).version() for b in (0, 1, 1.5)}) == 3
    # speed settings stay out of the key
    assert EmbedParams(blur=1.5, batch_size=4).version() == EmbedParams(blur=1.5).version()
    with pytest.raises(ValueError):
        EmbedParams(blur=-1)


def test_a_build_recorded_before_the_blur_embeds_its_queries_unblurred():
    recorded = EmbedParams(blur=0).model_dump(exclude={"blur"})  # what such an index holds
    assert EmbedParams.as_recorded(recorded).blur == 0
    assert EmbedParams.as_recorded(EmbedParams().model_dump()).blur == DEFAULT_BLUR
    old = Embedder(EmbedParams.as_recorded(recorded | {"local": False}))
    new = Embedder(EmbedParams(local=False))
    assert (old.blur, new.blur) == (0, DEFAULT_BLUR)
    logos = _demo_logos(4)
    # the same images embed differently: the query side must follow the gallery's setting
    a, b = old.embed_images(logos), new.embed_images(logos)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert (cos < 0.9999).all() and (cos > 0.8).all(), cos


def test_build_commands_take_the_blur():
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.commands._options import BuildOptions
    from logosim.data.sources import SourceSpec

    spec = SourceSpec(path=str(DEMO_PARQUET))
    assert BuildOptions().params(spec, "s").embed.blur == DEFAULT_BLUR
    assert BuildOptions(blur=0).params(spec, "s").embed.blur == 0
    for command in ("build", "embed", "export", "train"):
        shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "--blur" in shown, command
