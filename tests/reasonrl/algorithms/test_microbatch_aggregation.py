"""Aggregating micro-batch partials with the mini-batch's global counts equals the full-batch value,
and a mean of per-micro-batch token means does not (the pitfall docs/algorithms.md 1.3 warns about)."""
from __future__ import annotations

import pytest
import torch

from reasonrl.algorithms import LOSS_AGGREGATIONS, aggregate
from reasonrl.batching import micro_batches
from tests.conftest import close


@pytest.mark.parametrize("mode", LOSS_AGGREGATIONS.names())
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partials_sum_to_global(mode, seed):
    g = torch.Generator().manual_seed(seed)
    n, t = 11, 9
    loss = torch.randn(n, t, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None] < lengths[:, None]).double()
    norm = {"num_tokens": mask.sum().item(), "num_seqs": float(n), "scale": 7.0}
    full = aggregate(loss, mask, mode, **norm)
    parts = sum(aggregate(loss[rows], mask[rows], mode, **norm) for rows in micro_batches(lengths, 20))
    close(parts, full, rtol=1e-12)
    close(full, aggregate(loss, mask, mode, scale=7.0), rtol=1e-12)


def test_mean_of_micro_means_differs():
    loss = torch.tensor([[1.0, 1.0, 1.0, 1.0], [5.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.float64)
    global_mean = aggregate(loss, mask, "token-mean")  # (4 + 5) / 5 = 1.8
    mean_of_means = (aggregate(loss[:1], mask[:1], "token-mean") + aggregate(loss[1:], mask[1:], "token-mean")) / 2
    assert global_mean.item() == pytest.approx(1.8) and mean_of_means.item() == pytest.approx(3.0)


def test_micro_batches_respect_budget_and_cover_rows():
    lengths = torch.tensor([5, 50, 7, 49, 6, 48, 100])
    batches = micro_batches(lengths, 100)
    assert sorted(i for b in batches for i in b.tolist()) == list(range(7))
    for b in batches:
        assert len(b) == 1 or int(lengths[b].max()) * len(b) <= 100
    # length sorting keeps the long rows together rather than mixing them with short ones
    assert any(set(b.tolist()) == {1, 3} for b in batches)  # 50 and 49 share one
