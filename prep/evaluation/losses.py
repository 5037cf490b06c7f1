"""The probe's distillation loss: FlagEmbedding's fine-tuning objective with knowledge distillation.

FlagEmbedding's embedder trainer (``knowledge_distillation=True``, ``kd_loss_type=kl_div``, in-batch negatives:
``AbsEmbedderModel._compute_in_batch_neg_loss`` and ``distill_loss``) trains on B rows, each a group of G passages
(the positive, then G-1 negatives) with the teacher's score of each. With normalised embeddings q_i and p_j,
τ the student's temperature and τ_t the teacher's::

    s_ij = q_i · p_j / τ                      over every one of the batch's B·G passages
    contrastive = mean_i  -log softmax_j(s_i)[i·G]             (row i's positive among all of them)
    t_i = softmax(teacher_i / τ_t)                              (over row i's own group)
    distill = mean_i  -Σ_g t_ig · log softmax_g(s_i,(i,g))      (the student over that same group)
    loss = contrastive + distill

FlagEmbedding's τ_t is 1 (it softmaxes the scores as they are). Neither of sentence-transformers' distillation
losses is this: ``DistillKLDivLoss`` divides the student's and the teacher's scores by one shared temperature,
multiplies by its square and has no contrastive term; ``MarginMSELoss`` regresses the student's positive-negative
margins onto the teacher's. Hence this small module, checked against a computation by hand
(``tests/evaluation/test_losses.py``).

``torch`` is imported inside the functions that use it: loading is slow, and a config error or ``--help`` answers
without waiting for it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer


def distillation_loss(queries: torch.Tensor, groups: torch.Tensor, teacher_scores: torch.Tensor, temperature: float,
                      teacher_temperature: float) -> torch.Tensor:
    """The loss above for normalised ``queries`` (B, d), ``groups`` (B, G, d: each row's positive first) and
    ``teacher_scores`` (B, G); a scalar tensor."""
    import torch
    import torch.nn.functional as F

    rows, group_size = groups.shape[0], groups.shape[1]
    scores = queries @ groups.reshape(rows * group_size, -1).T / temperature  # (B, B·G)
    positives = torch.arange(rows, device=scores.device) * group_size
    contrastive = F.cross_entropy(scores, positives)
    own = scores.gather(1, positives[:, None] + torch.arange(group_size, device=scores.device))  # (B, G)
    targets = torch.softmax(teacher_scores.to(own.dtype) / teacher_temperature, dim=-1)
    distill = -(targets * torch.log_softmax(own, dim=-1)).sum(dim=-1).mean()
    return contrastive + distill


@functools.cache
def distillation_loss_class() -> type:
    """A sentence-transformers loss (an ``nn.Module`` taking the trainer's features and labels) computing
    ``distillation_loss``; labels are each row's teacher scores, its positive's first."""
    import torch
    import torch.nn.functional as F

    class FlagEmbeddingDistillation(torch.nn.Module):
        def __init__(self, model: SentenceTransformer, temperature: float, teacher_temperature: float) -> None:
            super().__init__()
            self.model, self.temperature, self.teacher_temperature = model, temperature, teacher_temperature

        def forward(self, sentence_features: list[dict[str, torch.Tensor]], labels: torch.Tensor) -> torch.Tensor:
            embeddings = [F.normalize(self.model(features)["sentence_embedding"], dim=-1)
                          for features in sentence_features]
            groups = torch.stack(embeddings[1:], dim=1)  # (B, G, d): positive, negative_1..k
            return distillation_loss(embeddings[0], groups, labels, self.temperature, self.teacher_temperature)

        def get_config_dict(self) -> dict[str, Any]:
            return {"temperature": self.temperature, "teacher_temperature": self.teacher_temperature}

    return FlagEmbeddingDistillation
