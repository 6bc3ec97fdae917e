"""Logo candidates from a page: every signal people and tools use, each with a score.

A candidate's score is **source prior + placement** here, plus an image adjustment once it
is downloaded (``images.judge``). The priors (``PRIOR``), in rank order:

=================  =====  ==============================================================
source             prior  where it comes from
=================  =====  ==============================================================
jsonld             130    JSON-LD ``Organization``/``Brand``… ``logo`` (also in ``@graph``)
itemprop           120    ``itemprop="logo"`` (img ``src``, meta ``content``, link ``href``)
og_logo            110    ``<meta property="og:logo">``
img                 20    ``<img>``/``<picture>``/``<object>``, or an ``<svg>`` wrapping one
                          ``<image>``, with at least one positive page signal
inline_svg          20    an inline ``<svg>`` (``<use href="#id">`` symbols resolved)
css_background      15    ``background(-image)`` on a logo/brand selector, in ``style=``, or a
                          lazy ``data-bg``/``data-background(-image)``
apple_touch_icon    30    ``<link rel=apple-touch-icon>`` (+ up to 10 by declared size)
manifest            28    web-manifest icons, not monochrome (+ up to 10 by size)
link_icon           20    ``<link rel=icon>`` (+ up to 10 by declared size; SVG counts 512)
favicon_ico         10    ``/favicon.ico`` (its largest frame)
og_image             5    ``og:image`` (often a photo banner)
twitter_image        4    ``twitter:image``
=================  =====  ==============================================================

Placement (page elements: img, inline_svg, css_background), from the element, its
ancestors (6 levels) and, for CSS, the selector: ``logo``/``brand``/``site-title`` words on
the element +45 (on an ancestor +30); in ``header``/``nav``/banner +15 (−20 back when nothing
else speaks for it: then the apple-touch and manifest icons outrank it); inside a link to the
site root +20; the domain's name in alt/title/path +15; the first page elements +0..10;
inside a footer −40; a partner/client/sponsor/payment/social block or a cookie-consent
widget −60; a UI icon (search,
menu, cart, flag, social network…) −50; a declared size under 24 px −40. A page element with
no positive signal is not a candidate at all (a photo in the article is not a logo).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import tinycss2
from PIL import Image
from selectolax.lexbor import LexborHTMLParser, LexborNode

SOURCES = (
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
)
ICON_SOURCES = frozenset({"apple_touch_icon", "manifest", "link_icon", "favicon_ico"})
PRIOR = {
    "jsonld": 130.0,
    "itemprop": 120.0,
    "og_logo": 110.0,
    "img": 20.0,
    "inline_svg": 20.0,
    "css_background": 15.0,
    "apple_touch_icon": 30.0,
    "manifest": 28.0,
    "link_icon": 20.0,
    "favicon_ico": 10.0,
    "og_image": 5.0,
    "twitter_image": 4.0,
}
# A page whose best candidate scores below this also has its linked stylesheets read.
STRONG_SCORE = 100.0
MAX_STYLESHEETS = 4
MAX_JSONLD_BYTES = 1 << 20

LOGO_WORDS = re.compile(
    r"logo|brand|site[-_ ]?(?:title|name|identity)|wordmark|logotype|masthead", re.I
)
HEADER_WORDS = re.compile(r"header|masthead|navbar|topbar|top-bar|site-nav", re.I)
FOOTER_WORDS = re.compile(r"footer|colophon|bottom-bar", re.I)
THIRD_PARTY_WORDS = re.compile(
    r"partner|client|sponsor|payment|social|customer|trusted|as-seen|featured|press|"
    r"award|certif|badge|app-?store|google-?play|integration|testimonial|member|"
    r"cookie|consent|onetrust|gdpr|powered-?by",
    re.I,
)
UI_WORDS = re.compile(
    r"search|menu|cart|basket|shopping-bag|flag|hamburger|burger|close|arrow|chevron|caret|"
    r"toggle|avatar|profile|account|login|user-icon|language|country|spinner|loader|"
    r"play-button|share|twitter|facebook|instagram|linkedin|youtube|whatsapp|pinterest|"
    r"tiktok|github|icon-|-icon\b|\bicon\b|glyph|emoji",
    re.I,
)
PLACEHOLDER_WORDS = re.compile(
    r"(?:^|[/_.-])(?:blank|spacer|pixel|placeholder|transparent|1x1|lazy|loading|empty)"
    r"[^/]*\.(?:gif|png|svg|webp)$",
    re.I,
)
LAZY_ATTRS = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
LAZY_BACKGROUND_ATTRS = ("data-bg", "data-background", "data-background-image", "data-bg-src")
ROOT_PATHS = re.compile(r"^/?(?:index\.\w+|home|[a-z]{2}(?:[-_][a-z]{2})?/?)?$", re.I)
SIZE = re.compile(r"(\d+)\s*[xX×]\s*(\d+)")


@dataclass
class Candidate:
    """One possible logo: where it is (URL, ``data:`` URI, or inline SVG markup), its
    source (one of ``SOURCES``), its score so far and the heuristics that gave it."""

    source: str
    score: float
    url: str = ""
    svg: str | None = None
    hints: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.url or f"svg:{hash(self.svg)}"

    @property
    def is_icon(self) -> bool:
        return self.source in ICON_SOURCES


@dataclass
class PageSignals:
    """What a page says: its candidates and what else is worth fetching."""

    candidates: list[Candidate]
    stylesheets: list[str] = field(default_factory=list)
    manifest: str | None = None
    refresh: str | None = None  # a meta-refresh target


@dataclass
class _Context:
    page_url: str
    base: str
    host: str
    name: str  # the domain's name, e.g. "acme" for www.acme.co.uk


# -- the page ---------------------------------------------------------------------------------
def domain_name(host: str) -> str:
    """The distinctive label of a host: ``www.acme.co.uk`` → ``acme``."""
    labels = [x for x in host.lower().split(".") if x and x != "www"]
    if len(labels) >= 3 and len(labels[-2]) <= 3 and len(labels[-1]) == 2:
        return labels[-3]  # acme.co.uk, acme.com.au
    return labels[-2] if len(labels) >= 2 else (labels[0] if labels else "")


def parse_page(html: str | bytes, page_url: str) -> tuple[LexborHTMLParser, PageSignals]:
    """Parse a page and collect its candidates (without stylesheets or manifest icons)."""
    tree = LexborHTMLParser(html)
    base_node = tree.css_first("base[href]")
    base = urljoin(page_url, base_node.attributes.get("href") or "") if base_node else page_url
    host = (urlsplit(page_url).hostname or "").lower()
    ctx = _Context(page_url=page_url, base=base, host=host, name=domain_name(host))
    found: list[Candidate] = []
    found += _jsonld(tree, ctx)
    found += _itemprop(tree, ctx)
    found += _meta(tree, ctx)
    found += _page_elements(tree, ctx)
    found += css_candidates(
        "\n".join(node.text(deep=True) for node in tree.css("style")), ctx.base, tree, ctx
    )
    icons, manifest = _link_icons(tree, ctx)
    found += icons
    favicon = _abs(ctx, "/favicon.ico", page_url)
    found.append(Candidate("favicon_ico", PRIOR["favicon_ico"], favicon, hints=["/favicon.ico"]))
    signals = PageSignals(
        candidates=merge(found),
        stylesheets=_stylesheets(tree, ctx),
        manifest=manifest,
        refresh=_refresh(tree, ctx),
    )
    return tree, signals


def merge(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per URL (the best-scored, hints joined), best first."""
    by_key: dict[str, Candidate] = {}
    for c in candidates:
        old = by_key.get(c.key)
        if old is None or c.score > old.score:
            if old is not None:
                c.hints = [*c.hints, *(h for h in old.hints if h not in c.hints)]
            by_key[c.key] = c
    return sorted(by_key.values(), key=lambda c: -c.score)


