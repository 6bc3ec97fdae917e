"""Crafted websites for the extractor tests: real HTTP servers on 127.0.0.1, one port each.

A site is a dict of path → ``Page`` (a static answer) or an aiohttp handler (slow, drip,
endless, gzip-bomb answers). Servers run on an asyncio loop in a background thread, so the
extractor under test runs its own loop in the test's thread, as it does in a Prefect task.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from PIL import Image, ImageDraw

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Page:
    body: bytes | str = b""
    content_type: str = "text/html"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def html(body: str, head: str = "") -> Page:
    return Page(f"<!doctype html><html><head>{head}</head><body>{body}</body></html>")


def mark(size=(240, 96), colour=(200, 30, 30), background=(255, 255, 255, 255)) -> Image.Image:
    """A simple two-colour mark: a filled disc and a bar on a background."""
    image = Image.new("RGBA", size, background)
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse((w * 0.05, h * 0.1, w * 0.05 + h * 0.8, h * 0.9), fill=colour)
    draw.rectangle((w * 0.45, h * 0.35, w * 0.95, h * 0.65), fill=colour)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image = image.convert("RGB")
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def png(size=(240, 96), colour=(200, 30, 30), **kw) -> Page:
    return Page(encode(mark(size, colour, **kw)), "image/png")


def ico(sizes=((16, 16), (32, 32), (48, 48)), colour=(20, 120, 20)) -> Page:
    return Page(encode(mark((64, 64), colour), "ICO", sizes=list(sizes)), "image/x-icon")


SVG_MARK = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 80" width="200" height="80">'
    '<rect x="4" y="4" width="72" height="72" rx="12" fill="#1a4"/>'
    '<path d="M90 20h100v40H90z" fill="#124"/></svg>'
)
SVG_TEXT_ONLY = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="80">'
    '<text x="8" y="58" font-family="Brandface, Helvetica, sans-serif" font-size="52" '
    'fill="#222">Acme</text></svg>'
)
GIF_1X1 = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def svg(markup: str = SVG_MARK) -> Page:
    return Page(markup, "image/svg+xml")


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class Fleet:
    """Servers for many sites; ``add`` returns the site's base URL (``http://host:port``)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []
        self.hits: dict[int, list[str]] = {}

    def add(
        self, routes: dict[str, Page | Handler], *, host: str = "127.0.0.1", name: str = ""
    ) -> str:
        port = asyncio.run_coroutine_threadsafe(self._start(routes, host), self.loop).result(10)
        return f"http://{name or host}:{port}"

    async def _start(self, routes: dict[str, Page | Handler], host: str) -> int:
        hits: list[str] = []

        async def serve(request: web.Request) -> web.StreamResponse:
            hits.append(request.path_qs)
            route = routes.get(request.path_qs, routes.get(request.path))
            if route is None:
                return web.Response(status=404, text="not found")
            if callable(route):
                return await route(request)
            body = route.body.encode() if isinstance(route.body, str) else route.body
            return web.Response(
                body=body,
                status=route.status,
                headers={"Content-Type": route.content_type, **route.headers},
            )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", serve)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        self.runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]
        self.hits[port] = hits
        return port

    def close(self) -> None:
        async def stop() -> None:
            for runner in self.runners:
                await runner.cleanup()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:  # slow and dripping handlers still asleep
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
