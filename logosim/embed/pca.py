"""PCA (+ whitening) of pooled embeddings, fitted chunk by chunk on the train split.

Descriptors are L2-normalised before the fit and after the projection, so that inner
product is cosine similarity. Whitening divides each component by a power of its standard
deviation (power 1 = full whitening, 0 = none): it evens out the few dominant directions
that ImageNet features spend on "photo-ness" and helps retrieval of marks on the dev bench.

The fit streams: one chunk at a time adds to the exact first and second moments (D×D, 13 MB
at D = 1280), so memory does not grow with the collection. The covariance is shrunk toward
a multiple of the identity before whitening (Ledoit & Wolf 2004, the shrinkage estimated from
the same streamed moments). Without it a small collection breaks: with as many components as
train images, the train vectors end up mutually orthogonal and every vector outside the fit
(held-out images, queries, reindexed marks) is dominated by near-zero-variance directions
divided by their tiny eigenvalues, so they all point the same way (issue 19).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from loguru import logger
from pydantic import BaseModel, Field

from logosim.core.store import ArtifactStore, Manifest

PCA_FILE = "pca/pca.npz"
PCA_VERSION = "2"  # 2: exact streamed covariance, Ledoit–Wolf shrinkage, held-out health


class PCAParams(BaseModel):
    """How descriptors are reduced before indexing (a form in the Prefect UI)."""

    enabled: bool = Field(True, description="Reduce with PCA; off = L2-normalised raw features.")
    dims: int = Field(
        512, ge=1, description="Output dimension (capped by the feature size and max_dims_share)."
    )
    whiten: bool = Field(True, description="Divide components by their standard deviation.")
    whiten_power: float = Field(
        1.0, ge=0.0, le=1.0, description="Whitening strength: 1 full, 0.5 square-root."
    )
    shrinkage: float | Literal["auto"] = Field(
        "auto",
        description="Covariance shrinkage toward the identity before whitening, 0–1; 'auto' = "
        "Ledoit–Wolf (strong on a few hundred images, near 0 on a large register).",
    )
    max_dims_share: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="At most this share of the train rows as components: directions a small "
        "train split cannot estimate are left out.",
    )
    power: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Signed power on raw features before L2 (0.5 = signed sqrt; 1 = off).",
    )
    projection: Literal["shipped", "collection"] = Field(
        "shipped",
        description="'shipped': the learned whitening that comes with the embedding weights "
        "(the packaged logo weights have one, fitted on the dev bench's train split: brand "
        "groups and register edits; docs/model.md), cut to `dims`; 'collection' (and weights "
        "without one): PCA fitted on this collection's train split with the settings above.",
    )


def power_normalize(x: np.ndarray, power: float) -> np.ndarray:
    """Signed power: damps the few very large GeM activations (measured: +0.004 R@1, +0.005
    mAP with PCA512 on the dev bench)."""
    x = np.asarray(x, dtype=np.float32)
    return x if power == 1.0 else np.sign(x) * np.abs(x) ** power


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


@dataclass(frozen=True)
class PCAModel:
    """A fitted projection: ``transform`` maps raw pooled features to unit vectors."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (d, D)
    scale: np.ndarray  # (d,) divisor per component (ones when not whitened)
    power: float = 1.0  # signed power applied to raw features first
    fit: dict = field(default_factory=dict, compare=False)  # how it was fitted (not saved)

    @property
    def dims(self) -> int:
        return int(self.components.shape[0])

    def transform(self, features: np.ndarray) -> np.ndarray:
        x = l2_normalize(power_normalize(features, self.power))
        projected = (x - self.mean) @ self.components.T
        return l2_normalize(projected / self.scale)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "mean": self.mean,
            "components": self.components,
            "scale": self.scale,
            "power": np.float32(self.power),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> PCAModel:
        return cls(
            mean=arrays["mean"].astype(np.float32),
            components=arrays["components"].astype(np.float32),
            scale=arrays["scale"].astype(np.float32),
            power=float(arrays["power"]) if "power" in arrays else 1.0,
        )


class Descriptors:
    """Raw features → index vectors: the PCA model when one is fitted, else L2 only."""

    def __init__(self, model: PCAModel | None) -> None:
        self.model = model

    def __call__(self, features: np.ndarray) -> np.ndarray:
        if self.model is None:
            return l2_normalize(features)
        return self.model.transform(features)

    @classmethod
    def load(cls, store: ArtifactStore, manifest: Manifest | None) -> Descriptors:
        if manifest is None or manifest.rows == 0:
            return cls(None)
        return cls(PCAModel.from_arrays(store.read_arrays(manifest)))


