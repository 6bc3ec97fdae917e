"""Train/validation/test splits and the known-similar pairs used to validate and test.

Splits are stratified (top-level Vienna category, else a category column) and keep every
group of known-similar images whole: a group is assigned as one unit, so no similar pair
straddles train and test. Everything is a pure function of the metadata and the seed.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, model_validator

from logosim.core.digest import stable_digest
from logosim.core.store import ArtifactStore, Manifest
from logosim.data.chunks import ChunkJob, ChunkSpec
from logosim.data.sources import Source, SourceSpec, open_source

STAGE = "splits"
SPLITS_CODE_VERSION = "splits-1"
SPLITS_FILE = "splits/splits.parquet"
SPLIT_NAMES = ("train", "val", "test")
PAIR_SPLITS = ("val", "test")
Split = Literal["train", "val", "test"]
OTHER_STRATUM = "other"  # rare strata pooled so their quotas can be met at all
NO_STRATUM = "none"
STRATUM_COLUMNS = ("category", "vienna_top", "class", "collection")  # tried in order


def pairs_file(split: str) -> str:
    return f"splits/pairs_{split}.parquet"


class SplitsParams(BaseModel):
    seed: int = Field(0, description="Same seed, same metadata → same splits and pairs.")
    train: float = Field(0.70, gt=0, lt=1)
    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)
    stratum_column: str | None = Field(
        None, description="Metadata column to stratify by where records have no Vienna codes."
    )
    min_stratum: int = Field(20, ge=1, description="Smaller strata are pooled as 'other'.")
    max_pairs_per_key: int = Field(
        100, ge=1, description="Cap on similar pairs per group or Vienna code (sampled)."
    )

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> SplitsParams:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError("train + val + test must be 1")
        return self

    def version(self) -> str:
        return stable_digest(SPLITS_CODE_VERSION, self)

    def shares(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


@dataclass(slots=True)
class SplitItem:
    id: str
    group: str | None
    codes: tuple[str, ...]
    stratum: str
    split: str = ""


@dataclass(slots=True)
class Unit:
    """Images that must land in the same split: a group, or a single ungrouped image."""

    key: str
    members: list[SplitItem] = field(default_factory=list)


def _label(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def read_items(source: Source, params: SplitsParams) -> list[SplitItem]:
    """Metadata only (no image bytes are read); strata decided, rare strata pooled.

    A record's stratum is its first top-level Vienna category; without codes, the value of
    ``params.stratum_column``, else of the first of STRATUM_COLUMNS that has at least two
    distinct values (a column that is all null, like a placeholder, says nothing).
    """
    items, fallback = [], []
    candidates = [params.stratum_column] if params.stratum_column else list(STRATUM_COLUMNS)
    for record in source.records(with_bytes=False):
        top = record.vienna_top[0] if record.vienna_top else NO_STRATUM
        items.append(SplitItem(record.id, record.group or None, record.vienna_codes, top))
        fallback.append(tuple(_label(record.extra.get(c)) for c in candidates))
    distinct = [{values[i] for values in fallback} - {None} for i in range(len(candidates))]
    column = next(
        (i for i, seen in enumerate(distinct) if len(seen) >= 2 or params.stratum_column), None
    )
    sizes: Counter[str] = Counter()
    for item, values in zip(items, fallback, strict=True):
        if item.stratum == NO_STRATUM and column is not None:
            item.stratum = values[column] or NO_STRATUM
        sizes[item.stratum] += 1
    for item in items:
        if sizes[item.stratum] < params.min_stratum:
            item.stratum = OTHER_STRATUM
    return items


def metadata_digest(items: Iterable[SplitItem]) -> str:
    """What the splits depend on: ids, groups, codes and strata (never the image bytes)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.id}\0{item.group}\0{','.join(item.codes)}\0{item.stratum}\n".encode())
    return digest.hexdigest()


def _order(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def assign_splits(items: list[SplitItem], params: SplitsParams) -> None:
    """Set ``item.split``: units, in seeded hash order, go where their strata lag most.

    Each stratum keeps its own count per split; a unit goes to the split furthest below
    its 70/15/15 quota summed over the unit's members' strata, so a group spanning strata
    pulls every stratum it touches toward its quota.
    """
    units: dict[str, Unit] = {}
    for item in items:
        key = f"group:{item.group}" if item.group else f"id:{item.id}"
        units.setdefault(key, Unit(key)).members.append(item)
    shares = params.shares()
    assigned: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SPLIT_NAMES, 0))
    for unit in sorted(units.values(), key=lambda u: _order(params.seed, u.key)):
        strata = Counter(m.stratum for m in unit.members)

        def deficit(split: str, strata: Counter = strata) -> float:
            return sum(
                shares[split] * (sum(assigned[s].values()) + n) - assigned[s][split]
                for s, n in strata.items()
            )

        split = max(SPLIT_NAMES, key=deficit)  # ties: train, then val, then test
        for stratum, n in strata.items():
            assigned[stratum][split] += n
        for member in unit.members:
            member.split = split


