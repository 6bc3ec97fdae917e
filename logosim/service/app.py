"""The FastAPI app: search endpoints, marks, health, and the examiner's page at ``/``.

Run it with ``logosim api --store DIR`` or, for deployment,
``LOGOSIM_API_STORE=DIR uvicorn --factory logosim.service.app:create_app``.
Every bad input is answered with a 4xx and a JSON body ``{"reason", "detail"}``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import fastapi
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException

from logosim.data.decode import DecompressionBombError, ImageDecodeError, decode_image
from logosim.search.composite import PROFILES, CompositeParams, Profile
from logosim.service import schemas
from logosim.service.config import ServiceSettings
from logosim.service.engine import WEIGHTS, Engine, EngineError, Query, SearchOptions
from logosim.service.security import BODY_TOO_LARGE, Gate, TokenBuckets

STATIC = Path(__file__).parent / "static"
IMAGE_TYPES = ("image/", "application/octet-stream")
API_KEY = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Required when keys are set."
)
KEYED = [Depends(API_KEY)]  # documents the header; the Gate checks it
ERRORS = {code: {"model": schemas.Error} for code in (400, 401, 403, 404, 413, 415, 422, 429)}

K = Annotated[int, Form(ge=1, le=100, description="Hits returned (1–100).")]
Rerank = Annotated[
    str | None,
    Form(
        pattern=r"^(?i:true|false|on|off|1|0|yes|no)$",
        description="Stage-2 re-ranking of the top 1,000: the composite of global, spatial, "
        "text and colour terms (as `logosim search --rerank`). Default: on when a word "
        "element is given, else off.",
    ),
]  # a string: FastAPI reads a missing boolean form field as false, not as "not given"
ProfileName = Annotated[
    Profile | None,
    Form(
        description="Named stage-2 settings, on top of which weights apply: 'default' or "
        "'copies' (fitted for edited copies: dev copies R@1 0.325 → 0.383, brands 0.591 → "
        "0.564). Turns re-ranking on unless rerank=false."
    ),
]
Weight = Annotated[
    float | None,
    Form(ge=0, le=100, allow_inf_nan=False, description="Composite weight (default: the CLI's)."),
]
Vienna = Annotated[
    str | None,
    Form(max_length=16, pattern=r"^[0-9.]*$", description="Vienna code prefix, e.g. 26.01"),
]
Year = Annotated[int | None, Form(ge=0, le=9999)]
Text = Annotated[str | None, Form(max_length=200, description="The word element.")]


@dataclass(frozen=True)
class SearchForm:
    """The form fields both search endpoints share (hits, stage 2, filters)."""

    k: int
    rerank: str | None
    profile: str | None
    weights: dict[str, float | None]
    vienna: str | None
    year_min: int | None
    year_max: int | None


def search_form(
    k: K = 10,
    rerank: Rerank = None,
    profile: ProfileName = None,
    weight_global: Weight = None,
    weight_spatial: Weight = None,
    weight_text: Weight = None,
    weight_colour: Weight = None,
    vienna: Vienna = None,
    year_min: Year = None,
    year_max: Year = None,
) -> SearchForm:
    weights = {"global": weight_global, "spatial": weight_spatial, "text": weight_text,
               "colour": weight_colour}  # fmt: skip
    return SearchForm(k, rerank, profile, weights, vienna, year_min, year_max)


def fail(status: int, reason: str, detail: object = None) -> HTTPException:
    return HTTPException(status, {"reason": reason, "detail": detail})


def thumbnail_url(mark: str) -> str:
    return f"/v1/marks/{quote(mark, safe='/')}/image"


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def create_app(settings: ServiceSettings | None = None, engine: Engine | None = None) -> FastAPI:
    """The app over ``settings.store``; pass a started ``engine`` to share one (tests)."""
    settings = settings or ServiceSettings()
    keys = settings.api_keys()
    own_engine = engine is None
    engine = engine or Engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if own_engine:
            threading.Thread(target=engine.start, name="logosim-load", daemon=True).start()
            engine.watch()
        if not keys:
            logger.warning("no API key configured: answering loopback (127.0.0.1) clients only")
        yield
        if own_engine:
            engine.stop()

    app = FastAPI(
        title="logosim search",
        version="1",
        description="Find visually similar logos and trademarks.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.add_middleware(
        Gate,
        keys=keys,
        local_only=not keys,
        searches=TokenBuckets(settings.rate_per_minute, settings.rate_burst),
        reads=TokenBuckets(settings.read_rate_per_minute, settings.read_burst),
        max_body_bytes=settings.max_body_bytes,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key"],
        )

    # -- errors: always JSON with a reason ---------------------------------------------------
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if request.scope.get(BODY_TOO_LARGE):
            return JSONResponse(
                {"reason": "body_too_large", "detail": f"limit {settings.max_body_bytes} bytes"},
                413,
            )
        if isinstance(exc.detail, dict) and "reason" in exc.detail:
            body = exc.detail
        else:
            reasons = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}
            body = {"reason": reasons.get(exc.status_code, "error"), "detail": exc.detail}
        return JSONResponse(body, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        missing = any(e.get("type") == "missing" for e in exc.errors())
        reason = "missing_field" if missing else "invalid_field"
        return JSONResponse({"reason": reason, "detail": errors}, 422)

    # -- health ------------------------------------------------------------------------------
    @app.get("/healthz", response_model=schemas.Health, tags=["health"])
    def healthz() -> dict:
        """The process is alive."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=schemas.Ready,
        responses={503: {"model": schemas.Ready}},
        tags=["health"],
    )
    def readyz() -> JSONResponse:
        """Model and index loaded: index version and size (503 until then)."""
        status = engine.status() | {"api_keys": bool(keys)}
        return JSONResponse(status, 200 if status["ready"] else 503)

    # -- search ------------------------------------------------------------------------------
    async def read_query(upload: UploadFile, text: str | None) -> Query:
        ctype = (upload.content_type or "application/octet-stream").lower()
        if not ctype.startswith(IMAGE_TYPES):
            raise fail(415, "unsupported_media_type", f"{upload.filename}: {ctype} is no image")
        data = await upload.read()
        try:
            image = await run_in_threadpool(
                decode_image,
                data,
                max_pixels=settings.max_pixels,
                max_bytes=settings.max_body_bytes,
            )
        except DecompressionBombError as exc:
            raise fail(413, exc.reason, f"{upload.filename}: {exc.detail}") from exc
        except ImageDecodeError as exc:
            status = 413 if exc.reason == "file_too_large" else 400
            raise fail(status, exc.reason, f"{upload.filename}: {exc.detail}") from exc
        return Query(image=image, text=text)

    def options(form: SearchForm, texts: list[str | None]) -> SearchOptions:
        k, rerank, profile, weights = form.k, form.rerank, form.profile, form.weights
        vienna, year_min, year_max = form.vienna, form.year_min, form.year_max
        if year_min is not None and year_max is not None and year_min > year_max:
            raise fail(422, "invalid_year_range", f"year_min {year_min} > year_max {year_max}")
        base = CompositeParams(**PROFILES[profile]) if profile else CompositeParams()
        composite = base.model_copy(
            update={WEIGHTS[t]: w for t, w in weights.items() if w is not None}
        )
        if composite.weights().sum() <= 0:
            raise fail(422, "invalid_weights", "at least one composite weight must be above 0")
        given = any(t and t.strip() for t in texts)
        return SearchOptions(
            k=k,
            rerank=(rerank.lower() in ("true", "on", "1", "yes"))
            if rerank is not None
            else (given or bool(profile) or composite.enabled),
            composite=composite,
            vienna_prefix=vienna or None,
            year_min=year_min,
            year_max=year_max,
            candidates=settings.candidates,
        )

    def rerank_info(ranking, opts: SearchOptions) -> dict:
        return {
            "on": opts.rerank,
            "variants": list(opts.composite.variants),
            "weights": {t: getattr(opts.composite, name) for t, name in WEIGHTS.items()},
            "terms_used": ranking.terms_used,
            "absent": ranking.absent,
        }

    async def run_search(queries: list[Query], opts: SearchOptions):
        try:
            return await asyncio.wait_for(
                run_in_threadpool(engine.search, queries, opts), settings.timeout_s
            )
        except TimeoutError as exc:
            raise fail(503, "timeout", f"the search took over {settings.timeout_s}s") from exc
        except EngineError as exc:
            raise fail(503, "not_ready", str(exc)) from exc

    def results(ranking, snapshot) -> list[dict]:
        return [
            {
                "id": h.id,
                "rank": h.rank,
                "score": h.score,
                "components": h.components,
                "metadata": snapshot.catalog.metadata(h.id) or {},
                "thumbnail_url": thumbnail_url(h.id),
            }
            for h in ranking.hits
        ]

    @app.post(
        "/v1/search",
        response_model=schemas.SearchResponse,
        responses=ERRORS,
        dependencies=KEYED,
        tags=["search"],
    )
    async def search(
        image: Annotated[UploadFile, File(description="The query image.")],
        form: Annotated[SearchForm, Depends(search_form)],
        text: Text = None,
    ) -> dict:
        """Marks most similar to one image (multipart form, file in field ``image``)."""
        started = time.perf_counter()
        opts = options(form, [text])
        query = await read_query(image, text)
        (ranking,), snapshot = await run_search([query], opts)
        return {
            "results": results(ranking, snapshot),
            "rerank": rerank_info(ranking, opts),
            "index_version": snapshot.version,
            "took_ms": round((time.perf_counter() - started) * 1e3, 2),
        }

    @app.post(
        "/v1/search/batch",
        response_model=schemas.BatchResponse,
        responses=ERRORS,
        dependencies=KEYED,
        tags=["search"],
    )
    async def search_batch(
        images: Annotated[list[UploadFile], File(description="1–16 query images.")],
        form: Annotated[SearchForm, Depends(search_form)],
        texts: Annotated[
            str | None,
            Form(max_length=20_000, description='JSON list of word elements, e.g. ["ACME", null]'),
        ] = None,
    ) -> dict:
        """Up to 16 images in one call; ``texts`` pairs a word element with each image."""
        started = time.perf_counter()
        if not images:
            raise fail(422, "missing_field", "images")
        if len(images) > settings.max_batch:
            raise fail(413, "too_many_images", f"{len(images)} > limit {settings.max_batch}")
        words: list[str | None] = [None] * len(images)
        if texts:
            try:
                parsed = json.loads(texts)
            except ValueError as exc:
                raise fail(422, "malformed_json", f"texts: {exc}") from exc
            if not isinstance(parsed, list) or len(parsed) != len(images):
                raise fail(422, "invalid_field", "texts: a JSON list with one entry per image")
            if not all(t is None or (isinstance(t, str) and len(t) <= 200) for t in parsed):
                raise fail(422, "invalid_field", "texts: each entry a string (≤ 200) or null")
            words = parsed
        opts = options(form, words)
        queries = [await read_query(im, w) for im, w in zip(images, words, strict=True)]
        found, snapshot = await run_search(queries, opts)
        return {
            "queries": [
                {"results": results(r, snapshot), "rerank": rerank_info(r, opts)} for r in found
            ],
            "index_version": snapshot.version,
            "took_ms": round((time.perf_counter() - started) * 1e3, 2),
        }

    # -- marks -------------------------------------------------------------------------------
    def current():
        snapshot = engine.snapshot
        if snapshot is None:
            raise fail(503, "not_ready", engine.error or "still loading")
        return snapshot

    @app.get(
        "/v1/marks/{mark_id:path}/image",
        responses={**ERRORS, 200: {"content": {"image/png": {}}}},
        response_class=Response,
        dependencies=KEYED,
        tags=["marks"],
    )
    def mark_image(
        mark_id: str,
        size: Annotated[
            int | None, fastapi.Query(ge=32, le=1024, description="Longest side, px.")
        ] = None,
    ) -> Response:
        """The mark's thumbnail (PNG), read from the indexed source."""
        snapshot = current()
        if snapshot.catalog.metadata(mark_id) is None:
            raise fail(404, "unknown_mark", mark_id)
        side = size or settings.thumbnail_px
        data = snapshot.thumbnails.get((mark_id, side))
        if data is None:
            data = snapshot.catalog.thumbnail(mark_id, side)
            if data is None:
                raise fail(404, "no_image", f"{mark_id}: the source has no readable image")
            snapshot.thumbnails.put((mark_id, side), data)
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get(
        "/v1/marks/{mark_id:path}",
        response_model=schemas.Mark,
        responses=ERRORS,
        dependencies=KEYED,
        tags=["marks"],
    )
    def mark(mark_id: str) -> dict:
        """A mark's metadata (word element, Vienna codes, year, source columns)."""
        snapshot = current()
        meta = snapshot.catalog.metadata(mark_id)
        if meta is None:
            raise fail(404, "unknown_mark", mark_id)
        return {
            "id": mark_id,
            "metadata": meta,
            "thumbnail_url": thumbnail_url(mark_id),
            "index_version": snapshot.version,
        }

    # -- the examiner's page -----------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
