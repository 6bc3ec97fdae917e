"""logosim: find visually similar logos and trademarks at register scale.

The library: data sources, decoding, preprocessing, models, embedding, PCA, index,
re-ranking, search, evaluation, training, export and the artifact store. It imports no
Prefect; ``tasks/`` and ``flows/`` orchestrate it.
"""

__version__ = "0.1.0"

from logosim import _moved

_moved.install()  # old module paths (cached results of older stores) resolve to the new ones
