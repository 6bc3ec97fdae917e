"""Benchmark logo extraction: N local fixture domains, end to end, with a progress bar.

Usage: .venv/bin/python bench/bench_extract.py [--domains 1000] [--out bench/results/extract.json]

One fixture server (a separate process, 127.0.0.1 only) answers for every name
``siteNNNN.bench`` by its Host header, with 12 kinds of site in rotation (header image, inline
SVG, JSON-LD, linked CSS, lazy image, SVG file, manifest, favicon only, 404, HTML at the image
URL, slow answer, robots.txt disallow) and 0–40 ms of latency per request. Names resolve
through the static host map (no DNS). The measured path is the stage's (chunks of 256,
``extract_chunk`` into a temporary store, then the joined Parquet), without Prefect; with
``--flow``, the extract flow itself (a temporary Prefect server starts first, not timed).
Prints the figures (domains/s, peak RSS of this process) and writes them as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import platform
import random
import resource
import tempfile
import time
from pathlib import Path

KINDS = (
    "header_img",
    "inline_svg",
    "jsonld",
    "css_linked",
    "lazy_img",
    "svg_file",
    "manifest",
    "favicon_only",
    "not_found",
    "html_at_image",
    "slow",
    "robots_disallow",
)
EXPECTED = {  # kind → (status, source or reason)
    "header_img": ("ok", "img"),
    "inline_svg": ("ok", "inline_svg"),
    "jsonld": ("ok", "jsonld"),
    "css_linked": ("ok", "css_background"),
    "lazy_img": ("ok", "img"),
    "svg_file": ("ok", "img"),
    "manifest": ("ok", "manifest"),
    "favicon_only": ("ok", "favicon_ico"),
    "not_found": ("failed", "http_404"),
    "html_at_image": ("failed", "not_an_image"),
    "slow": ("ok", "img"),
    "robots_disallow": ("failed", "robots_disallowed"),
}


def _serve(queue: multiprocessing.Queue) -> None:
    """The fixture server (child process): pages by Host, images pre-encoded once."""
    import asyncio

    from aiohttp import web
    from PIL import Image, ImageDraw

    def png(size, colour) -> bytes:
        image = Image.new("RGBA", size, (255, 255, 255, 0))
        draw = ImageDraw.Draw(image)
        w, h = size
        draw.ellipse((2, 2, h * 0.45, h * 0.45), fill=colour)
        draw.rectangle((w * 0.5, h // 3, w - 4, 2 * h // 3), fill=colour)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return buffer.getvalue()

    logo, icon = png((240, 96), (200, 30, 30)), png((192, 192), (20, 120, 40))
    ico = io.BytesIO()
    Image.open(io.BytesIO(icon)).save(ico, "ICO", sizes=[(16, 16), (32, 32), (48, 48)])
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 80"><rect x="4" y="4" '
        'width="72" height="72" rx="12" fill="#1a4"/><text x="84" y="54" font-size="36" '
        'fill="#124">Acme</text></svg>'
    )
    filler = "<p>" + "Lorem ipsum dolor sit amet. " * 40 + "</p>"
    header = '<header><a href="/"><img class="site-logo" src="/img/logo.png" alt="{name}"></a>'
    pages = {
        "header_img": header + "</header>",
        "inline_svg": f'<header><a class="logo" href="/">{svg}</a></header>',
        "jsonld": '<script type="application/ld+json">{"@type":"Organization",'
        '"logo":"/brand/logo.png"}</script>',
        "css_linked": '<link rel="stylesheet" href="/css/site.css"><div class="header">'
        '<a class="brand" href="/"></a></div>',
        "lazy_img": '<header><img class="logo lazy" src="data:image/gif;base64,R0lGODlhAQABAIAAAA'
        'AAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7" data-src="/img/logo.png"></header>',
        "svg_file": '<header><img class="logo" src="/img/logo.svg"></header>',
        "manifest": '<link rel="manifest" href="/site.webmanifest"><main>app</main>',
        "favicon_only": "<main>nothing here</main>",
        "html_at_image": '<header><img class="logo" src="/img/missing.png"></header>',
        "slow": header + "</header>",
        "robots_disallow": header + "</header>",
    }
    manifest = json.dumps({"icons": [{"src": "/icons/192.png", "sizes": "192x192"}]})

    async def handle(request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        number = int(host.removeprefix("site").split(".")[0])
        kind = KINDS[number % len(KINDS)]
        await asyncio.sleep(random.uniform(0, 0.04))
        path = request.path
        if kind == "slow":
            await asyncio.sleep(0.5)
        if path == "/robots.txt":
            if kind == "robots_disallow":
                return web.Response(text="User-agent: *\nDisallow: /\n")
            return web.Response(status=404)
        if kind == "not_found":
            return web.Response(status=404, text="not found")
        if path == "/":
            body = pages[kind].replace("{name}", host)
            return web.Response(
                text=f"<!doctype html><html><head><title>{host}</title></head><body>{body}"
                f"{filler}</body></html>",
                content_type="text/html",
            )
        if kind == "html_at_image" and path.startswith("/img/"):
            return web.Response(text="<html>soft 404</html>", content_type="text/html")
        if path in ("/img/logo.png", "/brand/logo.png", "/img/brand.png"):
            return web.Response(body=logo, content_type="image/png")
        if path == "/img/logo.svg":
            return web.Response(text=svg, content_type="image/svg+xml")
        if path == "/css/site.css":
            css = "@media screen{.header .brand{background:url(../img/brand.png)}}"
            return web.Response(text=css, content_type="text/css")
        if path == "/site.webmanifest":
            return web.Response(text=manifest, content_type="application/manifest+json")
        if path == "/icons/192.png":
            return web.Response(body=icon, content_type="image/png")
        if path == "/favicon.ico" and kind == "favicon_only":
            return web.Response(body=ico.getvalue(), content_type="image/x-icon")
        return web.Response(status=404, text="not found")

    async def main() -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        queue.put(site._server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--flow", action="store_true", help="Run the Prefect flow instead.")
    parser.add_argument("--out", default=None, help="[bench/results/extract(_flow).json]")
    args = parser.parse_args()

    from tqdm import tqdm

    from logosim.web.extract import ExtractSettings, progress_hook
    from logosim.web.fetch import FetchSettings
    from logosim.web.stage import extract_chunk, plan_jobs, publish_logos
    from logosim.web.writer import read_results

    queue: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(queue,), daemon=True)
    server.start()
    port = queue.get(timeout=60)
    values = [f"http://site{i:04d}.bench:{port}/" for i in range(args.domains)]
    settings = ExtractSettings(
        fetch=FetchSettings(
            allow_private=True,  # the fixture server is on 127.0.0.1
            hosts={"*": "127.0.0.1"},
            concurrency=args.concurrency,
            timeout=10,
        )
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bar = tqdm(total=len(values), unit="domain", desc="extract")
            if args.flow:
                summary, elapsed = _run_flow(tmp, values, settings, bar)
            else:
                jobs = plan_jobs(tmp, values, settings)
                start = time.perf_counter()
                with bar, progress_hook(bar.update):
                    manifests = [extract_chunk(job) for job in jobs]
                summary = publish_logos(tmp, manifests, None)
                elapsed = time.perf_counter() - start
            results = read_results(Path(summary.out))
    finally:
        server.terminate()
    wrong = [
        (r.domain, r.status, r.source or r.reason)
        for i, r in enumerate(results)
        if (r.status, r.source or r.reason) != EXPECTED[KINDS[i % len(KINDS)]]
    ]
    seconds = sorted(r.seconds for r in results)
    figures = {
        "domains": len(values),
        "ok": summary.ok,
        "failed": summary.failed,
        "by_source": summary.by_source,
        "by_reason": summary.by_reason,
        "unexpected": len(wrong),
        "unexpected_examples": wrong[:5],
        "seconds": round(elapsed, 2),
        "domains_per_s": round(len(values) / elapsed, 1),
        "domain_p50_s": seconds[len(seconds) // 2],
        "domain_p95_s": seconds[int(len(seconds) * 0.95)],
        "path": "flow (Prefect)" if args.flow else "stage (no Prefect)",
        "concurrency": args.concurrency,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": multiprocessing.cpu_count(),
    }
    for key, value in figures.items():
        print(f"{key:>20}: {value}")
    out = Path(args.out or f"bench/results/extract{'_flow' if args.flow else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))


def _run_flow(tmp: str, values: list[str], settings, bar):
    """The extract flow over the same domains; the temporary server's start is not timed."""
    from prefect import flow

    import flows  # noqa: F401  (Prefect defaults)
    from flows.extract import extract_flow
    from logosim.web.extract import progress_hook

    @flow
    def warm_up() -> None:  # starts the temporary Prefect server
        return None

    warm_up()
    domains = Path(tmp) / "domains.txt"
    domains.write_text("\n".join(values))
    start = time.perf_counter()
    with bar, progress_hook(bar.update):
        summary = extract_flow(str(domains), tmp, None, settings)
    return summary, time.perf_counter() - start


if __name__ == "__main__":
    main()
