"""Augmentations, the MoCo model and loss, deterministic pairs, schedule, and the train flow."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from logosim.data.sources import SourceSpec, open_source
from logosim.embed.models import load_backbone
from logosim.train.augment import AugmentParams, LogoAugment, invert_mark, monochrome
from logosim.train.data import PairBatches, load_images, positive_partners
from logosim.train.loop import lr_factor, resolve_precision, set_train_mode
from logosim.train.moco import MoCo, info_nce, momentum_at, supervised_nce
from logosim.train.params import TrainParams
from logosim.train.soup import average_weights, soup_bytes
from logosim.train.validate import embed_arrays


def _logo(colour=(200, 30, 30), size=96) -> Image.Image:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 20, size - 20, size - 20), fill=colour)
    draw.rectangle((40, 10, 56, size - 10), fill=(20, 20, 160))
    return image


def _corners(image: Image.Image) -> list[tuple[int, int, int]]:
    w, h = image.size
    return [image.getpixel(p) for p in ((0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1))]


def test_monochrome_and_inversion_keep_a_white_background():
    logo = _logo()
    black = np.asarray(monochrome(logo))
    assert set(np.unique(black)) == {0, 255}
    assert _corners(Image.fromarray(black)) == [(255, 255, 255)] * 4
    inverted = invert_mark(logo)
    assert _corners(inverted) == [(255, 255, 255)] * 4
    assert inverted.getpixel((48, 48)) == tuple(255 - c for c in logo.getpixel((48, 48)))


def test_views_are_a_pure_function_of_the_seed_and_differ_between_seeds():
    augment = LogoAugment()
    logo = _logo()
    first = np.asarray(augment(logo, random.Random("a")))
    again = np.asarray(augment(logo, random.Random("a")))
    other = np.asarray(augment(logo, random.Random("b")))
    assert first.shape == (96, 96, 3)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_every_augmentation_alone_keeps_the_background_white():
    always = AugmentParams(p_jitter=1, p_monochrome=0, p_invert=0, p_grayscale=0, p_occlusion=1)
    for seed in range(10):
        view = LogoAugment(always)(_logo(), random.Random(seed))
        # Rotation and crops can only bring in white; jitter leaves the background alone.
        assert np.asarray(view).reshape(-1, 3).max(axis=0).tolist() == [255, 255, 255]
        assert _corners(view).count((255, 255, 255)) >= 3


def test_info_nce_prefers_matching_keys():
    torch.manual_seed(0)
    keys = torch.randn(8, 16)
    matched = info_nce(keys + 0.01 * torch.randn(8, 16), keys, None, 0.2)
    shuffled = info_nce(keys[torch.randperm(8)], keys, None, 0.2)
    with_queue = info_nce(keys, keys, torch.nn.functional.normalize(torch.randn(32, 16)), 0.2)
    assert matched < shuffled
    assert with_queue > info_nce(keys, keys, None, 0.2)  # more negatives, harder task


def test_supervised_nce_counts_same_group_keys_as_positives():
    torch.manual_seed(0)
    keys = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    # Queries 0 and 1 (one group) each match the other's key rather than their own.
    queries = torch.stack([keys[1], keys[0], keys[2], keys[3]])
    grouped = torch.tensor([7, 7, -1, -1])
    alone = torch.tensor([-1, -1, -1, -1])
    assert supervised_nce(queries, keys, grouped, None, None, 0.2) < supervised_nce(
        queries, keys, alone, None, None, 0.2
    )
    # Without labels in common it is InfoNCE; a queued key of the group is a positive too.
    assert supervised_nce(queries, keys, alone, None, None, 0.2) == pytest.approx(
        float(info_nce(queries, keys, None, 0.2))
    )
    # A query whose best match was queued from an earlier batch: a positive only when the
    # queue remembers it as the query's group.
    query, own, queued, group = keys[1:2], keys[0:1], keys[1:2].clone(), torch.tensor([7])
    with_group = supervised_nce(query, own, group, queued, torch.tensor([7]), 0.2)
    as_negatives = supervised_nce(query, own, group, queued, torch.tensor([-1]), 0.2)
    assert with_group < as_negatives


def test_hard_negative_weighting_counts_query_like_negatives_more():
    """β weights negatives by exp(β·similarity): equally similar negatives keep weight 1 (the
    loss is SupCon's), and a negative close to the query costs more than with β = 0."""
    unit = torch.nn.functional.normalize
    query = unit(torch.tensor([[1.0, 0.0, 0.0]]), dim=1)
    own = unit(torch.tensor([[0.9, 0.1, 0.0]]), dim=1)
    labels = torch.tensor([-1])
    even = unit(torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]), dim=1)
    plain = supervised_nce(query, own, labels, even, torch.full((3,), -1), 0.2)
    weighted = supervised_nce(query, own, labels, even, torch.full((3,), -1), 0.2, 5.0)
    assert float(weighted) == pytest.approx(float(plain), abs=1e-6)
    # one negative drawn like the query, two unlike it: β moves weight onto the first
    mixed = unit(torch.tensor([[0.8, 0.6, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0]]), dim=1)
    plain = supervised_nce(query, own, labels, mixed, torch.full((3,), -1), 0.2)
    weighted = supervised_nce(query, own, labels, mixed, torch.full((3,), -1), 0.2, 5.0)
    assert float(weighted) > float(plain) + 0.1


