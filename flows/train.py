"""The train flow: fine-tune the backbone contrastively (MoCo) → best model in the store.

Resumable: the task continues from the newest valid checkpoint under ``train/checkpoints``;
SIGTERM/SIGINT save a checkpoint at the end of the current step. Next: ``export`` the model,
or re-embed with ``EmbedParams(weights=<store>/train/best.pt)``.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from logosim.core.settings import get_settings
from logosim.core.store import Manifest
from logosim.data.sources import SourceSpec
from logosim.train.params import TrainParams
from tasks.train import fine_tune


@flow(name="train", log_prints=True)
def train_flow(
    source: SourceSpec | None = None,
    store: str | None = None,
    params: TrainParams | None = None,
) -> Manifest:
    source = source or SourceSpec()
    store = store or str(get_settings().store.expanduser().resolve())
    params = params or TrainParams(seed=get_settings().seed)
    model = fine_tune(source, store, params)
    run = model.meta["run"]
    create_markdown_artifact(
        f"# Fine-tuning: {run['status']}\n"
        f"- steps **{run['step']}**, epochs {run['epoch']}, resumed from {run['resumed_from']}\n"
        f"- best validation score **{run['best_score']:.4f}**\n"
        f"- model: `{model.path}` (sha256 {model.sha256[:12]}…)",
        key="train-report",
        description="Fine-tuning result",
    )
    return model
