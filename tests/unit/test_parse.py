"""Tests for backend.template.parse: template text -> Node trees with exact locations."""

from __future__ import annotations

import codecs
import importlib
import json
import random
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kiln.backend.template.errors import TemplateError
from kiln.backend.template.parse import (
    MAX_BYTES,
    MAX_DEPTH,
    load_node,
    parse_json,
    parse_json_value,
    parse_yaml,
    read_template_text,
)
from kiln.backend.template.source import Node

TEMPLATE = """{
  "variables": {"region": "us-east-1"},
  "builders": [
    {
      "type": "docker",
      "image": "ubuntu:22.04",
      "commit": true
    },
    {"type": "null", "ssh_port": 22}
  ],
  "provisioners": [{"type": "shell", "inline": ["echo hi", "exit 0"]}]
}
"""


def raises(fn, *args) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        fn(*args)
    return info.value


def one_problem(fn, *args):
    err = raises(fn, *args)
    assert len(err.problems) == 1, err.format()
    return err.problems[0]


def walk(node: Node):
    yield node
    if node.is_map:
        for _, child in node.items():
            yield from walk(child)
    elif node.is_list:
        for child in node.value:
            yield from walk(child)


def char_at(text: str, line: int, col: int) -> str:
    return text.split("\n")[line - 1][col - 1]


# ----------------------------------------------------------------------------------------
# JSON: values, locations, paths


def test_json_values_and_types():
    node = parse_json(TEMPLATE, "t.json")
    assert node.to_plain() == json.loads(TEMPLATE)
    b0 = node.get("builders").value[0]
    assert b0.get("commit").value is True
    assert isinstance(node.get("builders").value[1].get("ssh_port").value, int)


def test_json_value_locations_and_paths():
    node = parse_json(TEMPLATE, "t.json")
    assert (node.loc.file, node.loc.line, node.loc.col, node.loc.path) == ("t.json", 1, 1, "")
    builders = node.get("builders")
    assert (builders.loc.line, builders.loc.col, builders.loc.path) == (3, 15, "builders")
    b0 = builders.value[0]
    assert (b0.loc.line, b0.loc.col, b0.loc.path) == (4, 5, "builders[0]")
    image = b0.get("image")
    assert (image.loc.line, image.loc.col, image.loc.path) == (6, 16, "builders[0].image")
    port = builders.value[1].get("ssh_port")
    assert (port.loc.line, port.loc.col, port.loc.path) == (9, 34, "builders[1].ssh_port")
    inline1 = node.get("provisioners").value[0].get("inline").value[1]
    assert inline1.loc.path == "provisioners[0].inline[1]"
    assert (inline1.loc.line, inline1.loc.col) == (11, 60)
    assert inline1.value == "exit 0"


def test_json_key_locations():
    node = parse_json(TEMPLATE, "t.json")
    kl = node.key_locs["builders"]
    assert (kl.line, kl.col, kl.path) == (3, 3, "builders")
    b1 = node.get("builders").value[1]
    kl = b1.key_locs["ssh_port"]
    assert (kl.line, kl.col, kl.path) == (9, 22, "builders[1].ssh_port")
    assert b1.key_loc("ssh_port") == kl


def test_every_json_location_points_at_its_value():
    for node in walk(parse_json(TEMPLATE, "t.json")):
        first = char_at(TEMPLATE, node.loc.line, node.loc.col)
        expected = json.dumps(node.to_plain())[0]
        assert first == expected, node
        if node.is_map:
            for key, kloc in node.key_locs.items():
                assert TEMPLATE.split("\n")[kloc.line - 1][kloc.col - 1 :].startswith(
                    json.dumps(key)
                )


def test_json_crlf_tabs_trailing_whitespace():
    text = '{\r\n\t"a": 1,   \r\n\r\n\t"b":\t[true,\tnull]  \r\n}\r\n\r\n  \t'
    node = parse_json(text, "t.json")
    assert node.to_plain() == {"a": 1, "b": [True, None]}
    assert (node.get("a").loc.line, node.get("a").loc.col) == (2, 7)
    assert (node.key_locs["b"].line, node.key_locs["b"].col) == (4, 2)
    assert (node.get("b").value[1].loc.line, node.get("b").value[1].loc.col) == (4, 14)


