"""MoCo-style contrastive model: a query encoder, a momentum key encoder, symmetric InfoNCE.

Query path: backbone → projector → predictor; key path: momentum copies of backbone and
projector (no gradients). The loss is symmetric (view 1 queries view 2's keys and back).
Negatives are the other keys of the batch (MoCo v3) plus, with ``queue_size > 0``, a queue
of past keys (MoCo v2's dictionary); ``queue_size=0`` is the queue-free v3 form.
Every image carries a positive-key code (its group's, or its own when it has no known
partner), and so does every queued key. With ``supervised`` the loss is supervised-contrastive:
every key of the query's code, in the batch or the queue, is a positive rather than a negative,
so renditions of one brand drawn in different styles are pulled together. Plain InfoNCE leaves
such keys out of the negatives. Either way an image's own key from an earlier epoch, still in
the queue, is never its negative.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn


def mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """Linear → BN → ReLU → Linear, the head shape of MoCo v2/v3 and SimSiam."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out_dim),
    )


def info_nce(
    query: torch.Tensor,
    keys: torch.Tensor,
    queue: torch.Tensor | None,
    temperature: float,
    labels: torch.Tensor | None = None,
    queue_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of each query against its own key among the batch keys (+ the queue).
    A queued key with the query's label (its own image's key from an earlier epoch, or one of
    its group) is left out: it is not a negative."""
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(keys.float(), dim=1)
    logits = q @ k.T
    if queue is not None and len(queue):
        queued = q @ queue.T
        if labels is not None and queue_labels is not None:
            same = (labels[:, None] == queue_labels[None, :]) & (labels[:, None] >= 0)
            queued = queued.masked_fill(same, float("-inf"))
        logits = torch.cat([logits, queued], dim=1)
    targets = torch.arange(len(q), device=q.device)
    return F.cross_entropy(logits / temperature, targets)


def supervised_nce(
    query: torch.Tensor,
    keys: torch.Tensor,
    labels: torch.Tensor,
    queue: torch.Tensor | None,
    queue_labels: torch.Tensor | None,
    temperature: float,
    hard_negatives: float = 0.0,
) -> torch.Tensor:
    """SupCon over the batch keys (+ the queue): each query's own key and every key with its
    label (>= 0) are positives; the loss averages -log p over them (Khosla et al. 2020, L_out).

    ``hard_negatives`` = β > 0 weights each query's negatives by exp(β·similarity), normalised
    to mean 1 (Robinson et al. 2021): the negatives most like the query, which on logos are
    mostly marks drawn in its own style, count more. Label-free: no style label is needed."""
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(keys.float(), dim=1)
    logits = q @ k.T
    positive = (labels[:, None] == labels[None, :]) & (labels[:, None] >= 0)
    positive |= torch.eye(len(q), dtype=torch.bool, device=q.device)
    if queue is not None and len(queue) and queue_labels is not None:
        logits = torch.cat([logits, q @ queue.T], dim=1)
        in_queue = (labels[:, None] == queue_labels[None, :]) & (labels[:, None] >= 0)
        positive = torch.cat([positive, in_queue], dim=1)
    scaled = logits / temperature
    if hard_negatives > 0:
        scaled = scaled + _negative_log_weights(logits.detach(), positive, hard_negatives)
    log_p = F.log_softmax(scaled, dim=1)
    return -((log_p * positive).sum(1) / positive.sum(1)).mean()


def _negative_log_weights(
    similarity: torch.Tensor, positive: torch.Tensor, beta: float
) -> torch.Tensor:
    """log w per key: β·s − log mean over the row's negatives of exp(β·s); 0 on positives."""
    scaled = (beta * similarity).masked_fill(positive, float("-inf"))
    count = (~positive).sum(1, keepdim=True).clamp(min=1)
    log_w = scaled - torch.logsumexp(scaled, dim=1, keepdim=True) + count.log()
    return log_w.masked_fill(positive, 0.0)