def _abs(ctx: _Context, value: str | None, base: str | None = None) -> str:
    value = (value or "").strip()
    if not value or value.lower().startswith(("javascript:", "about:", "blob:", "mailto:", "#")):
        return ""
    if value.lower().startswith("data:"):
        return value
    return urljoin(base or ctx.base, value)


# -- structured data --------------------------------------------------------------------------
def _jsonld(tree: LexborHTMLParser, ctx: _Context) -> list[Candidate]:
    out: list[Candidate] = []
    budget = MAX_JSONLD_BYTES
    for script in tree.css('script[type="application/ld+json"]'):
        text = script.text(deep=True)
        budget -= len(text)
        if budget < 0:
            break
        try:
            data = json.loads(text, strict=False)  # raw newlines in strings are common
        except ValueError:
            continue
        nodes: list[dict] = []
        _walk_json(data, nodes, depth=0)
        ids = {n["@id"]: n for n in nodes if isinstance(n.get("@id"), str)}
        for node in nodes:
            types = node.get("@type")
            types = types if isinstance(types, list) else [types]
            if "logo" not in node or any(t in ("Product", "Event", "Offer") for t in types):
                continue
            for url in _jsonld_urls(node["logo"], ids):
                hint = f"JSON-LD {'/'.join(str(t) for t in types if t) or 'node'}.logo"
                out.append(Candidate("jsonld", PRIOR["jsonld"], _abs(ctx, url), hints=[hint]))
    return [c for c in out if c.url]


