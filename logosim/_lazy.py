"""Lazy package exports (PEP 562): ``logosim.embed.EmbedParams`` imports only ``embedder``.

A package ``__init__`` that imported all its modules would make ``import logosim.core.store``
load torch, FAISS and OpenCV through its siblings; this keeps each import as light as the
module asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for a package whose public names live in
    its modules (``exports``: name → module name inside the package)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return sorted(exports), __getattr__, __dir__
