"""Kill anywhere (issue 18): ``kill -9`` of ``logosim build`` at random moments, then rerun.

Each sequence starts a build (with --text-mask, so every stage runs: stats, splits, OCR
preprocess, embed, PCA, index), kills it with SIGKILL after a random delay, starts it again,
kills it again, …, and finally lets it finish. Checked after every kill: no process the
command started is left running. Checked at the end: the index, its ids and the neighbours
of every vector are identical to an uninterrupted build; the store verifies with no
leftovers; and no chunk task that had completed before a kill is recomputed by the rerun
(each kill costs at most the chunks in flight).

Replay a failure with the printed seed: ``LOGOSIM_CHAOS_SEED=… pytest tests/test_chaos.py``;
a longer run: ``LOGOSIM_CHAOS_KILLS=100``. The flows report to a real Prefect server.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from processes import REPO, prefect_server, start, stop, wait_for

from logosim.core.store import ArtifactStore
from logosim.core.verify import verify_store
from logosim.demo import DEMO_PARQUET
from logosim.index.logo_index import LogoIndex

pytestmark = [pytest.mark.slow, pytest.mark.server]

KILLS = int(os.environ.get("LOGOSIM_CHAOS_KILLS", "20"))
SEQUENCES = 4
SEED = int(os.environ.get("LOGOSIM_CHAOS_SEED", random.SystemRandom().randrange(1 << 30)))
FINISHED = re.compile(r"Task run '([^']*-chunk-[^']*)' - Finished in state (\w+)")


@pytest.fixture(scope="module")
def server_env(tmp_path_factory):
    with prefect_server(tmp_path_factory.mktemp("chaos-server")) as env:
        yield env


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """24 grouped demo logos + 16 others (some with words, so OCR has work)."""
    table = pq.read_table(DEMO_PARQUET)
    grouped = pc.not_equal(table["group"], "")
    subset = pa.concat_tables(
        [table.filter(grouped).slice(0, 24), table.filter(pc.invert(grouped)).slice(0, 16)]
    )
    path = tmp_path_factory.mktemp("chaos") / "logos.parquet"
    pq.write_table(subset, path)
    return path


def _build(source: Path, store: Path, env: dict, log: Path) -> subprocess.Popen:
    return _logosim(["build", "--text-mask"], source, store, env, log)


def _reindex(source: Path, store: Path, env: dict, log: Path) -> subprocess.Popen:
    return _logosim(["reindex"], source, store, env, log)


def _logosim(args: list[str], source: Path, store: Path, env: dict, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "flows.cli", *args, "--source", str(source)]
    command += ["--store", str(store), "--chunk-size", "8"]
    with open(log, "wb") as out:  # its own process group, as a shell starts a job
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _chunk_states(log: Path) -> dict[str, str]:
    return dict(FINISHED.findall(log.read_text(errors="replace")))


def _descendants(proc: subprocess.Popen) -> list[psutil.Process]:
    """The command's children and everything else in its process group."""
    found = {}
    with contextlib.suppress(psutil.Error):
        found = {p.pid: p for p in psutil.Process(proc.pid).children(recursive=True)}
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if process.pid != proc.pid and os.getpgid(process.pid) == proc.pid:
                found[process.pid] = process
    return list(found.values())


