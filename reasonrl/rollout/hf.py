"""The transformers rollout backend: runs on any machine, and is what the tests use.

A hand-written KV-cached decode loop rather than `generate()`, for three reasons: each prompt is
prefilled once and its cache repeated G times; rows that finish (EOS, a stop string, or the
token limit) are dropped from the batch and the cache at once, so no compute is spent on them;
and the log-prob of each sampled token comes out of the same pass.

Log-probs are those of the *unprocessed* policy (log_softmax of the raw logits, temperature 1),
which is what the learner recomputes; temperature / top-k / top-p only shape sampling.
Colocated: the engine decodes with the learner's own module, so `sync_weights` has nothing to
copy when handed that module.
"""
from __future__ import annotations

import torch

from reasonrl.distributed import unsharded
from reasonrl.logprobs import DEFAULT_MAX_LOGITS, logprobs_from_logits
from reasonrl.rollout.base import ENGINES
from reasonrl.rollout.kv_cache import preallocated_cache
from reasonrl.types import Rollout, SamplingParams


def sample_next(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | list[torch.Generator],
                owner: torch.Tensor | None = None) -> torch.Tensor:
    """logits (R, V) -> token ids (R,). temperature 0 is greedy. generator: one for the batch, or one per prompt
    with owner (R,) the prompt of each row: each prompt's rows then draw from its own generator, so a prompt's
    samples do not depend on which others share its batch (per-prompt seeding, reasonrl/distributed.py)."""
    if params.temperature == 0:
        return logits.argmax(-1)
    scores = logits / params.temperature
    if params.top_k > 0:
        kth = torch.topk(scores, min(params.top_k, scores.shape[-1]), dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        probs = torch.softmax(sorted_scores, -1)
        drop = probs.cumsum(-1) - probs > params.top_p  # keep the smallest prefix reaching top_p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    probs = torch.softmax(scores, -1).cpu()
    if not isinstance(generator, (list, tuple)):
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1).to(logits.device)
    out = torch.empty(probs.shape[0], dtype=torch.long)
    for i in owner.unique().tolist():
        rows = (owner == i).nonzero().squeeze(-1).cpu()
        out[rows] = torch.multinomial(probs[rows], 1, generator=generator[i]).squeeze(-1)
    return out.to(logits.device)


