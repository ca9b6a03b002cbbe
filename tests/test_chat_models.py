"""Real-model paths on a tiny local chat model (byte-level BPE, ChatML template, EOS <|im_end|>, tied
embeddings): prompts go through the chat template and every part sees the same token ids, the command line
takes what YAML cannot parse, several --config files compose, --dry-run shows the prompt as fed, and each
evaluation writes its answers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import train
from reasonrl.config import ConfigError, load
from reasonrl.data import DataError, build_data, chat_renderer
from reasonrl.loop import run
from reasonrl.models import load_tokenizer
from reasonrl.rollout.hf import HFEngine
from reasonrl.validate import load_config

QUIET = ["logging.progress=false", "logging.plots=false", "checkpoint.every=0", "verifier.workers=0"]


@pytest.fixture()
def problems(tmp_path) -> Path:
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Compute: {a}+{b}", "reference": str(a + b)}) + "\n"
                            for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (2, 2), (9, 1)]))
    return path


def test_chat_template_modes(tiny_chat_model_dir, embedded_model_dir):
    chat, plain = load_tokenizer(str(tiny_chat_model_dir)), load_tokenizer(str(embedded_model_dir))
    render = chat_renderer(chat, "auto", "Be brief.")
    assert render("Compute: 1+2") == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nCompute: 1+2<|im_end|>\n"
                                      "<|im_start|>assistant\n")
    assert chat_renderer(chat, "false", None) is None
    plain.chat_template = None
    assert chat_renderer(plain, "auto", None) is None  # auto: only when the tokenizer has a template
    with pytest.raises(DataError, match="has no chat template"):
        chat_renderer(plain, "true", None)
    with pytest.raises(DataError, match="system message needs one"):
        chat_renderer(plain, "auto", "Be brief.")
    with pytest.raises(ConfigError, match="data.system_prompt='x': a system message needs the chat template"):
        load_config(["data.chat_template=false", "data.system_prompt=x"])


def test_every_part_sees_the_templated_ids(tiny_chat_model_dir, problems):
    """The record's prompt is the template's text; the engine's ids for it are apply_chat_template's ids."""
    tok = load_tokenizer(str(tiny_chat_model_dir))
    cfg = load(["data.source=file", f"data.path={problems}", f"data.eval_path={problems}"])
    sampler, held_out = build_data(cfg.data, 4, 0, render=chat_renderer(tok, "auto", None))
    first = sampler.next(1)[0]
    assert first.prompt.startswith("<|im_start|>user\n") and first.prompt.endswith("<|im_start|>assistant\n")
    messages = [{"role": "user", "content": first.prompt.split("\n", 1)[1].split("<|im_end|>")[0]}]
    want = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    want = want["input_ids"] if hasattr(want, "keys") else want
    assert HFEngine(None, tok).prompt_ids(first.prompt) == list(want)
    assert all(r.prompt.startswith("<|im_start|>user\n") for r in held_out)
    state = sampler.state_dict()
    again, _ = build_data(cfg.data, 4, 0, render=chat_renderer(tok, "auto", None))
    again.load_state_dict(state)
    assert again.next(2) == sampler.next(2)  # the cursor is the inner sampler's: resume draws the same prompts


def test_training_on_a_chat_model_logs_prompts_as_fed_and_every_eval_answer(tiny_chat_model_dir, problems, tmp_path):
    summary = run(load_config([f"model.path={tiny_chat_model_dir}", "data.source=file", f"data.path={problems}",
                               f"data.eval_path={problems}", "data.system_prompt=Be brief.", "trainer.steps=2",
                               "rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=8",
                               "eval.max_new_tokens=8", "eval.every=1", f"logging.run_dir={tmp_path}",
                               "logging.name=chat", *QUIET]))
    run_dir = Path(summary["run_dir"])
    samples = [json.loads(x) for x in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["prompt"].startswith("<|im_start|>system\nBe brief.<|im_end|>") for s in samples)
    for step in (0, 1, 2):
        rows = [json.loads(x) for x in (run_dir / "eval" / f"step_{step}.jsonl").read_text().splitlines()]
        assert len(rows) == 6 and all({"prompt", "response", "extracted", "correct", "status"} <= set(r) for r in rows)
        assert all(r["step"] == step and r["prompt"].endswith("<|im_start|>assistant\n") for r in rows)


def test_a_value_yaml_cannot_parse_is_taken_as_a_string_and_backspaces_are_caught(tmp_path, capsys):
    cfg = load_config(["data.prompt_template={prompt} Put the final answer in \\boxed{}."])
    assert cfg.data.prompt_template == "{prompt} Put the final answer in \\boxed{}."
    with pytest.raises(ConfigError, match="trainer.lr='{x': expected float"):
        load(["trainer.lr={x"])
    f = tmp_path / "bad.yaml"
    f.write_text('data:\n  prompt_template: "{prompt} in \\boxed{}"\n')  # YAML double quotes: \b is a backspace
    with pytest.raises(ConfigError, match="holds a control character.*use single quotes"):
        load(["--config", str(f)])
    assert train.main(["--config", str(f)]) == 2 and "control character" in capsys.readouterr().err


def test_several_config_files_compose_later_over_earlier(tmp_path):
    base, data = tmp_path / "recipe.yaml", tmp_path / "data.yaml"
    base.write_text("prm:\n  enabled: true\n  beta: 0.1\nalgorithm:\n  advantage: prime\ntrainer:\n  steps: 7\n")
    data.write_text("data:\n  source: file\n  path: x.jsonl\ntrainer:\n  steps: 9\n")
    cfg = load(["--config", str(base), "--config", str(data), "trainer.lr=0.5"])
    assert (cfg.prm.enabled, cfg.prm.beta, cfg.algorithm.advantage) == (True, 0.1, "prime")  # kept from the first
    assert (cfg.data.path, cfg.trainer.steps, cfg.trainer.lr) == ("x.jsonl", 9, 0.5)  # the second, then key=value


def test_dry_run_prints_the_prompt_as_fed_and_loads_no_model(tiny_chat_model_dir, problems, capsys, tmp_path):
    rc = train.main(["--dry-run", f"model.path={tiny_chat_model_dir}", "data.source=file", f"data.path={problems}",
                     "data.prompt_template={prompt} Answer in \\boxed{}.", f"logging.run_dir={tmp_path / 'runs'}"])
    out = capsys.readouterr().out
    assert rc == 0 and "chat_template: auto" in out
    assert "tokens; chat template applied" in out and "<|im_start|>user\nCompute:" in out
    assert "Answer in \\boxed{}.<|im_end|>\n<|im_start|>assistant\n" in out
    assert not (tmp_path / "runs").exists()  # nothing written
