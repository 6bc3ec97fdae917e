"""The hook for pages that draw their logo only with JavaScript (out of scope by default).

A page whose HTML offers nothing but icons (an empty app shell) can be handed to a
``PageRenderer``, which returns the HTML after scripts ran; candidates are then read from
that. Off by default (``ExtractSettings.render_js``) and not needed by the tests.

``ChromiumRenderer`` drives Debian's ``chromium`` (``apt-get install chromium``) through
Playwright's Python client (``pip install playwright``; Playwright cannot download its own
browser on these machines, hence ``executable_path``). Every request the browser makes is
checked first — scheme, literal IPs, and the host's addresses through the same guarded
resolver — but the browser resolves names again itself, so the guard is weaker here than in
the fetcher: keep ``render_js`` for lists you trust.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from logosim.web.fetch import Fetcher, FetchError, check_url

CHROMIUM = "/usr/bin/chromium"


class PageRenderer(Protocol):
    async def render(self, url: str) -> str:
        """The page's HTML after its scripts ran."""
        ...


class ChromiumRenderer:
    """Headless Chromium through Playwright; ``async with ChromiumRenderer(fetcher)``."""

    def __init__(
        self, fetcher: Fetcher, executable: str = CHROMIUM, timeout_s: float = 20.0
    ) -> None:
        self.fetcher, self.executable, self.timeout_ms = fetcher, executable, timeout_s * 1000
        self._playwright = self._browser = None

    async def __aenter__(self) -> ChromiumRenderer:
        try:
            from playwright.async_api import async_playwright
        except ImportError as exc:
            raise RuntimeError(
                "render_js needs Playwright and Chromium: pip install playwright; "
                "apt-get install chromium"
            ) from exc
        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=self.executable, headless=True
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()

    async def render(self, url: str) -> str:
        assert self._browser is not None, "use ChromiumRenderer as an async context manager"
        context = await self._browser.new_context(
            user_agent=self.fetcher.settings.user_agent, service_workers="block"
        )
        try:
            page = await context.new_page()
            await page.route("**/*", self._guard)
            await page.goto(url, wait_until="networkidle", timeout=self.timeout_ms)
            return await page.content()
        finally:
            await context.close()

    async def _guard(self, route) -> None:
        url = route.request.url
        try:
            if not url.startswith("data:"):
                check_url(url, allow_private=self.fetcher.settings.allow_private)
                if not await self._resolves_publicly(url):
                    return await route.abort("addressunreachable")
        except FetchError:
            return await route.abort("blockedbyclient")
        await route.continue_()

    async def _resolves_publicly(self, url: str) -> bool:
        connector = self.fetcher.session.connector if self.fetcher.session else None
        resolver = getattr(connector, "_resolver", None)
        if resolver is None:
            return False
        try:
            await resolver.resolve(urlsplit(url).hostname or "", 0)
        except OSError:
            return False
        return True
