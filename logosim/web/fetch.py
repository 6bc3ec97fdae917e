"""The HTTP client of the extractor: polite, capped, and closed to non-public addresses.

Domain lists are untrusted input, so every request goes through the same checks:

- only ``http``/``https`` URLs; a named User-Agent;
- robots.txt obeyed (fetched once per origin and cached; 4xx → everything allowed,
  5xx → nothing allowed, as RFC 9309 says);
- redirects followed by hand, at most ``max_redirects``, each hop checked again;
- **no connection to a loopback, private, link-local, shared, reserved or multicast
  address**: literal IPs are checked before the request, names by the resolver (after DNS,
  so a public name pointing at 10.0.0.1 is refused too; aiohttp connects to exactly the
  addresses the resolver returns, so there is no window for DNS rebinding);
- bodies read in pieces and stopped at a cap on *decompressed* bytes (a gzip bomb stops at
  the cap), plus a total, a connect and a read timeout (a byte-by-byte drip hits the total).

Every failure is a ``FetchError`` with a reason from ``FETCH_REASONS``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from protego import Protego
from pydantic import BaseModel, Field

USER_AGENT = "logosim/0.1 (logo extraction for trademark similarity search)"
ROBOTS_TOKEN = "logosim"  # the product token robots.txt rules are matched against

BodyKind = Literal["html", "css", "image", "manifest", "robots"]

# Reasons a single request can fail with (the domain-level vocabulary adds a few more).
FETCH_REASONS = (
    "http_404",  # not found
    "http_4xx",  # any other client error (403, 410, 429, ...)
    "http_5xx",  # server error
    "too_many_redirects",  # more than max_redirects hops
    "too_large",  # the decompressed body passed its cap
    "timeout",  # total, connect or read timeout
    "robots_disallowed",  # robots.txt forbids the URL for our User-Agent
    "blocked_address",  # the host is, or resolves only to, a non-public address
    "connect_error",  # refused, reset, TLS failure, broken response
    "dns_error",  # the name does not resolve
    "bad_url",  # not http(s), no host, unparsable
)
# Worth retrying on a later run: the site may answer then. Anything else is an answer.
TRANSIENT_REASONS = frozenset({"timeout", "connect_error", "dns_error"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class FetchSettings(BaseModel):
    """Politeness, safety caps and timeouts; shown as a form in the Prefect UI."""

    user_agent: str = Field(USER_AGENT, description="User-Agent header of every request.")
    concurrency: int = Field(64, ge=1, description="Open connections at most, all hosts.")
    per_host: int = Field(2, ge=1, description="Open connections at most to one host.")
    timeout: float = Field(20.0, gt=0, description="Seconds for a whole request, body included.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect.")
    read_timeout: float = Field(10.0, gt=0, description="Seconds between two reads.")
    max_redirects: int = Field(5, ge=0, description="Redirect hops followed at most.")
    obey_robots: bool = Field(True, description="Obey robots.txt (cached per origin).")
    allow_private: bool = Field(
        False, description="Allow loopback/private/link-local addresses (tests, intranets)."
    )
    max_html_bytes: int = Field(2 * 2**20, ge=1, description="Cap on a decompressed page.")
    max_css_bytes: int = Field(1 * 2**20, ge=1, description="Cap on a stylesheet.")
    max_image_bytes: int = Field(5 * 2**20, ge=1, description="Cap on an image.")
    max_manifest_bytes: int = Field(256 * 2**10, ge=1, description="Cap on a web manifest.")
    max_robots_bytes: int = Field(
        512 * 2**10, ge=1, description="robots.txt is read up to this size."
    )
    hosts: dict[str, str] = Field(
        default_factory=dict,
        description="Static name → address map used instead of DNS ('*' matches any name): "
        "for tests, benchmarks and air-gapped mirrors. The address guard still applies.",
    )

    def cap(self, kind: BodyKind) -> int:
        return {
            "html": self.max_html_bytes,
            "css": self.max_css_bytes,
            "image": self.max_image_bytes,
            "manifest": self.max_manifest_bytes,
            "robots": self.max_robots_bytes,
        }[kind]


class FetchError(Exception):
    """A request that gave no usable body; ``reason`` is one of ``FETCH_REASONS``."""

    def __init__(self, reason: str, detail: str = "", url: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.url = reason, detail, url

    @property
    def transient(self) -> bool:
        return self.reason in TRANSIENT_REASONS


class BlockedAddressError(OSError):
    """Raised by the resolver when a name resolves only to non-public addresses."""


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address (IPv4-mapped IPv6 judged as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _literal_ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


class GuardedResolver(AbstractResolver):
    """Wraps a resolver and drops non-public addresses; none left → ``BlockedAddressError``."""

    def __init__(self, inner: AbstractResolver, *, allow_private: bool = False) -> None:
        self.inner, self.allow_private = inner, allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        if self.allow_private:
            return results
        public = [r for r in results if is_public_address(r["host"])]
        if not public:
            found = ", ".join(sorted({r["host"] for r in results})) or "nothing"
            raise BlockedAddressError(f"{host} resolves only to non-public addresses ({found})")
        return public

    async def close(self) -> None:
        await self.inner.close()


class StaticResolver(AbstractResolver):
    """Names → fixed addresses, no DNS at all (tests, benchmarks); unknown names fail."""

    def __init__(self, mapping: Mapping[str, str | Sequence[str]]) -> None:
        self.mapping = {
            k.lower().rstrip("."): [v] if isinstance(v, str) else list(v)
            for k, v in mapping.items()
        }

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        name = host.lower().rstrip(".")
        addresses = self.mapping.get(name)
        if addresses is None and "*" in self.mapping:  # a wildcard for fixture fleets
            addresses = self.mapping["*"]
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: name not known")
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for a in addresses
        ]

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class Response:
    url: str  # the final URL, after redirects
    status: int
    content_type: str
    body: bytes
    truncated: bool = False


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL if it may be requested at all; else ``FetchError`` (bad_url, blocked_address)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise FetchError("bad_url", str(exc), url) from exc
    if parts.scheme not in ("http", "https"):
        raise FetchError("bad_url", f"scheme {parts.scheme or 'none'!r} is not http(s)", url)
    if not parts.hostname:
        raise FetchError("bad_url", "no host", url)
    ip = _literal_ip(parts.hostname)
    if ip is not None and not allow_private and not is_public_address(ip):
        raise FetchError("blocked_address", f"{ip} is not a public address", url)
    return url


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


class Fetcher:
    """One aiohttp session for a batch of domains: shared connection pool, DNS cache and
    robots.txt cache. Use as ``async with Fetcher(settings) as fetcher``."""

    def __init__(
        self, settings: FetchSettings | None = None, resolver: AbstractResolver | None = None
    ) -> None:
        self.settings = settings or FetchSettings()
        self._inner_resolver = resolver
        self._robots: dict[str, asyncio.Future[Protego | bool]] = {}
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Fetcher:
        s = self.settings
        inner = self._inner_resolver
        if inner is None:
            # aiodns when installed, else getaddrinfo in threads
            inner = StaticResolver(s.hosts) if s.hosts else aiohttp.DefaultResolver()
        resolver = GuardedResolver(inner, allow_private=s.allow_private)
        connector = aiohttp.TCPConnector(
            limit=s.concurrency, limit_per_host=s.per_host, resolver=resolver, ttl_dns_cache=300
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=s.timeout,
                connect=s.connect_timeout,
                sock_connect=s.connect_timeout,
                sock_read=s.read_timeout,
            ),
            headers={"User-Agent": s.user_agent, "Accept-Language": "en;q=1, *;q=0.5"},
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,  # never route through an environment proxy
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    # -- requests --------------------------------------------------------------------------
    async def get(self, url: str, kind: BodyKind, *, truncate: bool = False) -> Response:
        """GET ``url`` following redirects by hand; the body capped for ``kind``.

        ``truncate``: a body over the cap is cut at the cap instead of failing (robots.txt).
        """
        s = self.settings
        hops = 0
        while True:
            check_url(url, allow_private=s.allow_private)
            if kind != "robots" and s.obey_robots and not await self.allowed(url):
                raise FetchError("robots_disallowed", f"robots.txt disallows {url}", url)
            location, response = await self._get_once(url, kind, truncate)
            if location is None:
                assert response is not None
                return response
            hops += 1
            if hops > s.max_redirects:
                raise FetchError(
                    "too_many_redirects", f"more than {s.max_redirects} redirects", url
                )
            url = location

    async def _get_once(
        self, url: str, kind: BodyKind, truncate: bool
    ) -> tuple[str | None, Response | None]:
        assert self.session is not None, "use Fetcher as an async context manager"
        cap = self.settings.cap(kind)
        try:
            async with self.session.get(url, allow_redirects=False) as resp:
                if resp.status in REDIRECT_STATUSES and resp.headers.get("Location"):
                    return urljoin(url, resp.headers["Location"]), None
                if resp.status == 404:
                    raise FetchError("http_404", "not found", url)
                if 400 <= resp.status < 500:
                    raise FetchError("http_4xx", f"HTTP {resp.status}", url)
                if resp.status >= 500:
                    raise FetchError("http_5xx", f"HTTP {resp.status}", url)
                declared = resp.content_length
                if declared is not None and declared > cap and not truncate:
                    raise FetchError("too_large", f"Content-Length {declared} > cap {cap}", url)
                body, truncated = await _read_capped(resp, cap, truncate, url)
                content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                return None, Response(str(resp.url), resp.status, content_type, body, truncated)
        except FetchError:
            raise
        except aiohttp.ClientConnectorError as exc:
            raise _connector_error(exc, url) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise FetchError("timeout", type(exc).__name__, url) from exc
        except aiohttp.InvalidURL as exc:
            raise FetchError("bad_url", str(exc), url) from exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise FetchError("connect_error", f"{type(exc).__name__}: {exc}", url) from exc

    # -- robots.txt ------------------------------------------------------------------------
    async def allowed(self, url: str) -> bool:
        """Whether robots.txt of the URL's origin lets our User-Agent fetch it.

        Each origin's robots.txt is loaded once, by a task of its own: every request to that
        origin waits on it, and a domain running out of time does not cancel it for others.
        """
        origin = origin_of(url)
        task = self._robots.get(origin)
        if task is None:
            task = asyncio.ensure_future(self._load_robots(origin))
            self._robots[origin] = task
        rules = await asyncio.shield(task)
        if rules is True or rules is False:
            return rules
        return rules.can_fetch(url, ROBOTS_TOKEN)

    async def _load_robots(self, origin: str) -> Protego | bool:
        try:
            response = await self.get(f"{origin}/robots.txt", "robots", truncate=True)
        except FetchError as exc:
            if exc.reason in ("http_404", "http_4xx"):
                return True  # no robots.txt: everything allowed
            if exc.reason == "http_5xx":
                return False  # unreachable robots.txt: assume complete disallow (RFC 9309)
            if exc.reason in ("too_many_redirects", "too_large", "bad_url"):
                return True
            raise  # the origin itself is unreachable or blocked: the page fails the same way
        return Protego.parse(response.body.decode("utf-8", errors="replace"))


async def _read_capped(
    resp: aiohttp.ClientResponse, cap: int, truncate: bool, url: str
) -> tuple[bytes, bool]:
    """The decompressed body, read in pieces and stopped as soon as it passes ``cap``."""
    parts: list[bytes] = []
    size = 0
    async for piece in resp.content.iter_chunked(1 << 16):
        size += len(piece)
        if size > cap:
            if truncate:
                parts.append(piece[: len(piece) - (size - cap)])
                return b"".join(parts), True
            raise FetchError("too_large", f"body passed the cap of {cap} bytes", url)
        parts.append(piece)
    return b"".join(parts), False


def _connector_error(exc: aiohttp.ClientConnectorError, url: str) -> FetchError:
    """Connection failures by cause: our own resolver's refusal, DNS, timeout, the rest."""
    for cause in (exc.os_error, exc.__cause__):
        if isinstance(cause, BlockedAddressError):
            return FetchError("blocked_address", str(cause), url)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FetchError("dns_error", str(exc.os_error), url)
    if isinstance(exc.os_error, TimeoutError):
        return FetchError("timeout", "connect timeout", url)
    return FetchError("connect_error", str(exc.os_error or exc), url)
