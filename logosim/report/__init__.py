"""What people look at: histograms, contact sheets of search results, preprocessing previews.

Public names load lazily (``logosim.report.NAME`` imports only the module that defines it).
"""

from logosim._lazy import lazy_exports

_EXPORTS = {
    "THUMB": "contact_sheet",
    "LABEL": "contact_sheet",
    "PAD": "contact_sheet",
    "fetch_images": "contact_sheet",
    "TOP_CODES": "plots",
    "write_histograms": "plots",
    "TILE": "preview",
    "LABEL_H": "preview",
    "preview_grid": "preview",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
