"""Training images and positive pairs, in a deterministic order.

Images are decoded once (through ``decode_image``), brought to the training size and kept as
uint8 arrays. A batch is a pure function of (seed, epoch, batch index): the permutation comes
from ``numpy.random.default_rng((seed, epoch))`` and each view from its own
``random.Random`` seeded by (seed, epoch, position, view). A resumed run therefore sees the
same batches as an uninterrupted one, whatever happened in between.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from loguru import logger
from PIL import Image
from tqdm import tqdm

from logosim.core.failures import ImageFailure
from logosim.core.records import LogoRecord
from logosim.core.settings import get_settings
from logosim.data.decode import ImageDecodeError, decode_image
from logosim.data.sources import Source
from logosim.embed.normalize import soften, to_array, to_model_input
from logosim.embed.params import NormalizeMode
from logosim.train.augment import LogoAugment

STAGE = "train"


@dataclass
class TrainImages:
    """Decoded square logos (N×S×S×3 uint8) with their ids and positive keys."""

    ids: list[str]
    pixels: np.ndarray
    groups: list[str | None]
    vienna: list[str | None]  # the full Vienna codes, joined, as one positive key
    errors: list[ImageFailure] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, index: int) -> Image.Image:
        return Image.fromarray(self.pixels[index])

    def subset(self, keep: Sequence[int]) -> TrainImages:
        keep = list(keep)
        return TrainImages(
            [self.ids[i] for i in keep],
            self.pixels[keep],
            [self.groups[i] for i in keep],
            [self.vienna[i] for i in keep],
        )


def load_images(
    source: Source,
    size: int,
    *,
    keep_ids: set[str] | None = None,
    limit: int | None = None,
    desc: str = "decode",
    normalize: NormalizeMode = "pad",
    blur: float = 0.0,
) -> TrainImages:
    """Decode the source's images (those in ``keep_ids``; at most ``limit``); skip bad ones."""
    settings = get_settings()
    ids, pixels, groups, vienna, errors = [], [], [], [], []
    total = len(source) if limit is None else min(limit, len(source))
    for record in tqdm(source.records(), total=total, desc=desc, unit="img", disable=None):
        if keep_ids is not None and record.id not in keep_ids:
            continue
        if limit is not None and len(ids) >= limit:
            break
        array = _decode(
            record,
            size,
            settings.max_image_pixels,
            settings.max_image_bytes,
            errors,
            normalize,
            blur,
        )
        if array is None:
            continue
        ids.append(record.id)
        pixels.append(array)
        groups.append(record.group or None)
        vienna.append(",".join(sorted(record.vienna_codes)) or None)
    if errors:
        logger.info(f"train: skipped {len(errors)} unusable images")
    stacked = np.stack(pixels) if pixels else np.zeros((0, size, size, 3), np.uint8)
    return TrainImages(ids, stacked, groups, vienna, errors)


def _decode(
    record: LogoRecord,
    size: int,
    max_pixels: int,
    max_bytes: int,
    errors: list[ImageFailure],
    normalize: NormalizeMode = "pad",
    blur: float = 0.0,
) -> np.ndarray | None:
    if record.read_error:
        errors.append(ImageFailure.of(record, STAGE, "unreadable", record.read_error))
        return None
    try:
        image = decode_image(record.data, max_pixels=max_pixels, max_bytes=max_bytes)
    except ImageDecodeError as exc:
        errors.append(ImageFailure.of(record, STAGE, exc.reason, exc.detail))
        logger.info(f"train: skipped {record.id}: {exc.reason}")
        return None
    return to_array(to_model_input(image, size, normalize, blur))


def positive_partners(keys: Sequence[str | None]) -> list[list[int]]:
    """For each image, the other images sharing its key (group or full Vienna code)."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        if key:
            members[key].append(i)
    return [[j for j in members[k] if j != i] if k else [] for i, k in enumerate(keys)]


def to_tensor(
    images: Sequence[Image.Image], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    batch = torch.from_numpy(np.stack([np.asarray(im, dtype=np.uint8) for im in images]))
    batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean).view(1, 3, 1, 1)
    std_t = torch.tensor(std).view(1, 3, 1, 1)
    return (batch - mean_t) / std_t


class PairBatches:
    """Batches of two views per image; the second view may come from a known-similar image."""

    def __init__(
        self,
        images: TrainImages,
        batch_size: int,
        augment: LogoAugment,
        *,
        seed: int = 0,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        group_positives: bool = False,
        vienna_positives: bool = False,
        p_partner: float = 0.5,
        workers: int = 2,
        blur: float = 0.0,
    ) -> None:
        if len(images) < 2:
            raise ValueError(f"training needs at least 2 usable images, got {len(images)}")
        self.images, self.augment, self.seed = images, augment, seed
        self.batch_size = min(batch_size, len(images))
        self.mean, self.std = tuple(mean), tuple(std)
        keys: list[str | None] = [None] * len(images)
        if group_positives:
            keys = list(images.groups)
        if vienna_positives:
            keys = [k or v for k, v in zip(keys, images.vienna, strict=True)]
        self.partners = positive_partners(keys)
        codes = {key: code for code, key in enumerate(sorted({k for k in keys if k}))}
        # An image without a known partner is its own key: from the second epoch on, the queue
        # holds keys of the batch's own images, and those must not count as negatives.
        self.codes = np.array(
            [codes[k] if k else len(codes) + i for i, k in enumerate(keys)], dtype=np.int64
        )
        self.p_partner = p_partner
        self.workers = workers
        self.blur = blur

    @property
    def steps_per_epoch(self) -> int:
        return len(self.images) // self.batch_size  # drop the ragged last batch

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, epoch)).permutation(len(self.images))

    def labels(self, epoch: int, step: int) -> torch.Tensor:
        """Positive-key codes of batch ``step`` (a group's, or the image's own)."""
        chosen = self.order(epoch)[step * self.batch_size : (step + 1) * self.batch_size]
        return torch.from_numpy(self.codes[chosen])

    def _views(self, epoch: int, index: int) -> tuple[Image.Image, Image.Image]:
        rng = random.Random(f"{self.seed}:{epoch}:{index}")
        second = index
        if self.partners[index] and rng.random() < self.p_partner:
            second = rng.choice(self.partners[index])
        # blurred after the augmentation, as the embedder blurs what it is given
        return (
            soften(self.augment(self.images.image(index), rng), self.blur),
            soften(self.augment(self.images.image(second), rng), self.blur),
        )

    def batch(
        self, epoch: int, step: int, pool: ThreadPoolExecutor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two view tensors of batch ``step`` of ``epoch`` (NCHW float, normalised)."""
        chosen = self.order(epoch)[step * self.batch_size : (step + 1) * self.batch_size]

        def make(index: int) -> tuple[Image.Image, Image.Image]:
            return self._views(epoch, int(index))

        views = list(pool.map(make, chosen)) if pool is not None else [make(i) for i in chosen]
        first = to_tensor([v[0] for v in views], self.mean, self.std)
        second = to_tensor([v[1] for v in views], self.mean, self.std)
        return first, second
