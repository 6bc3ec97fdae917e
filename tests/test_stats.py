"""Stats: exact merging of chunk stats, the figures themselves, and the checkpointed flow."""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from image_corpus import encode, logo, write_corpus
from PIL import Image, ImageDraw

from logosim.core.failures import read_errors
from logosim.core.records import LogoRecord
from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec, open_source
from logosim.data.stats import (
    STATS_FILE,
    ImageStats,
    StatsParams,
    add_record,
    aspect_bin,
    finish_stats,
    load_stats,
    records_stats,
    size_bin,
)

ROOT = Path(__file__).resolve().parents[1]


def record(i: int, data: bytes, **meta) -> LogoRecord:
    return LogoRecord(id=f"m{i}", ref=f"/m{i}", row=i, data=data, **meta)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    good, bad = write_corpus(folder)
    return folder, good, bad


def test_bins_cover_every_size():
    assert [size_bin(v) for v in (1, 31, 32, 63, 224, 4095, 4096, 10**6)] == [
        "<32",
        "<32",
        "32-64",
        "32-64",
        "128-256",
        "2048-4096",
        ">=4096",
        ">=4096",
    ]
    assert aspect_bin(100, 100) == "0.95-1.05"
    assert aspect_bin(1000, 100) == ">=4"
    assert aspect_bin(10, 100) == "<0.25"


def test_chunk_stats_merge_exactly(corpus):
    folder, _, _ = corpus
    source = open_source(str(folder))
    params = StatsParams()
    whole, _ = records_stats(source.records(), params)
    cuts = [0, 3, 4, 11, len(source)]
    parts = [records_stats(source.records(a, b), params)[0] for a, b in itertools.pairwise(cuts)]
    merged = ImageStats()
    for part in reversed(parts):  # order must not matter
        merged = merged.merge(part)
    assert merged == whole
    assert whole.merge(ImageStats()) == whole


def test_figures_per_image():
    red = encode(logo((200, 100)), "PNG")
    black_jpeg = encode(logo((64, 64), (0, 0, 0)), "JPEG")
    rgba = encode(Image.new("RGBA", (50, 50), (0, 0, 255, 128)), "PNG")
    gray = encode(Image.new("L", (40, 40), 128), "PNG")
    stats, params = ImageStats(), StatsParams()
    records = [
        record(0, red, text="ACME", vienna_codes=("26.01.03", "27.05.01"), year=2001, group="g"),
        record(1, black_jpeg, vienna_codes=("26.04.02",), group="g"),
        record(2, rgba, year=2001),
        record(3, gray, text="", group="h"),
    ]
    assert all(add_record(stats, r, params) is None for r in records)
    assert (stats.images, stats.decoded, stats.corrupt_total) == (4, 4, 0)
    assert stats.colour == {"colour": 2, "grayscale": 2}  # black JPEG: chroma noise only
    assert stats.transparency == {"opaque": 3, "alpha": 1}
    assert stats.vienna_top == {"26": 2, "27": 1}
    assert stats.vienna_full == {"26.01.03": 1, "27.05.01": 1, "26.04.02": 1}
    assert stats.years == {"2001": 2, "none": 2}
    assert stats.with_text == 1
    assert stats.groups == {"g": 2, "h": 1}
    assert stats.aspect["2-4"] == 1 and stats.width["128-256"] == 1
    assert (stats.width_min, stats.width_max, stats.height_max) == (40, 200, 100)
    report = stats.report()
    assert report["group_count"] == 2 and report["group_sizes"] == {"1": 1, "2": 1}
    assert report["with_text_share"] == 0.25


def test_size_is_read_after_exif_orientation(corpus):
    _, good, _ = corpus
    stats = ImageStats()
    add_record(stats, record(0, good["exif_rotated.jpg"]), StatsParams())
    assert (stats.width_min, stats.height_min) == (32, 48)