def test_json_columns_count_characters():
    node = parse_json('{"\u00e9\U0001f600": "\u00fc", "b": 2}', "t.json")
    assert node.get("b").loc.col == 18
    assert node.key_locs["b"].col == 13


def test_json_string_escapes():
    text = r'{"s": "q\" b\\ s\/ \b\f\n\r\t \u00e9 \u20AC \ud83d\ude00 end"}'
    assert (
        parse_json(text, "t").get("s").value == 'q" b\\ s/ \b\f\n\r\t \u00e9 \u20ac \U0001f600 end'
    )
    # Lone surrogates become U+FFFD, as in Go.
    assert parse_json(r'{"s": "\ud800x\udc00"}', "t").get("s").value == "\ufffdx\ufffd"
    assert parse_json(r'{"s": "\ud800\u0041"}', "t").get("s").value == "\ufffdA"
    # Escaped keys
    assert list(parse_json(r'{"a\tb": 1}', "t").value) == ["a\tb"]


@pytest.mark.parametrize(
    "literal, value",
    [
        ("0", 0),
        ("-0", 0),
        ("42", 42),
        ("-17", -17),
        ("12345678901234567890123", 12345678901234567890123),
        ("1.5", 1.5),
        ("1.0", 1.0),
        ("-2.5e3", -2500.0),
        ("1E2", 100.0),
        ("1e-2", 0.01),
    ],
)
def test_json_numbers(literal, value):
    got = parse_json('{"n": ' + literal + "}", "t").get("n").value
    assert got == value
    assert type(got) is type(value)


def test_json_bom_in_text_is_ignored():
    node = parse_json('\ufeff{"a": 1}', "t")
    assert node.get("a").loc.col == 7


def test_parse_json_value_allows_any_top_level():
    assert parse_json_value("[1, 2]", "t").to_plain() == [1, 2]
    assert parse_json_value(' "x" ', "t").to_plain() == "x"


# ----------------------------------------------------------------------------------------
# JSON: errors


@pytest.mark.parametrize(
    "text, message, line, col",
    [
        ('{"a": 1 "b": 2}', "invalid JSON: expected ',' or '}' after object member", 1, 9),
        ('{"a": 1,\n "b": 2\n "c": 3}', "expected ',' or '}' after object member", 3, 2),
        ('{"a": [1 2]}', "invalid JSON: expected ',' or ']' after list element", 1, 10),
        ('{"a": [1, 2}', "expected ',' or ']' after list element, found '}'", 1, 12),
        ('{"a" 1}', "invalid JSON: expected ':' after object key", 1, 6),
        ('{"a": 1,}', "trailing comma before '}'", 1, 8),
        ('{"a": [1,]}', "trailing comma before ']'", 1, 9),
        ('{"a": }', "invalid JSON: expected a value, found '}'", 1, 7),
        ("{'a': 1}", "JSON strings use double quotes", 1, 2),
        ("{a: 1}", "expected a string key in double quotes, found 'a'", 1, 2),
        ("{true: 1}", "expected a string key in double quotes, found 'true'\n", 1, 2),
        ('{"a": True}', "found 'True' (JSON booleans are lowercase", 1, 7),
        ('{"a": NaN}', "JSON has no NaN", 1, 7),
        ('{"a": 1} // note', "trailing data after the JSON value", 1, 10),
        ('{"a": 1}\n\n{"b": 2}', "invalid JSON: trailing data after the JSON value", 3, 1),
        ('{"a": // x\n1}', "comments are not allowed in JSON", 1, 7),
        ('{"a": 1', "invalid JSON: unexpected end of file", 1, 8),
        ('{\n  "a": [\n    1,\n\n', "'[' at line 2, column 8 is never closed", 3, 7),
        ('{"a": "abc', "unterminated string", 1, 7),
        ('{"a": "abc\n"}', "line break inside a string", 1, 11),
        ('{"a": "a\tb"}', "control character U+0009 inside a string must be escaped", 1, 9),
        ('{"a": "\\x"}', "invalid escape sequence '\\x'", 1, 8),
        ('{"a": "\\u12G4"}', "invalid \\u escape", 1, 8),
        ('{"a": 01}', "invalid number '01'", 1, 7),
        ('{"a": 1.}', "invalid number '1.'", 1, 7),
        ('{"a": -}', "invalid number '-'", 1, 7),
        ('{"a": 1e}', "invalid number '1e'", 1, 7),
        ('{"a": 0x10}', "invalid number '0x10'", 1, 7),
        ('{"a": 1e999}', "number out of range", 1, 7),
        ('{"a": ' + "9" * 5000 + "}", "number has too many digits", 1, 7),
        ('{"a": tru}', "expected a value, found 'tru'", 1, 7),
        ('{"a": \x01}', "expected a value, found U+0001", 1, 7),
        ("", "unexpected end of file (the file is empty)", 1, 1),
        ("  \n\t\n", "unexpected end of file (the file is empty)", 1, 1),
        ("[1, 2]", "a template must be a JSON object at the top level, not a list", 1, 1),
        ('\n "text"', "at the top level, not a string", 2, 2),
        ("null", "at the top level, not null", 1, 1),
        ("3", "at the top level, not an integer", 1, 1),
    ],
)
def test_json_syntax_errors(text, message, line, col):
    p = one_problem(parse_json, text, "bad.json")
    assert message in p.message + "\n"
    assert (p.loc.file, p.loc.line, p.loc.col) == ("bad.json", line, col)
    assert p.severity == "error"
    assert p.snippet.endswith("^")
    assert f"{line:5d}: " in p.snippet
    caret_line = p.snippet.split("\n")[-1]
    assert len(caret_line) == 7 + col  # caret under the column


