"""Splits: deterministic, stratified, groups kept whole; pairs; flow caching; CLI."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logosim.data.sources import SourceSpec, open_source
from logosim.data.splits import (
    OTHER_STRATUM,
    SPLITS_FILE,
    SplitsParams,
    assign_splits,
    load_pairs,
    load_split_ids,
    read_items,
    split_pairs,
)

DEMO = SourceSpec(path="demo")


def register(tmp_path, n: int = 3000):
    """Metadata of a synthetic register: Vienna codes in skewed categories, some groups."""
    ids, codes, groups = [], [], []
    for i in range(n):
        top = ["26", "27", "03", "01", "05"][min(i % 10, 4)]  # "05" is the largest stratum
        ids.append(f"EU{i:06d}")
        codes.append([f"{top}.{i % 3:02d}.01"] + (["29.01.01"] if i % 50 == 0 else []))
        groups.append(f"brand{i // 4}" if i % 7 == 0 or (i - 1) % 7 == 0 else None)
    codes[5] = []  # no codes at all: stratum from the category column, else "none"
    table = pa.table(
        {
            "id": ids,
            "image": pa.array([b""] * n, pa.binary()),
            "vienna_codes": codes,
            "group": groups,
            "category": ["rare-cat" if i == 5 else "x" for i in range(n)],
        }
    )
    path = tmp_path / "register.parquet"
    pq.write_table(table, path)
    return SourceSpec(path=str(path))


def assigned(spec: SourceSpec, params: SplitsParams):
    items = read_items(open_source(spec), params)
    assign_splits(items, params)
    return items


def test_same_seed_same_splits_other_seed_other_splits(tmp_path):
    spec = register(tmp_path)
    a = {i.id: i.split for i in assigned(spec, SplitsParams(seed=1))}
    b = {i.id: i.split for i in assigned(spec, SplitsParams(seed=1))}
    c = {i.id: i.split for i in assigned(spec, SplitsParams(seed=2))}
    assert a == b
    assert sum(a[k] != c[k] for k in a) > len(a) // 10


def test_groups_are_never_split(tmp_path):
    spec = register(tmp_path)
    for seed in range(3):
        by_group = defaultdict(set)
        for item in assigned(spec, SplitsParams(seed=seed)):
            if item.group:
                by_group[item.group].add(item.split)
        assert by_group and all(len(s) == 1 for s in by_group.values())


def test_shares_hold_within_each_stratum(tmp_path):
    items = assigned(register(tmp_path), SplitsParams())
    by_stratum = defaultdict(Counter)
    for item in items:
        by_stratum[item.stratum][item.split] += 1
    assert set(by_stratum) >= {"26", "27", "03", "01", "05"}
    for stratum, counts in by_stratum.items():
        total = sum(counts.values())
        if total < 100:
            continue
        for split, share in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
            assert abs(counts[split] / total - share) < 0.03, (stratum, counts)


def test_rare_and_missing_strata_are_pooled(tmp_path):
    items = {i.id: i for i in assigned(register(tmp_path), SplitsParams(min_stratum=20))}
    assert items["EU000005"].stratum == OTHER_STRATUM  # one 'rare-cat' image, no codes
    assert items["EU000000"].stratum == "26"  # first top-level code wins


def test_a_category_like_column_stratifies_when_there_are_no_codes():
    # The demo has no Vienna codes; an all-null column is skipped for one that varies.
    items = assigned(DEMO, SplitsParams())
    strata = Counter(i.stratum for i in items)
    assert sum(strata.values()) == len(open_source(DEMO))
    assert len(strata) >= 2 and "none" not in strata
    assert all(v >= 20 for k, v in strata.items() if k != OTHER_STRATUM)
    named = assigned(DEMO, SplitsParams(stratum_column="collection"))
    assert Counter(i.stratum for i in named) == Counter(
        r.extra["collection"] for r in open_source(DEMO).records(with_bytes=False)
    )


def test_pairs_are_within_split_and_balanced(tmp_path):
    params = SplitsParams(max_pairs_per_key=15)
    items = assigned(register(tmp_path), params)
    by_id = {i.id: i for i in items}
    for split in ("val", "test"):
        table = split_pairs(items, split, params).to_pylist()
        similar = [(p["a"], p["b"]) for p in table if p["label"] == 1]
        dissimilar = [(p["a"], p["b"]) for p in table if p["label"] == 0]
        assert similar and len(similar) == len(dissimilar)
        assert len(set(similar) | set(dissimilar)) == len(table)  # no duplicates
        for a, b in similar + dissimilar:
            assert a < b and by_id[a].split == by_id[b].split == split
        for a, b in similar:
            x, y = by_id[a], by_id[b]
            assert (x.group and x.group == y.group) or set(x.codes) & set(y.codes)
        for a, b in dissimilar:
            x, y = by_id[a], by_id[b]
            assert not (x.group and x.group == y.group) and not set(x.codes) & set(y.codes)
        per_code = Counter(c for a, b in similar for c in set(by_id[a].codes) & set(by_id[b].codes))
        assert max(per_code.values()) <= params.max_pairs_per_key + 4 * 3  # cap + groups' pairs
    assert split_pairs(items, "val", params) == split_pairs(items, "val", params)


def test_shares_must_sum_to_one():
    with pytest.raises(ValueError, match="must be 1"):
        SplitsParams(train=0.8, val=0.15, test=0.15)


def test_load_split_ids_requires_a_valid_file(store):
    with pytest.raises(FileNotFoundError, match="logosim splits"):
        load_split_ids(store, "train")
    with pytest.raises(ValueError, match="unknown split"):
        load_split_ids(store, "holdout")


def _task_states(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return [run.state.name for run in runs if run.name.startswith("splits-")]


def test_splits_flow_writes_files_and_is_cached(prefect_server, store):
    from flows.splits import splits_flow

    first = splits_flow(DEMO, str(store.root), SplitsParams(seed=3), return_state=True)
    summary = first.result()
    total = len(open_source(DEMO))
    assert summary.images == total == sum(summary.splits.values())
    assert _task_states(first.state_details.flow_run_id) == ["Completed"]
    table = pq.read_table(store.path(SPLITS_FILE))
    assert table.column_names == ["id", "split", "group", "stratum"]
    ids = {s: load_split_ids(store, s) for s in ("train", "val", "test")}
    assert sum(map(len, ids.values())) == total
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert abs(len(ids["train"]) / total - 0.70) < 0.02
    for split in ("val", "test"):
        pairs = load_pairs(store, split)
        assert pairs.column_names == ["a", "b", "label"]
        assert set(pairs.column("a").to_pylist()) <= ids[split]
        assert summary.pairs[split]["similar"] == summary.pairs[split]["dissimilar"] > 0

    second = splits_flow(DEMO, str(store.root), SplitsParams(seed=3), return_state=True)
    assert second.result() == summary
    assert _task_states(second.state_details.flow_run_id) == ["Cached"]

    store.path("splits/pairs_val.parquet").unlink()  # a lost file is recomputed, not trusted
    third = splits_flow(DEMO, str(store.root), SplitsParams(seed=3), return_state=True)
    assert third.result() == summary
    assert load_pairs(store, "val").num_rows == sum(summary.pairs["val"].values())


def test_cli_splits_and_stats(prefect_server, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from prefect.settings import PREFECT_API_URL

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}  # the session's server
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")

    def logosim(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "flows.cli", *args]
        return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)

    for command in ("stats", "splits"):
        result = logosim(command, "--help")
        assert result.returncode == 0 and "--source" in result.stdout
    store = tmp_path / "store"
    result = logosim("splits", "--source", "demo", "--store", str(store), "--seed", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "train:" in result.stdout and str(store / SPLITS_FILE) in result.stdout
    result = logosim(
        "stats", "--source", "demo", "--store", str(store), "--checkpoint-every", "700"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((store / "stats" / "stats.json").read_text())
    assert f"images:  {stats['images']:,}" in result.stdout
    assert "img/s" in result.stderr  # the progress bar
    result = logosim("stats", "--source", str(tmp_path / "missing"))
    assert result.returncode == 2 and "does not exist" in result.stderr
