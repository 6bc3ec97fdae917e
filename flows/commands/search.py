"""``logosim search``: the most similar indexed logos for each query image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.commands._options import Exit, StoreOpt, fail, store_path, warn


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        images: Annotated[list[Path], typer.Argument(help="Query image files.")],
        store: StoreOpt = None,
        k: Annotated[int, typer.Option("-k", "--top", min=1, help="Hits per query.")] = 10,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
        sheet: Annotated[
            Path | None, typer.Option("--sheet", help="Write a contact sheet PNG here.")
        ] = None,
        rerank: Annotated[
            bool | None,
            typer.Option(
                "--rerank/--no-rerank",
                help="Stage 2: re-rank the top 1,000 by global + spatial + text + colour "
                "(default: the CompositeParams default, off: see notes/issue-12-rerank.md).",
            ),
        ] = None,
        text: Annotated[
            str | None,
            typer.Option("--text", help="The query's word element, e.g. 'KWIK FIT' (re-ranking)."),
        ] = None,
        profile: Annotated[
            str | None,
            typer.Option(
                "--profile",
                help="Re-rank with a named profile (implies --rerank): 'default' (the issue's "
                "weights) or 'copies' (fitted for edited copies: dev copies R@1 0.325 → 0.383, "
                "brands 0.591 → 0.564; see README).",
            ),
        ] = None,
    ) -> None:
        """Search the index built by `logosim build` (no Prefect server needed)."""
        from logosim.data.decode import ImageDecodeError, decode_image
        from logosim.data.sources import SourceSpec
        from logosim.index.params import IndexUnavailableError
        from logosim.report.contact_sheet import contact_sheet, fetch_images
        from logosim.search.composite import PROFILES, CompositeParams
        from logosim.search.composite import profile as named
        from logosim.search.searcher import Searcher, SearchParams

        composite = CompositeParams()
        if profile is not None:
            if profile not in PROFILES:
                fail(f"unknown --profile {profile!r}: one of {', '.join(PROFILES)}", Exit.BAD_INPUT)
            composite = named(profile)  # type: ignore[arg-type]
        if rerank is not None:
            composite = composite.model_copy(update={"enabled": rerank})
        try:
            searcher = Searcher(store_path(store))
            if composite.enabled and text:
                searcher.mark_texts = _mark_texts(searcher)
        except IndexUnavailableError as exc:
            fail(str(exc), Exit.MISSING, exc)
        queries = []
        for path in images:  # a bad query file is reported and skipped, not fatal
            try:
                queries.append((path, decode_image(path.read_bytes())))
            except (OSError, ImageDecodeError) as exc:
                reason = getattr(exc, "reason", None) or type(exc).__name__
                warn(f"skipped {path}: {reason}")
        if not queries:
            fail("no usable query image", Exit.BAD_INPUT)
        params = SearchParams(k=k, composite=composite)
        texts = [text] * len(queries) if text else None
        results = searcher.search_images([im for _, im in queries], params, texts)
        for (path, _), hits in zip(queries, results, strict=True):
            if as_json:
                typer.echo(json.dumps({"query": str(path), "hits": [h.model_dump() for h in hits]}))
                continue
            typer.echo(f"{path}")
            for hit in hits:
                why = ""
                if hit.terms:
                    why = "  " + " ".join(
                        f"{t}={'-' if v is None else f'{v:.3f}'}" for t, v in hit.terms.items()
                    )
                typer.echo(f"  {hit.rank:>3}  {hit.score:.4f}  {hit.id}{why}")
        if sheet is not None:
            source = SourceSpec.model_validate(searcher.index.manifest.meta.get("source", {}))
            ids = list(dict.fromkeys(h.id for hits in results for h in hits))
            gallery = fetch_images(source, ids)
            named = [(path.name, image) for path, image in queries]
            contact_sheet(named, results, gallery).save(sheet)
            typer.echo(f"contact sheet: {sheet}", err=as_json)


def _mark_texts(searcher) -> dict[str, str]:
    """The indexed marks' word elements: the build source's metadata text (its ``text``
    column / L3D JSON), else the OCR words of its preprocessing; empty when there are none
    (the text term is then absent)."""
    from logosim.data.sources import SourceSpec, open_source
    from logosim.search.mark_texts import gallery_texts

    try:
        source = SourceSpec.model_validate(searcher.index.manifest.meta.get("source", {}))
        metadata = {r.id: r.text for r in open_source(source).records(with_bytes=False)}
    except Exception as exc:  # a moved source: the stored OCR words may still serve
        warn(f"source unavailable ({type(exc).__name__}: {exc}); trying stored OCR words")
        metadata = dict.fromkeys(searcher.index.table.ids)
    texts, origin = gallery_texts(searcher.store, metadata)
    if origin is None:
        warn("no indexed mark has text (metadata or OCR words): the text term is absent")
    return texts