def test_json_error_snippet_exact():
    text = '{\n  "a": 1\n  "b": 2\n}\n'
    p = one_problem(parse_json, text, "t.json")
    assert p.message == "invalid JSON: expected ',' or '}' after object member, found '\"'"
    assert p.snippet == '    2:   "a": 1\n    3:   "b": 2\n         ^'
    assert str(p.loc) == "t.json:3:3"
    err = raises(parse_json, text, "t.json")
    assert err.format().startswith("t.json:3:3: invalid JSON: expected ")


def test_json_error_path_names_enclosing_value():
    p = one_problem(parse_json, '{"builders": [{"type": "x" "y": 1}]}', "t")
    assert p.loc.path == "builders[0]"


def test_json_error_snippet_with_crlf_and_odd_line_breaks():
    text = '{\r\n"a": "x\u2028y",\r\n"b" 1}'
    p = one_problem(parse_json, text, "t")
    assert (p.loc.line, p.loc.col) == (3, 5)
    assert p.snippet.split("\n")[0] == '    2: "a": "x y",'
    assert p.snippet.split("\n")[1] == '    3: "b" 1}'


def test_json_error_snippet_long_line_is_windowed():
    text = '{"a": "' + "x" * 1000 + '" "b": 1}'
    p = one_problem(parse_json, text, "t")
    assert p.loc.col == 1010
    shown, caret = p.snippet.split("\n")
    assert shown.startswith("    1: ...")
    assert shown[len(caret) - 1] == '"'


def test_json_duplicate_keys_all_reported():
    text = (
        "{\n"
        '  "a": 1,\n'
        '  "builders": [\n'
        '    {"type": "x",\n'
        '     "type": "y"},\n'
        '    {"deep": {"k": 1, "k": 2, "k": 3}}\n'
        "  ],\n"
        '  "a": 2\n'
        "}\n"
    )
    err = raises(parse_json, text, "t.json")
    got = [(p.message, p.loc.line, p.loc.col, p.loc.path) for p in err.problems]
    assert got == [
        ('duplicate key "type" (first defined at line 4)', 5, 6, "builders[0].type"),
        ('duplicate key "k" (first defined at line 6)', 6, 23, "builders[1].deep.k"),
        ('duplicate key "k" (first defined at line 6)', 6, 31, "builders[1].deep.k"),
        ('duplicate key "a" (first defined at line 2)', 8, 3, "a"),
    ]
    assert err.problems[0].snippet.endswith("\n" + " " * 12 + "^")


def test_json_syntax_error_wins_over_duplicates():
    p = one_problem(parse_json, '{"a": 1, "a": 2,}', "t")
    assert "trailing comma" in p.message


def test_json_duplicate_keys_with_escapes_compare_decoded():
    err = raises(parse_json, '{"a": 1, "\\u0061": 2}', "t")
    assert err.problems[0].message == 'duplicate key "a" (first defined at line 1)'