def _walk_json(value: object, nodes: list[dict], depth: int) -> None:
    if depth > 12:
        return
    if isinstance(value, dict):
        nodes.append(value)
        for child in value.values():
            _walk_json(child, nodes, depth + 1)
    elif isinstance(value, list):
        for child in value[:200]:
            _walk_json(child, nodes, depth + 1)


def _jsonld_urls(logo: object, ids: dict[str, dict], depth: int = 0) -> list[str]:
    if depth > 3:
        return []
    if isinstance(logo, str):
        return [logo]
    if isinstance(logo, list):
        return [u for item in logo[:5] for u in _jsonld_urls(item, ids, depth + 1)]
    if isinstance(logo, dict):
        for key in ("url", "contentUrl"):
            if isinstance(logo.get(key), str):
                return [logo[key]]
        ref = logo.get("@id")
        if isinstance(ref, str) and ref in ids and ids[ref] is not logo:
            return _jsonld_urls(ids[ref], ids, depth + 1)
    return []


def _itemprop(tree: LexborHTMLParser, ctx: _Context) -> list[Candidate]:
    out = []
    for node in tree.css('[itemprop~="logo"]'):
        attrs = node.attributes
        if node.tag == "img":
            url = _img_url(node, ctx)
        else:
            url = _abs(ctx, attrs.get("content") or attrs.get("href") or attrs.get("src"))
        if url:
            out.append(Candidate("itemprop", PRIOR["itemprop"], url, hints=['itemprop="logo"']))
    return out


def _meta(tree: LexborHTMLParser, ctx: _Context) -> list[Candidate]:
    out = []
    for node in tree.css("meta[content]"):
        key = (node.attributes.get("property") or node.attributes.get("name") or "").lower()
        source = {
            "og:logo": "og_logo",
            "og:image": "og_image",
            "og:image:url": "og_image",
            "og:image:secure_url": "og_image",
            "twitter:image": "twitter_image",
            "twitter:image:src": "twitter_image",
        }.get(key.strip())
        url = _abs(ctx, node.attributes.get("content"))
        if source and url:
            out.append(Candidate(source, PRIOR[source], url, hints=[f'meta "{key}"']))
    return out


