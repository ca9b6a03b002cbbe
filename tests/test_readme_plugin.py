"""The README's "write your own verifier in 20 lines" example works as printed, through the config."""
from __future__ import annotations

import importlib
import json
import re
import sys

from reasonrl.validate import load_config
from tests.conftest import REPO
from verifiers import VerifierPool


def test_readme_verifier_example(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Write your own verifier in 20 lines"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert len(code.strip().splitlines()) <= 20
    (tmp_path / "my_verifiers.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    data = tmp_path / "words.jsonl"
    data.write_text(json.dumps({"prompt": "Say hi", "reference": "Hi"}) + "\n")
    cfg = load_config(["verifier.plugins=[my_verifiers]", "data.verifier=exact_word", "data.source=file", f"data.path={data}",
                "verifier.options={exact_word: {case_sensitive: true}}"])
    assert cfg.verifier.options == {"exact_word": {"case_sensitive": True}}
    with VerifierPool(cfg.verifier.options, workers=1, plugins=cfg.verifier.plugins) as pool:
        out = pool.verify_batch(["well\nHi", "well\nhi", ""], ["Hi"] * 3, ["exact_word"] * 3)
    assert [(o.correct, o.status) for o in out] == [(True, "ok"), (False, "ok"), (False, "no_answer")]
    sys.modules.pop("my_verifiers", None)