def test_json_depth_limit():
    ok = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert parse_json('{"a": ' + ok + "}", "t").get("a").is_list
    p = one_problem(parse_json, '{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}", "t")
    assert "nesting is too deep" in p.message
    assert p.loc.col == 6 + MAX_DEPTH


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_json_depth_10000(opener):
    p = one_problem(parse_json, '{"x": ' + opener * 10000, "t")
    assert "nesting is too deep (more than 256 levels)" in p.message


def test_json_deep_file(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 10000 + "]" * 10000)
    p = one_problem(load_node, str(path))
    assert "nesting is too deep" in p.message and p.loc.file == str(path)


def test_json_speed_200kb():
    rnd = random.Random(7)
    tpl = {
        "variables": {f"v{i}": f"value {i}" for i in range(50)},
        "builders": [
            {
                "type": "docker",
                "image": f"ubuntu:{i}",
                "port": i,
                "ratio": i / 3,
                "tags": {f"k{j}": f'v\u00e9{j} \\ "q"' for j in range(8)},
                "flags": [True, False, None],
            }
            for i in range(60)
        ],
        "provisioners": [
            {"type": "shell", "inline": [f"echo {rnd.random()} && step {j}" for j in range(10)]}
            for _ in range(400)
        ],
    }
    text = json.dumps(tpl, indent=2)
    assert len(text) > 200_000
    best = min(_timed(parse_json, text) for _ in range(3))
    assert best < 0.25  # ~30 ms on a dev machine; generous for slow CI
    assert parse_json(text, "t").to_plain() == tpl


def _timed(fn, text):
    t0 = time.perf_counter()
    fn(text, "t")
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------
# Reading files


def test_read_plain_and_bom(tmp_path):
    p = tmp_path / "t.json"
    p.write_bytes(codecs.BOM_UTF8 + b'{"a": "\xc3\xa9"}')
    assert read_template_text(str(p)) == '{"a": "\u00e9"}'
    node = load_node(str(p))
    assert node.get("a").value == "\u00e9"
    assert (node.get("a").loc.line, node.get("a").loc.col) == (1, 7)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_read_utf16_with_bom(tmp_path, codec):
    p = tmp_path / "t.json"
    body = '{"a": "\u00e9\U0001f600"}\n'
    bom = {"utf-16": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE, "utf-32": b""}[codec]
    p.write_bytes(bom + body.encode(codec if codec != "utf-16" else "utf-16-le"))
    assert read_template_text(str(p)) == body


def test_read_utf16_without_bom(tmp_path):
    p = tmp_path / "t.json"
    p.write_bytes('{"a": 1}'.encode("utf-16-le"))
    p1 = one_problem(read_template_text, str(p))
    assert "UTF-16 text without a byte-order mark" in p1.message


def test_read_invalid_utf8(tmp_path):
    p = tmp_path / "t.json"
    p.write_bytes(b'{\n  "a": "caf\xe9",\n  "b": 1\n}\n')
    prob = one_problem(read_template_text, str(p))
    assert (prob.loc.file, prob.loc.line, prob.loc.col) == (str(p), 2, 12)
    assert "invalid UTF-8 at line 2, column 12 (byte offset 13: 0xe9" in prob.message
    assert prob.snippet.endswith(" " * 18 + "^")
    assert "\ufffd" in prob.snippet


def test_read_binary_garbage(tmp_path):
    rnd = random.Random(3)
    p = tmp_path / "t.json"
    p.write_bytes(bytes(rnd.randrange(256) for _ in range(5000)))
    prob = one_problem(load_node, str(p))
    assert "not a text file" in prob.message
    assert prob.loc.file == str(p)


def test_read_nul_byte_in_text(tmp_path):
    p = tmp_path / "t.json"
    p.write_bytes(b'{\n  "a": 1,\x00\n  "b": 2\n}\n' + b" " * 200)
    prob = one_problem(read_template_text, str(p))
    assert "NUL byte at byte offset 11" in prob.message
    assert (prob.loc.line, prob.loc.col) == (2, 10)


def test_read_mostly_control_characters(tmp_path):
    p = tmp_path / "t.json"
    p.write_bytes(bytes(range(1, 9)) * 50)
    assert "not a text file" in one_problem(read_template_text, str(p)).message


def test_read_too_big(tmp_path):
    p = tmp_path / "big.json"
    with open(p, "wb") as f:
        f.write(b'{"a": "')
        f.write(b"x" * (20 * 1024 * 1024))
        f.write(b'"}')
    prob = one_problem(load_node, str(p))
    assert prob.message.startswith("template file is too large (20,971,529 bytes")
    assert f"{MAX_BYTES:,}" in prob.message
    assert "\n" not in prob.message
    assert prob.loc.file == str(p)


def test_read_exactly_max_bytes_is_fine(tmp_path):
    p = tmp_path / "edge.json"
    p.write_bytes(b'{"a": "' + b"x" * (MAX_BYTES - 9) + b'"}')
    assert len(read_template_text(str(p))) == MAX_BYTES


def test_read_missing_and_directory(tmp_path):
    assert "no such file" in one_problem(read_template_text, str(tmp_path / "nope.json")).message
    assert "directory" in one_problem(read_template_text, str(tmp_path)).message


def test_load_node_picks_format(tmp_path):
    for name in ("t.yaml", "t.YML", "t.yml"):
        p = tmp_path / name
        p.write_text("a: [1, 2]\n")
        assert load_node(str(p)).to_plain() == {"a": [1, 2]}
    for name in ("t.json", "t", "t.txt"):
        p = tmp_path / name
        p.write_text("a: [1, 2]\n")
        assert "invalid JSON" in one_problem(load_node, str(p)).message


def test_load_node_crlf_file(tmp_path):
    p = tmp_path / "t.json"
    p.write_bytes(TEMPLATE.replace("\n", "\r\n").encode())
    node = load_node(str(p))
    port = node.get("builders").value[1].get("ssh_port")
    assert (port.loc.file, port.loc.line, port.loc.col) == (str(p), 9, 34)


# ----------------------------------------------------------------------------------------
# YAML


parse_yaml_mod = importlib.import_module("kiln.backend.template.parse_yaml")


@pytest.fixture(params=["c", "pure"])
def yaml_loader(request, monkeypatch):
    """Run YAML tests with libyaml (when available) and with the pure-Python loader."""
    if request.param == "c":
        if not getattr(yaml, "__with_libyaml__", False):
            pytest.skip("libyaml not available")
        monkeypatch.setattr(parse_yaml_mod, "_YAML_LOADER", yaml.CSafeLoader)
    else:
        monkeypatch.setattr(parse_yaml_mod, "_YAML_LOADER", yaml.SafeLoader)
    return request.param


YAML_TEMPLATE = """\
variables:
  region: us-east-1
builders:
  - type: docker
    image: "ubuntu:22.04"
    commit: true
  - {type: "null", ssh_port: 22}
provisioners:
  - type: shell
    inline:
      - echo hi
      - exit 0
"""


def test_yaml_values_locations_paths(yaml_loader):
    node = parse_yaml(YAML_TEMPLATE, "t.yaml")
    assert node.to_plain() == json.loads(TEMPLATE)
    assert (node.loc.line, node.loc.col, node.loc.path) == (1, 1, "")
    b0 = node.get("builders").value[0]
    assert (b0.loc.line, b0.loc.col, b0.loc.path) == (4, 5, "builders[0]")
    image = b0.get("image")
    assert (image.loc.line, image.loc.col, image.loc.path) == (5, 12, "builders[0].image")
    port = node.get("builders").value[1].get("ssh_port")
    assert (port.loc.line, port.loc.col, port.loc.path) == (7, 30, "builders[1].ssh_port")
    kl = node.get("builders").value[1].key_locs["ssh_port"]
    assert (kl.line, kl.col, kl.path) == (7, 20, "builders[1].ssh_port")
    inline1 = node.get("provisioners").value[0].get("inline").value[1]
    assert (inline1.loc.line, inline1.loc.col, inline1.loc.path) == (
        12,
        9,
        "provisioners[0].inline[1]",
    )


def test_yaml_scalar_resolution(yaml_loader):
    text = (
        "i: 42\nneg: -3\nhex: 0x1F\nf: 1.5\nt: true\ny: yes\nn: null\ntilde: ~\nempty:\n"
        's: hello\nq: "42"\nstr_tag: !!str 12\nint_tag: !!int "7"\nts: 2001-12-14\n'
    )
    assert parse_yaml(text, "t").to_plain() == {
        "i": 42,
        "neg": -3,
        "hex": 31,
        "f": 1.5,
        "t": True,
        "y": True,
        "n": None,
        "tilde": None,
        "empty": None,
        "s": "hello",
        "q": "42",
        "str_tag": "12",
        "int_tag": 7,
        "ts": "2001-12-14",
    }


def test_yaml_columns_count_characters(yaml_loader):
    node = parse_yaml('\u00e9\U0001f600: "\u00fc"\nb: [\u00e9, x]\n', "t")
    assert node.get("\u00e9\U0001f600").loc.col == 5
    assert node.get("b").value[1].loc.col == 8


def test_yaml_crlf_and_bom(yaml_loader):
    node = parse_yaml("\ufeffa: 1\r\nb:\r\n  - x\r\n", "t")
    assert node.to_plain() == {"a": 1, "b": ["x"]}
    assert (node.get("b").value[0].loc.line, node.get("b").value[0].loc.col) == (3, 5)


def test_yaml_anchors_and_aliases(yaml_loader):
    text = (
        "common: &c\n"
        "  type: docker\n"
        "  tags: {a: 1}\n"
        "builders:\n"
        "  - *c\n"
        "  - name: two\n"
        "    <<: *c\n"
        "    tags: {b: 2}\n"
    )
    node = parse_yaml(text, "t.yaml")
    assert node.to_plain() == {
        "common": {"type": "docker", "tags": {"a": 1}},
        "builders": [
            {"type": "docker", "tags": {"a": 1}},
            {"type": "docker", "name": "two", "tags": {"b": 2}},
        ],
    }
    b0 = node.get("builders").value[0]
    assert (b0.loc.line, b0.loc.col, b0.loc.path) == (5, 5, "builders[0]")
    # the aliased content keeps the line it was written on, under the new path
    t0 = b0.get("type")
    assert (t0.loc.line, t0.loc.path) == (2, "builders[0].type")
    assert b0.key_locs["tags"].path == "builders[0].tags"
    assert b0.get("tags").get("a").loc.path == "builders[0].tags.a"
    b1 = node.get("builders").value[1]
    assert b1.get("type").loc.path == "builders[1].type"
    assert b1.get("tags").loc.line == 8
    # copies are independent of the anchored original
    assert b0.get("type") is not node.get("common").get("type")


def test_yaml_alias_scalar_and_list_merge(yaml_loader):
    text = "a: &x hello\nb: *x\nm1: &m1 {p: 1, q: 1}\nm2: &m2 {q: 2, r: 2}\nc:\n  <<: [*m1, *m2]\n"
    node = parse_yaml(text, "t")
    assert node.get("b").value == "hello"
    assert (node.get("b").loc.line, node.get("b").loc.col) == (2, 4)
    assert node.get("c").to_plain() == {"p": 1, "q": 1, "r": 2}


def test_yaml_duplicate_keys_at_depth(yaml_loader):
    text = "a: 1\nb:\n  - c: 1\n    d: 2\n    c: 3\n  - {e: 1, e: 2}\na: 9\n"
    err = raises(parse_yaml, text, "t.yaml")
    got = [(p.message, p.loc.line, p.loc.col, p.loc.path) for p in err.problems]
    assert got == [
        ('duplicate key "c" (first defined at line 3)', 5, 5, "b[0].c"),
        ('duplicate key "e" (first defined at line 6)', 6, 12, "b[1].e"),
        ('duplicate key "a" (first defined at line 1)', 7, 1, "a"),
    ]
    assert err.problems[0].snippet == "    4:     d: 2\n    5:     c: 3\n           ^"


@pytest.mark.parametrize(
    "text, what",
    [
        ("a: 1\n1: 2\n", 'an integer (write "1" in quotes)'),
        ("a: 1\ntrue: 2\n", "a boolean"),
        ("a: 1\n~: 2\n", "null"),
        ("a: 1\n? [x]\n: 2\n", "a list or mapping"),
    ],
)
def test_yaml_keys_must_be_strings(yaml_loader, text, what):
    p = one_problem(parse_yaml, text, "t")
    assert p.message.startswith("keys must be strings")
    assert what in p.message
    assert p.loc.line == 2


@pytest.mark.parametrize(
    "text, message, line, col",
    [
        ("a: [1, 2\n", "invalid YAML: ", 2, 1),
        ("a: b: c\n", "invalid YAML: mapping values are not allowed", 1, 5),
        ("a:\n\tb: 1\n", "YAML does not allow tabs for indentation", 2, 1),
        ('a: "x\n', "invalid YAML: ", 2, 1),
        ("a: 1\n---\nb: 2\n", "a template must be a single YAML document", 2, 1),
        ("- 1\n- 2\n", "a template must be a YAML mapping at the top level, not a list", 1, 1),
        ("just text\n", "at the top level, not a string", 1, 1),
        ("", "a template must be a YAML mapping at the top level; the file is empty", 1, 1),
        ("a: *nope\n", "undefined alias *nope", 1, 4),
        ("a: &x [1, *x]\n", "alias *x is used inside its own anchor", 1, 11),
        ("a: !!binary aGk=\n", "unsupported YAML tag !!binary", 1, 4),
        ("a: !custom {b: 1}\n", "unsupported YAML tag !custom", 1, 4),
        ("a: !!bool maybe\n", "cannot read 'maybe' as !!bool", 1, 4),
        ("a: 1\nb: x\x07y\n", "character U+0007 is not allowed in YAML", 2, 5),
        ("a: 1\nb:\n  <<: 3\n", "a YAML merge (<<) needs a mapping", 3, 7),
    ],
)
def test_yaml_errors(yaml_loader, text, message, line, col):
    p = one_problem(parse_yaml, text, "t.yaml")
    assert message in p.message, p.message
    assert (p.loc.file, p.loc.line, p.loc.col) == ("t.yaml", line, col)
    if text:
        assert p.snippet.endswith("^")
        assert len(p.snippet.split("\n")[-1]) == 7 + col


def test_yaml_depth(yaml_loader):
    ok = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert parse_yaml(ok, "t").get("a").is_list
    for text in ("a: " + "[" * 10000, "a: " + "{b: " * 10000, "- " * 10000 + "x\n"):
        p = one_problem(parse_yaml, text, "t")
        assert "nesting is too deep" in p.message


def test_yaml_depth_through_aliases(yaml_loader):
    deep = "[" * 200 + "]" * 200
    text = f"a: &d {deep}\nb: " + "[" * 60 + "*d" + "]" * 60 + "\n"
    p = one_problem(parse_yaml, text, "t")
    assert "nesting is too deep" in p.message and "*d" in p.message
    assert (p.loc.line, p.loc.col) == (2, 64)
    ok = f"a: &d {deep}\nb: " + "[" * 50 + "*d" + "]" * 50 + "\n"
    assert parse_yaml(ok, "t").get("b").is_list


def test_yaml_billion_laughs(yaml_loader):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    t0 = time.process_time()  # this process's CPU: a loaded machine does not stretch it
    p = one_problem(parse_yaml, "\n".join(lines) + "\n", "t")
    assert time.process_time() - t0 < 5  # refused before copying, not after
    assert "aliases expand to more than 100,000 values" in p.message
    assert (p.loc.line, p.loc.path) == (5, "a4[7]")  # the alias that would go over


def test_yaml_merge_expansion_is_bounded(yaml_loader, monkeypatch):
    monkeypatch.setattr(parse_yaml_mod, "MAX_ALIAS_EXPANSION", 50)
    text = "a: &a {" + ", ".join(f"k{i}: {i}" for i in range(30)) + "}\nb: {<<: *a}\nc: {<<: *a}\n"
    p = one_problem(parse_yaml, text, "t")
    assert "aliases expand to more than 50 values" in p.message


def test_yaml_file_syntax_error_via_load_node(tmp_path):
    p = tmp_path / "t.yml"
    p.write_text("builders:\n  - type: docker\n   image: x\n")
    prob = one_problem(load_node, str(p))
    assert prob.loc.file == str(p)
    assert prob.message.startswith("invalid YAML: ")
    assert prob.loc.line == 3


# ----------------------------------------------------------------------------------------
# Properties


def json_like(text):
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5)
        ),
        max_leaves=30,
    )