# -- page elements ----------------------------------------------------------------------------
def _page_elements(tree: LexborHTMLParser, ctx: _Context) -> list[Candidate]:
    out: list[Candidate] = []
    order = 0
    body = tree.body
    if body is None:
        return out
    for node in body.traverse():
        tag, attrs, extra = node.tag, node.attributes, []
        if tag == "img":
            if node.parent is not None and node.parent.tag == "svg":
                continue
            url = _img_url(node, ctx)
            source = "img"
        elif tag == "svg":
            if _inside(node, "svg") or _is_sprite(node):
                continue
            url, source = _wrapped_raster(node, ctx), "inline_svg"
            if url:  # an <svg> that only wraps an <image>: the raster is the mark
                source, extra = "img", ["+raster inside an inline <svg>"]
        elif tag in ("object", "embed") and _is_svg_object(node):
            url, source = _abs(ctx, attrs.get("data") or attrs.get("src")), "img"
        elif any(a in attrs for a in LAZY_BACKGROUND_ATTRS) or "url(" in (attrs.get("style") or ""):
            url = _style_attr_url(node, ctx)
            source = "css_background"
        else:
            continue
        if source != "inline_svg" and not url:
            continue
        score, hints = _placement(node, ctx, url)
        hints += extra
        if not any(h.startswith("+") for h in hints):
            continue  # nothing says it is the site's mark
        score += max(0.0, 10.0 - 2.0 * order)
        order += 1
        candidate = Candidate(source, PRIOR[source] + score, url, hints=hints)
        if source == "inline_svg":
            candidate.svg = inline_svg_markup(node, tree)
        out.append(candidate)
    return out


def _wrapped_raster(svg: LexborNode, ctx: _Context) -> str:
    """The URL of the one ``<image>`` an inline SVG holds when it draws nothing else."""
    images = svg.css("image")
    shapes = svg.css("path, rect, circle, ellipse, polygon, polyline, line, text, use")
    if len(images) != 1 or shapes:
        return ""
    href = images[0].attributes.get("href") or images[0].attributes.get("xlink:href")
    url = _abs(ctx, href)
    return "" if url.startswith("data:") else url


def _is_svg_object(node: LexborNode) -> bool:
    target = (node.attributes.get("data") or node.attributes.get("src") or "").lower()
    kind = (node.attributes.get("type") or "").lower()
    return kind.startswith("image/") or target.split("?")[0].endswith((".svg", ".png", ".webp"))


def _inside(node: LexborNode, tag: str) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag == tag:
            return True
        parent = parent.parent
    return False


def _is_sprite(node: LexborNode) -> bool:
    """A hidden SVG that only holds ``<symbol>``s for ``<use>`` elsewhere."""
    style = (node.attributes.get("style") or "").replace(" ", "").lower()
    hidden = "display:none" in style or (
        node.attributes.get("aria-hidden") == "true"
        and (node.attributes.get("width") in ("0", "0px"))
    )
    children = [c for c in node.iter() if c.tag not in ("-text", "-comment")]
    only_defs = bool(children) and all(c.tag in ("symbol", "defs") for c in children)
    return hidden or only_defs


def _attrs_text(node: LexborNode, *names: str) -> str:
    return " ".join(str(node.attributes.get(n) or "") for n in names)


