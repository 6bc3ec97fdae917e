"""Agreement of two stores built from the same source with different runtimes: min/mean
cosine of the raw embeddings, by id. (Indexed vectors are not comparable: each store fits its
own PCA, whose components may come out with other signs.)

    python bench/compare_stores.py /tmp/speed-fp32 /tmp/speed-bf16
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from logosim.core.store import ArtifactStore
from logosim.embed.pca import iter_embeddings


def raw_embeddings(root: str) -> dict[str, np.ndarray]:
    store = ArtifactStore(root)
    files = sorted(store.path("embeddings").glob("*.npz"))
    manifests = [store.read_manifest(f"embeddings/{f.name}") for f in files]
    out: dict[str, np.ndarray] = {}
    for ids, features in iter_embeddings(store, manifests):
        out.update(zip(ids.tolist(), features, strict=True))
    return out


def cosine_summary(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 6), "n": len(cos)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference")
    parser.add_argument("other")
    args = parser.parse_args()
    ref, other = raw_embeddings(args.reference), raw_embeddings(args.other)
    ids = sorted(set(ref) & set(other))
    report = cosine_summary(np.stack([ref[i] for i in ids]), np.stack([other[i] for i in ids]))
    print(json.dumps({"reference": args.reference, "other": args.other, "raw": report}))


if __name__ == "__main__":
    main()
