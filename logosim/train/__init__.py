"""Contrastive fine-tuning of the backbone (MoCo-style): augmentations, pairs, model, loop,
checkpoints. Entry point: :func:`logosim.train.loop.train`."""