def _placement(node: LexborNode, ctx: _Context, url: str) -> tuple[float, list[str]]:
    """Score for where an element sits; hints prefixed + (positive) or - (penalty)."""
    score, hints = 0.0, []
    path = urlsplit(url).path.rsplit("/", 1)[-1] if url and not url.startswith("data:") else ""
    own = _attrs_text(node, "class", "id", "alt", "title", "aria-label") + " " + path
    if node.tag == "svg":
        title = node.css_first("title")
        own += " " + (title.text() if title else "")
        for use in node.css("use"):
            own += " " + _attrs_text(use, "href", "xlink:href")
    own_logo = LOGO_WORDS.search(own)
    if own_logo:
        score += 45
        hints.append(f"+'{own_logo.group(0).lower()}' on the element")
    if ctx.name and len(ctx.name) >= 3 and ctx.name in own.lower():
        score += 15
        hints.append("+domain name in alt/path")
    ancestor_logo = header = footer = third = root_link = False
    parent, depth = node.parent, 0
    while parent is not None and parent.tag not in ("body", "html"):
        text = _attrs_text(parent, "class", "id", "role", "aria-label")
        if depth < 6 and not own_logo and LOGO_WORDS.search(text):
            ancestor_logo = True
        if (
            parent.tag in ("header", "nav")
            or parent.attributes.get("role") == "banner"
            or HEADER_WORDS.search(_attrs_text(parent, "class", "id"))
        ):
            header = True
        if (
            parent.tag == "footer"
            or parent.attributes.get("role") == "contentinfo"
            or FOOTER_WORDS.search(_attrs_text(parent, "class", "id"))
        ):
            footer = True
        if THIRD_PARTY_WORDS.search(text):
            third = True
        if parent.tag == "a" and _links_to_root(parent.attributes.get("href"), ctx):
            root_link = True
        parent, depth = parent.parent, depth + 1
    if ancestor_logo:
        score += 30
        hints.append("+logo word on an ancestor")
    if header and not footer:
        score += 15
        hints.append("+in header/nav")
        if not (own_logo or ancestor_logo or root_link or "+domain name in alt/path" in hints):
            score -= 20  # a header also holds photos and badges: alone it is a weak sign
            hints.append("-header placement alone")
    if root_link:
        score += 20
        hints.append("+links to the site root")
    if footer:
        score -= 40
        hints.append("-in footer")
    if third or THIRD_PARTY_WORDS.search(own):
        score -= 60
        hints.append("-partner/social/payment block")
    ui = UI_WORDS.search(own)
    if ui and not (own_logo and ui.group(0).lower() in ("icon", "icon-", "-icon")):
        score -= 50
        hints.append(f"-UI icon '{ui.group(0).lower()}'")
    declared = [_px(node.attributes.get("width")), _px(node.attributes.get("height"))]
    if any(d is not None and d < 24 for d in declared):
        score -= 40
        hints.append("-declared smaller than 24 px")
    return score, hints


def _px(value: str | None) -> float | None:
    match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$", value or "")
    return float(match.group(1)) if match else None


def _links_to_root(href: str | None, ctx: _Context) -> bool:
    if href is None:
        return False
    target = urlsplit(urljoin(ctx.base, href.strip()))
    host = (target.hostname or "").removeprefix("www.")
    return host == ctx.host.removeprefix("www.") and bool(ROOT_PATHS.match(target.path or "/"))


def _img_url(node: LexborNode, ctx: _Context) -> str:
    """The real image of an ``<img>``: lazy-loading attributes first, then the largest
    ``srcset`` entry, then ``src`` (unless a placeholder), then a ``<picture><source>``."""
    attrs = node.attributes
    for name in ("data-srcset", "data-lazy-srcset"):
        if attrs.get(name):
            url = _largest_srcset(attrs[name], ctx)
            if url:
                return url
    for name in LAZY_ATTRS:
        url = _abs(ctx, attrs.get(name))
        if url and not _is_placeholder(url):
            return url
    if attrs.get("srcset"):
        url = _largest_srcset(attrs["srcset"], ctx)
        if url and not _is_placeholder(url):
            return url
    src = _abs(ctx, attrs.get("src"))
    if src and not _is_placeholder(src):
        return src
    parent = node.parent
    if parent is not None and parent.tag == "picture":
        for source in parent.css("source"):
            value = source.attributes.get("srcset") or source.attributes.get("data-srcset")
            url = _largest_srcset(value or "", ctx)
            if url:
                return url
    return ""