json_values = json_like(st.text())
# PyYAML's emitter mangles NEL/LS/PS inside quoted scalars; keep them out of the YAML test.
yaml_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x85\u2028\u2029")
)
yaml_values = json_like(yaml_text)


@settings(max_examples=300, deadline=None)
@given(value=json_values, indent=st.sampled_from([None, 0, 2, "\t"]), ascii=st.booleans())
def test_json_round_trip(value, indent, ascii):
    text = json.dumps(value, indent=indent, ensure_ascii=ascii)
    assert parse_json_value(text, "t").to_plain() == value
    wrapped = json.dumps({"v": value}, indent=indent, ensure_ascii=ascii)
    node = parse_json(wrapped, "t")
    assert node.to_plain() == {"v": value}
    lines = wrapped.split("\n")
    for n in walk(node):
        first = lines[n.loc.line - 1][n.loc.col - 1]
        assert first == json.dumps(n.to_plain(), ensure_ascii=ascii)[0]


@settings(max_examples=150, deadline=None)
@given(value=st.dictionaries(yaml_text, yaml_values, max_size=5), flow=st.booleans())
def test_yaml_round_trip(value, flow):
    text = yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True)
    assert parse_yaml(text, "t").to_plain() == value


MUTATION_SOURCES = [TEMPLATE, YAML_TEMPLATE, '{"a": [1, {"b": "\\u00e9"}], "c": -1.5e3}']
NASTY = list("{}[]:,\"'\\/ \t\r\n-0123456789.eE+tfnu!&*<>?|#%@`") + [
    "\x00",
    "\x85",
    "\u2028",
    "\ufeff",
    "\ud800",
    "\U0001f600",
    "---",
    "<<: ",
    "\\u",
    "*a",
    "&a ",
]


