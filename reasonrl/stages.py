"""Stages that run once before RL, from search-collected data (search/collect.py, ReST-MCTS*):

* `sft_stage`: supervised fine-tuning of the policy on verified traces (sft.jsonl: prompt, response),
  the loss on response tokens only (EOS included), its own AdamW;
* `prm_warmstart`: the implicit PRM fitted to per-step value targets (values.jsonl: prompt, prefix,
  target in [0, 1]) with the PRM's cross-entropy on sigmoid(beta * sum q) against the soft target.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from reasonrl.batching import collate
from reasonrl.distributed import Dist
from reasonrl.types import Record, Rollout, RolloutGroup

MIN_LAST_BATCH = 8  # the warm start's last batch joins the one before when it is smaller


def read_rows(path: str, fields: tuple[str, ...]) -> list[dict]:
    """JSONL rows that carry every field; other rows are skipped and counted in the error if none is left."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{path}: not a file (write it with evaluate.py search.collect_dir=...)")
    rows, bad = [], 0
    for line in p.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict) and all(f in row for f in fields):
            rows.append(row)
        else:
            bad += 1
    if not rows:
        raise ValueError(f"{path}: no usable rows with fields {fields} ({bad} malformed)")
    return rows


def _groups(tokenizer, pairs: list[tuple[str, str]], eos: bool) -> list[RolloutGroup]:
    out = []
    for prompt, response in pairs:
        ids = tokenizer(response, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if eos else [])
        out.append(RolloutGroup(Record(prompt, None), tokenizer(prompt, add_special_tokens=False)["input_ids"],
                                [Rollout(ids, [0.0] * len(ids), response, "eos" if eos else "stop")]))
    return out


def sft_stage(policy: torch.nn.Module, tokenizer, path: str, *, epochs: int, lr: float, batch_rows: int,
              generator: torch.Generator, pad_id: int) -> dict:
    from reasonrl.logprobs import token_logprobs

    rows = read_rows(path, ("prompt", "response"))
    groups = _groups(tokenizer, [(r["prompt"], r["response"]) for r in rows], eos=True)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    dev = next(policy.parameters()).device
    policy.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(groups), generator=generator).tolist()
        for start in range(0, len(order), batch_rows):
            batch = collate([groups[i] for i in order[start:start + batch_rows]], pad_id)
            logp, _ = token_logprobs(policy, batch.input_ids.to(dev), batch.attention_mask.to(dev))
            mask = batch.loss_mask.to(dev)
            loss = -(logp * mask).sum() / mask.sum().clamp(min=1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return {"sft/rows": len(rows), "sft/first_loss": losses[0], "sft/last_loss": losses[-1]}


def prm_warmstart(prm, tokenizer, path: str, *, epochs: int, batch_rows: int, generator: torch.Generator,
                  pad_id: int, dist: Dist = Dist()) -> dict:
    """dist: under torchrun each rank fits its contiguous share of every batch (the PRM's loss normaliser and
    metrics are the whole batch's, as in RL). A last batch of fewer than max(8, ranks) rows joins the one before,
    at any number of ranks up to 8, so the batches (and the fit) do not depend on how many there are."""
    rows = read_rows(path, ("prompt", "prefix", "target"))
    rows = [r for r in rows if r["prefix"]]
    if len(rows) < dist.world:
        raise ValueError(f"{path}: {len(rows)} value targets for {dist.world} ranks; every rank needs one")
    groups = _groups(tokenizer, [(r["prompt"], r["prefix"]) for r in rows], eos=False)
    targets = torch.tensor([float(r["target"]) for r in rows])

    def batches():
        for _ in range(epochs):
            order = torch.randperm(len(groups), generator=generator)
            starts = list(range(0, len(order), batch_rows))
            if len(starts) > 1 and len(order) - starts[-1] < max(MIN_LAST_BATCH, dist.world):
                starts.pop()  # too few rows left (every rank needs one): they join the batch before
            for start, end in zip(starts, [*starts[1:], len(order)]):
                lo, hi = dist.share(end - start)
                idx = order[start:end][lo:hi]
                yield collate([groups[i] for i in idx.tolist()], pad_id), targets[idx]

    losses = prm.warmstart(batches())
    return {"prm_warmstart/rows": len(rows), "prm_warmstart/first_loss": losses[0], "prm_warmstart/last_loss": losses[-1]}
