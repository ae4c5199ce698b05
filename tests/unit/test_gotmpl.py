"""The Go text/template subset used by legacy (JSON) templates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from kiln.backend.template import gotmpl
from kiln.backend.template.gotmpl import (
    BUILTIN_NAMES,
    NO_VALUE,
    RenderError,
    TemplateSyntaxError,
    check,
    format_value,
    parse,
    protect_fields,
    render,
    render_until_stable,
    truth,
)


class Boom(RenderError):
    pass


def _fail(msg: str) -> str:
    raise ValueError(msg)


def _boom() -> str:
    raise Boom("custom failure")


def _join(*parts: str) -> str:
    return "+".join(parts)


FUNCS: dict[str, Any] = {
    "user": lambda k: {"a": "x", "name": "World"}.get(k, ""),
    "upper": lambda s: s.upper(),
    "lower": lambda s: s.lower(),
    "replace": lambda old, new, n, s: s.replace(old, new, n),
    "cat": lambda a, b: f"{a}{b}",
    "join": _join,
    "num": lambda: 42,
    "yes": lambda: True,
    "fail": _fail,
    "boom": _boom,
    "echo": lambda v: v,
    "kind": lambda v: type(v).__name__,
    "ts": lambda: "1700000000",
}


def r(text: str, data: Any = None, funcs: dict[str, Any] | None = None) -> str:
    return render(text, FUNCS if funcs is None else funcs, data)


# ------------------------------------------------------------------ text and fast path


def test_text_without_actions_is_returned_unchanged() -> None:
    text = "echo hello } { world"
    assert render(text, {}) is text
    assert render("", {}) == ""
    assert render_until_stable(text, {}) is text


def test_single_braces_are_text() -> None:
    assert r("a { b } c }} d") == "a { b } c }} d"


def test_has_actions() -> None:
    assert parse("plain").has_actions is False
    assert parse("").has_actions is False
    assert parse("{{ ts }}").has_actions is True
    assert parse("a {{/* c */}} b").has_actions is True
    assert parse("a {{- /* c */}}").has_actions is True


def test_parse_is_cached() -> None:
    assert parse("{{ ts }} cached") is parse("{{ ts }} cached")


# ------------------------------------------------------------------ literals and calls


@pytest.mark.parametrize(
    "text, out",
    [
        ("{{ user `a` }}", "x"),
        ('{{ user "a" }}', "x"),
        ("Hello {{user `name`}}!", "Hello World!"),
        ("{{ `raw \\n {{ }} ` }}", "raw \\n {{ }} "),
        ('{{ "q\\"uote" }}', 'q"uote'),
        ('{{ "back\\\\slash" }}', "back\\slash"),
        ('{{ "a\\nb\\tc" }}', "a\nb\tc"),
        ('{{ "\\x41\\101\\u00e9\\U0001F600" }}', "AA\u00e9\U0001f600"),
        ('{{ "}}" }}', "}}"),
        ('{{ "{{" }}', "{{"),
        ("{{ 42 }}", "42"),
        ("{{ -7 }}", "-7"),
        ("{{ +7 }}", "7"),
        ("{{ 0x1F }}", "31"),
        ("{{ 017 }}", "15"),
        ("{{ 0o17 }}", "15"),
        ("{{ 0b101 }}", "5"),
        ("{{ 1_000 }}", "1000"),
        ("{{ 1.5 }}", "1.5"),
        ("{{ 1e6 }}", "1e+06"),
        ("{{ 123456.0 }}", "123456"),
        ("{{ .5 }}", "0.5"),
        ("{{ 'a' }}", "97"),
        ("{{ '\\n' }}", "10"),
        ("{{ true }}|{{ false }}", "true|false"),
        ("{{ num }}", "42"),
        ("{{ yes }}", "true"),
        ("{{ cat `a` `b` }}", "ab"),
        ("{{ cat `a` 1 }}", "a1"),
        (
            "{{ kind 1 }} {{ kind -1 }} {{ kind 1.5 }} {{ kind true }} {{ kind `s` }}",
            "int int float bool str",
        ),
        ("{{ join }}|{{ join `a` `b` `c` }}", "|a+b+c"),
        ("{{ join\t`a`\n`b` }}", "a+b"),
    ],
)
def test_literals_and_calls(text: str, out: str) -> None:
    assert r(text) == out


# ------------------------------------------------------------------ pipelines / parens


@pytest.mark.parametrize(
    "text, out",
    [
        ("{{ user `a` | upper }}", "X"),
        ("{{ `A-B-C` | lower | replace `-` `_` 1 }}", "a_b-c"),
        ("{{ `x` | cat `y` }}", "yx"),
        ("{{ `s` | join `a` `b` }}", "a+b+s"),
        ("{{ upper (user `a`) }}", "X"),
        ("{{ cat (user `a`) (upper `y`) }}", "xY"),
        ("{{ (cat `a` `b`) }}", "ab"),
        ("{{ cat (cat (cat `a` `b`) `c`) `d` }}", "abcd"),
        ("{{ (user `a`) | upper }}", "X"),
        ("{{ .Name | upper }}", "BOB"),
        ("{{ . | echo }}", "map[Name:bob]"),
        ("{{ upper ts }}", "1700000000"),
        ("{{ `v` | echo | echo }}", "v"),
    ],
)
def test_pipelines(text: str, out: str) -> None:
    assert r(text, {"Name": "bob"}) == out


# ------------------------------------------------------------------ data access


@dataclass
class Obj:
    Path: str
    Count: int = 3

    def Greet(self, who: str) -> str:  # noqa: N802 - Go-style method name
        return f"hi {who}"


@pytest.mark.parametrize(
    "text, data, out",
    [
        ("{{ .Key }}", {"Key": "v"}, "v"),
        ("{{.Key}}", {"Key": "v"}, "v"),
        ("{{ .Missing }}", {"Key": "v"}, "<no value>"),
        ("{{ .Missing }}", None, "<no value>"),
        ("{{ .A.B }}", {"A": {"B": "deep"}}, "deep"),
        ("{{ .A.B.C }}", {"A": {"B": {"C": 1}}}, "1"),
        ("{{ .A.Missing }}", {"A": {}}, "<no value>"),
        ("{{ .Missing.B }}", {}, "<no value>"),
        ("{{ . }}", None, "<no value>"),
        ("{{ . }}", {"a": 1, "b": "x"}, "map[a:1 b:x]"),
        ("{{ . }}", "just a string", "just a string"),
        ("{{ .L }}", {"L": ["a", 1, True]}, "[a 1 true]"),
        ("{{ .N }}", {"N": None}, "<nil>"),
        ("{{ .F }}", {"F": 2.0}, "2"),
        ("{{ .Path }}-{{ .Count }}", Obj("/p"), "/p-3"),
        ('{{ .Greet "bob" }}', Obj("/p"), "hi bob"),
        ("{{ $ }}", {"k": "v"}, "map[k:v]"),
        ("{{ $.k }}", {"k": "v"}, "v"),
        ("{{ (echo .A).B }}", {"A": {"B": "chained"}}, "chained"),
        ("{{ .Port }}", {"Port": 22}, "22"),
    ],
)
def test_fields(text: str, data: Any, out: str) -> None:
    assert r(text, data) == out


def test_field_errors() -> None:
    with pytest.raises(RenderError, match="can't evaluate field B in type string"):
        r("{{ .A.B }}", {"A": "str"})
    with pytest.raises(RenderError, match="can't evaluate field Nope in type Obj"):
        r("{{ .Nope }}", Obj("/p"))
    with pytest.raises(RenderError, match="can't evaluate field _private"):
        r("{{ ._private }}", Obj("/p"))
    with pytest.raises(RenderError, match="Key is not a method but has arguments"):
        r("{{ .Key 1 }}", {"Key": "v"})
    with pytest.raises(RenderError, match="Key is not a method but has arguments"):
        r("{{ `x` | .Key }}", {"Key": "v"})


def test_missing_value_passed_to_a_function_is_an_error() -> None:
    with pytest.raises(RenderError, match="invalid value; expected string") as info:
        r("{{ .Missing | upper }}", {})
    assert info.value.function == "upper"


# ------------------------------------------------------------------ trim markers and comments


@pytest.mark.parametrize(
    "text, out",
    [
        ("a  {{- `b` }}  c", "ab  c"),
        ("a  {{ `b` -}}  c", "a  bc"),
        ("a \n\t {{- `b` -}} \n\t c", "abc"),
        ("{{- `b` -}}", "b"),
        ("x {{-3}} y", "x -3 y"),
        ("x {{- 3 -}} y", "x3y"),
        ("x {{ 3 -}}\n\n y", "x 3y"),
        ("a {{/* comment */}} b", "a  b"),
        ("a {{- /* comment */ -}} b", "ab"),
        ("a {{- /* comment */}} b", "a b"),
        ("a {{/* multi\nline */ -}}   b", "a b"),
        ("{{/* {{ not parsed }} */}}ok", "ok"),
    ],
)
def test_trim_and_comments(text: str, out: str) -> None:
    assert r(text) == out


def test_left_trim_requires_space_after_dash() -> None:
    # "{{-`b`}}" is not a trim marker: Go lexes "-" then fails on the string
    with pytest.raises(TemplateSyntaxError, match="bad number syntax"):
        r("a {{-`b`}}")


# ------------------------------------------------------------------ control structures


@pytest.mark.parametrize(
    "text, data, out",
    [
        ("{{if .X}}yes{{end}}", {"X": 1}, "yes"),
        ("{{if .X}}yes{{end}}", {"X": 0}, ""),
        ("{{if .X}}yes{{else}}no{{end}}", {}, "no"),
        ("{{if .X}}a{{else if .Y}}b{{else}}c{{end}}", {"Y": "y"}, "b"),
        ("{{if .X}}a{{else if .Y}}b{{else}}c{{end}}", {}, "c"),
        ("{{if eq .X `v`}}same{{end}}", {"X": "v"}, "same"),
        ("{{if and .X .Y}}both{{else}}not{{end}}", {"X": 1, "Y": ""}, "not"),
        ("{{with .A}}{{.B}}{{end}}", {"A": {"B": "bee"}}, "bee"),
        ("{{with .A}}{{.B}}{{else}}none{{end}}", {"A": {}}, "none"),
        ("{{with $x := .A}}{{$x}}{{end}}", {"A": "val"}, "val"),
        ("{{range .L}}[{{.}}]{{end}}", {"L": ["a", "b"]}, "[a][b]"),
        ("{{range $i, $e := .L}}{{$i}}={{$e}} {{end}}", {"L": ["a", "b"]}, "0=a 1=b "),
        ("{{range $e := .L}}{{$e}}{{end}}", {"L": [1, 2]}, "12"),
        ("{{range $k, $v := .M}}{{$k}}:{{$v}};{{end}}", {"M": {"b": 2, "a": 1}}, "a:1;b:2;"),
        ("{{range .L}}x{{else}}empty{{end}}", {"L": []}, "empty"),
        ("{{range .Missing}}x{{else}}empty{{end}}", {}, "empty"),
        ("{{range 3}}{{.}}{{end}}", None, "012"),
        ("{{range .L}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}", {"L": [1, 2, 3]}, "1"),
        ("{{range .L}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", {"L": [1, 2, 3]}, "13"),
        ("{{range .L}}{{$.Top}}{{end}}", {"L": [1, 2], "Top": "T"}, "TT"),
        ("{{ $x := `a` }}{{ $x }}{{ $x = `b` }}{{ $x }}", None, "ab"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", None, "2"),
        ("{{ $x := user `a` | upper }}[{{ $x }}]", None, "[X]"),
    ],
)
def test_control_structures(text: str, data: Any, out: str) -> None:
    assert r(text, data) == out


def test_range_over_a_string_is_an_error() -> None:
    with pytest.raises(RenderError, match="range can't iterate over abc"):
        r("{{range .S}}{{end}}", {"S": "abc"})


# ------------------------------------------------------------------ Go built-in functions


@pytest.mark.parametrize(
    "text, data, out",
    [
        ("{{ and 1 0 }}|{{ and 1 2 }}|{{ or 0 `` `z` }}|{{ or 0 `` }}", None, "0|2|z|"),
        ("{{ and false (fail `not evaluated`) }}", None, "false"),
        ("{{ or true (fail `not evaluated`) }}", None, "true"),
        ("{{ not 0 }}|{{ not `x` }}|{{ not .Missing }}", {}, "true|false|true"),
        (
            "{{ eq 1 1 }}|{{ eq `a` `b` `a` }}|{{ ne 1 2 }}|{{ eq .M nil }}",
            {},
            "true|true|true|true",
        ),
        ("{{ lt 1 2 }}|{{ le 2 2 }}|{{ gt `b` `a` }}|{{ ge 1 2 }}", None, "true|true|true|false"),
        ("{{ len `h\u00e9` }}|{{ len .L }}|{{ len .M }}", {"L": [1, 2], "M": {"a": 1}}, "3|2|1"),
        (
            "{{ index .L 1 }}|{{ index .M `a` }}|{{ index .M `zz` }}",
            {"L": [1, 2], "M": {"a": 1}},
            "2|1|<no value>",
        ),
        ("{{ index .N `a` 0 }}", {"N": {"a": ["deep"]}}, "deep"),
        ("{{ slice `abcdef` 1 3 }}|{{ slice .L 1 }}", {"L": [1, 2, 3]}, "bc|[2 3]"),
        ('{{ print 1 2 "a" 3 "b" "c" }}', None, "1 2a3bc"),
        ('{{ println "a" 1 }}', None, "a 1\n"),
        ('{{ printf "%s-%d-%v-%q" "a" 3 true "q" }}', None, 'a-3-true-"q"'),
        (
            '{{ printf "%5.2f|%-4s|%04d|%x|%X|%t|%%" 3.14159 "x" 7 255 "hi" false }}',
            None,
            " 3.14|x   |0007|ff|6869|false|%",
        ),
        ('{{ printf "%d %s" "x" }}', None, "%!d(string=x) %!s(MISSING)"),
        ('{{ printf "a" 1 }}', None, "a%!(EXTRA int=1)"),
        ('{{ "x" | printf "%s!" }}', None, "x!"),
        ("{{ html \"<a href='x'>&</a>\" }}", None, "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"),
        ('{{ js "it\'s <b>" }}', None, "it\\'s \\u003Cb\\u003E"),
        ('{{ urlquery "a b&c/d" }}', None, "a+b%26c%2Fd"),
        ("{{ call .F `x` }}", {"F": lambda s: s * 2}, "xx"),
    ],
)
def test_builtins(text: str, data: Any, out: str) -> None:
    assert r(text, data) == out


def test_caller_functions_override_builtins() -> None:
    assert render("{{ len `abc` }}", {"len": lambda s: "custom"}) == "custom"


def test_builtin_errors() -> None:
    with pytest.raises(RenderError, match="incompatible types for comparison"):
        r("{{ eq 1 `1` }}")
    with pytest.raises(RenderError, match="index out of range: 5"):
        r("{{ index .L 5 }}", {"L": [1]})
    with pytest.raises(RenderError, match="wrong number of args for and: want at least 1 got 0"):
        r("{{ and }}")
    with pytest.raises(RenderError, match="wrong number of args for not: want 1 got 2"):
        r("{{ not 1 2 }}")


# ------------------------------------------------------------------ syntax errors


@pytest.mark.parametrize(
    "text, message, offset",
    [
        ("{{ nope }}", 'function "nope" not defined', 3),
        ("ab{{ user `a` | nope 1 }}", 'function "nope" not defined', 16),
        ("{{", "unclosed action", 0),
        ("x {{ user `a`", "unclosed action", 2),
        ('{{ "abc }}', "unterminated quoted string", 3),
        ("{{ `abc }}", "unterminated raw quoted string", 3),
        ("{{ 'a }}", "unterminated character constant", 3),
        ("{{/* x }}", "unclosed comment", 0),
        ("{{/* x */ }}", "comment ends before closing delimiter", 9),
        ("{{ /* x */ }}", 'unexpected "/" in operand', 3),
        ("{{}}", "missing value for command", 2),
        ("{{   }}", "missing value for command", 5),
        ("{{ (user `a` }}", "unclosed left paren", 13),
        ("{{ ) }}", "unexpected right paren", 3),
        ("{{ user`a` }}", "bad character U+0060 '`'", 7),
        ("{{ .Foo-bar }}", "bad character U+002D '-'", 7),
        ("{{ 12a }}", 'bad number syntax: "12a"', 3),
        ("{{ - }}", 'bad number syntax: "-"', 3),
        ("{{ % }}", 'unexpected "%" in operand', 3),
        ('{{ "\\q" }}', "invalid syntax in quoted string", 3),
        ("{{if 1}}x", "unexpected EOF: {{if}} has no matching {{end}}", 2),
        ("{{range .L}}x{{else}}y", "unexpected EOF: {{range}} has no matching {{end}}", 2),
        ("{{if 1}}a{{else}}b{{else}}c{{end}}", "expected end; found {{else}}", 20),
        ("x{{end}}", "unexpected {{end}}", 3),
        ("{{else}}", "unexpected {{else}}", 2),
        ("{{if}}{{end}}", "missing value for if", 4),
        ("{{ $x }}", 'undefined variable "$x"', 3),
        ("{{ $x = 1 }}", 'undefined variable "$x"', 3),
        ("{{if true}}{{ $y := 1 }}{{end}}{{ $y }}", 'undefined variable "$y"', 34),
        ('{{ define "x" }}{{end}}', "'define' is not supported", 3),
        ('{{ template "x" }}', "'template' is not supported", 3),
        ('{{ block "x" . }}{{end}}', "'block' is not supported", 3),
        ("{{break}}", "{{break}} outside {{range}}", 2),
        ('{{ "a" | "b" }}', "non executable command in pipeline stage 2", 9),
        ("{{ user `a` | }}", "missing command after |", 12),
        ('{{ cat "a""b" }}', 'unexpected "b" in operand', 10),
        ("{{ user `a` end }}", "unexpected <end> in operand", 12),
        ('{{ "x".Foo }}', "unexpected . after term '\"x\"'", 6),
        ("{{ $a, $b := 1 }}", "too many declarations in command", 5),
        ("{{ : }}", "expected :=", 3),
    ],
)
def test_syntax_errors(text: str, message: str, offset: int) -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        r(text)
    assert info.value.message == message
    assert str(info.value) == message
    assert info.value.offset == offset
    assert isinstance(info.value, ValueError)


def test_syntax_error_line_and_column() -> None:
    with pytest.raises(TemplateSyntaxError) as info:
        parse("line one\nline {{ two")
    assert (info.value.line, info.value.column) == (2, 6)


# ------------------------------------------------------------------ execution errors


def test_function_value_error_becomes_render_error() -> None:
    with pytest.raises(RenderError) as info:
        r("ab {{ fail `went wrong` }}")
    assert str(info.value) == "went wrong"
    assert info.value.function == "fail"
    assert info.value.offset == 6


def test_render_error_subclass_is_preserved() -> None:
    with pytest.raises(Boom) as info:
        r("{{ boom }}")
    assert str(info.value) == "custom failure"
    assert info.value.offset == 3
    assert info.value.function == "boom"


def test_wrong_number_of_args() -> None:
    with pytest.raises(RenderError, match="wrong number of args for user: want 1 got 0"):
        r("{{ user }}")
    with pytest.raises(RenderError, match="wrong number of args for cat: want 2 got 3"):
        r("{{ `c` | cat `a` `b` }}")


def test_other_function_exceptions_become_render_errors() -> None:
    # like Go, which turns a panic inside a template function into an error
    with pytest.raises(RenderError, match="error calling upper: .*upper"):
        r("{{ upper 3 }}")
    with pytest.raises(RenderError, match="error calling strup: descriptor"):
        render("{{ strup 3 }}", {"strup": str.upper})


def test_arguments_to_non_functions() -> None:
    with pytest.raises(RenderError, match="can't give argument to non-function 1"):
        r("{{ 1 2 }}")
    with pytest.raises(RenderError, match="nil is not a command"):
        r("{{ nil }}")


def test_unknown_function_at_render_time_is_a_syntax_error() -> None:
    # Go reports undefined functions while parsing, even in branches never taken
    with pytest.raises(TemplateSyntaxError, match='function "other" not defined'):
        render("{{ if false }}{{ other }}{{ end }}", {})


# ------------------------------------------------------------------ introspection and check


def test_function_and_field_names() -> None:
    t = parse(
        "{{ user `a` | upper }} {{ .Path }} {{ .A.B }} {{ $.C }} {{ with .D }}{{ .E }}{{ end }}"
    )
    assert t.function_names() == {"user", "upper"}
    assert t.field_names() == {"Path", "A", "C", "D"}
    assert parse("{{ printf `%s` (lower .X) }}").function_names() == {"printf", "lower"}
    assert parse("no actions").function_names() == set()


def test_check() -> None:
    assert check("plain", []) == []
    assert check("{{ user `a` }}", ["user"]) == []
    assert check("{{ printf `%d` 1 | len }}", []) == []
    assert check("{{ a }} {{ b }} {{ a }} {{ user `x` }}", ["user"]) == [
        'function "a" not defined',
        'function "b" not defined',
    ]
    assert check("{{ user `a`", ["user"]) == ["unclosed action"]
    assert BUILTIN_NAMES >= {"and", "or", "not", "printf", "eq", "index", "len"}


# ------------------------------------------------------------------ render_until_stable


def test_render_until_stable_reinterprets_output() -> None:
    funcs = {"build": lambda key: "{{." + key + "}}"}
    assert render("{{ build `ID` }}", funcs, {"ID": "i-1"}) == "{{.ID}}"
    assert render_until_stable("{{ build `ID` }}", funcs, {"ID": "i-1"}) == "i-1"


def test_render_until_stable_limit() -> None:
    data = {"X": "{{ .X }}x"}
    with pytest.raises(RenderError, match="still changing after 5 renders"):
        render_until_stable("{{ .X }}", {}, data, limit=5)


# ------------------------------------------------------------------ protect_fields


def test_protect_fields_keeps_data_actions_verbatim() -> None:
    text = "{{ .Foo }}-{{.Bar}}-{{ user `a` }}-{{ .Foo }}"
    hidden, restore = protect_fields(text)
    assert "{{ .Foo }}" not in hidden and "{{.Bar}}" not in hidden
    assert restore(render(hidden, FUNCS, None)) == "{{ .Foo }}-{{.Bar}}-x-{{ .Foo }}"


def test_protect_fields_packer_regex_details() -> None:
    # one optional whitespace only; a pipeline starting with a field is protected whole
    hidden, restore = protect_fields("{{  .Two }}{{ .A | lower }}")
    assert hidden.startswith("{{  .Two }}")
    assert "{{ .A | lower }}" not in hidden
    assert restore(hidden) == "{{  .Two }}{{ .A | lower }}"


def test_protect_fields_without_fields() -> None:
    hidden, restore = protect_fields("{{ user `a` }}")
    assert hidden == "{{ user `a` }}"
    assert restore("anything") == "anything"
    assert protect_fields("plain")[0] == "plain"


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(
    "value, text",
    [
        ("s", "s"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-12, "-12"),
        (1.5, "1.5"),
        (2.0, "2"),
        (100000.0, "100000"),
        (1000000.0, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (float("inf"), "+Inf"),
        (None, "<nil>"),
        (NO_VALUE, "<no value>"),
        ([1, "a"], "[1 a]"),
        ({"b": 1, "a": [2]}, "map[a:[2] b:1]"),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text


def test_truth() -> None:
    for v in (False, 0, 0.0, "", [], {}, None, NO_VALUE):
        assert truth(v) is False
    for v in (True, 1, -1, 0.5, "x", [0], {"a": 0}, object()):
        assert truth(v) is True


def test_module_exports() -> None:
    for name in gotmpl.__all__:
        assert hasattr(gotmpl, name)
