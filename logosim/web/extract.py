"""One domain end to end, and many domains on one asyncio loop.

For a domain: fetch its home page (``https://`` first, ``http://`` when that cannot connect,
``https://www.`` when neither worked; a page over its cap is read up to the cap), follow one meta-refresh hop, collect candidates (``candidates``), read linked stylesheets
when nothing strong was found, read the web manifest, then download the best candidates in
score order, judge each (``images.judge``) and keep the best final score. The best plain icon
(apple-touch-icon, manifest, link rel=icon, /favicon.ico) is kept separately.

Every domain ends ``ok`` or ``failed`` with a reason from ``REASONS``; nothing raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from loguru import logger
from pydantic import BaseModel, Field

from logosim.core.progress import ProgressChannel
from logosim.web.browser import PageRenderer
from logosim.web.candidates import (
    STRONG_SCORE,
    Candidate,
    PageSignals,
    data_uri_bytes,
    manifest_candidates,
    merge,
    parse_page,
    stylesheet_candidates,
)
from logosim.web.fetch import (
    FETCH_REASONS,
    TRANSIENT_REASONS,
    Fetcher,
    FetchError,
    FetchSettings,
    origin_of,
)
from logosim.web.images import Judged, Rejected, judge

# Why a domain failed: a request's reason (FETCH_REASONS), what its best candidate turned out
# to be, or that nothing usable was found (an empty JavaScript shell says so in `detail`).
REASONS = (
    *FETCH_REASONS,
    "not_an_image",  # the best candidates were not images (HTML at an image URL: soft 404)
    "svg_invalid",  # an SVG that does not parse
    "no_usable_candidate",  # no candidate, or all tiny/blank/transparent/single-colour
    "internal_error",  # a bug: logged with its traceback, the run goes on
)
progress = ProgressChannel()
progress_hook = progress.listen  # the CLI's progress bar listens here (one call per domain)


class ExtractSettings(BaseModel):
    """What the extractor can be told; shown as a form in the Prefect UI."""

    fetch: FetchSettings = Field(default_factory=FetchSettings)
    max_downloads: int = Field(6, ge=1, description="Logo candidates downloaded per domain.")
    max_icon_downloads: int = Field(3, ge=0, description="Icon candidates tried per domain.")
    domain_timeout: float = Field(
        60.0, gt=0, description="Seconds for a whole domain (page, styles, images)."
    )
    render_js: bool = Field(
        False,
        description="Render pages that offer no logo in their HTML with headless Chromium "
        "(Playwright; see logosim.web.browser). Off by default; needs a trusted list.",
    )


@dataclass
class Target:
    """One line of the input: the id it is reported under and the page URLs to try."""

    value: str  # as given: the row's id
    domain: str
    urls: list[str]

    @classmethod
    def parse(cls, value: str) -> Target:
        text = (value or "").strip()
        if "://" in text:
            try:
                host = (urlsplit(text).hostname or "").lower()
            except ValueError:
                host = ""
            return cls(text, host or text, [text])
        host = text.lower().strip("/").split("/")[0]
        if not host or any(ch.isspace() for ch in host):
            return cls(text, text, [])
        urls = [f"https://{host}/", f"http://{host}/"]
        if not host.startswith("www.") and not _is_ip(host.rsplit(":", 1)[0].strip("[]")):
            # when the bare name fails to resolve or connect
            urls += [f"https://www.{host}/", f"http://www.{host}/"]
        return cls(text, host, urls)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass
class DomainResult:
    domain: str
    id: str = ""  # the input line (a domain or URL), unique within a run
    page_url: str = ""
    status: str = "failed"
    reason: str = ""
    detail: str = ""
    logo: bytes | None = None
    logo_url: str = ""
    source: str = ""
    score: float = 0.0
    width: int = 0
    height: int = 0
    heuristics: str = ""
    icon: bytes | None = None
    icon_url: str = ""
    icon_source: str = ""
    candidates: int = 0
    seconds: float = 0.0

    @property
    def transient(self) -> bool:
        return self.status == "failed" and self.reason in TRANSIENT_REASONS


@dataclass
class _Tried:
    candidate: Candidate
    judged: Judged | None = None
    error: str = ""
    detail: str = ""

    @property
    def score(self) -> float:
        return self.candidate.score + (self.judged.adjust if self.judged else 0.0)


# -- many domains ----------------------------------------------------------------------------
def extract_domains(
    values: Iterable[str],
    settings: ExtractSettings | None = None,
    *,
    resolver=None,
    renderer: PageRenderer | None = None,
) -> list[DomainResult]:
    """Extract every domain (or URL) in ``values`` on one asyncio loop; results in order.

    ``resolver``: an aiohttp resolver to use instead of DNS (tests); ``renderer``: a
    ``PageRenderer`` for JavaScript-only pages (default: Chromium when ``render_js``)."""
    targets = [Target.parse(v) for v in values]
    coro = extract_all(targets, settings or ExtractSettings(), resolver, renderer)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # called from inside a running loop (a notebook): run ours in a thread of its own
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def extract_all(
    targets: list[Target],
    settings: ExtractSettings,
    resolver=None,
    renderer: PageRenderer | None = None,
) -> list[DomainResult]:
    async with contextlib.AsyncExitStack() as stack:
        fetcher = await stack.enter_async_context(Fetcher(settings.fetch, resolver))
        if renderer is None and settings.render_js:
            from logosim.web.browser import ChromiumRenderer

            renderer = await stack.enter_async_context(ChromiumRenderer(fetcher))
        slots = asyncio.Semaphore(settings.fetch.concurrency)

        async def one(target: Target) -> DomainResult:
            async with slots:
                result = await extract_one(fetcher, target, settings, renderer)
            progress.advance(1)
            return result

        return list(await asyncio.gather(*(one(t) for t in targets)))


async def extract_one(
    fetcher: Fetcher,
    target: Target,
    settings: ExtractSettings,
    renderer: PageRenderer | None = None,
) -> DomainResult:
    """One domain, within its time budget; never raises."""
    started = time.perf_counter()
    result = DomainResult(domain=target.domain, id=target.value)
    try:
        async with asyncio.timeout(settings.domain_timeout):
            await _extract(fetcher, target, settings, result, renderer)
    except TimeoutError:
        if result.status != "ok":  # a logo already chosen stands; only its icon was cut
            _fail(result, "timeout", f"domain budget of {settings.domain_timeout:g} s spent")
    except Exception as exc:  # a bug must cost one domain, not the run
        logger.opt(exception=exc).error(f"extract {target.domain}: internal error")
        _fail(result, "internal_error", f"{type(exc).__name__}: {exc}")
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def _fail(result: DomainResult, reason: str, detail: str) -> None:
    result.status, result.reason, result.detail = "failed", reason, detail[:500]
    result.logo = None


async def _extract(
    fetcher: Fetcher,
    target: Target,
    settings: ExtractSettings,
    result: DomainResult,
    renderer: PageRenderer | None,
) -> None:
    if not target.urls:
        return _fail(result, "bad_url", f"not a domain or URL: {target.domain!r}")
    page, error, dead_hosts = None, None, set()
    for url in target.urls:
        host = urlsplit(url).hostname
        if host in dead_hosts:
            continue
        try:
            # A page over the cap is read up to the cap: the header comes first.
            page = await fetcher.get(url, "html", truncate=True)
            break
        except FetchError as exc:
            error = error or exc
            if exc.reason == "dns_error":
                dead_hosts.add(host)  # no such name: only the www. variant is left to try
            elif exc.reason not in ("connect_error", "timeout"):
                break  # an answer: another scheme or name would give the same
    if page is None:
        assert error is not None
        result.page_url = error.url
        return await _page_failed(fetcher, settings, result, error)
    result.page_url = page.url
    tree, signals = parse_page(page.body, page.url)
    if signals.refresh and signals.refresh != page.url:
        try:
            hop = await fetcher.get(signals.refresh, "html", truncate=True)
            tree, signals = parse_page(hop.body, hop.url)
            result.page_url, page = hop.url, hop
        except FetchError as exc:
            logger.debug(f"{target.domain}: meta refresh to {signals.refresh} failed: {exc}")
    if renderer is not None and all(c.is_icon or "image" in c.source for c in signals.candidates):
        # nothing but icons in the HTML: an app shell, maybe; let a browser run its scripts
        try:
            tree, signals = parse_page(await renderer.render(result.page_url), result.page_url)
            result.detail = "rendered with JavaScript"
        except Exception as exc:  # a browser failure costs the rendering, not the domain
            logger.debug(f"{target.domain}: rendering failed: {exc}")
    candidates = await _more_candidates(fetcher, tree, signals, result.page_url)
    result.candidates = len(candidates)
    await _choose(fetcher, settings, candidates, result, page_has_content=bool(tree.body))
    if result.reason == "no_usable_candidate" and page.truncated:
        cap = fetcher.settings.max_html_bytes
        _fail(result, "too_large", f"page passed the cap of {cap} bytes, nothing usable before it")


async def _page_failed(
    fetcher: Fetcher, settings: ExtractSettings, result: DomainResult, error: FetchError
) -> None:
    """The page itself failed. An HTTP error page may still sit next to a /favicon.ico."""
    if error.reason in ("http_404", "http_4xx", "http_5xx") and error.url:
        favicon = Candidate("favicon_ico", 10.0, f"{origin_of(error.url)}/favicon.ico")
        tried = await _try(fetcher, favicon)
        if tried.judged is not None:
            _accept(result, tried, "page " + error.reason)
            result.icon, result.icon_url, result.icon_source = (
                result.logo,
                result.logo_url,
                "favicon_ico",
            )
            return
    _fail(result, error.reason, error.detail)


async def _more_candidates(
    fetcher: Fetcher, tree, signals: PageSignals, page_url: str
) -> list[Candidate]:
    """The page's candidates plus manifest icons, and linked stylesheets when none is strong."""
    found = list(signals.candidates)
    jobs = []
    if signals.manifest:
        jobs.append(("manifest", signals.manifest))
    if not found or found[0].score < STRONG_SCORE:
        jobs += [("css", url) for url in signals.stylesheets]

    async def load(kind, url):
        try:
            return kind, url, await fetcher.get(url, kind)
        except FetchError as exc:
            logger.debug(f"{page_url}: {kind} {url}: {exc}")
            return kind, url, None

    for kind, _url, response in await asyncio.gather(*(load(k, u) for k, u in jobs)):
        if response is None:
            continue
        if kind == "manifest":
            found += manifest_candidates(response.body, response.url)
        else:
            text = response.body.decode("utf-8", errors="replace")
            found += stylesheet_candidates(text, response.url, tree, page_url)
    return merge(found)