@st.composite
def mutated_text(draw):
    text = draw(st.sampled_from(MUTATION_SOURCES))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "dup"]))
        if op == "insert":
            text = text[:i] + draw(st.sampled_from(NASTY)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 5)) :]
        elif op == "replace":
            text = text[:i] + draw(st.sampled_from(NASTY)) + text[i + 1 :]
        elif op == "truncate":
            text = text[:i]
        else:
            j = draw(st.integers(i, len(text)))
            text = text[:j] + text[i:j] + text[j:]
    return text


@settings(max_examples=400, deadline=None)
@given(text=mutated_text())
def test_mutated_text_only_raises_template_error(text):
    for fn in (parse_json, parse_yaml):
        try:
            node = fn(text, "t")
        except TemplateError as e:
            assert e.problems and all(p.loc.file == "t" for p in e.problems)
            e.format().encode("utf-8")  # printable, no lone surrogates
        else:
            assert node.is_map


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    source=st.sampled_from(MUTATION_SOURCES),
    edits=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=0, max_size=4)), max_size=4),
    suffix=st.sampled_from([".json", ".yaml"]),
)
def test_mutated_bytes_only_raise_template_error(tmp_path, source, edits, suffix):
    data = source.encode("utf-8")
    for where, blob in edits:
        i = int(where * len(data))
        data = data[:i] + blob + data[i + 1 :]
    path = tmp_path / ("t" + suffix)
    path.write_bytes(data)
    try:
        load_node(str(path))
    except TemplateError as e:
        assert all(p.loc.file == str(path) for p in e.problems)
        e.format().encode("utf-8")


@pytest.mark.parametrize("name,warned", [("t.json", True), ("t.pkr.json", True),
                                         ("t.yaml", False), ("t.pkr.hcl", False)])
def test_a_byte_order_mark_is_read_past_with_a_warning_for_json(tmp_path, name, warned):
    """Packer rejects a JSON template that starts with a BOM (not YAML's or HCL's)."""
    from kiln.backend.engine.prepare import Options
    from kiln.backend.template.loader import load_template

    bodies = {
        "t.json": '{"builders": [{"type": "null", "communicator": "none"}]}',
        "t.pkr.json": '{"source": {"null": {"a": {"communicator": "none"}}}, '
                      '"build": {"sources": ["source.null.a"]}}',
        "t.yaml": "builders:\n  - type: 'null'\n    communicator: none\n",
        "t.pkr.hcl": 'source "null" "a" {\n  communicator = "none"\n}\n'
                     'build {\n  sources = ["source.null.a"]\n}\n',
    }
    path = tmp_path / name
    path.write_bytes(codecs.BOM_UTF8 + bodies[name].encode())
    t = load_template(str(path), Options())
    assert len(t.builds) == 1
    assert any("byte-order mark" in w for w in t.warnings) == warned
