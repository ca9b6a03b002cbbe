"""Settings that suit the embedded model but not a real one are pointed out when a run starts."""
from __future__ import annotations

from reasonrl.advice import AutoSettings, ModelFacts, advise, auto_settings, facts_from_path
from reasonrl.validate import load_config

SMOLLM2 = ModelFacts(parameters=135_000_000, trainable=135_000_000, vocab_size=49152, cuda=False)
TINY = ModelFacts(parameters=800_000, trainable=800_000, vocab_size=100, cuda=False)


def test_the_defaults_on_a_real_model_get_advice_naming_each_key():
    lines = advise(load_config(["data.source=file", "data.format=gsm8k", "data.path=gsm8k.jsonl"]), SMOLLM2)
    keys = [line.split("=")[0] for line in lines]
    assert keys == ["trainer.lr", "rollout.max_new_tokens", "eval.max_new_tokens", "search.step_tokens", "eval.size"]
    assert "~1e-6" in lines[0]


def test_a_short_evaluation_and_a_built_in_task_are_not_flagged():
    demo = load_config(["--config", "configs/smollm2_cpu.yaml"])
    assert advise(demo, SMOLLM2) == []  # 48 tokens suit its two-operand sums: a built-in task's lengths are not flagged
    assert [line.split("=")[0] for line in advise(load_config([]), SMOLLM2)] == ["trainer.lr", "search.step_tokens",
                                                                                "eval.size"]


def test_the_embedded_model_and_a_real_recipe_get_none():
    assert advise(load_config([]), TINY) == []
    recipe = load_config(["--config", "configs/gsm8k_grpo.yaml"])
    assert advise(recipe, ModelFacts(500_000_000, 500_000_000, 151_936, cuda=True)) == []


def test_lora_and_prm_learning_rates():
    lines = advise(load_config(["model.lora.rank=8", "trainer.lr=1e-3", "prm.enabled=true", "prm.lr=1e-4",
                                "rollout.max_new_tokens=512", "eval.max_new_tokens=512", "search.step_tokens=128",
                                "eval.size=40"]), SMOLLM2)
    assert [line.split("=")[0] for line in lines] == ["trainer.lr", "prm.lr"] and "LoRA" in lines[0]


def test_facts_from_a_path_load_no_weights(tiny_chat_model_dir):
    f = facts_from_path(str(tiny_chat_model_dir))
    assert 0 < f.parameters < 100_000 and f.vocab_size > 300


def test_auto_memory_settings_keep_the_embedded_model_as_it_was_and_fit_a_real_one_on_a_cpu():
    assert auto_settings(load_config([]), TINY) == AutoSettings(False, 16384, 0, 100)
    assert auto_settings(load_config([]), SMOLLM2) == AutoSettings(True, 2048, 1, 100)
    on_gpu = ModelFacts(500_000_000, 500_000_000, 151_936, cuda=True)  # the heap holds no activations there
    assert auto_settings(load_config([]), on_gpu) == AutoSettings(True, 16384, 0, 0)


def test_explicit_memory_settings_win_over_auto():
    cfg = load_config(["model.gradient_checkpointing=false", "trainer.max_tokens_per_microbatch=512",
                       "trainer.mmap_threshold_mb=0", "trainer.release_memory_every=0"])
    assert auto_settings(cfg, SMOLLM2) == AutoSettings(False, 512, 0, 0)
    assert auto_settings(load_config(["model.gradient_checkpointing=true"]), TINY).gradient_checkpointing
