from __future__ import annotations

import pytest

from reasonrl.registry import Registry, UnknownNameError


def test_register_get_duplicate_and_suggestions():
    reg: Registry = Registry("widget")

    @reg.register("alpha")
    def alpha():
        return 1

    assert reg.get("alpha") is alpha and "alpha" in reg and reg.names() == ["alpha"]
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(lambda: 2)
    with pytest.raises(UnknownNameError, match="unknown widget 'alpa'. Did you mean 'alpha'\\? Known: alpha."):
        reg.get("alpa")
