"""Failures are data: each broken or hostile site ends ``failed`` with its reason, quickly,
and the other sites of the same run are unaffected. Every server is on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gzip
import socket
import time

import pytest
from aiohttp import web
from web_sites import Fleet, Page, html, png

from logosim.web import fetch as fetch_module
from logosim.web.extract import REASONS, ExtractSettings, extract_domains
from logosim.web.fetch import FetchSettings, StaticResolver

FAST = FetchSettings(
    allow_private=True,
    timeout=2,
    connect_timeout=1,
    read_timeout=1,
    max_html_bytes=256 * 1024,
    max_image_bytes=512 * 1024,
)
SETTINGS = ExtractSettings(fetch=FAST, domain_timeout=8)
# For tests not about time: a loaded CI box can stall the loop past FAST's 1-s connect budget
# (seen once: a blocked name reported as a connect timeout), so they get room to spare.
PATIENT_FETCH = FAST.model_copy(update={"timeout": 30, "connect_timeout": 10, "read_timeout": 10})
PATIENT = ExtractSettings(fetch=PATIENT_FETCH, domain_timeout=60)
PATIENT_NO_ROBOTS = PATIENT.model_copy(
    update={"fetch": PATIENT_FETCH.model_copy(update={"obey_robots": False})}
)
LOGO = '<header><img class="logo" src="/logo.png"></header>'


async def slow(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return web.Response(text="late", content_type="text/html")


async def drip(request: web.Request) -> web.StreamResponse:
    """One byte every 0.2 s: never idle long enough for the read timeout."""
    response = web.StreamResponse(headers={"Content-Type": "text/html"})
    await response.prepare(request)
    for _ in range(200):
        await response.write(b"<")
        await asyncio.sleep(0.2)
    return response


async def endless(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/html"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    block = b"<p>" + b"x" * 65536 + b"</p>"
    for _ in range(100_000):
        await response.write(block)
    return response


BOMB = gzip.compress(b"\0" * (64 * 2**20), compresslevel=9)


async def gzip_bomb(request: web.Request) -> web.StreamResponse:
    return web.Response(
        body=BOMB, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}
    )


def loop_to(target: str) -> Page:
    return Page(b"", status=302, headers={"Location": target})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CASES: dict[str, tuple[dict, str]] = {
    "not-found": ({}, "http_404"),
    "server-error": ({"/": Page("oops", status=503)}, "http_5xx"),
    "redirect-loop": ({"/": loop_to("/a"), "/a": loop_to("/b"), "/b": loop_to("/")}, "too_many_redirects"),
    "huge-image": (
        {"/": html(LOGO), "/logo.png": Page(b"\x89PNG" + b"\0" * (2 * 2**20), "image/png")},
        "too_large",
    ),
    "endless-chunked": ({"/": endless}, "too_large"),
    "gzip-bomb": ({"/": gzip_bomb}, "too_large"),
    "html-at-image-url": (
        {"/": html(LOGO), "/logo.png": html("<p>Page not found</p>"), "/favicon.ico": html("x")},
        "not_an_image",
    ),
    "broken-svg": (
        {"/": html('<header><img class="logo" src="/logo.svg"></header>'),
         "/logo.svg": Page('<svg xmlns="http://www.w3.org/2000/svg"><rect', "image/svg+xml")},
        "svg_invalid",
    ),
    "slow-server": ({"/": slow}, "timeout"),
    "drip": ({"/": drip}, "timeout"),
    "robots-disallow": (
        {"/robots.txt": Page("User-agent: *\nDisallow: /\n", "text/plain"), "/": html(LOGO),
         "/logo.png": png()},
        "robots_disallowed",
    ),
    "empty-js-shell": (
        {"/": html('<div id="root"></div><script src="/app.js"></script>'),
         "/app.js": Page("render()", "text/javascript")},
        "no_usable_candidate",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def fleet():
    fleet = Fleet()
    yield fleet
    fleet.close()


@pytest.fixture(scope="module")
def results(fleet):
    urls = {name: fleet.add(routes) + "/" for name, (routes, _) in CASES.items()}
    urls["connection-refused"] = f"http://127.0.0.1:{closed_port()}/"
    urls["good-neighbour"] = fleet.add({"/": html(LOGO), "/logo.png": png()}) + "/"
    started = time.perf_counter()
    found = extract_domains(list(urls.values()), SETTINGS)
    elapsed = time.perf_counter() - started
    return dict(zip(urls, found, strict=True)), elapsed


@pytest.mark.parametrize("name", [*CASES, "connection-refused"])
def test_failure_reason(results, name):
    expected = CASES[name][1] if name in CASES else "connect_error"
    result = results[0][name]
    assert (result.status, result.reason) == ("failed", expected), result.detail
    assert result.reason in REASONS and result.logo is None


def test_failures_cost_nothing_else(results):
    found, elapsed = results
    assert found["good-neighbour"].status == "ok"
    assert elapsed < 15  # every hostile site in parallel, bounded by the timeouts


def test_empty_shell_says_javascript(results):
    assert "JavaScript" in results[0]["empty-js-shell"].detail


def test_robots_can_be_ignored(fleet):
    base = fleet.add(
        {"/robots.txt": Page("User-agent: *\nDisallow: /\n", "text/plain"), "/": html(LOGO),
         "/logo.png": png()}
    )  # fmt: skip
    [result] = extract_domains([base + "/"], PATIENT_NO_ROBOTS)
    assert result.status == "ok"


def test_robots_rules_for_our_agent_and_paths(fleet):
    robots = "User-agent: logosim\nDisallow: /private/\n\nUser-agent: *\nDisallow: /\n"
    base = fleet.add(
        {"/robots.txt": Page(robots, "text/plain"), "/": html(
            '<header><img class="logo" src="/private/logo.png"></header>'
            '<link rel="apple-touch-icon" href="/apple.png">'),
         "/private/logo.png": png(), "/apple.png": png((180, 180))}
    )  # fmt: skip
    [result] = extract_domains([base + "/"], PATIENT)
    assert result.status == "ok" and result.source == "apple_touch_icon"
    port = int(base.rsplit(":", 1)[1])
    assert "/private/logo.png" not in fleet.hits[port]
    assert fleet.hits[port].count("/robots.txt") == 1  # cached per origin


# -- the private-address guard ----------------------------------------------------------------
GUARDED = ExtractSettings(
    fetch=PATIENT_FETCH.model_copy(update={"allow_private": False, "obey_robots": False}),
    domain_timeout=60,
)


def test_guard_refuses_literal_and_resolved_private_addresses(fleet):
    base = fleet.add({"/": html(LOGO), "/logo.png": png()})
    port = int(base.rsplit(":", 1)[1])
    values = [
        f"http://127.0.0.1:{port}/",
        f"http://[::1]:{port}/",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        f"http://intranet.test:{port}/",  # a name that resolves to 127.0.0.1
        f"http://mixed.test:{port}/",  # resolves to loopback and link-local only
        "http://[::ffff:127.0.0.1]/",
    ]
    resolver = StaticResolver({"intranet.test": "127.0.0.1", "mixed.test": ["::1", "169.254.1.1"]})
    found = extract_domains(values, GUARDED, resolver=resolver)
    assert [r.reason for r in found] == ["blocked_address"] * len(values), [r.detail for r in found]
    assert fleet.hits[port] == []  # not one request reached the server


def test_guard_checks_every_redirect_hop(fleet, monkeypatch):
    # 127.0.0.1 stands in for a public address here; 127.0.0.2 stays private.
    real = fetch_module.is_public_address
    monkeypatch.setattr(fetch_module, "is_public_address", lambda a: a == "127.0.0.1" or real(a))
    inner = fleet.add({"/": html(LOGO), "/logo.png": png()}, host="127.0.0.2")
    inner_port = int(inner.rsplit(":", 1)[1])
    outer_literal = fleet.add({"/": loop_to(f"{inner}/")})
    outer_named = fleet.add({"/": loop_to(f"http://internal.test:{inner_port}/")})
    resolver = StaticResolver({"internal.test": "127.0.0.2", "public.test": "127.0.0.1"})
    named = outer_named.replace("127.0.0.1", "public.test")
    found = extract_domains([outer_literal + "/", named + "/"], GUARDED, resolver=resolver)
    assert [r.reason for r in found] == ["blocked_address", "blocked_address"]
    assert fleet.hits[inner_port] == []


def test_guard_off_reaches_private_addresses(fleet):
    base = fleet.add({"/": html(LOGO), "/logo.png": png()})
    [result] = extract_domains([base + "/"], PATIENT)
    assert result.status == "ok"


def test_unknown_name_is_a_dns_error(fleet):
    [result] = extract_domains(["nowhere.test"], PATIENT, resolver=StaticResolver({}))
    assert result.reason == "dns_error" and result.transient


def test_bad_input_is_reported_not_raised():
    found = extract_domains(["", "ftp://example.com/", "not a domain"], PATIENT)
    assert [r.reason for r in found] == ["bad_url", "bad_url", "bad_url"]


def test_domain_input_tries_https_then_http(fleet):
    base = fleet.add({"/": html(LOGO), "/logo.png": png()})
    port = int(base.rsplit(":", 1)[1])
    # "site.test:PORT" as a domain: https:// fails to connect (plain HTTP there), http:// works
    [result] = extract_domains(
        [f"site.test:{port}"], PATIENT, resolver=StaticResolver({"*": "127.0.0.1"})
    )
    assert result.status == "ok" and result.page_url.startswith("http://site.test")


def test_javascript_hook_renders_an_app_shell(fleet):
    """The browser hook (off by default) gets the shell's URL; its HTML is read instead."""
    base = fleet.add({"/": html('<div id="root"></div>'), "/logo.png": png()})

    class FakeBrowser:
        def __init__(self) -> None:
            self.urls: list[str] = []

        async def render(self, url: str) -> str:
            self.urls.append(url)
            return f"<html><body>{LOGO}</body></html>"

    browser = FakeBrowser()
    [result] = extract_domains([base + "/"], PATIENT, renderer=browser)
    assert browser.urls == [base + "/"]
    assert (result.status, result.source, result.detail) == (
        "ok",
        "img",
        "rendered with JavaScript",
    )
    [plain] = extract_domains([base + "/"], PATIENT)  # no renderer: the documented failure
    assert plain.reason == "no_usable_candidate"