def test_an_earlier_key_of_the_query_image_in_the_queue_is_not_a_negative():
    """From the second epoch on, the queue can hold the image's own key of the epoch before."""
    torch.manual_seed(0)
    keys = torch.nn.functional.normalize(torch.randn(4, 16), dim=1)
    queries, labels = keys + 0.05 * torch.randn(4, 16), torch.tensor([10, 11, 12, 13])
    earlier = keys[:1].clone()  # image 0's key, queued an epoch ago
    as_negative = info_nce(queries, keys, earlier, 0.2, labels, torch.tensor([99]))
    left_out = info_nce(queries, keys, earlier, 0.2, labels, torch.tensor([10]))
    assert left_out < as_negative
    alone = info_nce(queries[:1], keys, earlier, 0.2, labels[:1], torch.tensor([10]))
    assert alone == pytest.approx(float(info_nce(queries[:1], keys, None, 0.2)))


def test_momentum_schedule_rises_to_one_on_a_cosine():
    assert momentum_at(0, 100, 0.99, cosine=False) == 0.99
    assert momentum_at(0, 100, 0.99, cosine=True) == pytest.approx(0.99)
    assert momentum_at(50, 100, 0.99, cosine=True) == pytest.approx(0.995)
    assert momentum_at(100, 100, 0.99, cosine=True) == pytest.approx(1.0)


def test_lr_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert lr_factor(100, 100, 10) == pytest.approx(0.0)


def test_fp16_needs_cuda_and_bf16_autocasts_on_cpu():
    with pytest.raises(ValueError, match="needs CUDA"):
        resolve_precision("fp16", "cpu")
    assert resolve_precision("bf16", "cpu") == (torch.bfloat16, False)
    assert resolve_precision("auto", "cuda") == (torch.float16, True)


@pytest.fixture(scope="module")
def demo_images():
    return load_images(open_source(SourceSpec()), 64, limit=24)


def test_batches_are_deterministic_per_epoch_and_step(demo_images):
    batches = PairBatches(demo_images, 4, LogoAugment(), seed=3)
    a1, b1 = batches.batch(1, 2)
    a2, b2 = batches.batch(1, 2)
    a3, _ = batches.batch(2, 2)
    assert a1.shape == (4, 3, 64, 64)
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert not torch.equal(a1, a3)
    assert float(a1.min()) >= -1.0 and float(a1.max()) <= 1.0  # mean = std = 0.5


def test_blurred_batches_are_the_same_views_softened(demo_images):
    sharp = PairBatches(demo_images, 4, LogoAugment(), seed=3)
    soft = PairBatches(demo_images, 4, LogoAugment(), seed=3, blur=1.2)
    views = sharp._views(1, 5)
    blurred = soft._views(1, 5)
    for view, softened in zip(views, blurred, strict=True):
        expected = view.filter(ImageFilter.GaussianBlur(1.2))
        assert np.array_equal(np.asarray(softened), np.asarray(expected))
        # the blur removes fine detail: neighbouring pixels differ less
        assert _roughness(softened) < 0.95 * _roughness(view)
    assert not torch.equal(sharp.batch(1, 2)[0], soft.batch(1, 2)[0])


def test_val_images_load_blurred_as_the_embedder_sees_them():
    source = open_source(SourceSpec())
    sharp = load_images(source, 64, limit=6)
    soft = load_images(source, 64, limit=6, blur=1.2)
    assert sharp.ids == soft.ids
    for a, b in zip(sharp.pixels, soft.pixels, strict=True):
        assert _roughness(Image.fromarray(b)) < _roughness(Image.fromarray(a))
    assert TrainParams().blur == 0  # recipes that predate the setting keep their sharp views


def _roughness(image: Image.Image) -> float:
    pixels = np.asarray(image, dtype=float)
    return float(np.abs(np.diff(pixels, axis=1)).mean() + np.abs(np.diff(pixels, axis=0)).mean())


def test_group_partners_exclude_self_and_ungrouped():
    assert positive_partners(["x", None, "x", "y", "x"]) == [[2, 4], [], [0, 4], [], [0, 2]]


