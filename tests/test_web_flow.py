"""The extract stage and the fetch-logos flow: chunks in the store, reruns that retry only
transient failures, and an output Parquet that is a valid --source."""

from __future__ import annotations

import asyncio
import csv

import pyarrow.parquet as pq
import pytest
from aiohttp import web
from typer.testing import CliRunner
from web_sites import Fleet, html, png

from logosim.core.failures import read_errors
from logosim.core.store import ArtifactStore
from logosim.data.decode import decode_image
from logosim.data.sources import open_source
from logosim.web.extract import ExtractSettings
from logosim.web.fetch import FetchSettings
from logosim.web.stage import (
    DomainListError,
    extract_chunk,
    plan_jobs,
    publish_logos,
    read_domains,
)

# 3 s: under the flaky site's 4-s first answer, and room for a loaded CI box to stall the loop.
SETTINGS = ExtractSettings(
    fetch=FetchSettings(allow_private=True, timeout=3, connect_timeout=3, read_timeout=3),
    domain_timeout=8,
)
LOGO = '<header><img class="logo" src="/logo.png"></header>'


@pytest.fixture(scope="module")
def fleet():
    fleet = Fleet()
    yield fleet
    fleet.close()


def flaky_site(fleet: Fleet) -> str:
    """Too slow on the first visit (a timeout), fine afterwards."""
    calls = []

    async def home(request: web.Request) -> web.StreamResponse:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(4)
        return web.Response(text=f"<html><body>{LOGO}</body></html>", content_type="text/html")

    return fleet.add({"/": home, "/logo.png": png()})


def test_read_domains(tmp_path):
    (tmp_path / "d.csv").write_text("domain\nexample.com\n\nexample.com\nacme.test\n")
    assert read_domains(tmp_path / "d.csv") == ["example.com", "acme.test"]
    pq.write_table(
        __import__("pyarrow").table({"url": ["http://a.test:81/", None]}), tmp_path / "u.parquet"
    )
    assert read_domains(tmp_path / "u.parquet") == ["http://a.test:81/"]
    (tmp_path / "bad.csv").write_text("name\nx\n")
    with pytest.raises(DomainListError, match="'url' or 'domain'"):
        read_domains(tmp_path / "bad.csv")


def test_rerun_retries_only_transient_failures(fleet, tmp_path):
    good = fleet.add({"/": html(LOGO), "/logo.png": png()})
    gone = fleet.add({})  # 404 everywhere: an answer, not retried
    flaky = flaky_site(fleet)
    values = [good + "/", gone + "/", flaky + "/"]
    store = ArtifactStore(tmp_path / "store")
    [job] = plan_jobs(str(store.root), values, SETTINGS)
    first = extract_chunk(job)
    assert first.meta["transient"] == 1 and first.meta["by_reason"] == {
        "http_404": 1,
        "timeout": 1,
    }
    hits = {url: len(fleet.hits[int(url.rsplit(":", 1)[1])]) for url in (good, gone)}
    second = extract_chunk(job)
    assert second.meta["transient"] == 0 and second.meta["ok"] == 2
    assert {u: len(fleet.hits[int(u.rsplit(":", 1)[1])]) for u in hits} == hits  # untouched
    assert extract_chunk(job) == second  # nothing left to retry: the file stands

    summary = publish_logos(str(store.root), [second], None)
    assert store.load_verified("logos.parquet") is not None  # in the store: with a manifest
    assert (summary.ok, summary.failed, summary.by_reason) == (2, 1, {"http_404": 1})
    assert [e.reason for e in read_errors(store)] == ["http_404"]
    source = open_source(summary.out)  # a valid --source: id = domain, image = logo
    assert source.id_column == "id" and source.image_column == "logo"
    records = list(source.records())
    assert [r.read_error for r in records] == [None, "no image in row", None]
    assert all(decode_image(r.data).size == (240, 96) for r in records if r.data)
    assert records[0].extra["status"] == "ok" and records[0].extra["source"] == "img"


def test_extract_flow_then_command(prefect_server, fleet, tmp_path):
    from flows.cli import app
    from flows.extract import extract_flow
    from flows.stats import default_params, stats_flow
    from logosim.data.sources import SourceSpec

    sites = [fleet.add({"/": html(LOGO), "/logo.png": png()}) + "/" for _ in range(3)]
    sites.append(fleet.add({}) + "/")
    flaky = flaky_site(fleet) + "/"  # times out once (4 s > 3 s), then answers
    sites.append(flaky)
    domains = tmp_path / "domains.csv"
    with open(domains, "w", newline="") as fh:
        csv.writer(fh).writerows([["url"], *([s] for s in sites)])
    store, out = tmp_path / "store", tmp_path / "logos.parquet"
    # The flow first: Prefect's console handler binds to the stream of the first run, and
    # a CliRunner's stream is closed once it returns.
    summary = extract_flow(str(domains), str(store), str(out), _cli_settings(), 2)
    assert (summary.ok, summary.by_reason) == (3, {"http_404": 1, "timeout": 1})
    assert pq.read_table(out).column("status").to_pylist() == ["ok"] * 3 + ["failed"] * 2

    # The same run from the command line: finished chunks come from the cache, and only the
    # domain that timed out is asked again.
    flaky_port = int(flaky.rstrip("/").rsplit(":", 1)[1])
    others = sum(len(v) for port, v in fleet.hits.items() if port != flaky_port)
    args = ["fetch-logos", "--domains", str(domains), "--store", str(store), "--out", str(out)]
    result = CliRunner().invoke(
        app, [*args, "--allow-private", "--timeout", "3", "--chunk-size", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "ok:      4 (img: 4)" in result.output and "http_404: 1" in result.output
    assert sum(len(v) for port, v in fleet.hits.items() if port != flaky_port) == others
    assert pq.read_table(out).column("status").to_pylist() == ["ok"] * 3 + ["failed", "ok"]

    stats = stats_flow(SourceSpec(path=str(out)), str(tmp_path / "s"), default_params())
    assert (stats.images, stats.corrupt) == (5, 1)  # a valid --source; failed rows unreadable


def _cli_settings() -> ExtractSettings:
    """What ``fetch-logos --allow-private --timeout 3`` passes to the flow."""
    fetch = FetchSettings(allow_private=True, timeout=3.0)
    return ExtractSettings(fetch=fetch, domain_timeout=60.0)