def iter_embeddings(
    store: ArtifactStore, manifests: Iterable[Manifest]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(ids, raw features) per embeddings chunk, checksum-verified, one chunk in memory."""
    for manifest in manifests:
        arrays = store.read_arrays(manifest)
        yield arrays["ids"].astype(str), arrays["embeddings"].astype(np.float32, copy=False)


def _select(ids: np.ndarray, wanted: set[str] | None, keep: bool = True) -> np.ndarray:
    """Row mask of ``ids`` in ``wanted`` (all rows when ``wanted`` is None)."""
    if wanted is None:
        return np.full(len(ids), keep, dtype=bool)
    inside = np.fromiter((i in wanted for i in ids), dtype=bool, count=len(ids))
    return inside if keep else ~inside


class Moments:
    """Streamed first and second moments of row vectors, in float64, enough for the exact
    covariance and its Ledoit–Wolf shrinkage (which also needs Σ‖x − mean‖⁴)."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.total = np.zeros(dim)  # Σ x
        self.outer = np.zeros((dim, dim))  # Σ x xᵀ
        self.weighted = np.zeros(dim)  # Σ ‖x‖² x
        self.norm4 = 0.0  # Σ ‖x‖⁴

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        sq = np.einsum("ij,ij->i", x, x)
        self.n += len(x)
        self.total += x.sum(axis=0)
        self.outer += x.T @ x
        self.weighted += sq @ x
        self.norm4 += float(sq @ sq)

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.n

    def covariance(self) -> np.ndarray:
        """The biased (1/n) sample covariance."""
        m = self.mean
        return self.outer / self.n - np.outer(m, m)

    def ledoit_wolf(self, covariance: np.ndarray) -> float:
        """Ledoit–Wolf shrinkage toward ``μ·I`` (the formula of sklearn's
        ``ledoit_wolf_shrinkage``), from the streamed moments instead of the data."""
        n, dim, m = self.n, len(self.total), self.mean
        c = float(m @ m)
        # Σ‖x − m‖⁴ expanded in the moments: with a = ‖x‖², b = x·m,
        # Σ(a − 2b + c)² = Σa² + 4Σb² + n c² − 4Σab + 2cΣa − 4cΣb.
        sum_a = float(np.trace(self.outer))
        sum_b = float(self.total @ m)
        sum_b2 = float(m @ self.outer @ m)
        sum_ab = float(self.weighted @ m)
        centred4 = self.norm4 + 4 * sum_b2 + n * c * c - 4 * sum_ab + 2 * c * sum_a - 4 * c * sum_b
        mu = float(np.trace(covariance)) / dim
        frob = float(np.sum(covariance**2))
        delta = (frob - dim * mu * mu) / dim
        beta = min((centred4 / n - frob) / (dim * n), delta)
        return 0.0 if beta <= 0 or delta <= 0 else float(beta / delta)


def moments_of(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]], train_ids: set[str] | None, power: float
) -> Moments | None:
    moments: Moments | None = None
    for ids, features in chunks:
        rows = features[_select(ids, train_ids)]
        if not len(rows):
            continue
        moments = moments or Moments(rows.shape[1])
        moments.add(l2_normalize(power_normalize(rows, power)))
    return moments


def fit_pca(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    params: PCAParams,
    *,
    train_ids: set[str] | None = None,
    train_rows: int | None = None,  # unused; kept for callers of the streamed-IPCA version
) -> PCAModel:
    """Fit on the train rows of ``chunks`` (all rows when ``train_ids`` is None)."""
    moments = moments_of(chunks, train_ids, params.power)
    if moments is None:
        raise ValueError("no training embeddings matched the train split ids")
    if moments.n < 2:
        raise ValueError(
            f"PCA needs at least 2 training embeddings, got {moments.n}; "
            "check the splits (train split empty?) or disable PCA"
        )
    covariance = moments.covariance()
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    dims = max(1, min(params.dims, len(eigenvalues), int(params.max_dims_share * moments.n)))
    variance = np.maximum(eigenvalues[::-1][:dims], 0.0)
    components = eigenvectors[:, ::-1][:, :dims].T
    shrink = (
        moments.ledoit_wolf(covariance) if params.shrinkage == "auto" else float(params.shrinkage)
    )
    mu = float(np.trace(covariance)) / len(eigenvalues)
    shrunk = np.maximum((1.0 - shrink) * variance + shrink * mu, 1e-12)
    power = params.whiten_power if params.whiten else 0.0
    logger.info(
        f"PCA: {moments.n} train rows → {dims} dims, shrinkage {shrink:.3f}, whitening {power}"
    )
    return PCAModel(
        mean=moments.mean.astype(np.float32),
        components=np.ascontiguousarray(components, dtype=np.float32),
        scale=(shrunk ** (power / 2.0)).astype(np.float32),
        power=params.power,
        fit={"train_rows": moments.n, "shrinkage": round(shrink, 6)},
    )


COLLAPSED_MEAN_COSINE = 0.5  # held-out descriptors this alike on average all point one way