def test_moco_step_moves_the_query_encoder_and_fills_the_queue(demo_images):
    torch.manual_seed(0)
    loaded = load_backbone()
    model = MoCo(loaded.module, loaded.dim, proj_dim=32, hidden_dim=64, queue_size=16)
    model.train()
    view1, view2 = PairBatches(demo_images, 4, LogoAugment()).batch(0, 0)
    before_q = model.projector[0].weight.detach().clone()
    before_k = model.key_projector[0].weight.detach().clone()
    loss = model(view1, view2)
    assert torch.isfinite(loss)
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    model.after_step(0.9)
    assert not torch.equal(model.projector[0].weight, before_q)
    expected = 0.9 * before_k + 0.1 * model.projector[0].weight.detach()
    assert torch.allclose(model.key_projector[0].weight, expected, atol=1e-6)
    assert int(model.queue_ptr) == 8  # two views of four images
    assert all(p.grad is None for p in model.key_encoder_parameters())


def test_validation_leaves_frozen_batchnorm_frozen_for_the_next_epoch():
    loaded = load_backbone()
    model = MoCo(loaded.module, loaded.dim, proj_dim=32, hidden_dim=64, queue_size=16)
    set_train_mode(model, freeze_bn=True)
    norms = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    running_mean = norms[0].running_mean.clone()
    vectors = embed_arrays(
        model.backbone, [np.asarray(_logo())], loaded.mean, loaded.std, "cpu", None
    )
    assert vectors.shape == (1, loaded.dim)
    assert model.backbone.training and norms and not any(m.training for m in norms)
    model.backbone(torch.randn(2, 3, 64, 64))  # a training step's forward pass
    assert torch.equal(norms[0].running_mean, running_mean)


def test_supcon_step_queues_the_group_codes(demo_images):
    torch.manual_seed(0)
    loaded = load_backbone()
    model = MoCo(
        loaded.module, loaded.dim, proj_dim=32, hidden_dim=64, queue_size=16, supervised=True
    )
    model.train()
    batches = PairBatches(demo_images, 4, LogoAugment(), group_positives=True)
    view1, view2 = batches.batch(0, 0)
    labels = batches.labels(0, 0)
    chosen = batches.order(0)[:4]
    assert labels.tolist() == [batches.codes[i] for i in chosen]
    # Grouped images share their group's code; every other image has a code of its own.
    grouped = [i for i, g in enumerate(demo_images.groups) if g]
    assert len(set(batches.codes[grouped])) == len(set(demo_images.groups) - {None})
    alone = [c for i, c in enumerate(batches.codes) if i not in grouped]
    assert len(set(alone)) == len(alone) and not set(alone) & set(batches.codes[grouped])
    loss = model(view1, view2, labels)
    assert torch.isfinite(loss)
    loss.backward()
    model.after_step(0.9)
    assert model.queue_labels[:8].tolist() == labels.tolist() * 2
    assert (model.queue_labels[8:] == -1).all()


def test_train_flow_fine_tunes_and_keeps_the_best_model(prefect_server, tmp_path):
    from flows.train import train_flow
    from logosim.core.store import ArtifactStore
    from logosim.embed.models import load_backbone as load

    params = TrainParams(
        image_size=64,
        batch_size=4,
        max_images=12,
        val_images=8,
        epochs=2,
        warmup_epochs=0.5,
        queue_size=0,
        hidden_dim=64,
        proj_dim=32,
        workers=1,
    )
    model = train_flow(SourceSpec(), str(tmp_path), params)
    store = ArtifactStore(tmp_path)
    assert model.path == "train/best.pt" and store.verify(model)
    assert model.meta["run"]["status"] == "completed" and model.meta["run"]["step"] == 6
    # The best model loads as ordinary backbone weights (what embed and export use).
    tuned = load(weights=str(store.path(model.path)))
    pretrained = load()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(tuned.module(x), pretrained.module(x))


def test_a_soup_averages_the_seeds_weights_and_keeps_integer_buffers(tmp_path):
    first = {"w": torch.tensor([1.0, 3.0]), "bn.num_batches_tracked": torch.tensor(5)}
    second = {"w": torch.tensor([3.0, 5.0]), "bn.num_batches_tracked": torch.tensor(9)}
    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    for state, path in zip((first, second), paths, strict=True):
        torch.save(state, path)
    (tmp_path / "soup.pt").write_bytes(soup_bytes(paths))
    soup = torch.load(tmp_path / "soup.pt", weights_only=True)
    assert soup["w"].tolist() == [2.0, 4.0]
    assert int(soup["bn.num_batches_tracked"]) == 5
    torch.save({"other": torch.zeros(2)}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match="architecture"):
        average_weights([paths[0], tmp_path / "c.pt"])
