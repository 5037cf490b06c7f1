"""The probe's distillation loss is FlagEmbedding's formula, checked against a computation by hand."""

import math

import numpy as np
import pytest

from prep.evaluation.losses import distillation_loss, distillation_loss_class


def unit(vectors):
    vectors = np.asarray(vectors, dtype=np.float64)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


QUERIES = unit([[1.0, 0.0], [0.6, 0.8]])
GROUPS = unit([[[0.9, 0.1], [0.2, 1.0], [-1.0, 0.3]],    # row 0: positive, two negatives
               [[0.5, 0.9], [1.0, 0.0], [0.1, -1.0]]])   # row 1
TEACHER = np.array([[3.0, 1.0, -2.0], [2.0, 2.5, 0.0]])  # row 1's teacher prefers a negative


def by_hand(temperature, teacher_temperature):
    """Row by row, passage by passage, with math alone."""
    passages = [p for group in GROUPS for p in group]  # the batch's 6 passages, each row's group in order
    total_contrastive = total_distill = 0.0
    for i, query in enumerate(QUERIES):
        logits = [float(query @ p) / temperature for p in passages]
        log_norm = math.log(sum(math.exp(x) for x in logits))
        total_contrastive += -(logits[3 * i] - log_norm)
        own = logits[3 * i:3 * i + 3]
        own_norm = math.log(sum(math.exp(x) for x in own))
        weights = [math.exp(t / teacher_temperature) for t in TEACHER[i]]
        targets = [w / sum(weights) for w in weights]
        total_distill += -sum(t * (x - own_norm) for t, x in zip(targets, own))
    return total_contrastive / 2 + total_distill / 2


@pytest.mark.parametrize("temperature, teacher_temperature", [(0.05, 1.0), (0.02, 1.0), (0.5, 0.25), (1.0, 2.0)])
def test_the_loss_equals_a_computation_by_hand(temperature, teacher_temperature):
    import torch

    loss = distillation_loss(torch.tensor(QUERIES), torch.tensor(GROUPS), torch.tensor(TEACHER), temperature,
                             teacher_temperature)
    assert loss.item() == pytest.approx(by_hand(temperature, teacher_temperature), rel=1e-9)


def test_a_teacher_that_agrees_with_the_students_order_lowers_the_loss():
    import torch

    def loss(teacher):
        return distillation_loss(torch.tensor(QUERIES), torch.tensor(GROUPS), torch.tensor(teacher), 0.05, 1.0).item()

    agreeing = np.array([[5.0, 0.0, -5.0], [5.0, 0.0, -5.0]])  # the positive first, as the student ranks row 0
    assert loss(agreeing) < loss(TEACHER) < loss(-agreeing)


def test_the_sentence_transformers_loss_normalises_embeddings_and_reads_labels_as_teacher_scores():
    import torch

    class Model(torch.nn.Module):  # the trainer's model: features in, sentence_embedding out
        def forward(self, features):
            return {"sentence_embedding": features["vectors"] * 3.0}  # unnormalised: the loss normalises

    texts = [QUERIES, GROUPS[:, 0], GROUPS[:, 1], GROUPS[:, 2]]  # anchor, positive, negative_1, negative_2
    loss = distillation_loss_class()(Model(), 0.5, 0.25)
    value = loss([{"vectors": torch.tensor(column)} for column in texts], torch.tensor(TEACHER))
    assert value.item() == pytest.approx(by_hand(0.5, 0.25), rel=1e-9)
    assert loss.get_config_dict() == {"temperature": 0.5, "teacher_temperature": 0.25}