def similar_pairs(
    items: list[SplitItem], params: SplitsParams, rng: np.random.Generator
) -> set[tuple[str, str]]:
    """Pairs of the same group or the same full Vienna code; large keys sampled to a cap."""
    keys: dict[str, list[str]] = defaultdict(list)
    for item in items:
        if item.group:
            keys[f"group:{item.group}"].append(item.id)
        for code in dict.fromkeys(item.codes):
            keys[f"code:{code}"].append(item.id)
    pairs: set[tuple[str, str]] = set()
    for key in sorted(keys):
        ids = sorted(keys[key])
        n = len(ids)
        if n < 2:
            continue
        if n * (n - 1) // 2 <= params.max_pairs_per_key:
            chosen = itertools.combinations(ids, 2)
        else:
            draws = rng.integers(0, n, size=(params.max_pairs_per_key * 2, 2))
            chosen = [(ids[i], ids[j]) for i, j in draws if i != j][: params.max_pairs_per_key]
        pairs.update((min(a, b), max(a, b)) for a, b in chosen)
    return pairs


def dissimilar_pairs(
    items: list[SplitItem], count: int, exclude: set[tuple[str, str]], rng: np.random.Generator
) -> set[tuple[str, str]]:
    """``count`` random pairs sharing neither a group nor a full Vienna code."""
    pairs: set[tuple[str, str]] = set()
    n = len(items)
    if n < 2:
        return pairs
    for _ in range(20):  # rejection sampling, in rounds, bounded
        need = count - len(pairs)
        if need <= 0:
            break
        for i, j in rng.integers(0, n, size=(need * 2, 2)):
            a, b = items[i], items[j]
            if i == j or (a.group and a.group == b.group) or set(a.codes) & set(b.codes):
                continue
            pair = (min(a.id, b.id), max(a.id, b.id))
            if pair not in exclude:
                pairs.add(pair)
            if len(pairs) >= count:
                break
    return pairs


def split_pairs(items: list[SplitItem], split: str, params: SplitsParams) -> pa.Table:
    members = sorted((i for i in items if i.split == split), key=lambda i: i.id)
    rng = np.random.default_rng([params.seed, SPLIT_NAMES.index(split)])
    similar = similar_pairs(members, params, rng)
    dissimilar = dissimilar_pairs(members, len(similar), similar, rng)
    rows = sorted((a, b, 1) for a, b in similar) + sorted((a, b, 0) for a, b in dissimilar)
    return pa.table(
        {
            "a": pa.array([r[0] for r in rows], pa.string()),
            "b": pa.array([r[1] for r in rows], pa.string()),
            "label": pa.array([r[2] for r in rows], pa.int8()),
        }
    )


def splits_table(items: list[SplitItem]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array([i.id for i in items], pa.string()),
            "split": pa.array([i.split for i in items], pa.string()),
            "group": pa.array([i.group for i in items], pa.string()),
            "stratum": pa.array([i.stratum for i in items], pa.string()),
        }
    )


def _write_table(store: ArtifactStore, rel: str, table: pa.Table, **kw) -> Manifest:
    return store.write_with(rel, lambda tmp: pq.write_table(table, tmp), rows=table.num_rows, **kw)


def splits_job(store: str, source: SourceSpec, params: SplitsParams) -> ChunkJob:
    """The whole source as one job, named by its metadata digest (cache key)."""
    opened = open_source(source)
    digest = metadata_digest(read_items(opened, params))
    chunk = ChunkSpec(index=0, start=0, stop=len(opened), digest=digest)
    return ChunkJob.of(STAGE, store, source, chunk, params)


def compute_splits(job: ChunkJob) -> Manifest:
    """Write splits.parquet and the val/test pair files; the returned manifest lists them."""
    params = SplitsParams.model_validate(job.params)
    store = ArtifactStore(job.store)
    items = read_items(open_source(job.source), params)
    assign_splits(items, params)
    versions = {"splits": SPLITS_CODE_VERSION, "params": job.version}
    pair_manifests = {}
    pair_counts = {}
    for split in PAIR_SPLITS:
        table = split_pairs(items, split, params)
        pair_manifests[split] = _write_table(
            store, pairs_file(split), table, kind="pairs", versions=versions
        ).model_dump()
        labels = table.column("label").to_pylist()
        pair_counts[split] = {"similar": sum(labels), "dissimilar": len(labels) - sum(labels)}
    counts = Counter(i.split for i in items)
    meta = {
        "images": len(items),
        "splits": {s: counts.get(s, 0) for s in SPLIT_NAMES},
        "groups": len({i.group for i in items if i.group}),
        "strata": len({i.stratum for i in items}),
        "pairs": pair_counts,
        "pair_manifests": pair_manifests,
        "seed": params.seed,
    }
    return _write_table(
        store, SPLITS_FILE, splits_table(items), kind="splits", versions=versions, meta=meta
    )


def pair_manifests(splits_manifest: Manifest) -> list[Manifest]:
    return [Manifest.model_validate(m) for m in splits_manifest.meta["pair_manifests"].values()]


def load_split_ids(store: ArtifactStore, split: Split) -> set[str]:
    """Ids in ``split`` from the store's verified splits file."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLIT_NAMES}")
    manifest = store.load_verified(SPLITS_FILE)
    if manifest is None:
        raise FileNotFoundError(
            f"no valid {SPLITS_FILE} in {store.root}; run `logosim splits` first"
        )
    table = pq.read_table(
        store.path(manifest.path), columns=["id"], filters=[("split", "=", split)]
    )
    return set(table.column("id").to_pylist())


def load_pairs(store: ArtifactStore, split: Literal["val", "test"]) -> pa.Table:
    """The (a, b, label) pairs of a split, checked against their manifest."""
    manifest = store.load_verified(pairs_file(split))
    if manifest is None:
        raise FileNotFoundError(f"no valid {pairs_file(split)} in {store.root}")
    return pq.read_table(Path(store.path(manifest.path)))