def test_a_page_over_the_cap_is_read_up_to_it(fleet):
    """Real home pages can be megabytes of inline script: the header comes first."""
    filler = "<script>" + "x" * (FAST.max_html_bytes * 2) + "</script>"
    base = fleet.add({"/": html(LOGO + filler), "/logo.png": png()})
    [result] = extract_domains([base + "/"], PATIENT)
    assert (result.status, result.source) == ("ok", "img")


def test_bare_name_without_address_falls_back_to_www(fleet):
    base = fleet.add({"/": html(LOGO), "/logo.png": png()})
    port = base.rsplit(":", 1)[1]
    resolver = StaticResolver({"www.acme.test": "127.0.0.1"})
    # plain http on this port: https:// fails to connect, http:// then works on www.
    [result] = extract_domains([f"acme.test:{port}"], PATIENT_NO_ROBOTS, resolver=resolver)
    assert result.status == "ok" and result.page_url.startswith("http://www.acme.test")


def test_running_out_of_time_in_the_icon_pass_keeps_the_logo(fleet):
    async def slow_icon(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(body=b"", content_type="image/png")

    base = fleet.add(
        {"/": html(LOGO, '<link rel="apple-touch-icon" href="/apple.png">'), "/logo.png": png(),
         "/apple.png": slow_icon}
    )  # fmt: skip
    fetch = FAST.model_copy(update={"timeout": 10, "read_timeout": 10})
    settings = ExtractSettings(fetch=fetch, domain_timeout=1.5)
    [result] = extract_domains([base + "/"], settings)
    assert (result.status, result.source, result.icon) == ("ok", "img", None)
