"""Crafted pages, each on its own 127.0.0.1 port: which candidate wins, and by which signal.

Sites are reached by name (``<site>.test``) through a static resolver mapping every name to
127.0.0.1 (no DNS), with the private-address guard off; ``test_web_failures.py`` turns it on.
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from web_sites import (
    GIF_1X1,
    SVG_MARK,
    SVG_TEXT_ONLY,
    Fleet,
    Page,
    data_uri,
    encode,
    html,
    ico,
    mark,
    png,
    svg,
)

from logosim.web.extract import ExtractSettings, extract_domains
from logosim.web.fetch import FetchSettings, StaticResolver

SETTINGS = ExtractSettings(
    fetch=FetchSettings(allow_private=True, timeout=5, connect_timeout=2, read_timeout=3),
    domain_timeout=20,
)
RESOLVER = {"*": "127.0.0.1"}

RED, BLUE, GREEN, GREY = (200, 30, 30), (30, 60, 200), (20, 140, 40), (90, 90, 90)
HEADER_LOGO = '<header><a href="/"><img class="site-logo" src="/img/logo.png"></a></header>'


def jsonld(obj) -> str:
    return f'<script type="application/ld+json">{json.dumps(obj)}</script>'


# name → (routes, expected source, expected logo_url suffix ("" for inline SVG))
PAGES: dict[str, tuple[dict, str, str]] = {
    "jsonld-graph": (
        {
            "/": html(
                HEADER_LOGO,
                jsonld(
                    {
                        "@context": "https://schema.org",
                        "@graph": [
                            {"@type": "WebSite", "name": "Acme"},
                            {
                                "@type": "Organization",
                                "logo": {"@type": "ImageObject", "url": "/brand/mark.png"},
                            },
                        ],
                    }
                ),
            ),
            "/brand/mark.png": png(colour=BLUE),
            "/img/logo.png": png(),
        },
        "jsonld",
        "/brand/mark.png",
    ),
    "jsonld-brand-id-ref": (
        {
            "/": html(
                "<p>hello</p>",
                jsonld(
                    [
                        {"@type": "Brand", "logo": {"@id": "#logo"}},
                        {"@type": "ImageObject", "@id": "#logo", "contentUrl": "/b.svg"},
                    ]
                ),
            ),
            "/b.svg": svg(),
        },
        "jsonld",
        "/b.svg",
    ),
    "itemprop": (
        {
            "/": html('<div itemscope><img itemprop="logo" src="/i/mark.png"></div>'),
            "/i/mark.png": png(),
        },
        "itemprop",
        "/i/mark.png",
    ),
    "og-logo": (
        {
            "/": html(
                "<main>text</main>",
                '<meta property="og:image" content="/banner.jpg">'
                '<meta property="og:logo" content="/og-logo.png">',
            ),
            "/og-logo.png": png(),
            "/banner.jpg": png((1200, 630), GREY),
        },
        "og_logo",
        "/og-logo.png",
    ),
    "header-img-class": (
        {
            "/": html(
                HEADER_LOGO
                + '<div class="partners"><img src="/p/partner-logo.png" alt="Partner logo"></div>'
                + '<footer><img class="footer-logo" src="/img/footer.png"></footer>',
                '<link rel="icon" href="/fav.png" sizes="32x32">',
            ),
            "/img/logo.png": png(),
            "/p/partner-logo.png": png(colour=BLUE),
            "/img/footer.png": png(colour=GREY),
            "/fav.png": png((32, 32), GREEN),
        },
        "img",
        "/img/logo.png",
    ),
    "root-link-domain-name": (
        {
            "/": html(
                '<nav><a href="https://root-link-domain-name.test/">'
                '<img src="/static/a1b2c3.png" alt="Root-link-domain-name home"></a></nav>'
                '<article><img src="/photo.jpg"></article>'
            ),
            "/static/a1b2c3.png": png(),
            "/photo.jpg": png((800, 600), GREY),
        },
        "img",
        "/static/a1b2c3.png",
    ),
    "lazy-data-src": (
        {
            "/": html(
                f'<header><img class="logo lazyload" src="{GIF_1X1}" data-src="/img/real.png">'
                "</header>"
            ),
            "/img/real.png": png(),
        },
        "img",
        "/img/real.png",
    ),
    "srcset-largest": (
        {
            "/": html(
                '<header><img class="brand" src="/l-120.png" '
                'srcset="/l-120.png 120w, /l-480.png 480w, /l-240.png 240w"></header>'
            ),
            "/l-120.png": png((120, 48)),
            "/l-240.png": png((240, 96)),
            "/l-480.png": png((480, 192)),
        },
        "img",
        "/l-480.png",
    ),
    "picture-source": (
        {
            "/": html(
                '<a class="navbar-brand" href="/"><picture>'
                '<source srcset="/p/logo.webp" type="image/webp">'
                '<img src="/p/spacer.gif"></picture></a>'
            ),
            "/p/logo.webp": Page(encode(mark(), "WEBP"), "image/webp"),
        },
        "img",
        "/p/logo.webp",
    ),
    "css-style-block": (
        {
            "/": html(
                '<a class="site-logo" href="/"></a>',
                "<style>.site-logo{display:block;background-image:url(/css/bg.png)}</style>",
            ),
            "/css/bg.png": png(),
        },
        "css_background",
        "/css/bg.png",
    ),
    "css-linked-media": (
        {
            "/": html(
                '<div class="header"><a class="brand" href="/"></a></div>',
                '<link rel="stylesheet" href="/assets/css/main.css">',
            ),
            "/assets/css/main.css": Page(
                "body{margin:0}@media (min-width: 1px){.header .brand{"
                'background: url("../img/brand.png") no-repeat;width:200px}}',
                "text/css",
            ),
            "/assets/img/brand.png": png(),
        },
        "css_background",
        "/assets/img/brand.png",
    ),
    "css-style-attribute": (
        {
            "/": html('<div class="logo" style="background-image:url(\'/s/mark.png\')"></div>'),
            "/s/mark.png": png(),
        },
        "css_background",
        "/s/mark.png",
    ),
    "inline-svg": (
        {
            "/": html(
                '<header><a href="/" class="logo">'
                + SVG_MARK.replace(' xmlns="http://www.w3.org/2000/svg"', "")
                + "</a></header>"
            )
        },
        "inline_svg",
        "",
    ),
    "inline-svg-use-symbol": (
        {
            "/": html(
                '<svg style="display:none"><symbol id="logo-mark" viewBox="0 0 100 40">'
                '<rect width="40" height="40" fill="#a21"/><circle cx="70" cy="20" r="18" '
                'fill="#125"/></symbol></svg><header><svg class="brand" width="200" height="80">'
                '<use href="#logo-mark"/></svg><svg class="icon-search" width="16" height="16">'
                '<circle cx="8" cy="8" r="6"/></svg></header>'
            )
        },
        "inline_svg",
        "",
    ),
    "data-uri-svg": (
        {
            "/": html(
                f'<div class="logo"><img src="{data_uri(SVG_MARK.encode(), "image/svg+xml")}">'
            )
        },
        "img",
        "data:image/svg+xml;base64,",
    ),
    "base-href": (
        {
            "/": html('<header><img class="logo" src="logo.png"></header>', '<base href="/v2/">'),
            "/v2/logo.png": png(),
        },
        "img",
        "/v2/logo.png",
    ),
    "meta-refresh": (
        {
            "/": html("", '<meta http-equiv="refresh" content="0; url=/home/">'),
            "/home/": html(HEADER_LOGO),
            "/img/logo.png": png(),
        },
        "img",
        "/img/logo.png",
    ),
    "penalties": (
        {
            "/": html(
                '<section class="our-clients"><img src="/c/client-logo.png" alt="Client logo">'
                '</section><footer><img src="/f/logo-footer.png" class="logo"></footer>'
                '<header><img src="/img/penalties.png" alt="home"></header>'
            ),
            "/c/client-logo.png": png(colour=BLUE),
            "/f/logo-footer.png": png(colour=GREY),
            "/img/penalties.png": png(),
        },
        "img",
        "/img/penalties.png",
    ),
    "ui-icons": (
        {
            "/": html(
                '<header><img class="icon-search" src="/i/search.png">'
                '<img class="menu-toggle" src="/i/menu.png"><img src="/i/flag-de.png" alt="Deutsch">'
                '<a href="/"><img src="/img/a7f3.png"></a></header>'
            ),
            "/i/search.png": png((64, 64), BLUE),
            "/i/menu.png": png((64, 64), BLUE),
            "/i/flag-de.png": png((64, 40), BLUE),
            "/img/a7f3.png": png(),
        },
        "img",
        "/img/a7f3.png",
    ),
    "consent-widget-logo": (
        {
            "/": html(
                '<div id="onetrust-consent-sdk"><img class="ot-pc-logo" src="/ot/logo.png" '
                'alt="Company Logo"></div><header><a href="/"><img src="/img/h.png" alt="home">'
                "</a></header>"
            ),
            "/ot/logo.png": png(colour=BLUE),
            "/img/h.png": png(),
        },
        "img",
        "/img/h.png",
    ),
    "lazy-background": (
        {
            "/": html('<a class="logo" data-bg="url(/lazy/bg.png)" href="/"></a>'),
            "/lazy/bg.png": png(),
        },
        "css_background",
        "/lazy/bg.png",
    ),
    "object-svg": (
        {
            "/": html('<div id="logo"><object data="/o/logo.svg" type="image/svg+xml"></object>'),
            "/o/logo.svg": svg(),
        },
        "img",
        "/o/logo.svg",
    ),
    "svg-wrapping-raster": (
        {
            "/": html(
                '<a class="brand" href="/"><svg width="200" height="80">'
                '<image href="/r/mark.png" width="200" height="80"/></svg></a>'
            ),
            "/r/mark.png": png(),
        },
        "img",
        "/r/mark.png",
    ),
    "text-only-svg": (
        {
            "/": html('<header><img class="logo" src="/logo.svg"></header>'),
            "/logo.svg": svg(SVG_TEXT_ONLY),
        },
        "img",
        "/logo.svg",
    ),
    "huge-svg": (
        {
            "/": html('<header><img class="logo" src="/huge.svg"></header>'),
            "/huge.svg": svg(
                SVG_MARK.replace('width="200" height="80"', 'width="200000" height="80000"')
            ),
        },
        "img",
        "/huge.svg",
    ),
    "white-logo-transparent": (
        {
            "/": html('<header class="dark"><img class="logo" src="/white.png"></header>'),
            "/white.png": png(colour=(255, 255, 255), background=(0, 0, 0, 0)),
        },
        "img",
        "/white.png",
    ),
    "header-photo-loses-to-icon": (
        {
            "/": html(
                '<header class="site-header"><img src="/cdn/9f8e7d.jpg"></header>'
                '<section class="hero-banner"><img src="/hero.jpg"></section>',
                '<link rel="apple-touch-icon" href="/apple.png">',
            ),
            "/cdn/9f8e7d.jpg": png((800, 400), GREY),
            "/hero.jpg": png((1200, 500), GREY),
            "/apple.png": png((180, 180), GREEN),
        },
        "apple_touch_icon",
        "/apple.png",
    ),
    "header-image-beats-favicon": (
        {
            "/": html('<header><img src="/cdn/5a6b.png"></header>'),
            "/cdn/5a6b.png": png(),
            "/favicon.ico": ico(),
        },
        "img",
        "/cdn/5a6b.png",
    ),
    "wordpress-like": (
        {
            "/": html(
                '<div class="cmplz-cookiebanner"><img src="/cookie/logo.png" class="cmplz-logo">'
                '</div><header id="masthead" class="site-header"><div class="site-branding">'
                '<a href="https://wordpress-like.test/" class="custom-logo-link" rel="home">'
                '<img width="300" height="100" src="/wp/2023/01/mark-150x50.png" '
                'class="custom-logo" alt="Acme Widgets" srcset="/wp/2023/01/mark-150x50.png 150w, '
                '/wp/2023/01/mark.png 300w" sizes="(max-width: 300px) 100vw, 300px"></a></div>'
                '<nav class="main-navigation"><button class="menu-toggle"><svg class="icon '
                'icon-bars" width="24" height="24"><use href="#icon-bars"/></svg></button></nav>'
                '<img src="/wp/themes/x/search.svg" class="search-icon"></header><main>'
                '<section class="partners"><img src="/p/logo-a.png" alt="Partner A logo">'
                '</section></main><footer><div class="footer-logo"><img src="/wp/mark-white.png">'
                '</div><a class="social-facebook" href="https://facebook.example/acme"><svg '
                'width="20" height="20"><circle cx="10" cy="10" r="9"/></svg></a></footer>',
                '<meta property="og:image" content="/wp/2023/02/summer-banner.jpg">'
                '<link rel="apple-touch-icon" href="/wp/icon-180.png">'
                + jsonld({"@type": "WebSite", "name": "Acme Widgets", "url": "/"}),
            ),
            "/cookie/logo.png": png(colour=BLUE),
            "/wp/2023/01/mark-150x50.png": png((150, 60)),
            "/wp/2023/01/mark.png": png((300, 120)),
            "/p/logo-a.png": png(colour=BLUE),
            "/wp/mark-white.png": png(colour=GREY),
            "/wp/2023/02/summer-banner.jpg": png((1200, 630), GREY),
            "/wp/icon-180.png": png((180, 180), GREEN),
        },
        "img",
        "/wp/2023/01/mark.png",
    ),
    "nextjs-like": (
        {
            "/": html(
                '<div id="__next"><header class="Header_root__x1"><nav><a href="/">'
                '<img alt="Nextjs-like" loading="lazy" width="120" height="32" data-nimg="1" '
                'src="/_next/image?url=%2Fbrand%2Fwordmark.png&amp;w=256&amp;q=75" '
                'srcset="/_next/image?url=%2Fbrand%2Fwordmark.png&amp;w=128&amp;q=75 1x, '
                '/_next/image?url=%2Fbrand%2Fwordmark.png&amp;w=256&amp;q=75 2x"></a>'
                '<a href="/cart" class="Header_cart__9"><svg class="Icon_cart" width="24" '
                'height="24"><path d="M1 1h20v20H1z"/></svg></a></nav></header><main>'
                '<img alt="Summer sale" src="/_next/static/media/hero.jpg"></main></div>',
                '<link rel="icon" href="/favicon.ico" sizes="any">',
            ),
            "/_next/image": png((256, 68)),
            "/_next/static/media/hero.jpg": png((1600, 700), GREY),
            "/favicon.ico": ico(),
        },
        "img",
        "/_next/image?url=%2Fbrand%2Fwordmark.png&w=256&q=75",
    ),
    "apple-touch-icon": (
        {
            "/": html(
                "<main>no logo here</main>",
                '<link rel="icon" href="/f32.png" sizes="32x32">'
                '<link rel="apple-touch-icon" href="/apple.png">',
            ),
            "/f32.png": png((32, 32), GREEN),
            "/apple.png": png((180, 180), GREEN),
            "/favicon.ico": ico(),
        },
        "apple_touch_icon",
        "/apple.png",
    ),
    "manifest-icons": (
        {
            "/": html("<main>app</main>", '<link rel="manifest" href="/app/site.webmanifest">'),
            "/app/site.webmanifest": Page(
                json.dumps(
                    {
                        "icons": [
                            {"src": "mono.png", "sizes": "1024x1024", "purpose": "monochrome"},
                            {"src": "i192.png", "sizes": "192x192"},
                            {"src": "i512.png", "sizes": "512x512", "purpose": "any maskable"},
                        ]
                    }
                ),
                "application/manifest+json",
            ),
            "/app/mono.png": png((256, 256), GREY),
            "/app/i192.png": png((192, 192), GREEN),
            "/app/i512.png": png((512, 512), GREEN),
        },
        "manifest",
        "/app/i512.png",
    ),
    "link-icon-by-size": (
        {
            "/": html(
                "<main>x</main>",
                '<link rel="icon" href="/i16.png" sizes="16x16">'
                '<link rel="icon" href="/i96.png" sizes="96x96">',
            ),
            "/i16.png": png((16, 16), GREEN),
            "/i96.png": png((96, 96), GREEN),
        },
        "link_icon",
        "/i96.png",
    ),
    "favicon-ico-only": (
        {"/": html("<main>x</main>"), "/favicon.ico": ico()},
        "favicon_ico",
        "/favicon.ico",
    ),
    "og-image-last": (
        {
            "/": html("<main>x</main>", '<meta property="og:image" content="/og.png">'),
            "/og.png": png((600, 300), RED),
        },
        "og_image",
        "/og.png",
    ),
    "twitter-image": (
        {
            "/": html("<main>x</main>", '<meta name="twitter:image" content="/tw.png">'),
            "/tw.png": png((400, 200), RED),
        },
        "twitter_image",
        "/tw.png",
    ),
    "jsonld-404-falls-back": (
        {
            "/": html(HEADER_LOGO, jsonld({"@type": "Organization", "logo": "/gone.png"})),
            "/img/logo.png": png(),
        },
        "img",
        "/img/logo.png",
    ),
    "tiny-logo-falls-back-to-icon": (
        {
            "/": html(
                '<header><img class="logo" src="/dot.png"></header>',
                '<link rel="apple-touch-icon" href="/apple.png">',
            ),
            "/dot.png": png((8, 8)),
            "/apple.png": png((180, 180), GREEN),
        },
        "apple_touch_icon",
        "/apple.png",
    ),
}


@pytest.fixture(scope="module")
def results():
    fleet = Fleet()
    try:
        urls = {
            name: fleet.add(routes, name=f"{name}.test") for name, (routes, _, _) in PAGES.items()
        }
        found = extract_domains(
            [u + "/" for u in urls.values()], SETTINGS, resolver=StaticResolver(RESOLVER)
        )
        yield dict(zip(urls, found, strict=True))
    finally:
        fleet.close()


@pytest.mark.parametrize("name", list(PAGES))
def test_the_right_candidate_wins(results, name):
    _, source, suffix = PAGES[name]
    result = results[name]
    assert result.status == "ok", (result.reason, result.detail)
    assert result.source == source, result.heuristics
    if suffix.startswith("data:"):
        assert result.logo_url == suffix
    elif suffix:
        assert result.logo_url.endswith(suffix), result.logo_url
    else:
        assert result.logo_url == ""
    image = Image.open(io.BytesIO(result.logo))
    assert image.format == "PNG" and min(image.size) >= 16
    assert result.heuristics or source in ("favicon_ico",)


def test_crafted_pages_cover_every_source(results):
    assert {source for _, source, _ in PAGES.values()} >= {
        "jsonld",
        "itemprop",
        "og_logo",
        "img",
        "inline_svg",
        "css_background",
        "apple_touch_icon",
        "manifest",
        "link_icon",
        "favicon_ico",
        "og_image",
        "twitter_image",
    }
    assert len(PAGES) >= 20


def test_text_only_svg_renders_visible_text(results):
    image = Image.open(io.BytesIO(results["text-only-svg"].logo)).convert("L")
    assert image.getextrema()[0] < 100  # dark glyphs on white, not a blank canvas


def test_huge_svg_is_rendered_at_the_forced_size(results):
    # resvg would abort the whole process on this canvas without a forced output size
    assert (results["huge-svg"].width, results["huge-svg"].height) == (512, 205)


def test_white_logo_is_shown_on_dark(results):
    result = results["white-logo-transparent"]
    assert "light mark shown on dark" in result.heuristics


def test_favicon_ico_is_read_at_its_largest_frame(results):
    assert (results["favicon-ico-only"].width, results["favicon-ico-only"].height) == (48, 48)


def test_meta_refresh_is_followed_once(results):
    assert results["meta-refresh"].page_url.endswith("/home/")


def test_best_icon_is_kept_separately(results):
    result = results["header-img-class"]
    assert result.icon_source == "link_icon" and result.icon_url.endswith("/fav.png")
    assert results["apple-touch-icon"].icon_source == "apple_touch_icon"