def _largest_srcset(value: str, ctx: _Context) -> str:
    best, best_size = "", -1.0
    for entry in value.split(","):
        parts = entry.strip().split()
        if not parts or parts[0].lower().startswith("data:"):
            continue
        size = 1.0
        if len(parts) > 1:
            match = re.match(r"^(\d+(?:\.\d+)?)([wx])$", parts[1].lower())
            if match:
                size = float(match.group(1)) * (1.0 if match.group(2) == "w" else 1000.0)
        if size > best_size:
            best, best_size = _abs(ctx, parts[0]), size
    return best


def _is_placeholder(url: str) -> bool:
    if url.lower().startswith("data:"):
        payload = data_uri_bytes(url)
        if payload is None or len(payload) < 100:
            return True  # malformed, or a 1×1 GIF/PNG, or an empty SVG
        try:  # a raster placeholder: a few pixels in either direction
            with Image.open(io.BytesIO(payload)) as image:
                return min(image.size) <= 2
        except Exception:
            return False  # not a raster image Pillow knows (an SVG): judged when downloaded
    return bool(PLACEHOLDER_WORDS.search(urlsplit(url).path))


def data_uri_bytes(uri: str, limit: int = 8 * 2**20) -> bytes | None:
    """The payload of a ``data:`` URI (base64 or percent-encoded), None when malformed."""
    head, sep, payload = uri.partition(",")
    if not sep or len(payload) > limit * 2:
        return None
    try:
        if head.lower().endswith(";base64"):
            return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=False)
        return unquote_to_bytes(payload)
    except ValueError:
        return None


def _style_attr_url(node: LexborNode, ctx: _Context) -> str:
    """A ``background(-image)`` in ``style=``, or a lazy background (``data-bg``…)."""
    for name in LAZY_BACKGROUND_ATTRS:
        value = (node.attributes.get(name) or "").strip()
        if value:
            inner = _css_urls(f"x: {value}", ("x",)) if "url(" in value else [value]
            if inner and inner[0]:
                return _abs(ctx, inner[0])
    for url in _css_urls(node.attributes.get("style") or "", ("background", "background-image")):
        return _abs(ctx, url)
    return ""


# -- inline SVG -------------------------------------------------------------------------------
def inline_svg_markup(node: LexborNode, tree: LexborHTMLParser) -> str:
    """A standalone SVG document for an inline ``<svg>``: namespaces added, and the
    ``<symbol>``s its ``<use href="#id">`` point at copied into a ``<defs>``."""
    markup = node.html or ""
    defs = []
    for use in node.css("use"):
        ref = use.attributes.get("href") or use.attributes.get("xlink:href") or ""
        if ref.startswith("#") and node.css_first(f'[id="{ref[1:]}"]') is None:
            target = tree.css_first(f'[id="{ref[1:]}"]')
            if target is not None and target.html:
                defs.append(target.html)
    head_end = markup.find(">")
    if head_end < 0:
        return markup
    head, rest = markup[:head_end], markup[head_end:]
    if "xmlns=" not in head:
        head += ' xmlns="http://www.w3.org/2000/svg"'
    if "xmlns:xlink" not in head:
        head += ' xmlns:xlink="http://www.w3.org/1999/xlink"'
    if defs:
        rest = ">" + "<defs>" + "".join(defs) + "</defs>" + rest[1:]
    return (head + rest).replace("&nbsp;", "&#160;")  # HTML serialisation → XML


# -- CSS --------------------------------------------------------------------------------------
def _css_urls(text: str, properties: tuple[str, ...]) -> list[str]:
    urls = []
    for decl in tinycss2.parse_blocks_contents(text, skip_comments=True, skip_whitespace=True):
        if decl.type != "declaration" or decl.lower_name not in properties:
            continue
        urls += _urls_in(decl.value)
    return urls


def _urls_in(tokens: list) -> list[str]:
    urls = []
    for token in tokens:
        if token.type == "url":
            urls.append(token.value)
        elif token.type == "function" and token.lower_name == "url":
            urls += [a.value for a in token.arguments if a.type == "string"]
        elif token.type == "function":  # image-set(), -webkit-image-set(), ...
            urls += _urls_in(token.arguments)
    return urls


