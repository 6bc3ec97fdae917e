"""The cluster flow on ~150 demo logos under the test Prefect server: one run, then several
checks of its outputs; a second run recomputes nothing; bad input is refused clearly."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from logosim.data.sources import SourceSpec
from logosim.demo import DEMO_PARQUET

pytestmark = pytest.mark.slow  # ~45 s: embedding, numba's first UMAP compile, two layouts

UNSAFE_ID = "brands/a:b?c*..\\<d>|e"
BROKEN_ID = "broken/not-an-image"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """100 grouped logos + 48 distractors, one id unsafe for a filesystem, one broken image."""
    table = pq.read_table(DEMO_PARQUET)
    grouped = pc.not_equal(table["group"], "")
    rows = pa.concat_tables(
        [table.filter(grouped).slice(0, 100), table.filter(pc.invert(grouped)).slice(0, 49)]
    ).to_pylist()
    rows[-1]["id"] = UNSAFE_ID
    rows.append(rows[0] | {"id": BROKEN_ID, "image": b"not an image", "group": ""})
    path = tmp_path_factory.mktemp("cluster-src") / "logos150.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    return path


def run_params(source, store, **cluster):
    from flows.build import BuildParams
    from flows.cluster import ClusterRunParams
    from logosim.cluster.params import ClusterParams
    from logosim.embed.pca import PCAParams

    return ClusterRunParams(
        build=BuildParams(
            source=SourceSpec(path=str(source), group_column="group"),
            store=str(store),
            chunk_size=64,
            pca=PCAParams(dims=32),
        ),
        cluster=ClusterParams(method="both", k=20, **cluster),
    )


@pytest.fixture(scope="module")
def first_run(prefect_server, source, tmp_path_factory):
    from flows.cluster import cluster_flow

    store = tmp_path_factory.mktemp("cluster-store")
    params = run_params(source, store)
    summary = cluster_flow(params)
    return params, summary


def test_summary_figures(first_run):
    _, summary = first_run
    assert summary["images"] == 149 and summary["failed"] == 1
    assert summary["primary"] == "hdbscan"
    for method in ("hdbscan", "kmeans"):
        figures = summary["methods"][method]
        assert {"ari", "nmi", "purity", "silhouette", "clusters", "noise_share"} <= set(figures)
        assert figures["grouped_images"] == 100
    assert summary["methods"]["kmeans"]["clusters"] == 20
    assert summary["methods"]["hdbscan"]["ari"] > 0.0  # better than chance on the demo groups
    on_disk = json.loads(Path(summary["out"], "summary.json").read_text())
    assert on_disk["methods"]["hdbscan"]["ari"] == summary["methods"]["hdbscan"]["ari"]


def test_clusters_table_keeps_real_ids_and_metadata(first_run):
    out = Path(first_run[1]["out"])
    table = pacsv.read_csv(out / "clusters.csv").to_pylist()
    assert pq.read_table(out / "clusters.parquet").num_rows == len(table) == 149
    ids = {r["id"] for r in table}
    assert UNSAFE_ID in ids and BROKEN_ID not in ids
    row = table[0]
    for column in ("cluster", "probability", "x", "y", "kmeans_cluster", "duplicate_group"):
        assert column in row
    for j in range(1, 6):
        assert row[f"nn{j}_id"] in ids and -1.0 <= row[f"nn{j}_similarity"] <= 1.0
    assert {"collection", "name", "group"} <= set(row)
    failed = pacsv.read_csv(out / "failed.csv").to_pylist()
    assert failed == [{"id": BROKEN_ID, "reason": "not_an_image"}]
    assert (out / "duplicates.csv").exists()


def test_cluster_folders(first_run, source):
    out = Path(first_run[1]["out"])
    table = pacsv.read_csv(out / "clusters.csv").to_pylist()
    folders = {p.name for p in (out / "clusters").iterdir()}
    expected = {"noise" if r["cluster"] < 0 else None for r in table} - {None}
    assert expected <= folders
    files = [p for p in (out / "clusters").rglob("*") if p.is_file() and p.name != "index.html"]
    assert len(files) == 149
    for path in files:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", path.name), path.name
    assert all((out / "clusters" / f / "index.html").exists() for f in folders)
    unsafe = [p for p in files if p.name.startswith("brands_a_b_c")]
    assert len(unsafe) == 1
    rows = pq.read_table(source).to_pylist()
    assert unsafe[0].read_bytes() == next(r["image"] for r in rows if r["id"] == UNSAFE_ID)


def test_pictures_and_report(first_run):
    from PIL import Image

    out = Path(first_run[1]["out"])
    for name in ("cluster_samples.png", "similarity_heatmap.png", "umap.png", "umap_kmeans.png"):
        with Image.open(out / name) as image:
            assert image.width > 400 and image.height > 200
    report = (out / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 4  # self-contained pictures
    assert "data:image/jpeg;base64," in report  # cluster thumbnails
    assert "ari" in report and "clusters/" in report


def test_second_run_recomputes_nothing(first_run):
    from flows.cluster import cluster_flow
    from tests.test_build_flow import states, task_runs_since

    params, summary = first_run
    report = Path(summary["out"]) / "report.html"
    stamp = report.stat().st_mtime_ns
    started = datetime.now(UTC)
    again = cluster_flow(params)
    assert again["out"] == summary["out"]
    assert report.stat().st_mtime_ns == stamp
    runs = states(task_runs_since(started))
    clustering = [s for name, s in runs.items() if name.startswith("cluster_task")]
    assert clustering == ["Cached"]
    assert all(s == "Cached" for name, s in runs.items() if name.startswith("embed"))


def test_existing_out_folder_is_refused_without_overwrite(first_run, tmp_path):
    from flows.cluster import cluster_flow
    from logosim.cluster.params import ClusterError

    params, _ = first_run
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ClusterError, match="--overwrite"):
        cluster_flow(params.model_copy(update={"out": str(out)}))
    summary = cluster_flow(params.model_copy(update={"out": str(out), "overwrite": True}))
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "report.html").exists() and summary["out"] == str(out)


def test_more_clusters_than_images_is_refused(first_run):
    from flows.cluster import cluster_flow
    from logosim.cluster.params import ClusterError

    params, _ = first_run
    too_many = params.model_copy(
        update={"cluster": params.cluster.model_copy(update={"method": "kmeans", "k": 500})}
    )
    with pytest.raises(ClusterError, match="more clusters than the 149 images"):
        cluster_flow(too_many)


def test_cli_reports_bad_input_without_a_traceback(first_run, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    params, _ = first_run
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x.txt").write_text("x")
    source = params.build.source.path
    common = ["--source", source, "--store", params.build.store, "--pca-dims", "32"]
    result = CliRunner().invoke(app, ["cluster", *common, "--chunk-size", "64", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "--overwrite" in result.output and (out / "x.txt").exists()
