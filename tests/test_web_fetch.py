"""The fetcher on its own: the address rules, redirects, caps, robots.txt and per-host limits."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from web_sites import Fleet, Page, html

from logosim.web.fetch import (
    Fetcher,
    FetchError,
    FetchSettings,
    check_url,
    is_public_address,
)

# Room to spare: no test here is about time, and a loaded CI box can stall the loop.
OPEN = FetchSettings(allow_private=True, timeout=30, connect_timeout=10, read_timeout=10)


@pytest.fixture(scope="module")
def fleet():
    fleet = Fleet()
    yield fleet
    fleet.close()


def run(coro):
    return asyncio.run(coro)


async def get(url: str, settings: FetchSettings = OPEN, kind: str = "html"):
    async with Fetcher(settings) as fetcher:
        return await fetcher.get(url, kind)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),  # multicast
        ("192.0.2.1", False),  # documentation
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("not an address", False),
    ],
)
def test_public_addresses(address, public):
    assert is_public_address(address) is public


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "bad_url"),
        ("file:///etc/passwd", "bad_url"),
        ("javascript:alert(1)", "bad_url"),
        ("http:///nohost", "bad_url"),
        ("http://example.com:99999/", "bad_url"),
        ("http://127.0.0.1/", "blocked_address"),
        ("http://[::1]:8080/", "blocked_address"),
        ("https://10.0.0.8/admin", "blocked_address"),
    ],
)
def test_check_url_refuses(url, reason):
    with pytest.raises(FetchError) as raised:
        check_url(url, allow_private=False)
    assert raised.value.reason == reason


def test_check_url_allows_public_and_names():
    assert check_url("https://example.com/x", allow_private=False)
    assert check_url("http://8.8.8.8/", allow_private=False)
    assert check_url("http://127.0.0.1/", allow_private=True)


def test_redirects_up_to_the_limit(fleet):
    hops = {f"/r{i}": Page(b"", status=301, headers={"Location": f"/r{i + 1}"}) for i in range(6)}
    base = fleet.add({**hops, "/r5": html("five"), "/r6": html("six")})
    assert run(get(f"{base}/r0")).url.endswith("/r5")  # 5 hops: followed
    hops["/r5"] = Page(b"", status=301, headers={"Location": "/r6"})
    base = fleet.add(hops | {"/r6": html("six")})
    with pytest.raises(FetchError) as raised:
        run(get(f"{base}/r0"))  # 6 hops: refused
    assert raised.value.reason == "too_many_redirects"


def test_redirect_to_another_scheme_is_refused(fleet):
    base = fleet.add({"/": Page(b"", status=302, headers={"Location": "file:///etc/passwd"})})
    with pytest.raises(FetchError) as raised:
        run(get(f"{base}/"))
    assert raised.value.reason == "bad_url"


def test_declared_length_over_the_cap_is_refused_unread(fleet):
    base = fleet.add({"/big.png": Page(b"\0" * 300_000, "image/png")})
    small = OPEN.model_copy(update={"max_image_bytes": 100_000})
    with pytest.raises(FetchError, match="Content-Length"):
        run(get(f"{base}/big.png", small, "image"))


def test_robots_5xx_disallows_and_is_loaded_once(fleet):
    base = fleet.add({"/robots.txt": Page("down", status=503), "/": html("x")})
    port = int(base.rsplit(":", 1)[1])

    async def many():
        async with Fetcher(OPEN) as fetcher:
            return await asyncio.gather(
                *(fetcher.get(f"{base}/?{i}", "html") for i in range(5)), return_exceptions=True
            )

    outcomes = run(many())
    assert {o.reason for o in outcomes} == {"robots_disallowed"}
    assert fleet.hits[port] == ["/robots.txt"]  # one robots.txt request, no page request


def test_per_host_limit_holds(fleet):
    state = {"now": 0, "most": 0}

    async def page(request: web.Request) -> web.Response:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        await asyncio.sleep(0.05)
        state["now"] -= 1
        return web.Response(text="<p>x</p>", content_type="text/html")

    base = fleet.add({"/": page})
    settings = OPEN.model_copy(update={"per_host": 2, "obey_robots": False})

    async def many():
        async with Fetcher(settings) as fetcher:
            await asyncio.gather(*(fetcher.get(f"{base}/?{i}", "html") for i in range(12)))

    run(many())
    assert state["most"] == 2
