from __future__ import annotations

import pytest

from pixelgroup.registry import Registry


def test_register_get_names():
    reg: Registry[int] = Registry("thing")
    reg.add("b", 2)

    @reg.register("a")
    def a():
        return 1

    assert reg.get("a") is a
    assert reg.names() == ["a", "b"]
    assert "a" in reg and "c" not in reg


def test_duplicate_and_unknown_names_raise():
    reg: Registry[int] = Registry("thing")
    reg.add("x", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("x", 2)
    with pytest.raises(KeyError, match="unknown thing 'y'; valid names: x"):
        reg.get("y")


def test_remove_unregisters_and_unknown_raises():
    reg: Registry[int] = Registry("thing")
    reg.add("x", 1)
    assert reg.remove("x") == 1 and reg.names() == []
    with pytest.raises(KeyError, match="unknown thing 'x'"):
        reg.remove("x")
    reg.add("x", 3)  # the name is free again
    assert reg.get("x") == 3
