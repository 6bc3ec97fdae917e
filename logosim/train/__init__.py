"""Contrastive fine-tuning of the backbone (MoCo-style): augmentations, pairs, model, loop,
checkpoints. Entry point: :func:`logosim.train.loop.train`.

Public names load lazily (``logosim.train.NAME`` imports only the module that defines it).
"""

from logosim._lazy import lazy_exports

_EXPORTS = {
    "WHITE": "augment",
    "AugmentParams": "augment",
    "rotate": "augment",
    "rescale": "augment",
    "crop": "augment",
    "colour_jitter": "augment",
    "monochrome": "augment",
    "invert_mark": "augment",
    "occlude": "augment",
    "LogoAugment": "augment",
    "CHECKPOINT_DIR": "checkpoint",
    "BEST_MODEL": "checkpoint",
    "checkpoint_path": "checkpoint",
    "rng_state": "checkpoint",
    "set_rng_state": "checkpoint",
    "save_checkpoint": "checkpoint",
    "list_checkpoints": "checkpoint",
    "prune_checkpoints": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_latest": "checkpoint",
    "save_best_model": "checkpoint",
    "StopRequest": "checkpoint",
    "stop_on_signals": "checkpoint",
    "STAGE": "data",
    "TrainImages": "data",
    "load_images": "data",
    "positive_partners": "data",
    "to_tensor": "data",
    "PairBatches": "data",
    "TrainResult": "loop",
    "resolve_precision": "loop",
    "freeze_early_stages": "loop",
    "set_train_mode": "loop",
    "lr_factor": "loop",
    "split_images": "loop",
    "train": "loop",
    "mlp": "moco",
    "info_nce": "moco",
    "momentum_at": "moco",
    "MoCo": "moco",
    "CHECKPOINT_VERSION": "params",
    "CPU_AUTO_PRECISION": "params",
    "TrainParams": "params",
    "embed_arrays": "validate",
    "Validator": "validate",
    "average_weights": "soup",
    "soup_bytes": "soup",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
