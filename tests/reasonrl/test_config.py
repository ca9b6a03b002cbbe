"""Config: defaults from dataclasses, YAML + overrides, every error named with key, value and fix; each
part validates its own section (reasonrl/validate.py composes them)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reasonrl.config import Config, ConfigError, all_keys, commented_yaml, help_text, load, to_yaml
from reasonrl.validate import load_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_load_and_overrides_apply():
    cfg = load([])
    assert isinstance(cfg, Config) and cfg.rollout.group_size == 8
    cfg = load(["trainer.steps=3", "rollout.group_size=4", "algorithm.dual_clip=3.0", "rollout.stop=[x,y]"])
    assert (cfg.trainer.steps, cfg.rollout.group_size, cfg.algorithm.dual_clip, cfg.rollout.stop) == (3, 4, 3.0, ["x", "y"])


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("trainer:\n  steps: 7\n  lr: 0.001\nrollout:\n  group_size: 4\n")
    cfg = load(["--config", str(f), "trainer.steps=9"])
    assert (cfg.trainer.steps, cfg.trainer.lr, cfg.rollout.group_size) == (9, 0.001, 4)


def test_every_problem_is_reported_once_with_key_value_and_fix():
    with pytest.raises(ConfigError) as err:
        load_config(["trainer.stepz=3", "trainer.lr=abc", "rollout.group_size=1", "algorithm.advantage=grop",
                     "rollout.temperature=0", "noequals"])
    msg = str(err.value)
    problems = err.value.problems
    assert len(problems) == 6, problems
    assert "trainer.stepz=3: unknown key; did you mean trainer.steps?" in msg
    assert "trainer.lr='abc': expected float" in msg
    assert "rollout.group_size=1" in msg and "at least 2" in msg
    assert "algorithm.advantage='grop'" in msg and "Did you mean 'grpo'" in msg and "rloo" in msg
    assert "rollout.temperature=0" in msg
    assert "'noequals'" in msg


def test_yaml_unknown_key_and_impossible_combination(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("model:\n  pth: x\nalgorithm:\n  overlong_buffer: 100\n")
    with pytest.raises(ConfigError) as err:
        load_config(["--config", str(f)])
    assert "model.pth" in str(err.value) and "did you mean model.path" in str(err.value)
    assert "algorithm.overlong_buffer=100" in str(err.value) and "max_new_tokens" in str(err.value)


def test_missing_and_broken_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load(["--config", str(tmp_path / "nope.yaml")])
    bad = tmp_path / "broken.yaml"
    bad.write_text("trainer: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(["--config", str(bad)])


def test_help_lists_every_key_with_its_description():
    text = help_text()
    for key in all_keys():
        assert f"  {key} = " in text


def test_base_yaml_matches_dataclasses_and_every_key_is_commented():
    base = (REPO / "configs" / "base.yaml").read_text()
    assert base == commented_yaml(), "configs/base.yaml is stale: regenerate it from reasonrl.config.commented_yaml()"
    lines = base.splitlines()
    for i, line in enumerate(lines):
        if line.strip() and not line.strip().startswith("#"):
            assert lines[i - 1].strip().startswith("#"), f"key without a comment: {line}"
    assert load(["--config", str(REPO / "configs" / "base.yaml")]) == Config()


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    load_config(["--config", str(path)])


def test_resolved_config_round_trips(tmp_path):
    cfg = load(["trainer.steps=5", "algorithm.kl_coef=0.01"])
    f = tmp_path / "config.yaml"
    f.write_text(to_yaml(cfg))
    assert load(["--config", str(f)]) == cfg


def test_loading_a_config_imports_no_other_project_module_nor_transformers():
    code = ("import sys, reasonrl.config\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('reasonrl', 'verifiers', 'search')))\n"
            "print('transformers' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["['reasonrl', 'reasonrl.config']", "False False"]


def test_each_part_checks_its_own_section():
    """One rule from every part, all reported together; the search section only for evaluate.py."""
    wrong = {"model.dtype": "fp8", "data.format": "csv", "verifier.timeout_s": "0", "rollout.top_p": "2",
             "algorithm.policy_loss": "ppo", "trainer.lr_schedule": "step", "eval.every": "-1",
             "logging.wandb_mode": "team", "checkpoint.keep": "0", "search.selection": "ucb"}
    with pytest.raises(ConfigError) as err:
        load_config([f"{k}={v}" for k, v in wrong.items()] + ["prm.enabled=true", "prm.norm=max"])
    found = {p.split("=")[0] for p in err.value.problems}
    assert found == set(wrong) - {"search.selection"} | {"prm.norm"}
    assert "Did you mean 'ppo_clip'" in str(err.value) and "Known: constant, cosine, linear" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(["search.selection=ucb"], search=True)
    assert "search.selection='ucb'" in str(err.value) and "Known: puct, uct" in str(err.value)


def test_dual_clip_applies_to_ppo_clip_only():
    load_config(["algorithm.dual_clip=3.0"])
    with pytest.raises(ConfigError, match="algorithm.dual_clip=3.0: applies to policy_loss=ppo_clip only"):
        load_config(["algorithm.policy_loss=gspo", "algorithm.dual_clip=3.0"])


def test_help_names_every_registered_option():
    """Each key's choices live in one place, the registry or tuple of the part that owns them; --help describes
    them in words, and a registered name that the help of its key does not mention fails here."""
    import re

    from reasonrl.algorithms import (ADVANTAGES, KL_ESTIMATORS, LOO_FORMS, LOSS_AGGREGATIONS, POLICY_LOSSES,
                                     PROCESS_NORMS, PROCESS_SHAPINGS)
    from reasonrl.config import iter_fields
    from reasonrl.data import FORMATS, SOURCES
    from reasonrl.learner import AUTOCAST, LR_SCHEDULES
    from reasonrl.metrics import WANDB_MODES
    from reasonrl.models import ATTN_IMPLEMENTATIONS, DEVICES, DTYPES
    from reasonrl.prm import PRM_LOSSES
    from reasonrl.process import GRANULARITIES, REFERENCES, UPDATE_ORDERS
    from reasonrl.rollout import ENGINES
    from reasonrl.steps import SPLITTERS
    from reasonrl.tasks import TASKS
    from search.mcts import ANSWERS, SELECTIONS
    from search.methods import METHODS
    from search.values import VALUE_REDUCTIONS, VALUE_SOURCES

    choices = {
        "model.dtype": DTYPES, "model.attn_implementation": ATTN_IMPLEMENTATIONS, "data.source": SOURCES,
        "data.format": FORMATS, "data.task.name": TASKS, "rollout.engine": ENGINES, "algorithm.advantage": ADVANTAGES,
        "algorithm.policy_loss": POLICY_LOSSES, "algorithm.loss_agg": LOSS_AGGREGATIONS,
        "algorithm.kl_estimator": KL_ESTIMATORS, "prm.reference": REFERENCES, "prm.loss": PRM_LOSSES,
        "prm.update": UPDATE_ORDERS, "prm.granularity": GRANULARITIES, "prm.step_split": SPLITTERS,
        "prm.shaping": PROCESS_SHAPINGS, "prm.loo_form": LOO_FORMS, "prm.norm": PROCESS_NORMS,
        "trainer.lr_schedule": LR_SCHEDULES, "trainer.autocast": AUTOCAST, "trainer.device": DEVICES,
        "search.methods": METHODS, "search.value": VALUE_SOURCES, "search.value_reduce": VALUE_REDUCTIONS,
        "search.selection": SELECTIONS,
        "search.answer": ANSWERS, "logging.wandb_mode": WANDB_MODES,
    }
    helps = {k: f.metadata["help"] for k, f, _ in iter_fields()}
    for key, names in choices.items():
        missing = [n for n in names if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", helps[key])]
        assert not missing, (key, missing, helps[key])