def css_candidates(
    css: str, base: str, tree: LexborHTMLParser | None, ctx: _Context | None = None
) -> list[Candidate]:
    """``background(-image)`` URLs on logo/brand selectors, relative URLs resolved against
    ``base`` (the stylesheet's URL), ``@media`` blocks included."""
    if not css.strip():
        return []
    if ctx is None:
        host = (urlsplit(base).hostname or "").lower()
        ctx = _Context(page_url=base, base=base, host=host, name=domain_name(host))
    out: list[Candidate] = []
    _css_rules(tinycss2.parse_stylesheet(css, True, True), base, tree, ctx, out, 0)
    return out


def _css_rules(
    rules: list, base: str, tree: LexborHTMLParser | None, ctx: _Context, out: list, depth: int
) -> None:
    for rule in rules:
        if rule.type == "at-rule" and rule.content is not None and depth < 4:
            if rule.lower_at_keyword in ("media", "supports", "layer", "container"):
                inner = tinycss2.parse_rule_list(rule.content, True, True)
                _css_rules(inner, base, tree, ctx, out, depth + 1)
            continue
        if rule.type != "qualified-rule":
            continue
        selector = tinycss2.serialize(rule.prelude).strip()
        urls = _urls_in(
            [
                token
                for decl in tinycss2.parse_blocks_contents(rule.content, True, True)
                if decl.type == "declaration"
                and decl.lower_name in ("background", "background-image", "content")
                for token in decl.value
            ]
        )
        if not urls:
            continue
        for part in selector.split(","):
            candidate = _css_candidate(part.strip(), urls[0], base, tree, ctx)
            if candidate is not None:
                out.append(candidate)


def _css_candidate(
    selector: str, url: str, base: str, tree: LexborHTMLParser | None, ctx: _Context
) -> Candidate | None:
    absolute = _abs(ctx, url, base)
    if not absolute or _is_placeholder(absolute):
        return None
    path = urlsplit(absolute).path.rsplit("/", 1)[-1] if not absolute.startswith("data:") else ""
    logo = LOGO_WORDS.search(selector) or LOGO_WORDS.search(path)
    if not logo:
        return None
    said = f"+'{logo.group(0).lower()}' in CSS selector '{selector}'"
    element = _match(tree, selector) if tree is not None else None
    if element is not None:  # scored like the element it paints, where it sits on the page
        score, hints = _placement(element, ctx, absolute)
        if not any("on the element" in h or "ancestor" in h for h in hints):
            score, hints = score + 45, [said, *hints]
        hints.append("+selector matches an element")
    else:  # a stylesheet shared across the site: the selector's words are all there is
        score, hints = 45.0, [said]
        if HEADER_WORDS.search(selector) or re.search(r"(?:^|\s)(?:header|nav)\b", selector):
            score += 15
            hints.append("+header/nav selector")
        if FOOTER_WORDS.search(selector):
            score -= 40
            hints.append("-footer selector")
        if THIRD_PARTY_WORDS.search(selector) or UI_WORDS.search(selector):
            score -= 60
            hints.append("-partner/social/UI selector")
    return Candidate("css_background", PRIOR["css_background"] + score, absolute, hints=hints)


def _match(tree: LexborHTMLParser, selector: str) -> LexborNode | None:
    plain = re.sub(r"::?[\w-]+(?:\([^)]*\))?", "", selector).strip()
    if not plain:
        return None
    try:
        return tree.css_first(plain)
    except Exception:  # selectors lexbor cannot parse are just not matched
        return None


