"""Fine-tuning on CPU: bf16 vs fp32 step speed, then a short label-free fine-tune on the dev
bench and its retrieval quality against the pretrained backbone.

    flock /tmp/logosim-heavy.lock .venv/bin/python bench/bench_train.py \
        --source /work/shared/bench/logo_bench_dev.parquet --max-steps 120

Training never sees the group labels (``use_groups=False``: positives are two augmentations of
one image, validation is the augmented-copy proxy). Quality is measured with the library's
metrics (leave-one-out R@1/R@10/mAP/NAR over every image of the source, GeM descriptors,
L2, exact cosine) at 224 px, for the pretrained weights and for ``train/best.pt``.
Writes ``bench/results/train.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec, open_source
from logosim.embed.embedder import Embedder
from logosim.embed.models import load_backbone
from logosim.embed.params import EmbedParams
from logosim.embed.pca import PCAParams, fit_pca, l2_normalize
from logosim.search.metrics import leave_one_out
from logosim.train.augment import LogoAugment
from logosim.train.data import PairBatches, load_images
from logosim.train.loop import resolve_precision, train
from logosim.train.moco import MoCo
from logosim.train.params import TrainParams

RESULTS = Path(__file__).parent / "results" / "train.json"


def step_speed(source: SourceSpec, precision: str, size: int, batch: int, steps: int) -> float:
    """Training images per second for ``steps`` MoCo steps (after one warm-up step)."""
    loaded = load_backbone()
    model = MoCo(loaded.module, loaded.dim, queue_size=4096)
    model.train()
    images = load_images(open_source(source), size, limit=batch * (steps + 1), desc="speed")
    batches = PairBatches(images, batch, LogoAugment())
    views = [batches.batch(0, s) for s in range(steps + 1)]
    autocast, _ = resolve_precision(precision, "cpu")  # type: ignore[arg-type]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for i, (a, b) in enumerate(views):
        if i == 1:
            started = time.perf_counter()
        with torch.autocast("cpu", dtype=autocast or torch.float32, enabled=autocast is not None):
            loss = model(a, b)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.after_step(0.999)
    return steps * batch / (time.perf_counter() - started)


def quality(source: SourceSpec, weights: str) -> dict:
    embedder = Embedder(EmbedParams(weights=weights, batch_size=64))
    src = open_source(source)
    result = embedder.embed_records(
        src.records(), total=len(src), desc=f"eval {Path(weights).name}"
    )
    groups = {r.id: r.group for r in src.records(with_bytes=False)}
    features = result.matrix(embedder.dim)
    labels = [groups[i] for i in result.ids]
    # As the bench README's reference table: GeM → L2, and GeM → L2 → PCA 512 whitened
    # fitted on the evaluated images themselves (transductive).
    pca = fit_pca([(np.array(result.ids), features)], PCAParams(dims=512), train_rows=len(features))
    return {
        "gem_l2": leave_one_out(l2_normalize(features), labels),
        "gem_pca512_whitened": leave_one_out(pca.transform(features), labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="/work/shared/bench/logo_bench_dev.parquet")
    parser.add_argument("--store", default=None, help="Default: a temporary folder.")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=120)
    parser.add_argument("--freeze-stages", type=int, default=3)
    parser.add_argument("--speed-steps", type=int, default=4)
    args = parser.parse_args()
    source = SourceSpec(path=args.source)
    out: dict = {"args": vars(args), "threads": torch.get_num_threads()}

    for precision in ("fp32", "bf16"):
        ips = step_speed(source, precision, args.image_size, args.batch_size, args.speed_steps)
        out[f"train_img_s_{precision}"] = round(ips, 2)
        print(f"{precision}: {ips:.2f} training images/s at {args.image_size}px", flush=True)

    store = ArtifactStore(args.store or tempfile.mkdtemp(prefix="logosim-train-"))
    params = TrainParams(
        image_size=args.image_size,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        epochs=1,
        warmup_epochs=0.1,
        freeze_stages=args.freeze_stages,
        use_groups=False,
        queue_size=4096,
        val_images=300,
        checkpoint_every_steps=50,
        precision="fp32",
    )
    started = time.perf_counter()
    result = train(source, store, params)
    out["fine_tune"] = {
        "seconds": round(time.perf_counter() - started, 1),
        "status": result.status,
        "steps": result.step,
        "best_val_score": result.best_score,
        "history": result.history,
        "params": params.model_dump(mode="json"),
    }
    print(f"fine-tune: {out['fine_tune']['seconds']} s, {result.step} steps", flush=True)
    out["pretrained"] = quality(source, "wheel")
    print("pretrained:", out["pretrained"], flush=True)
    out["fine_tuned"] = quality(source, str(store.path("train/best.pt")))
    print("fine-tuned:", out["fine_tuned"], flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
