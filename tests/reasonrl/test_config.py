"""Config: defaults from dataclasses, YAML + overrides, every error named with key, value and fix."""
from __future__ import annotations

from pathlib import Path

import pytest

from reasonrl.config import Config, ConfigError, all_keys, commented_yaml, help_text, load, to_yaml

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
        load(["trainer.stepz=3", "trainer.lr=abc", "rollout.group_size=1", "algorithm.advantage=grop",
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
        load(["--config", str(f)])
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
    load(["--config", str(path)])


def test_resolved_config_round_trips(tmp_path):
    cfg = load(["trainer.steps=5", "algorithm.kl_coef=0.01"])
    f = tmp_path / "config.yaml"
    f.write_text(to_yaml(cfg))
    assert load(["--config", str(f)]) == cfg
