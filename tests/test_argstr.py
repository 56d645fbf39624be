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


@pytest.mark.parametrize("bad,msg", [("a", "item 1 of 1 is not key=value"), ("=1", "item 1 of 1"), ("{nope", "not valid JSON"), ("[1]", "is not key=value")])
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


class Typed:
    arg_ranges = {"ratio": "0..2"}

    def __init__(self, width: int | None = None, temperature: float = 0.1, timeout: float = 3.0, max_retries: int = 4,
                 flag: bool = False, base_url: str | None = None, ratio: float = 1.0, names: str | list[str] = "A"):
        self.width, self.temperature, self.timeout, self.max_retries = width, temperature, timeout, max_retries
        self.flag, self.base_url, self.ratio, self.names = flag, base_url, ratio, names


@pytest.mark.parametrize("arg,needs", [
    ("width=", "'width' is empty"), ("width=0", "'width' must be >= 1"), ("width=1.5", "'width' must be an integer"),
    ("width=true", "'width' must be an integer, got true/false"), ("width=1=2", "'width' must be an integer, got text"),
    ('width="512', "'width' must be an integer"), ("width=-5", "'width' must be >= 1"),
    ("width=nan", "'width' must be an integer"), ("max_retries=1e400", "'max_retries' must be an integer"),
    ("temperature=nan", "'temperature' must be a finite number"), ("timeout=nan", "'timeout' must be a finite"),
    ("timeout=0", "'timeout' must be > 0"), ("temperature=-1", "'temperature' must be >= 0"),
    ("base_url=", "'base_url' is empty"), ("flag=1", "'flag' must be true or false"), ("ratio=3", "must be in 0..2"),
    ("max_retries=abc", "'max_retries' must be an integer, got text"),
])
def test_typed_arguments_are_checked_against_hint_and_range(arg, needs):
    with pytest.raises(ConfigError, match=needs) as err:
        build_with_args(Typed, arg, kind="adapter", name="typed")
    value = arg.split("=", 1)[1]
    if len(value) > 3 and value != "true":  # the message names the argument, never the value
        assert value not in str(err.value)


def test_typed_arguments_are_converted():
    obj = build_with_args(Typed, "width=512,temperature=0,timeout=2,flag=true,base_url=http://h:1/v1,names=A_B,"
                          "max_retries=2.0", kind="judge", name="t")
    assert (obj.width, obj.temperature, obj.flag, obj.base_url, obj.names, obj.max_retries) == (
        512, 0, True, "http://h:1/v1", "A_B", 2)
    assert build_with_args(Typed, {"names": ["A", "B"], "width": None}, kind="judge", name="t").names == ["A", "B"]


def test_parse_errors_name_the_position_not_the_value():
    secret = "sk-bare-secret-value-123"
    with pytest.raises(ConfigError) as err:
        parse_args_string(f"model=x,{secret}", what="--judge_args")
    assert "item 2 of 2" in str(err.value) and secret not in str(err.value)


class Renamed:
    removed_args = {"backoff": "use max_wait"}

    def __init__(self, max_wait: float = 1.0):
        self.max_wait = max_wait


def test_removed_arguments_name_their_replacement():
    with pytest.raises(ConfigError, match="'backoff' was removed: use max_wait"):
        build_with_args(Renamed, "backoff=0", kind="adapter", name="r")


class NeedsPretrained:
    def __init__(self, pretrained: str):
        self.pretrained = pretrained


def test_missing_required_argument_is_one_line_naming_it():
    with pytest.raises(ConfigError, match=r"judge 'hf' needs the argument 'pretrained' \(e.g. --judge_args pretrained="):
        build_with_args(NeedsPretrained, None, kind="judge", name="hf")