def test_unreadable_and_corrupt_records_are_counted_with_reason(corpus):
    _, _, bad = corpus
    stats, params = ImageStats(), StatsParams()
    errors = [
        add_record(stats, record(i, data), params) for i, (data, _) in enumerate(bad.values())
    ]
    unreadable = LogoRecord(id="gone", ref="/gone.png", row=99, read_error="unreadable: ENOENT")
    errors.append(add_record(stats, unreadable, params))
    expected = [reason for _, reason in bad.values()] + ["unreadable"]
    assert [e.reason for e in errors] == expected
    assert stats.corrupt_total == len(expected) and stats.decoded == 0
    assert errors[-1].source == "/gone.png" and errors[-1].stage == "stats"


def test_finish_publishes_json_plots_and_errors(corpus, store):
    from logosim.data.stats import compute_chunk_stats, stats_job

    folder, good, bad = corpus
    spec = SourceSpec(path=str(folder))
    source = open_source(spec)
    params = StatsParams(checkpoint_every=6)
    from logosim.data.chunks import plan_chunks

    manifests = [
        compute_chunk_stats(stats_job(str(store.root), spec, chunk, params))
        for chunk in plan_chunks(source, params.checkpoint_every)
    ]
    from logosim.report.plots import write_histograms

    summary, report = finish_stats(store, spec, manifests, write_histograms)
    assert (summary.images, summary.corrupt, summary.chunks) == (
        len(good) + len(bad),
        len(bad),
        len(manifests),
    )
    assert load_stats(store) == json.loads(store.path(STATS_FILE).read_text()) == report
    assert next(iter(report["width"])) == "<32"  # bins keep their natural order
    assert summary.plots  # the histograms were drawn
    for plot in summary.plots:
        with Image.open(plot) as png:
            assert png.format == "PNG" and png.width > 100
    assert {Path(p).name for p in summary.plots} >= {"width.png", "aspect_ratio.png"}
    assert {e.id for e in read_errors(store)} == {f"bad/{name}" for name in bad}


def test_a_chunk_written_before_a_kill_is_reused_not_recomputed(corpus, tmp_path):
    """A kill between the chunk's write and Prefect's result record leaves a whole chunk the
    task cache does not know: the chunk task finds it by its cache key instead."""
    from logosim.data.chunks import plan_chunks
    from logosim.data.stats import compute_chunk_stats, stats_job

    folder, _, _ = corpus
    spec, params = SourceSpec(path=str(folder)), StatsParams(checkpoint_every=6)
    store = ArtifactStore(tmp_path / "store")
    job = stats_job(str(store.root), spec, plan_chunks(open_source(spec), 6)[0], params)
    first = compute_chunk_stats(job)
    written = store.path(first.path).stat().st_mtime_ns
    assert compute_chunk_stats(job) == first
    assert store.path(first.path).stat().st_mtime_ns == written  # not rewritten
    store.path(f"errors/stats/{job.chunk.name}.jsonl").unlink()  # its companion is gone
    assert compute_chunk_stats(job).sha256 == first.sha256  # so it was computed again
    assert store.load_verified(f"errors/stats/{job.chunk.name}.jsonl") is not None