def stylesheet_candidates(
    css: str, sheet_url: str, tree: LexborHTMLParser | None, page_url: str
) -> list[Candidate]:
    """Candidates from a linked stylesheet: URLs resolved against the sheet, the page's
    domain and elements used for placement."""
    host = (urlsplit(page_url).hostname or "").lower()
    ctx = _Context(page_url=page_url, base=sheet_url, host=host, name=domain_name(host))
    return css_candidates(css, sheet_url, tree, ctx)


# -- icons, manifest, stylesheets, refresh ----------------------------------------------------
def _declared_size(sizes: str | None, url: str, type_: str | None) -> int:
    """Declared pixels (the largest of ``sizes``); a vector icon counts as 512. ``sizes="any"``
    on a ``.ico`` (Next.js writes it) says nothing about its size."""
    path = url.lower().split("?")[0]
    if path.endswith((".svg", ".svgz")) or (type_ or "").lower() == "image/svg+xml":
        return 512
    found = [int(w) * int(h) for w, h in SIZE.findall(sizes or "")]
    return int(math.sqrt(max(found))) if found else 0


def _size_bonus(size: int) -> float:
    return 0.0 if size <= 16 else min(10.0, 2.5 * math.log2(size / 16))


def _link_icons(tree: LexborHTMLParser, ctx: _Context) -> tuple[list[Candidate], str | None]:
    out, manifest = [], None
    for node in tree.css("link[rel][href]"):
        rel = set((node.attributes.get("rel") or "").lower().split())
        href = _abs(ctx, node.attributes.get("href"))
        if not href:
            continue
        if "manifest" in rel and manifest is None:
            manifest = href
            continue
        if "apple-touch-icon" in rel or "apple-touch-icon-precomposed" in rel:
            source, default = "apple_touch_icon", 180
        elif "icon" in rel:
            source, default = "link_icon", 0
        else:
            continue  # mask-icon (monochrome), preload, ...
        size = _declared_size(node.attributes.get("sizes"), href, node.attributes.get("type"))
        size = size or default
        out.append(
            Candidate(
                source,
                PRIOR[source] + _size_bonus(size),
                href,
                hints=[f"link rel={'/'.join(sorted(rel))} {size or '?'} px"],
            )
        )
    return out, manifest


def manifest_candidates(text: str | bytes, manifest_url: str) -> list[Candidate]:
    """Web-manifest icons, largest first; monochrome-only icons skipped."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    icons = data.get("icons") if isinstance(data, dict) else None
    out = []
    for icon in icons if isinstance(icons, list) else []:
        if not isinstance(icon, dict) or not isinstance(icon.get("src"), str):
            continue
        purposes = set(str(icon.get("purpose") or "any").lower().split())
        if purposes and purposes <= {"monochrome"}:
            continue
        url = urljoin(manifest_url, icon["src"].strip())
        size = _declared_size(str(icon.get("sizes") or ""), url, icon.get("type"))
        out.append(
            Candidate(
                "manifest",
                PRIOR["manifest"] + _size_bonus(size),
                url,
                hints=[f"manifest icon {size or '?'} px"],
            )
        )
    return sorted(out, key=lambda c: -c.score)[:3]


def _stylesheets(tree: LexborHTMLParser, ctx: _Context) -> list[str]:
    urls = []
    for node in tree.css("link[rel][href]"):
        rel = (node.attributes.get("rel") or "").lower().split()
        if "stylesheet" in rel and "alternate" not in rel:
            url = _abs(ctx, node.attributes.get("href"))
            if url and not url.startswith("data:") and url not in urls:
                urls.append(url)
    return urls[:MAX_STYLESHEETS]


def _refresh(tree: LexborHTMLParser, ctx: _Context) -> str | None:
    for node in tree.css("meta[http-equiv][content]"):
        if (node.attributes.get("http-equiv") or "").strip().lower() != "refresh":
            continue
        match = re.search(r"url\s*=\s*['\"]?([^'\";]+)", node.attributes.get("content") or "", re.I)
        if match:
            url = _abs(ctx, match.group(1).strip())
            return url if url and not url.startswith("data:") else None
    return None