async def _choose(
    fetcher: Fetcher,
    settings: ExtractSettings,
    candidates: list[Candidate],
    result: DomainResult,
    *,
    page_has_content: bool,
) -> None:
    tried: list[_Tried] = []
    best: _Tried | None = None
    for candidate in candidates:
        if len(tried) >= settings.max_downloads:
            break
        if best is not None and candidate.score + 10 <= best.score:
            break  # even the largest image bonus cannot lift it past the best
        attempt = await _try(fetcher, candidate)
        tried.append(attempt)
        if attempt.judged is not None and (best is None or attempt.score > best.score):
            best = attempt
    if best is not None:
        _accept(result, best)  # before the icon pass: running out of time there costs no logo
    icon = next((t for t in tried if t.judged is not None and t.candidate.is_icon), None)
    if icon is None:
        done = {t.candidate.key for t in tried}
        for candidate in [c for c in candidates if c.is_icon and c.key not in done][
            : settings.max_icon_downloads
        ]:
            attempt = await _try(fetcher, candidate)
            if attempt.judged is not None:
                icon = attempt
                break
    if icon is not None and icon.judged is not None:
        result.icon = icon.judged.png
        result.icon_url, result.icon_source = _url_label(icon.candidate), icon.candidate.source
        if best is None:
            return _accept(result, icon)  # no logo: the icon stands for the mark
    if best is not None:
        return None
    page_found = [t for t in tried if t.candidate.source != "favicon_ico"]
    if page_found:
        first = page_found[0]
        return _fail(result, first.error, f"{first.candidate.source} {first.detail}".strip())
    if len(candidates) <= 1:
        detail = "the page offers no logo, icon or image; it may need JavaScript to render"
    else:
        detail = "; ".join(f"{t.candidate.source}: {t.error}" for t in tried) or "none tried"
    _fail(result, "no_usable_candidate", detail if page_has_content else "empty page")