# -- flows ----------------------------------------------------------------------------------
def _task_states(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {run.name: run.state.name for run in runs}


def test_stats_flow_logs_every_bad_file_and_is_cached_on_rerun(prefect_server, corpus, store):
    from flows.stats import stats_flow

    folder, good, bad = corpus
    spec, params = SourceSpec(path=str(folder)), StatsParams(checkpoint_every=5)
    first = stats_flow(spec, str(store.root), params, return_state=True)
    summary = first.result()
    assert summary.images == len(good) + len(bad)
    assert summary.decoded == len(good)
    assert summary.corrupt_by_reason == {
        reason: sum(1 for _, r in bad.values() if r == reason) for _, reason in bad.values()
    }
    logged = {e.id: e.reason for e in read_errors(store)}
    assert logged == {f"bad/{name}": reason for name, (_, reason) in bad.items()}
    assert all(e.stage == "stats" and Path(e.source).exists() for e in read_errors(store))
    states = _task_states(first.state_details.flow_run_id)
    chunk_states = [s for name, s in states.items() if name.startswith("stats-chunk")]
    assert len(chunk_states) == summary.chunks == 4 and set(chunk_states) == {"Completed"}

    second = stats_flow(spec, str(store.root), params, return_state=True)
    assert second.result().model_dump(exclude={"plots"}) == summary.model_dump(exclude={"plots"})
    states = _task_states(second.state_details.flow_run_id)
    chunk_states = [s for name, s in states.items() if name.startswith("stats-chunk")]
    assert chunk_states == ["Cached"] * 4


def test_stats_flow_recomputes_a_lost_checkpoint(prefect_server, corpus, store):
    from flows.stats import stats_flow

    folder, _, _ = corpus
    spec, params = SourceSpec(path=str(folder)), StatsParams(checkpoint_every=7)
    before = stats_flow(spec, str(store.root), params)
    lost = sorted(store.path("stats/chunks").glob("*.json"))[0]
    lost.write_text("{}")  # damaged: fails its checksum
    after = stats_flow(spec, str(store.root), params)
    assert after.model_dump(exclude={"plots"}) == before.model_dump(exclude={"plots"})
    assert store.load_verified(lost.relative_to(store.root)) is not None


def _slow_images(folder: Path, count: int) -> None:
    """Large but small-on-disk PNGs: each costs tens of ms to decode."""
    folder.mkdir(parents=True)
    for i in range(count):
        image = Image.new("RGB", (1000, 1000), "white")
        draw = ImageDraw.Draw(image)
        draw.ellipse((100 + i % 50, 100, 800, 700 + i % 90), fill=(200, 30, (i * 7) % 255))
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        (folder / f"{i:04d}.png").write_bytes(buffer.getvalue())


def _done_checkpoints(store_root: Path) -> dict[str, int]:
    """Checkpoint files that are complete (manifest written last), with their mtimes."""
    chunks = store_root / "stats" / "chunks"
    return {
        p.name: p.stat().st_mtime_ns
        for p in chunks.glob("*.json")
        if not p.name.endswith(".manifest.json") and Path(f"{p}.manifest.json").exists()
    }


@pytest.mark.slow
def test_killed_stats_run_resumes_from_its_checkpoints(prefect_server, tmp_path):
    from prefect.settings import PREFECT_API_URL

    from flows.stats import stats_flow

    images, every, chunks = tmp_path / "images", 20, 12
    _slow_images(images, every * chunks)
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # the session's test server
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "LOGOSIM_STATS_CHECKPOINT_EVERY": str(every),
    }
    command = [sys.executable, "-m", "flows.cli", "stats", "--source", str(images), "--store"]
    run = subprocess.Popen(
        [*command, str(killed)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(_done_checkpoints(killed)) < 2 and run.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 60 s"
        time.sleep(0.05)
    assert run.poll() is None, f"run ended before it could be killed: {run.stderr.read()}"
    run.send_signal(signal.SIGKILL)
    run.wait()
    at_kill = _done_checkpoints(killed)
    assert 2 <= len(at_kill) < chunks
    assert not (killed / STATS_FILE).exists()

    rerun = subprocess.run(
        [*command, str(killed)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = _done_checkpoints(killed)
    assert len(after) == chunks
    # The checkpoints finished before the kill were reused, not recomputed.
    assert all(after[name] == mtime for name, mtime in at_kill.items())
    recomputed = [name for name in after if name not in at_kill]
    assert len(recomputed) == chunks - len(at_kill)

    stats_flow(SourceSpec(path=str(images)), str(reference), StatsParams(checkpoint_every=every))
    resumed = json.loads((killed / STATS_FILE).read_text())
    uninterrupted = json.loads((reference / STATS_FILE).read_text())
    assert resumed == uninterrupted
    assert resumed["images"] == every * chunks and resumed["corrupt"]["total"] == 0
