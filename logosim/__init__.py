"""logosim: find visually similar logos and trademarks at register scale.

The library, one sub-package per pipeline stage: ``core`` (settings, store, digests),
``data``, ``preprocess``, ``embed``, ``index``, ``search``, ``train``, ``report``
(docs/architecture.md maps each stage to its code). It imports no Prefect; ``tasks/`` and
``flows/`` orchestrate it.
"""

__version__ = "0.1.0"

from logosim import _moved

_moved.install()  # old module paths (cached results of older stores) resolve to the new ones
