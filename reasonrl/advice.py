"""Settings far off for the model in hand: the defaults suit the embedded 0.8 M-parameter character model, and
a user who points model.path at a real chat model should hear which of them do not carry over. Advice is
printed when a run starts (and by train.py --dry-run); it never stops a run."""
from __future__ import annotations

from dataclasses import dataclass

from reasonrl.registry import switch

LARGE = 50e6  # parameters: past this, the tiny model's learning rates and lengths are wrong by orders of magnitude
BPE = 1000  # vocabulary: past this, a token is a word piece, not a character
EVAL_TOKENS = 25_600  # held-out greedy tokens (eval.size x eval.max_new_tokens): past this a CPU evaluation drags


@dataclass(frozen=True)
class ModelFacts:
    parameters: int  # total
    trainable: int
    vocab_size: int
    cuda: bool


def facts(model) -> ModelFacts:
    params = list(model.parameters())
    return ModelFacts(sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad),
                      model.config.vocab_size, params[0].is_cuda)


def facts_from_path(path: str, cuda: bool = False) -> ModelFacts:
    """The same facts without loading any weight: the model is built on the meta device from its config."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    n = sum(p.numel() for p in model.parameters())
    return ModelFacts(n, n, config.vocab_size, cuda)


@dataclass(frozen=True)
class AutoSettings:
    """What the `auto` settings resolve to for the model in hand (auto_settings)."""

    gradient_checkpointing: bool
    microbatch_tokens: int  # trainer.max_tokens_per_microbatch
    mmap_threshold_mb: int  # trainer.mmap_threshold_mb (0 = glibc's default)
    release_memory_every: int  # trainer.release_memory_every on a CPU, else 0 (the learner's activations live in its heap)

    def describe(self) -> str:
        return (f"model.gradient_checkpointing={str(self.gradient_checkpointing).lower()} "
                f"trainer.max_tokens_per_microbatch={self.microbatch_tokens} "
                f"trainer.mmap_threshold_mb={self.mmap_threshold_mb}")


def auto_settings(cfg, m: ModelFacts) -> AutoSettings:
    """Memory settings for the model in hand where the config says auto. A 50M+ parameter model checkpoints its
    activations (TRL's GRPO default), and on a CPU, where RAM is the limit, takes 2048-token micro-batches and
    mmapped tensors of 1 MB and more: measured on SmolLM2-135M at 16 x (150 + 256) tokens, one update peaks at
    3.8 GB that way against 12.2 GB with the embedded model's settings (BENCHMARKS.md). The embedded default
    resolves to what it always used (no checkpointing, 16384 tokens, glibc's mmap threshold as is); on a CPU the
    heap's free pages go back to the OS every trainer.release_memory_every steps."""
    large, cpu_large = m.parameters >= LARGE, m.parameters >= LARGE and not m.cuda
    t = cfg.trainer
    return AutoSettings(
        gradient_checkpointing=switch(cfg.model.gradient_checkpointing, auto=large),
        microbatch_tokens=t.max_tokens_per_microbatch or (2048 if cpu_large else 16384),
        mmap_threshold_mb=t.mmap_threshold_mb if t.mmap_threshold_mb >= 0 else (1 if cpu_large else 0),
        release_memory_every=0 if m.cuda else t.release_memory_every,
    )


def advise(cfg, m: ModelFacts) -> list[str]:
    """One line per setting that does not suit the model: the key, the value, why, and what published recipes use."""
    out = []
    t, r, size = cfg.trainer, cfg.rollout, f"{m.parameters / 1e6:.0f} M-parameter model"
    lora = cfg.model.lora.rank > 0
    if m.parameters >= LARGE and not lora and t.lr >= 1e-5:
        out.append(f"trainer.lr={t.lr:g} suits a ~1 M-parameter model; RL on a {size} uses ~1e-6 (verl's and TRL's "
                   f"GRPO recipes for 0.5-7B models: 1e-6; configs/gsm8k_grpo.yaml)")
    if lora and t.lr > 5e-4:
        out.append(f"trainer.lr={t.lr:g} is high even for LoRA adapters (1e-5 to 1e-4 is usual)")
    if m.parameters >= LARGE and cfg.prm.enabled and cfg.prm.lr >= 1e-5:
        out.append(f"prm.lr={cfg.prm.lr:g} suits a ~1 M-parameter PRM; PRIME trains a large implicit PRM at 1e-6")
    prose = m.vocab_size >= BPE and cfg.data.source != "task"  # a benchmark's written solutions, not a built-in task
    if prose and r.max_new_tokens < 128:
        out.append(f"rollout.max_new_tokens={r.max_new_tokens} is short for a word-piece model's reasoning (GSM8K "
                   f"solutions run 100-300 tokens): most responses will be cut off; 512 is usual")
    if prose and cfg.eval.max_new_tokens < 128:
        out.append(f"eval.max_new_tokens={cfg.eval.max_new_tokens} will cut held-out answers short; use what training uses")
    if m.vocab_size >= BPE and cfg.search.step_tokens < 64:
        out.append(f"search.step_tokens={cfg.search.step_tokens} cuts a word-piece model's lines mid-sentence "
                   f"(real lines run 7-120 tokens); 128 is usual")
    if m.parameters >= LARGE and not m.cuda and cfg.eval.size * cfg.eval.max_new_tokens >= EVAL_TOKENS:
        out.append(f"eval.size={cfg.eval.size} (x eval.max_new_tokens={cfg.eval.max_new_tokens}): held-out "
                   f"evaluation of a {size} on a CPU takes long; "
                   f"fewer problems (eval.size=100) or fewer evaluations (eval.every) keep the run moving")
    return out
