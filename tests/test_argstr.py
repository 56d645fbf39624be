"""`k=v,...` argument strings and building objects from them (model_args, judge_args, dar_args)."""

from __future__ import annotations

import pytest

from micon_tasks.argstr import accepted_arguments, build_with_args, parse_args_string
from micon_tasks.errors import ConfigError


def test_values_are_coerced_like_lm_eval():
    got = parse_args_string("a=1,b=2.5,c=true,d=False,e=none,f='007',g=x/y:z, h = spaced ")
    assert got == {"a": 1, "b": 2.5, "c": True, "d": False, "e": None, "f": "007", "g": "x/y:z", "h": "spaced"}
    assert parse_args_string('{"a": [1, 2]}') == {"a": [1, 2]}
    assert parse_args_string(None) == {} and parse_args_string("") == {}


@pytest.mark.parametrize("bad,msg", [("a", "expected key=value"), ("=1", "expected key=value"), ("{nope", "not valid JSON"), ("[1]", "expected key=value")])
def test_malformed_strings_are_named(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_args_string(bad, what="adapter 'x' arguments")


class Base:
    def __init__(self, pretrained: str, *, dtype: str = "auto", steps: int = 50):
        self.pretrained, self.dtype, self.steps = pretrained, dtype, steps


class Child(Base):
    def __init__(self, pretrained: str = "p", extra: int = 0, **common):
        super().__init__(pretrained, **common)
        self.extra = extra


class Anything:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def test_accepted_arguments_follow_kwargs_to_the_base_class():
    assert accepted_arguments(Child) == ["pretrained", "extra", "dtype", "steps"]
    assert accepted_arguments(Anything) is None
    obj = build_with_args(Child, "extra=3,steps=4", kind="adapter", name="child", dtype="bf16")
    assert (obj.pretrained, obj.extra, obj.steps, obj.dtype) == ("p", 3, 4, "bf16")


def test_unknown_argument_lists_the_accepted_ones():
    with pytest.raises(ConfigError) as err:
        build_with_args(Child, "stepz=4", kind="adapter", name="child")
    assert "does not accept 'stepz'" in str(err.value) and "pretrained, extra, dtype, steps" in str(err.value)
    assert build_with_args(Anything, "whatever=1", kind="judge", name="j").kwargs == {"whatever": 1}
