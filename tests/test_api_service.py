"""The service as it runs: hot reload under load, no PyTorch on the serving path, and
`logosim api` ready within 5 s on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from api_client import client, started_engine

from logosim.core.store import ArtifactStore
from logosim.index.add import remove_from_index
from logosim.service.config import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]


def test_hot_reload_switches_versions_while_requests_succeed(api_store, tmp_path):
    root, rows = api_store
    copy = tmp_path / "store"
    shutil.copytree(root, copy)
    settings = ServiceSettings(store=copy, rate_per_minute=60_000, rate_burst=1000)
    engine = started_engine(settings)
    before = engine.snapshot.version
    gone = rows[9]["id"]
    statuses, versions, stop = [], set(), threading.Event()

    with client(settings, engine) as c:

        def hammer():
            while not stop.is_set():
                r = c.post(
                    "/v1/search",
                    files={"image": ("q.jpg", rows[9]["image"], "image/jpeg")},
                    data={"k": "3"},
                )
                statuses.append(r.status_code)
                versions.add(r.json().get("index_version"))

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            remove_from_index(ArtifactStore(copy), [gone])  # a reindex publishes a new version
            swapped = engine.refresh()
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert swapped, engine.error
        assert statuses and set(statuses) == {200}
        after = c.get("/readyz").json()
        assert after["index_version"] != before and after["reloads"] == 1
        assert after["index_size"] == len(rows) - 1
        assert versions == {before, after["index_version"]}
        hits = c.post(
            "/v1/search", files={"image": ("q.jpg", rows[9]["image"], "image/jpeg")}
        ).json()["results"]
        assert gone not in [h["id"] for h in hits]
        assert not engine.refresh()  # nothing new published


def test_the_serving_path_never_imports_torch(api_store):
    root, _rows = api_store
    script = f"""
import sys, io
from logosim.service.config import ServiceSettings
from logosim.service.engine import Engine, Query, SearchOptions
from logosim.decode import decode_image
import pyarrow.parquet as pq
engine = Engine(ServiceSettings(store={str(root)!r}))
engine.start()
assert engine.error is None, engine.error
row = pq.read_table({str(root.parent / "marks.parquet")!r}).slice(3, 1).to_pylist()[0]
engine.snapshot.texts.ready.wait(60)
query = Query(decode_image(row["image"]), text=row["text"])
(ranking,), _ = engine.search([query], SearchOptions(k=2, rerank=True))  # stage 2, all terms
assert ranking.hits[0].id == row["id"], ranking
assert ranking.terms_used == ["global", "text", "colour"], ranking
import logosim.service.app
logosim.service.app.create_app(engine.settings, engine=engine).openapi()
print("torch" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_serves_loopback_only_without_keys_and_is_ready_within_5s(api_store):
    root, _ = api_store
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGOSIM_API_")}
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "api",
            "--store",
            str(root),
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = None
        while time.monotonic() - started < 60 and ready is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    ready = json.load(r)
            except OSError:
                time.sleep(0.1)
        assert ready is not None and ready["ready"], ready
        # the process start includes Python imports; the store itself loads far faster
        assert ready["ready_after_s"] < 5
        with socket.socket() as s:  # nothing listens on the other addresses
            s.settimeout(1)
            other = socket.gethostbyname(socket.gethostname())
            if other.startswith("127."):
                return
            assert s.connect_ex((other, port)) != 0
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "no API key configured" in output and "listening on 127.0.0.1" in output
