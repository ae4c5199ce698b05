"""The config decoder as a plugin's user meets it: the values a template's settings become
under Packer's weak typing (booleans, numbers, durations, lists, maps, nested configs) and
the located problems `kiln validate` prints for what cannot be decoded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from kiln.backend.template.decode import (
    ConfigProblems,
    Decoder,
    Deferred,
    Duration,
    config_fields,
    opt,
    secret_values,
)
from kiln.backend.template.source import Loc, UnknownText, from_plain

LOC = Loc("t.json", 3, 5)


@dataclass
class Inner:
    port: int = opt(22)
    user: str = opt("")
    password: str = opt("", secret=True)


@dataclass
class Config:
    name: str = opt(required=True, aliases=("vm_name",))
    flag: bool = opt(False)
    count: int = opt(0)
    ratio: float = opt(0.0)
    wait: Duration = opt(Duration(0))
    names: list[str] = opt(default_factory=list)
    codes: list[int] = opt(default_factory=list)
    env: dict[str, str] = opt(default_factory=dict)
    sizes: dict[str, int] = opt(default_factory=dict)
    inner: Inner | None = opt(None)
    hops: list[Inner] = opt(default_factory=list)
    maybe: int | None = opt(None)
    either: int | str = opt(0)
    later: str = opt("", render=False)
    run_time: Deferred = opt(Deferred(""))
    token: str = opt("", secret=True)
    anything: object = opt(None)

    def check(self) -> None:
        problems = []
        if self.count == -42:
            problems.append(("count", "count must not be negative"))
        if self.name == "bad":
            problems.append(("", "the name bad is reserved"))
        if problems:
            raise ConfigProblems(problems)
        if self.name == "worse":
            raise ValueError("the name worse is reserved too")


def render(text: str, loc: Loc) -> str:
    if "{{fail}}" in text:
        raise ValueError("template: function \"fail\" not defined")
    return text.replace("{{pwd}}", "/work")


def decode(config, **kw):
    d = Decoder(render=render, **kw)
    obj = d.decode(Config, from_plain(config, LOC))
    return obj, [p.format() for p in d.problems]


def value(key: str, raw):
    obj, problems = decode({"name": "n", key: raw})
    assert problems == [], problems
    return getattr(obj, key)


def problem(key: str, raw) -> list[str]:
    return decode({"name": "n", key: raw})[1]


@pytest.mark.parametrize("raw", ["1", "t", "T", "TRUE", "true", "True", " true ", True, 1, 2.5])
def test_true_in_every_way_packer_reads_it(raw):
    assert value("flag", raw) is True


@pytest.mark.parametrize("raw", ["0", "f", "F", "FALSE", "false", "False", "", False, 0, 0.0,
                                 None])
def test_false_in_every_way_packer_reads_it(raw):
    assert value("flag", raw) is False


def test_a_word_that_is_not_a_boolean_is_a_located_problem():
    assert problem("flag", "yes") == ['t.json:3:5: flag: expected a boolean, got "yes"']
    assert problem("flag", ["true"]) == ["t.json:3:5: flag: expected a boolean, got list"]
    assert problem("flag", {"a": 1}) == ["t.json:3:5: flag: expected a boolean, got object"]


@pytest.mark.parametrize("raw, expected", [
    ("22", 22), ("-0x10", -16), ("+5", 5), ("0b101", 5), ("0o17", 15), ("017", 15), ("0", 0),
    ("0x_ff", 255), ("0b1_0", 2), (True, 1), (False, 0), (None, 0), (3.9, 3), (-3.9, -3), (7, 7),
    ("-9223372036854775808", -(1 << 63)), ("9223372036854775807", (1 << 63) - 1),
])
def test_integers_as_go_parses_them(raw, expected):
    assert value("count", raw) == expected


@pytest.mark.parametrize("raw, message", [
    ("abc", 'expected an integer, got "abc"'),
    ("1_000", 'expected an integer, got "1_000"'),
    ("0x", 'expected an integer, got "0x"'),
    ("0x1_", 'expected an integer, got "0x1_"'),
    ("0x1__0", 'expected an integer, got "0x1__0"'),
    ("0x_", 'expected an integer, got "0x_"'),
    ("", 'expected an integer, got ""'),
    ("9223372036854775808", 'the integer "9223372036854775808" is out of range'),
    ("-9223372036854775809", 'the integer "-9223372036854775809" is out of range'),
    (float("inf"), "expected an integer, got inf"),
    (float("nan"), "expected an integer, got nan"),
])
def test_what_is_not_an_integer_is_a_located_problem(raw, message):
    assert problem("count", raw) == [f"t.json:3:5: count: {message}"]


@pytest.mark.parametrize("raw, expected", [("1.5", 1.5), (" 2 ", 2.0), (True, 1.0), (False, 0.0),
                                           (3, 3.0), (None, 0.0), (0.25, 0.25)])
def test_numbers(raw, expected):
    got = value("ratio", raw)
    assert got == expected and type(got) is float


def test_what_is_not_a_number_is_a_located_problem():
    assert problem("ratio", "x") == ['t.json:3:5: ratio: expected a number, got "x"']
    assert problem("ratio", []) == ["t.json:3:5: ratio: expected a number, got list"]


@pytest.mark.parametrize("raw, seconds", [("1m30s", 90.0), ("", 0.0), (None, 0.0),
                                          (5_000_000_000, 5.0), ("1h", 3600.0), ("250ms", 0.25)])
def test_durations_in_go_syntax_or_nanoseconds(raw, seconds):
    got = value("wait", raw)
    assert got == seconds and isinstance(got, Duration)


def test_what_is_not_a_duration_is_a_located_problem():
    assert problem("wait", True) == [
        't.json:3:5: wait: expected a duration such as "30s" or "5m", got True']
    [msg] = problem("wait", "soon")
    assert msg.startswith("t.json:3:5: wait: ") and \
        msg.endswith('; expected a duration such as "30s", "5m" or "1h30m"')


@pytest.mark.parametrize("raw, expected", [(None, ""), (False, "0"), (True, "1"), (3, "3"),
                                           (2.5, "2.5"), (5.0, "5"), ("x", "x")])
def test_strings(raw, expected):
    assert value("later", raw) == expected


def test_strings_are_rendered_unless_the_field_says_otherwise():
    obj, problems = decode({"name": "{{pwd}}/n", "later": "{{pwd}}", "names": ["{{pwd}}/a"],
                            "env": {"{{pwd}}": "{{pwd}}/v"}, "run_time": "{{pwd}}"})
    assert problems == []
    assert obj.name == "/work/n" and obj.later == "{{pwd}}" and obj.names == ["/work/a"]
    assert obj.env == {"/work": "/work/v"} and obj.run_time == "{{pwd}}"
    assert type(obj.run_time) is Deferred


def test_a_render_error_is_a_located_problem_and_the_others_still_decode():
    obj, problems = decode({"name": "{{fail}}", "count": "x", "flag": "t"})
    assert problems == ['t.json:3:5: name: template: function "fail" not defined',
                        't.json:3:5: count: expected an integer, got "x"']


def test_lists_take_one_value_or_a_comma_separated_string():
    assert value("names", "a") == ["a"]
    assert value("names", "a,b") == ["a", "b"]
    assert value("names", 5) == ["5"]
    assert value("names", None) == []
    assert value("names", "") == []
    assert value("codes", "0,3") == [0, 3]
    assert value("codes", ["1", 2]) == [1, 2]
    assert value("hops", {"port": "2222"}) == [Inner(port=2222)]


def test_a_list_with_a_bad_item_is_a_problem_at_that_item():
    assert problem("codes", ["1", "x", "y"]) == [
        't.json:3:5: codes[1]: expected an integer, got "x"',
        't.json:3:5: codes[2]: expected an integer, got "y"']
    assert problem("names", {"a": "b"}) == ["t.json:3:5: names: expected a list, got object"]


def test_maps_convert_their_values_and_merge_a_list_of_objects():
    assert value("sizes", {"a": "1", "b": 2.0}) == {"a": 1, "b": 2}
    assert value("env", [{"A": "1"}, {"B": 2, "A": "3"}]) == {"A": "3", "B": "2"}
    assert value("env", None) == {}
    assert problem("sizes", {"a": "x"}) == ['t.json:3:5: sizes.a: expected an integer, got "x"']
    assert problem("env", "A=1") == ["t.json:3:5: env: expected an object, got string"]
    assert problem("env", [{"A": "1"}, "B"]) == ["t.json:3:5: env: expected an object, got list"]


def test_a_nested_config_is_decoded_and_its_problems_located():
    inner = value("inner", {"port": "2222", "user": 7})
    assert inner == Inner(port=2222, user="7")
    assert value("inner", None) is None
    assert problem("inner", {"port": "x", "usr": "u"}) == [
        't.json:3:5: inner.port: expected an integer, got "x"',
        't.json:3:5: inner.usr: unknown configuration key "usr" (did you mean "user"?)']
    assert problem("inner", "x") == ["t.json:3:5: inner: expected an object, got string"]


def test_optional_and_union_settings():
    assert value("maybe", None) is None
    assert value("maybe", "5") == 5
    assert value("either", "12") == 12
    assert value("either", "abc") == "abc"
    assert problem("either", [1]) == [
        "t.json:3:5: either: expected an integer or a string, got list"]


def test_any_setting_keeps_the_value_rendered():
    assert value("anything", {"a": ["{{pwd}}", 1]}) == {"a": ["/work", 1]}


def test_keys_problems_and_requirements():
    obj, problems = decode({"nmae": "x", "flg": True})
    assert problems == [
        't.json:3:5: nmae: unknown configuration key "nmae" (did you mean "name"?)',
        't.json:3:5: flg: unknown configuration key "flg" (did you mean "flag"?)',
        't.json:3:5: missing required key "name"']
    assert obj is not None and obj.name is None
    assert decode({"vm_name": "v"}) == (Config(name="v"), [])
    assert decode({"name": "n", "zzz": 1})[1] == [
        't.json:3:5: zzz: unknown configuration key "zzz"']


def test_ignored_keys_and_non_objects():
    d = Decoder(ignore_keys=lambda k: k.startswith("_"))
    assert d.decode(Config, from_plain({"name": "n", "_comment": "x"}, LOC)) == Config(name="n")
    assert d.problems == []
    d = Decoder()
    d.decode(Config, from_plain(["name"], LOC))
    assert [p.format() for p in d.problems] == [
        "t.json:3:5: expected an object, got list", 't.json:3:5: missing required key "name"']
    d = Decoder()
    assert d.decode(Config, [from_plain(None, LOC), from_plain({"name": "n"}, LOC)]) == \
        Config(name="n")


def test_the_configs_own_check_is_reported_where_it_points():
    assert decode({"name": "n", "count": -42})[1] == [
        "t.json:3:5: count: count must not be negative"]
    assert decode({"name": "bad"})[1] == ["t.json:3:5: the name bad is reserved"]
    assert decode({"name": "worse"})[1] == ["t.json:3:5: the name worse is reserved too"]


def test_a_value_known_only_at_build_time_decodes_to_a_zero_value():
    obj, problems = decode({"name": UnknownText(), "count": UnknownText(),
                            "names": UnknownText(), "flag": UnknownText()})
    assert problems == []
    assert (obj.name, obj.count, obj.names, obj.flag) == ("<unknown>", 0, [], False)


def test_a_later_raw_overrides_only_what_it_sets():
    d = Decoder()
    obj = d.decode(Config, [
        from_plain({"name": "n", "inner": {"port": 2, "user": "u"}, "codes": [1, 2, 3],
                    "env": {"A": "1"}}, LOC),
        from_plain({"inner": {"port": 3}, "codes": [9], "env": {"B": "2"}}, LOC)])
    assert d.problems == []
    assert obj.inner == Inner(port=3, user="u")
    assert obj.codes == [9, 2, 3] and obj.env == {"A": "1", "B": "2"}


def test_secret_values_of_nested_configs_are_found():
    obj, _ = decode({"name": "n", "token": "t0k", "inner": {"password": "pw1"},
                     "hops": [{"password": "pw2"}, {"user": "x"}]})
    assert secret_values(obj) == ["pw1", "pw2", "t0k"]
    assert secret_values(None) == [] and secret_values("text") == []


def test_config_fields_list_the_keys_and_aliases():
    fields = config_fields(Config)
    assert fields["vm_name"] is fields["name"]
    assert fields["name"].required and not fields["flag"].required
    assert fields["token"].secret and not fields["name"].secret
    assert not fields["later"].render and fields["name"].render
    assert fields["flag"].has_default


@dataclass
class Shapes:
    a: int | list[str] = opt(0)
    b: float | dict[str, str] = opt(0.0)
    c: bool | Inner = opt(False)
    d: Duration | None = opt(None)
    tags: list[str] = opt(["base"])
    note: str = opt()
    hops: list[Inner] = opt(default_factory=list)
    env: dict[str, str] = opt(default_factory=dict)
    wait: Duration = opt(Duration(0))
    rate: float = opt(0.0)
    inner: Inner | None = opt(None)


def shapes(config, **kw):
    d = Decoder(render=render, **kw)
    obj = d.decode(Shapes, from_plain(config, LOC))
    return obj, [p.format() for p in d.problems]


def test_a_union_names_every_type_it_would_take():
    assert shapes({"a": {"x": 1}})[1] == [
        "t.json:3:5: a: expected an integer or a list, got object"]
    assert shapes({"b": [1]})[1] == ["t.json:3:5: b: expected a number or an object, got list"]
    assert shapes({"c": "maybe"})[1] == [
        "t.json:3:5: c: expected a boolean or an object, got string"]
    assert shapes({"d": "x"})[1][0].startswith("t.json:3:5: d: ")
    assert shapes({"a": "x,y"})[0].a == ["x", "y"]
    assert shapes({"c": {"port": 1}})[0].c == Inner(port=1)
    assert shapes({"d": "2s"})[0].d == 2.0 and shapes({"d": None})[0].d is None


def test_defaults_are_fresh_for_every_config():
    one, _ = shapes({})
    two, _ = shapes({})
    one.tags.append("mine")
    assert two.tags == ["base"] and one.note is None


def test_hcl2_takes_a_block_for_a_list_of_blocks_but_no_list_for_a_map():
    obj, problems = shapes({"hops": {"port": "1"}}, strict_lists=True)
    assert problems == [] and obj.hops == [Inner(port=1)]
    assert shapes({"env": [{"A": "1"}]}, strict_lists=True)[1] == [
        "t.json:3:5: env: expected an object, got list"]
    assert shapes({"env": []})[0].env == {}


def test_values_known_only_at_build_time_are_zero_of_each_kind():
    obj, problems = shapes({"wait": UnknownText(), "rate": UnknownText(), "env": UnknownText(),
                            "inner": UnknownText(), "hops": UnknownText()})
    assert problems == []
    assert (obj.wait, obj.rate, obj.env, obj.inner, obj.hops) == (0.0, 0.0, {}, None, [])
    assert type(obj.wait) is Duration and type(obj.rate) is float


def test_run_time_strings_are_checked_but_kept():
    d = Decoder(render=render)
    seen = []
    d.check_deferred = lambda text, loc: seen.append(text) or (["bad template"] if "bad" in text
                                                                else [])
    obj = d.decode(Config, from_plain({"name": "n", "run_time": "{{bad}}"}, LOC))
    assert [p.format() for p in d.problems] == ["t.json:3:5: run_time: bad template"]
    assert obj.run_time == "{{bad}}"
    d.problems = []
    obj = d.decode(Config, from_plain({"name": "n", "run_time": "plain bad"}, LOC))
    assert d.problems == [] and seen == ["{{bad}}"]
    obj = d.decode(Config, from_plain({"name": "n", "run_time": 5}, LOC))
    assert obj.run_time == "5" and type(obj.run_time) is Deferred
    d.decode(Config, from_plain({"name": "n", "run_time": [1]}, LOC))
    assert [p.message for p in d.problems] == ["expected a string, got list"]


@pytest.mark.parametrize("number, text", [(1e-7, "0.0000001"), (100.0, "100"), (0.1, "0.1"),
                                          (float("inf"), "+Inf"), (float("-inf"), "-Inf"),
                                          (float("nan"), "NaN"), (-2.50, "-2.5"), (12, "12")])
def test_numbers_written_into_text_settings_as_go_writes_them(number, text):
    assert value("later", number) == text


def test_a_nested_override_keeps_what_it_does_not_set():
    d = Decoder()
    obj = d.decode(Shapes, [from_plain({"inner": {"port": 2, "user": "u"}}, LOC),
                            from_plain({"inner": {"user": "v"}}, LOC),
                            from_plain({"rate": 1}, LOC)])
    assert obj.inner == Inner(port=2, user="v") and obj.rate == 1.0
    obj = d.decode(Shapes, [from_plain({"inner": {"port": 2}}, LOC),
                            from_plain({"inner": None}, LOC)])
    assert obj.inner is None


@dataclass
class Odd:
    text: str | None = opt(None)
    late: int | Deferred = opt(0)


def test_an_optional_text_keeps_a_build_time_value_and_odd_unions_are_named():
    d = Decoder()
    assert d.decode(Odd, from_plain({"text": UnknownText()}, LOC)).text == "<unknown>"
    d.decode(Odd, from_plain({"late": [1]}, LOC))
    assert [p.format() for p in d.problems] == [
        "t.json:3:5: late: expected an integer or Deferred, got list"]


def test_a_config_class_as_a_plugin_declares_it():
    """Declared here, as a plugin's module declares it when Kiln loads the plugin."""

    @dataclass
    class PluginConfig:
        target: str = opt(required=True, doc="where to write", aliases=("dest",))
        raw: str = opt("", render=False)
        login: Inner = opt(default_factory=Inner)
        hops: list[Inner] = opt(default_factory=list)
        tags: list[str] = opt(["base"])
        token: str = opt("", secret=True)
        extra: Any = opt(None)
        maybe: str | None = opt(None)
        plain: str = ""  # a plain dataclass field: rendered, no doc

    fields = config_fields(PluginConfig)
    assert list(fields) == ["target", "dest", "raw", "login", "hops", "tags", "token", "extra",
                            "maybe", "plain"]
    assert (fields["plain"].render, fields["plain"].doc, fields["plain"].required) == \
        (True, "", False)
    t = fields["target"]
    assert (t.name, t.type, t.required, t.render, t.aliases, t.secret, t.doc, t.has_default) \
        == ("target", str, True, True, ("dest",), False, "where to write", False)
    assert fields["raw"].render is False and fields["raw"].doc == "" and fields["raw"].has_default
    assert fields["token"].secret and fields["login"].has_default
    d = Decoder(render=render)
    obj = d.decode(PluginConfig, from_plain({
        "dest": "{{pwd}}/out", "raw": "{{pwd}}", "login": {"password": "k3y"},
        "hops": [{"user": "u", "password": "hop-key"}], "token": "t0k",
        "extra": {"a": "{{pwd}}"}, "maybe": "{{pwd}}/m", "tags": "", "plain": "{{pwd}}"}, LOC))
    assert d.problems == []
    assert (obj.target, obj.raw, obj.extra, obj.maybe, obj.tags) == (
        "/work/out", "{{pwd}}", {"a": "/work"}, "/work/m", [])
    assert obj.login == Inner(password="k3y") and obj.plain == "/work"
    assert secret_values(obj) == ["k3y", "hop-key", "t0k"]
    fresh = d.decode(PluginConfig, from_plain({"target": "x", "login": None}, LOC))
    assert fresh.login is None and fresh.tags == ["base"] and fresh.hops == []
    d2 = Decoder()
    d2.decode(PluginConfig, from_plain({}, LOC))
    assert [p.format() for p in d2.problems] == ['t.json:3:5: missing required key "target"']


def test_render_is_told_where_each_string_is():
    seen = []

    def where(text, loc):
        seen.append((text, loc.path))
        if "{{fail}}" in text:
            raise ValueError("cannot render")
        return text.upper()

    d = Decoder(render=where)
    obj = d.decode(Config, from_plain({"name": "{{n}}", "names": "{{a}},b",
                                       "env": {"k": "{{fail}}"}}, LOC))
    assert ("{{n}}", "name") in seen and ("{{a}},b", "names") in seen
    assert obj.names == ["{{A}}", "B"]
    assert [p.format() for p in d.problems] == ["t.json:3:5: env.k: cannot render"]
    checked = []
    d = Decoder()
    d.check_deferred = lambda text, loc: checked.append(loc.path) or []
    d.decode(Config, from_plain({"name": "n", "run_time": "{{x}}"}, LOC))
    assert checked == ["run_time"]


def test_every_raw_is_decoded_whatever_comes_before_it():
    d = Decoder()
    obj = d.decode(Config, [from_plain(["not", "an", "object"], LOC),
                            from_plain({"name": "n"}, LOC)])
    assert obj == Config(name="n")
    assert [p.format() for p in d.problems] == ["t.json:3:5: expected an object, got list"]
