import pytest

from common.registry import Registry, UnknownVariantError


def test_register_get_and_duplicate():
    reg: Registry[type] = Registry("widget")

    @reg.register("a")
    class A: ...

    assert reg.get("a") is A
    assert "a" in reg and reg.names() == ["a"]
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", A)


def test_unknown_lists_valid_names():
    reg: Registry[int] = Registry("widget")
    reg.add("x", 1)
    reg.add("y", 2)
    with pytest.raises(UnknownVariantError) as e:
        reg.get("z")
    assert str(e.value) == "unknown widget 'z'; valid: x, y"
