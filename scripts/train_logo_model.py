"""Fine-tune the logo model of issue 16 on the dev bench's train split (one command).

Supervised-contrastive MoCo: every image is its own positive under augmentation (the
register edits of ``logosim/train/register_edits.py`` included), and the other renditions of
its brand group (train split only; 89 % of those pairs come from another icon collection) are
positives too, in the batch and in the key queue. Views are sharp, as the shipped v3 was
trained; ``--blur 1.14`` blurs every view as the build blurs its network input
(``EmbedParams.blur`` scaled to the 128-px training size: issue 16's eleventh round measured
it level with sharp training). Each seed is three epochs, its learning rate
warmed up over the first half epoch and annealed to zero by the end; model choice on the val
split (``train/best.pt``); the test split is never seen. The seeds' weights are then averaged
into one model (a "soup", ``logosim/train/soup.py``): ``<store>/logo-soup.pt``.

Resumable: rerun the same command to continue from the newest checkpoint; SIGINT/SIGTERM save
one and stop, so it can run in short holds:

    flock /tmp/logosim-heavy.lock timeout -s INT 540 \\
        .venv/bin/python scripts/train_logo_model.py --store /tmp/logo-train \\
        --splits-from /tmp/bench-store

With the defaults it reproduces the shipped ``logosim/embed/weights/lite0-logo-v3.pt``
(docs/model.md): seeds 0, 1 and 2, about 13 min each on 2 CPU cores.

New weights need their projection refitted (``scripts/fit_logo_projection.py``): until then
the build falls back to a PCA fitted on each collection (the projection records which weights
it was fitted for).

The store must hold the dev bench's splits (`logosim build --source BENCH --group-column
group --store DIR` writes them; the script copies them from ``--splits-from`` when missing).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from logosim.core.store import ArtifactStore
from logosim.data.sources import SourceSpec
from logosim.embed.params import DEFAULT_BLUR, EmbedParams
from logosim.train.augment import AugmentParams
from logosim.train.checkpoint import BEST_MODEL, StopRequest
from logosim.train.loop import train
from logosim.train.params import TrainParams
from logosim.train.soup import soup_bytes

DEV_BENCH = "/work/shared/bench/logo_bench_dev.parquet"
SOUP = "logo-soup.pt"
TRAIN_SIZE = 128
EMBED_SIZE = EmbedParams().image_size
# The build blurs its EMBED_SIZE-px input by DEFAULT_BLUR; the same blur at the training size.
MATCHED_BLUR = DEFAULT_BLUR * TRAIN_SIZE / EMBED_SIZE

# Issue 16's register edits (logosim/train/register_edits.py), as often as each is plausible.
REGISTER_EDITS = {
    "p_mirror": 0.25,
    "p_quarter_turn": 0.1,
    "p_stretch": 0.2,
    "p_outline": 0.1,
    "p_wordmark": 0.15,
    "p_banner": 0.1,
    "p_ground": 0.1,
    "p_frame": 0.1,
    "p_degrade": 0.4,
}
# Contour drawings as a register's look at the network's size: thin grey lines, the canvas
# edge traced in half (register_edits.outline's supersample), and twice as often.
THIN_OUTLINES = {"p_outline": 0.2, "outline_supersample": 2}


def params(
    seed: int,
    epochs: int = 3,
    lr: float = 2e-4,
    edits: bool = True,
    queue: int = 4096,
    blur: float = 0.0,
    outline: dict | None = None,
) -> TrainParams:
    """The shipped recipe (see docs/model.md), one seed."""
    return TrainParams(
        loss="supcon",
        group_positives=True,
        image_size=TRAIN_SIZE,
        blur=blur,
        batch_size=64,
        lr=lr,
        epochs=epochs,
        warmup_epochs=0.5,
        patience=3,
        queue_size=queue,
        temperature=0.1,
        freeze_stages=3,
        val_images=2000,  # the whole val split: its pairs are the model-choice score
        augment=AugmentParams(
            p_grayscale=0.3, **((REGISTER_EDITS | (outline or {})) if edits else {})
        ),
        seed=seed,
        workers=2,
    )


def copy_splits(source: Path, store: Path) -> None:
    if (store / "splits").exists():
        return
    store.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source / "splits", store / "splits")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEV_BENCH)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--splits-from", type=Path, help="A built bench store with splits/.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=3, help="Length of the lr schedule.")
    parser.add_argument("--lr", type=float, default=2e-4, help="Peak learning rate.")
    parser.add_argument(
        "--edits", action=argparse.BooleanOptionalAction, default=True, help="Register edits."
    )
    parser.add_argument("--queue", type=int, default=4096, help="Key queue length (0: none).")
    parser.add_argument(
        "--blur",
        type=float,
        default=0.0,
        help=f"Gaussian σ (px at {TRAIN_SIZE}) on every view; {MATCHED_BLUR:.2f} matches the "
        "build's input blur (measured level with sharp views; the shipped v3 used 0).",
    )
    parser.add_argument(
        "--thin-outlines",
        action="store_true",
        help="Outline edit twice as often, its lines 1/2 px (THIN_OUTLINES); v3 used neither.",
    )
    args = parser.parse_args()
    outline = THIN_OUTLINES if args.thin_outlines else None
    bests = []
    for seed in args.seeds:
        store = args.store / f"seed-{seed}"
        if args.splits_from is not None:
            copy_splits(args.splits_from, store)
        stop = StopRequest()
        result = train(
            SourceSpec(path=args.source, group_column="group"),
            ArtifactStore(store),
            params(seed, args.epochs, args.lr, args.edits, args.queue, args.blur, outline),
            stop=stop,
        )
        summary = {k: v for k, v in vars(result).items() if k not in ("best_model", "checkpoint")}
        print(json.dumps({"seed": seed} | summary, indent=1, default=str))
        if result.status == "signal":
            return  # rerun the command to resume
        bests.append(store / BEST_MODEL)
    soup, partial = args.store / SOUP, args.store / f"{SOUP}.partial"
    partial.write_bytes(soup_bytes(bests))
    partial.replace(soup)
    print(f"{len(bests)} seeds averaged -> {soup}")


if __name__ == "__main__":
    main()