def momentum_at(step: int, total_steps: int, base: float, cosine: bool) -> float:
    """Key-encoder momentum; with ``cosine`` it rises from ``base`` to 1 over the run."""
    if not cosine or total_steps <= 0:
        return base
    progress = min(step / total_steps, 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0


class MoCo(nn.Module):
    """Query/key encoders with heads and an optional key queue (all in ``state_dict``)."""

    def __init__(
        self,
        backbone: nn.Module,
        dim: int,
        *,
        proj_dim: int = 256,
        hidden_dim: int = 1024,
        queue_size: int = 65_536,
        temperature: float = 0.2,
        supervised: bool = False,
        hard_negatives: float = 0.0,
    ) -> None:
        super().__init__()
        self.supervised = supervised  # SupCon (labels are positives) rather than InfoNCE
        self.hard_negatives = hard_negatives  # β of supervised_nce
        self.backbone = backbone
        self.projector = mlp(dim, hidden_dim, proj_dim)
        self.predictor = mlp(proj_dim, hidden_dim, proj_dim)
        self.key_backbone = copy.deepcopy(backbone)
        self.key_projector = copy.deepcopy(self.projector)
        for param in self.key_encoder_parameters():
            param.requires_grad_(False)
        self.temperature = temperature
        queue = F.normalize(torch.randn(queue_size, proj_dim), dim=1)
        self.register_buffer("queue", queue)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        # Positive-key code of each queued key; -1 for the random initial keys.
        self.register_buffer("queue_labels", torch.full((queue_size,), -1, dtype=torch.long))

    def key_encoder_parameters(self):
        yield from self.key_backbone.parameters()
        yield from self.key_projector.parameters()

    def query_modules(self) -> list[nn.Module]:
        return [self.backbone, self.projector, self.predictor]

    @torch.no_grad()
    def update_key_encoder(self, momentum: float) -> None:
        """key ← m·key + (1−m)·query, for parameters and BN statistics alike."""
        for q_mod, k_mod in (
            (self.backbone, self.key_backbone),
            (self.projector, self.key_projector),
        ):
            for q, k in zip(q_mod.parameters(), k_mod.parameters(), strict=True):
                k.mul_(momentum).add_(q.detach(), alpha=1.0 - momentum)
            for q, k in zip(q_mod.buffers(), k_mod.buffers(), strict=True):
                k.copy_(q)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        size = len(self.queue)
        if size == 0:
            return
        keys = F.normalize(keys.float(), dim=1)[-size:]
        ptr = int(self.queue_ptr)
        idx = (torch.arange(len(keys), device=keys.device) + ptr) % size
        self.queue[idx] = keys
        self.queue_labels[idx] = -1 if labels is None else labels[-size:]
        self.queue_ptr.fill_((ptr + len(keys)) % size)

    def forward(
        self, view1: torch.Tensor, view2: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The symmetric loss of one batch of positive pairs; ``labels`` (one positive-key
        code per image) make queued keys of the same code positives (SupCon) or, for InfoNCE,
        keep them out of the negatives. Updates nothing."""
        q1 = self.predictor(self.projector(self.backbone(view1)))
        q2 = self.predictor(self.projector(self.backbone(view2)))
        with torch.no_grad():
            k1 = self.key_projector(self.key_backbone(view1))
            k2 = self.key_projector(self.key_backbone(view2))
        self._last_keys = torch.cat([k1, k2]).detach()
        self._last_labels = None if labels is None else torch.cat([labels, labels])
        queue = self.queue.clone() if len(self.queue) else None
        queue_labels = self.queue_labels.clone()
        if self.supervised and labels is not None:
            t, beta = self.temperature, self.hard_negatives
            return 0.5 * (
                supervised_nce(q1, k2, labels, queue, queue_labels, t, beta)
                + supervised_nce(q2, k1, labels, queue, queue_labels, t, beta)
            )
        return 0.5 * (
            info_nce(q1, k2, queue, self.temperature, labels, queue_labels)
            + info_nce(q2, k1, queue, self.temperature, labels, queue_labels)
        )

    def after_step(self, momentum: float) -> None:
        """Momentum update of the key encoder, then enqueue this batch's keys."""
        self.update_key_encoder(momentum)
        if getattr(self, "_last_keys", None) is not None:
            self.enqueue(self._last_keys, getattr(self, "_last_labels", None))
            self._last_keys = None
            self._last_labels = None