def end_of_turn_ids(model, tokenizer) -> frozenset[int]:
    """Tokens that end a response: the tokenizer's EOS and those of the model's generation config (chat models
    often list several, e.g. Llama 3's <|eot_id|> and <|end_of_text|>), as generate() would stop at."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    return frozenset(i for i in ids if i is not None)


class HFEngine:
    def __init__(self, model: torch.nn.Module, tokenizer, *, batch_rows: int = 512,
                 max_logits: int = DEFAULT_MAX_LOGITS):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_rows = batch_rows
        self.max_logits = max_logits  # past this many prompt logits, the prefill computes the last position's only
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.eos_ids = end_of_turn_ids(model, tokenizer)

    def close(self) -> None:
        """Nothing to free: the engine decodes with the learner's module."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def sync_weights(self, policy: torch.nn.Module) -> None:
        if policy is not self.model:  # a separate copy: load the learner's tensors into it
            self.model.load_state_dict(policy.state_dict())

    def generate(self, prompts: list[str], params: SamplingParams,
                 generator: torch.Generator | list[torch.Generator]) -> list[list[Rollout]]:
        """generator: one for the whole call, or one per prompt (a list as long as prompts)."""
        per_chunk = max(1, self.batch_rows // params.n)
        out: list[list[Rollout]] = []
        with unsharded(self.model):  # sharded: the full weights for the whole decode, no collective per token
            for start in range(0, len(prompts), per_chunk):
                gen = generator[start:start + per_chunk] if isinstance(generator, (list, tuple)) else generator
                out.extend(self._generate_chunk(prompts[start:start + per_chunk], params, gen))
        return out

    @torch.inference_mode()
    def _generate_chunk(self, prompts: list[str], params: SamplingParams, generator: torch.Generator):
        was_training = self.model.training
        self.model.eval()
        try:
            return self._decode(prompts, params, generator)
        finally:
            self.model.train(was_training)

    def _decode(self, prompts: list[str], params: SamplingParams, generator: torch.Generator):
        dev, n = self.device, params.n
        ids = [self.prompt_ids(p) for p in prompts]
        width = max(len(x) for x in ids)
        input_ids = torch.tensor([[self.pad_id] * (width - len(x)) + x for x in ids], device=dev)
        attn = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=dev)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        cache = preallocated_cache(self.model, width + params.max_new_tokens)
        last_only = {"logits_to_keep": 1} if input_ids.numel() * self.model.config.vocab_size > self.max_logits else {}
        out = self.model(input_ids=input_ids, attention_mask=attn, position_ids=pos, past_key_values=cache,
                         use_cache=True, **last_only)
        cache = out.past_key_values
        logits = out.logits[:, -1].float()
        if n > 1:  # prefill once per prompt, then repeat each row G times (rows of a group are contiguous)
            cache.batch_repeat_interleave(n)
            logits, attn = logits.repeat_interleave(n, 0), attn.repeat_interleave(n, 0)
            pos = pos.repeat_interleave(n, 0)
        rows = len(prompts) * n
        active = torch.arange(rows, device=dev)  # which original row each live batch row is
        next_pos = pos[:, -1] + 1
        tokens: list[list[int]] = [[] for _ in range(rows)]
        logps: list[list[float]] = [[] for _ in range(rows)]
        finish = ["length"] * rows
        stops = tuple(params.stop)
        tail = max((len(s) for s in stops), default=0) + 8  # tokens to decode when looking for a stop string

        for step in range(params.max_new_tokens):
            tok = sample_next(logits, params, generator, active // n)
            lp, _ = logprobs_from_logits(logits, tok)
            tok_l, lp_l, act_l = tok.tolist(), lp.tolist(), active.tolist()
            done = []
            for j, (row, t, l) in enumerate(zip(act_l, tok_l, lp_l)):
                tokens[row].append(t)
                logps[row].append(l)
                if t in self.eos_ids and not params.ignore_eos:
                    finish[row] = "eos"
                    done.append(j)
                elif stops and any(s in self.tokenizer.decode(tokens[row][-tail:]) for s in stops):
                    finish[row] = "stop"
                    done.append(j)
            if step == params.max_new_tokens - 1 or len(done) == len(act_l):
                break
            attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], dim=1)
            if done:  # drop finished rows from the batch and the cache
                keep = torch.tensor(sorted(set(range(len(act_l))) - set(done)), device=dev)
                cache.batch_select_indices(keep)
                tok, attn, next_pos, active = tok[keep], attn[keep], next_pos[keep], active[keep]
            out = self.model(input_ids=tok[:, None], attention_mask=attn, position_ids=next_pos[:, None],
                             past_key_values=cache, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1].float()
            next_pos = next_pos + 1

        results = []
        for i in range(len(prompts)):
            group = []
            for row in range(i * n, (i + 1) * n):
                body = tokens[row][:-1] if finish[row] == "eos" else tokens[row]
                group.append(Rollout(response_ids=tokens[row], logprobs=logps[row],
                                     text=self.tokenizer.decode(body), finish_reason=finish[row]))
            results.append(group)
        return results


@ENGINES.register("hf")
def make_hf_engine(policy, tokenizer, r, *, dtype: str, seed: int, dist=None) -> HFEngine:
    """The engine for the rollout section r; it decodes with the policy module itself (dtype and seed apply
    through the policy and the caller's generator, the rank's device and shards through the module: dist is
    not needed)."""
    return HFEngine(policy, tokenizer, batch_rows=r.batch_rows)