def _cosine_profile(vectors: np.ndarray) -> dict[str, float]:
    """Mean |cosine| of distinct pairs and median nearest-neighbour cosine of a sample.

    Absolute values: a collapsed transform maps held-out vectors onto ± one direction, so
    their signed cosines (±1) average out to ~0 while their magnitudes do not."""
    gram = vectors @ vectors.T
    np.fill_diagonal(gram, np.nan)
    return {
        "mean_abs_cosine": round(float(np.nanmean(np.abs(gram))), 4),
        "median_nn_cosine": round(float(np.median(np.nanmax(gram, axis=1))), 4),
        "rows": len(vectors),
    }


def descriptor_health(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    describe: Descriptors,
    train_ids: set[str] | None,
    sample: int = 1000,
) -> dict:
    """How descriptors of images outside the fit behave next to those inside it.

    A healthy transform gives held-out vectors the spread of train vectors; a degenerate one
    (issue 19) maps every held-out vector to nearly the same direction, which leave-one-out
    figures over train images hide. ``degenerate`` is True when the held-out sample's mean
    |cosine| over pairs passes COLLAPSED_MEAN_COSINE.
    """
    picked: dict[bool, list[np.ndarray]] = {True: [], False: []}
    for ids, features in chunks:
        inside = _select(ids, train_ids)
        for is_train in (True, False):
            have = sum(len(b) for b in picked[is_train])
            rows = features[inside == is_train][: max(sample - have, 0)]
            if len(rows):
                picked[is_train].append(describe(rows))
        if all(sum(len(b) for b in picked[k]) >= sample for k in picked):
            break
    report: dict = {}
    for is_train, name in ((True, "train"), (False, "heldout")):
        if sum(len(b) for b in picked[is_train]) >= 2:
            report[name] = _cosine_profile(np.concatenate(picked[is_train]))
    held = report.get("heldout")
    report["degenerate"] = bool(held and held["mean_abs_cosine"] > COLLAPSED_MEAN_COSINE)
    return report


def describe_health(health: dict | None) -> str:
    """One line for summaries: held-out vs train spread, and a warning when collapsed."""
    if not health or "heldout" not in health:
        return "no held-out images to check the transform on"
    held, train = health["heldout"], health.get("train", {})
    line = (
        f"held-out mean |cosine| {held['mean_abs_cosine']:.3f} "
        f"(train {train.get('mean_abs_cosine', float('nan')):.3f}), "
        f"median NN cosine {held['median_nn_cosine']:.3f} "
        f"(train {train.get('median_nn_cosine', float('nan')):.3f})"
    )
    if health.get("degenerate"):
        line = "WARNING degenerate transform: " + line + " — held-out images all look alike"
    return line


def load_projection(path: Path, dims: int) -> PCAModel:
    """A shipped projection (``learned_whitening``), its first ``dims`` components."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    model = PCAModel.from_arrays(arrays)
    keep = max(1, min(dims, model.dims))
    return replace(
        model,
        components=np.ascontiguousarray(model.components[:keep]),
        scale=model.scale[:keep],
        fit={"train_rows": int(arrays["train_rows"]), "shrinkage": 0.0, "projection": path.name},
    )


def fit_and_save_pca(
    store: ArtifactStore,
    manifests: list[Manifest],
    params: PCAParams,
    train_ids: set[str] | None,
    inputs: str = "",
    shipped: Path | None = None,
) -> Manifest:
    """Fit on the train split's embeddings and publish ``pca/pca.npz``.

    ``inputs`` (a digest of what the fit saw) is kept in the manifest so downstream caches
    can key on it: a refit of the same inputs gives the same model but not the same bytes.
    The manifest's ``health`` says whether held-out images keep their spread after the
    transform (``descriptor_health``); a degenerate fit is logged as a warning. With
    ``shipped`` (the weights' projection; the build passes it when ``params.projection`` is
    "shipped" and the weights have one) nothing is fitted: it is published, cut to
    ``params.dims``.

    With PCA disabled an empty marker artifact (rows=0) is written, so downstream stages
    depend on one manifest either way.
    """
    if not params.enabled:
        return store.write_arrays(
            PCA_FILE,
            {"disabled": np.zeros(0)},
            kind="pca",
            rows=0,
            versions={"pca": PCA_VERSION},
            meta={"inputs": inputs},
        )
    if shipped is not None:
        model = load_projection(shipped, params.dims)
        logger.info(
            f"PCA: the projection shipped with the weights ({shipped.name}), {model.dims} dims"
        )
    else:
        model = fit_pca(iter_embeddings(store, manifests), params, train_ids=train_ids)
    health = descriptor_health(iter_embeddings(store, manifests), Descriptors(model), train_ids)
    (logger.warning if health["degenerate"] else logger.info)(
        f"PCA descriptors: {describe_health(health)}"
    )
    return store.write_arrays(
        PCA_FILE,
        model.arrays(),
        kind="pca",
        rows=model.fit["train_rows"],
        versions={"pca": PCA_VERSION},
        meta={
            "dims": model.dims,
            "params": params.model_dump(),
            "train_rows": model.fit["train_rows"],
            "shrinkage": model.fit["shrinkage"],
            "projection": model.fit.get("projection", "collection"),
            "health": health,
            "inputs": inputs,
        },
    )