def _left_running(processes: list[psutil.Process], timeout: float = 15) -> list[str]:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [" ".join(p.cmdline())[:120] for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def _snapshot(store: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Live index ids (sorted), their vectors and each one's 5 nearest ids. Sorted: a rerun
    of a killed reindex may re-add a mark into a new slot, which changes no search result."""
    index = LogoIndex.load(ArtifactStore(store))
    ids, blocks = [], []
    for part_ids, vectors in index.live_vectors():
        ids += part_ids
        blocks.append(vectors)
    order = np.argsort(ids, kind="stable")
    ids = [ids[i] for i in order]
    vectors = np.concatenate(blocks)[order]
    nearest = np.argsort(-(vectors @ vectors.T), axis=1, kind="stable")[:, :5]
    return ids, vectors, np.array(ids)[nearest]


@pytest.fixture(scope="module")
def reference(server_env, source, tmp_path_factory) -> dict:
    """An uninterrupted build: its snapshot and how long it took."""
    store = tmp_path_factory.mktemp("chaos-reference") / "store"
    log = store.parent / "reference.log"
    started = time.monotonic()
    run = _build(source, store, server_env, log)
    assert run.wait(timeout=600) == 0, log.read_text()[-4000:]
    return {"seconds": time.monotonic() - started, "snapshot": _snapshot(store), "store": store}


def _same_as_reference(store: Path, snapshot: tuple) -> None:
    expected_ids, expected_vectors, expected_neighbours = snapshot
    ids, vectors, neighbours = _snapshot(store)
    assert ids == expected_ids, f"seed {SEED}"
    np.testing.assert_allclose(vectors, expected_vectors, atol=1e-5, err_msg=f"seed {SEED}")
    assert (neighbours == expected_neighbours).all(), f"seed {SEED}"
    check = verify_store(ArtifactStore(store))
    assert check.ok and not check.leftovers, f"seed {SEED}: {check.lines()}"


def test_kill_anywhere_then_rerun_gives_the_uninterrupted_result(
    server_env, source, reference, tmp_path
):
    print(f"\nchaos seed {SEED}, {KILLS} kills (replay: LOGOSIM_CHAOS_SEED={SEED})")
    rng = random.Random(SEED)
    full = reference["seconds"]
    report = []
    for sequence in range(SEQUENCES):
        store = tmp_path / f"store{sequence}"
        kills = KILLS // SEQUENCES + (sequence < KILLS % SEQUENCES)
        report += _kill_and_rerun(_build, source, store, server_env, kills, full, rng, tmp_path)
        _same_as_reference(store, reference["snapshot"])
    print("\n".join(report))


def _kill_and_rerun(start, source, store, env, kills, full, rng, logs) -> list[str]:
    """Start, SIGKILL after a random delay, ``kills`` times; then run to the end. Checks
    that nothing the command started survives a kill and that no chunk finished before a
    kill is recomputed after it."""
    report = []
    previous: dict[str, str] = {}
    for kill in range(kills + 1):
        log = logs / f"{store.name}-run{kill}.log"
        run = start(source, store, env, log)
        delay = rng.uniform(1.0, full) if kill < kills else None
        if delay is not None:
            try:
                run.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.kill(run.pid, signal.SIGKILL)
                children = _descendants(run)  # all it started, even in its last moment
                run.wait(timeout=10)
                leftover = _left_running(children)
                assert not leftover, f"seed {SEED}: left running after kill: {leftover}"
        else:
            assert run.wait(timeout=600) == 0, f"seed {SEED}: " + log.read_text()[-4000:]
        states = _chunk_states(log)
        done_before = {n for n, s in previous.items() if s in ("Completed", "Cached")}
        recomputed = {n for n, s in states.items() if s == "Completed"}
        assert not (done_before & recomputed), (
            f"seed {SEED}: chunks finished before the kill were recomputed: "
            f"{sorted(done_before & recomputed)}"
        )
        report.append(
            f"{store.name} run {kill}: "
            + (f"killed at {delay:.1f} s" if delay else "to the end")
            + f", chunks completed {len(recomputed)}, cached "
            f"{sum(s == 'Cached' for s in states.values())}"
        )
        previous = states | {n: s for n, s in previous.items() if n not in states}
    return report


def test_two_builds_on_one_store_at_once(server_env, source, reference, tmp_path):
    """The second waits on the store lock, says so, and both end with the same index."""
    store = tmp_path / "store"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    runs = [_build(source, store, server_env, log) for log in logs]
    for run, log in zip(runs, logs, strict=True):
        assert run.wait(timeout=600) == 0, log.read_text()[-4000:]
    waited = [log for log in logs if "is in use by pid" in log.read_text(errors="replace")]
    assert len(waited) == 1, "exactly one of the two runs waited for the other"
    _same_as_reference(store, reference["snapshot"])


def _flow_run_logs(api: str, flow_run_id: str) -> str:
    import httpx

    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}
    response = httpx.post(f"{api}/logs/filter", json=body, timeout=10)
    response.raise_for_status()
    return "\n".join(entry["message"] for entry in response.json())


def test_two_build_deployment_runs_on_one_store_at_once(server_env, source, reference, tmp_path):
    """The same through a real server: two runs of the build deployment, triggered together
    the way the UI's Run button does; the served process runs each in its own process."""
    import httpx
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.commands._options import BuildOptions, source_spec

    api = server_env["PREFECT_API_URL"]
    serve_log = tmp_path / "serve.log"
    serve = start([sys.executable, "-m", "deployments.serve", "build"], server_env, serve_log)
    try:
        wait_for(lambda: httpx.get(f"{api}/deployments/name/build/default").status_code == 200,
                 "the build/default deployment", 120, [serve_log])  # fmt: skip
        spec = source_spec(str(source), "auto", None)  # what `logosim build` runs
        params = BuildOptions(chunk_size=8, text_mask=True).params(spec, str(tmp_path / "store"))
        with temporary_settings({PREFECT_API_URL: api}):
            runs = [
                run_deployment(
                    "build/default", parameters={"params": params.model_dump(mode="json")},
                    timeout=0,
                )
                for _ in range(2)
            ]  # fmt: skip
            for run in runs:
                done = _wait_for_run(run.id, 600)
                assert done.state.is_completed(), (done.state, serve_log.read_text()[-4000:])
        logs = [_flow_run_logs(api, str(run.id)) for run in runs]
    finally:
        stop(serve)
    waited = [log for log in logs if "is in use by pid" in log]
    assert len(waited) == 1, "exactly one of the two deployment runs waited for the other"
    assert "waiting" in waited[0]
    _same_as_reference(tmp_path / "store", reference["snapshot"])


def _wait_for_run(flow_run_id, timeout: float):
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state.is_final() or time.monotonic() > deadline:
                return run
            time.sleep(1)


@pytest.fixture(scope="module")
def changed_source(source: Path) -> Path:
    """The register a day later: 3 marks withdrawn, 8 filed."""
    table = pq.read_table(DEMO_PARQUET)
    kept = pq.read_table(source).slice(3)
    filed = table.filter(pc.invert(pc.not_equal(table["group"], ""))).slice(100, 8)
    path = source.with_name("logos-next-day.parquet")
    pq.write_table(pa.concat_tables([kept, filed.select(kept.schema.names)]), path)
    return path


def test_kill_reindex_anywhere(server_env, changed_source, reference, tmp_path):
    """The nightly reindex, killed at random moments, ends where an uninterrupted one does."""
    rng = random.Random(SEED + 1)
    uninterrupted = tmp_path / "uninterrupted"
    shutil.copytree(reference["store"], uninterrupted)
    started = time.monotonic()
    log = tmp_path / "uninterrupted.log"
    assert _reindex(changed_source, uninterrupted, server_env, log).wait(600) == 0, log.read_text()
    full = time.monotonic() - started
    expected = _snapshot(uninterrupted)
    assert len(expected[0]) == 40 - 3 + 8

    store = tmp_path / "killed"
    shutil.copytree(reference["store"], store)
    kills = max(2, KILLS // 5)
    report = _kill_and_rerun(
        _reindex, changed_source, store, server_env, kills, full, rng, tmp_path
    )
    _same_as_reference(store, expected)
    print("\n".join(report))


def _damage(path: Path, how: str) -> None:
    if how == "delete":
        path.unlink()
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # flip one byte in the middle
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


DAMAGE = {  # artifact (glob in the store) → how it is damaged between runs
    "embeddings/*.npz": "flip",
    "masks/*.npz": "truncate",
    "pca/pca.npz": "flip",
    "index/index.faiss": "truncate",
    "index/ids.json": "delete",
    "splits/splits.parquet": "flip",
}


def test_damaged_artifacts_are_detected_recomputed_and_reported_once(
    server_env, source, reference, tmp_path
):
    """Flip a byte in, truncate or delete each kind of artifact between runs: the next build
    notices (manifest size/sha256), recomputes it, says so once, and ends as before."""
    store = tmp_path / "store"
    shutil.copytree(reference["store"], store)
    for pattern, how in DAMAGE.items():
        victim = sorted(store.glob(pattern))[0]
        _damage(victim, how)
        assert not verify_store(ArtifactStore(store)).ok
        log = tmp_path / f"after-{victim.name}.log"
        run = _build(source, store, server_env, log)
        assert run.wait(timeout=600) == 0, log.read_text()[-4000:]
        text = log.read_text(errors="replace")
        rel = str(victim.relative_to(store))
        mentions = [line for line in text.splitlines() if rel in line and "recomput" in line]
        assert len(mentions) == 1, (rel, how, mentions or text[-3000:])
        _same_as_reference(store, reference["snapshot"])
