"""Old module paths (the flat layout before issue 11) resolve to the modules that moved.

Prefect's cached task results are pickles that name classes by module path
(``logosim.store.Manifest``, ``logosim.sources.SourceSpec``): a store built before the move
must still load them, and so must stored settings such as the mask prepare factory
``"logosim.masks:masked_prepare"`` (part of the embed cache key). ``import logosim.store``
returns the very module object of ``logosim.core.store`` — one module, not a copy, so classes
stay identical. New code imports the new paths; tests/test_moved.py proves a store built by
the old layout is reused with every chunk task ``Cached``.

Old names that became packages (``logosim.embed``, ``logosim.index``, ``logosim.preprocess``,
``logosim.search``) need no alias: the packages export the old module's names lazily.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

MOVED = {
    "logosim.settings": "logosim.core.settings",
    "logosim.store": "logosim.core.store",
    "logosim.records": "logosim.core.records",
    "logosim.errors": "logosim.core.failures",
    "logosim.progress": "logosim.core.progress",
    "logosim.monitor": "logosim.core.monitor",
    "logosim.faults": "logosim.core.faults",
    "logosim.sources": "logosim.data.sources",
    "logosim.decode": "logosim.data.decode",
    "logosim.chunks": "logosim.data.chunks",
    "logosim.splits": "logosim.data.splits",
    "logosim.stats": "logosim.data.stats",
    "logosim.ocr": "logosim.preprocess.ocr",
    "logosim.ocr_pool": "logosim.preprocess.ocr_pool",
    "logosim.masking": "logosim.preprocess.text_mask",
    "logosim.masks": "logosim.preprocess.mask_store",
    "logosim.models": "logosim.embed.models",
    "logosim.normalize": "logosim.embed.normalize",
    "logosim.runtime": "logosim.embed.runtime",
    "logosim.pca": "logosim.embed.pca",
    "logosim.export": "logosim.embed.export",
    "logosim.exported": "logosim.embed.exported",
    "logosim.reindex": "logosim.index.reindex",
    "logosim.rerank": "logosim.search.rerank",
    "logosim.metrics": "logosim.search.metrics",
    "logosim.evaluate": "logosim.search.evaluate",
    "logosim.plots": "logosim.report.plots",
    "logosim.contact_sheet": "logosim.report.contact_sheet",
    "logosim.preview": "logosim.report.preview",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A finder/loader that answers an old name with the new module object."""

    def find_spec(self, name, path=None, target=None):
        if name not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec] = {}

    def create_module(self, spec) -> ModuleType:
        module = importlib.import_module(MOVED[spec.name])
        self._specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system set the module's __spec__ to the alias spec: give it its own back.
        module.__spec__ = self._specs[module.__name__]


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())  # before an editable install's finder