async def _try(fetcher: Fetcher, candidate: Candidate) -> _Tried:
    tried = _Tried(candidate)
    try:
        if candidate.svg is not None:
            data = candidate.svg.encode()
        elif candidate.url.lower().startswith("data:"):
            payload = data_uri_bytes(candidate.url, fetcher.settings.max_image_bytes)
            if payload is None:
                tried.error, tried.detail = "not_an_image", "malformed data: URI"
                return tried
            data = payload
        else:
            data = (await fetcher.get(candidate.url, "image")).body
        tried.judged = judge(data)
    except FetchError as exc:
        tried.error, tried.detail = exc.reason, exc.detail
    except Rejected as exc:
        tried.error, tried.detail = exc.reason, exc.detail
    return tried


def _url_label(candidate: Candidate) -> str:
    if candidate.svg is not None:
        return ""
    if candidate.url.lower().startswith("data:"):
        return candidate.url.split(",", 1)[0] + ","
    return candidate.url


def _accept(result: DomainResult, tried: _Tried, note: str = "") -> None:
    judged = tried.judged
    assert judged is not None
    result.status, result.reason, result.detail = "ok", "", note or result.detail
    result.logo, result.width, result.height = judged.png, judged.width, judged.height
    result.logo_url, result.source = _url_label(tried.candidate), tried.candidate.source
    result.score = round(tried.score, 2)
    result.heuristics = "; ".join([*tried.candidate.hints, *judged.hints])
