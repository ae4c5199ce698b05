"""HCL2 templates: parsing, evaluation, the build model, variables, errors, fmt and upgrade."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kiln.backend.commands import fmt as fmt_command
from kiln.backend.engine.prepare import Options, Preparer, select_builds
from kiln.backend.engine.session import load_template
from kiln.backend.template.errors import TemplateError
from kiln.backend.template.hcl2 import fmt as hcl2_fmt
from kiln.backend.template.hcl2 import syntax as hcl2_syntax
from kiln.backend.template.hcl2.expr import UNKNOWN, EvalError, Scope, evaluate, simple_namespace
from kiln.backend.template.hcl2.funcs import make_funcs
from kiln.backend.template.hcl2.loader import (
    HCL2_COMPAT_VERSION,
    check_version_constraint,
    load_hcl2,
)
from kiln.backend.template.hcl2.upgrade import upgrade

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus" / "hcl2"
REAL_WORLD = ROOT / "tests" / "corpus" / "real-world"  # public templates; SOURCES.md there
KILN = [sys.executable, "-m", "kiln.backend.cli"]


def write(tmp_path: Path, text: str, name: str = "t.pkr.hcl") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def load(tmp_path: Path, text: str, **kw):
    return load_hcl2(write(tmp_path, text), **kw)


def problems(tmp_path: Path, text: str, **kw) -> list:
    with pytest.raises(TemplateError) as e:
        load(tmp_path, text, **kw)
    return e.value.problems


def ev(text: str, **names):
    scope = Scope({k: simple_namespace(k, v, "x") if isinstance(v, dict) and k in ("var", "local")
                   else v for k, v in names.items()}, make_funcs(allow_env=True))
    return evaluate(hcl2_syntax.parse_expression(text), scope)


NULL = 'source "null" "a" {\n  communicator = "none"\n}\n'


# -- expressions ---------------------------------------------------------------------------

@pytest.mark.parametrize("expr, value", [
    ('"a-${1 + 2}-b"', "a-3-b"),
    ("1 + 2 * 3 - 4 / 2", 5),
    ("7 % 3", 1),
    ("5 / 2", 2.5),
    ("-(3)", -3),
    ("!true || false", False),
    ("1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 4", False),
    ('1 == 1.0 && "a" != "b"', True),
    ('1 == "1"', False),
    ("true ? \"y\" : \"n\"", "y"),
    ('"${true}"', True),  # a lone interpolation keeps its type
    ('"x${true}"', "xtrue"),
    ("[1, 2, 3][1]", 2),
    ('{a = 1, "b-c" = 2}["b-c"]', 2),
    ("{a = {b = [10, 20]}}.a.b[1]", 20),
    ("[1, 2].0", 1),
    ("[for x in [1, 2, 3] : x * 2 if x != 2]", [2, 6]),
    ('{for k, v in {a = 1, b = 2} : upper(k) => v}', {"A": 1, "B": 2}),
    ('{for s in ["a", "b", "a"] : s => s...}', {"a": ["a", "a"], "b": ["b"]}),
    ("[{n = 1}, {n = 2}][*].n", [1, 2]),
    ("[{n = 1}, {n = 2}].*.n", [1, 2]),
    ('"%{ for x in [1, 2] }<${x}>%{ endfor }"', "<1><2>"),
    ('"%{ if 1 > 2 }a%{ else }b%{ endif }"', "b"),
    ('"a   ${~ "b" ~}   c"', "abc"),
    ('"$${literal} %%{also}"', "${literal} %{also}"),
    ('"tab\\tq\\"u\\u00e9"', 'tab\tq"u\u00e9'),
    ("null", None),
    ("(1 + 2) * 3", 9),
    ('can(regex("^a", "abc"))', True),
    ('can(regex("^z", "abc"))', False),
    ('try(tonumber("x"), "fallback")', "fallback"),
])
def test_expressions(expr, value):
    assert ev(expr) == value


@pytest.mark.parametrize("expr, value", [
    ('format("%s-%03d-%.2f-%q-%t-%v", "a", 7, 1.5, "q", true, [1])', 'a-007-1.50-"q"-true-[1]'),
    ('formatlist("%s=%d", ["a", "b"], [1, 2])', ["a=1", "b=2"]),
    ('join("-", ["a"], ["b", "c"])', "a-b-c"),
    ('split(",", "a,b,,c")', ["a", "b", "", "c"]),
    ('title("hello world-wide")', "Hello World-Wide"),
    ('trim("xxaxx", "x")', "a"),
    ('trimprefix("prefix-x", "prefix-")', "x"),
    ('trimsuffix("x.txt", ".txt")', "x"),
    ('chomp("line\\n\\n")', "line"),
    ('replace("a-b-c", "-", "+")', "a+b+c"),
    ('replace("a1b22", "/[0-9]+/", "#")', "a#b#"),
    ('regex_replace("2024-01-02T03:04:05Z", "[- TZ:]", "")', "20240102030405"),
    ('regex_replace("abc", "(b)", "[$1]")', "a[b]c"),
    ('regex("(\\\\d+)-(\\\\d+)", "10-20")', ["10", "20"]),
    ('regex("(?P<y>\\\\d{4})", "in 2024")', {"y": "2024"}),
    ('regexall("[a-z]", "a1b2")', ["a", "b"]),
    ('substr("hello", 1, 3)', "ell"),
    ('substr("hello", -3, -1)', "llo"),
    ('strrev("abc")', "cba"),
    ('indent(2, "a\\nb")', "a\n  b"),
    ("length({a = 1, b = 2})", 2),
    ('length("héllo")', 5),
    ("concat([1], [2, 3])", [1, 2, 3]),
    ('contains(["a", "b"], "b")', True),
    ("distinct([1, 2, 1])", [1, 2]),
    ("element([1, 2, 3], 4)", 2),
    ("flatten([[1, [2]], 3])", [1, 2, 3]),
    ("keys({b = 1, a = 2})", ["a", "b"]),
    ("values({b = 1, a = 2})", [2, 1]),
    ('lookup({a = 1}, "b", 9)', 9),
    ("merge({a = 1}, {a = 2, b = 3})", {"a": 2, "b": 3}),
    ("range(3)", [0, 1, 2]),
    ("range(1, 10, 4)", [1, 5, 9]),
    ("reverse([1, 2])", [2, 1]),
    ("slice([1, 2, 3], 1, 3)", [2, 3]),
    ('sort(["b", "a", "c"])', ["a", "b", "c"]),
    ('zipmap(["a", "b"], [1, 2])', {"a": 1, "b": 2}),
    ('coalesce("", "x")', "x"),
    ("coalescelist([], [1])", [1]),
    ('compact(["a", "", "b"])', ["a", "b"]),
    ('index(["a", "b"], "b")', 1),
    ("setunion([1, 2], [2, 3])", [1, 2, 3]),
    ("setintersection([1, 2], [2, 3])", [2]),
    ("setsubtract([1, 2], [2])", [1]),
    ("chunklist([1, 2, 3], 2)", [[1, 2], [3]]),
    ("abs(-2)", 2), ("ceil(1.2)", 2), ("floor(1.8)", 1), ("max(1, 5, 3)", 5), ("min(4, 2)", 2),
    ('parseint("ff", 16)', 255), ("pow(2, 10)", 1024), ("signum(-3)", -1),
    ('base64encode("kiln")', "a2lsbg=="), ('base64decode("a2lsbg==")', "kiln"),
    ('jsonencode({b = [1, true, null], a = "<x>"})', '{"a":"\\u003cx\\u003e","b":[1,true,null]}'),
    ('jsondecode("{\\"a\\": [1, 2.5]}")', {"a": [1, 2.5]}),
    ('yamldecode("a: [1, b]")', {"a": [1, "b"]}),
    ('urlencode("a b&c")', "a+b%26c"),
    ('csvdecode("a,b\\n1,2\\n")', [{"a": "1", "b": "2"}]),
    ('basename("/a/b.txt")', "b.txt"), ('dirname("/a/b.txt")', "/a"),
    ('formatdate("YYYY-MM-DD hh:mm:ss ZZZ EEE MMM", "2024-03-05T07:08:09Z")',
     "2024-03-05 07:08:09 UTC Tue Mar"),
    ('formatdate("D \'of\' MMMM, h:mm aa", "2024-03-05T17:08:09+02:00")', "5 of March, 17:08 pm"),
    ('timeadd("2024-01-01T00:00:00Z", "90m")', "2024-01-01T01:30:00Z"),
    ('uuidv5("dns", "example.com")', "cfbff0d1-9375-5685-968c-48ce8b15ae17"),
    ('md5("a")', "0cc175b9c0f1b6a831c399e269772661"),
    ('sha1("a")', "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"),
    ('sha256("a")', "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"),
    ("tostring(1.5)", "1.5"), ('tonumber("42")', 42), ('tobool("true")', True),
    ("toset([1, 1, 2])", [1, 2]), ("tolist([1])", [1]), ("tomap({a = 1})", {"a": 1}),
    ('sensitive("x")', "x"),
])
def test_functions(expr, value):
    assert ev(expr) == value


def test_time_functions_are_stable_within_a_run():
    ts = ev("timestamp()")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ts)
    assert ev("timestamp()") == ts
    assert ev('legacy_isotime("2006")') == ts[:4]
    assert ev('legacy_strftime("%Y")') == ts[:4]
    assert ev("legacy_timestamp()").isdigit()
    assert re.fullmatch(r"[0-9a-f-]{36}", ev("uuidv4()"))


@pytest.mark.parametrize("expr, message", [
    ('lowercase("a")', 'unknown function "lowercase"'),
    ('uper("a")', 'unknown function "uper" (did you mean "upper"?)'),
    ('upper("a", "b")', "upper() takes 1 argument, got 2"),
    ("[1][3]", "index 3 is out of range for a list of 1 element"),
    ('{a = 1}["b"]', 'the map has no key "b"'),
    ('"a" + 1', 'the operands of "+" must be numbers'),
    ("1 / 0", "division by zero"),
    ('"x${[1]}"', "cannot insert a list value into a string"),
    ('"x${null}"', "cannot insert null into a string"),
    ('regex("z", "abc")', "regex(): the pattern did not match"),
    ('1 ? "a" : "b"', "the condition must be a bool"),
    ('{for x in ["a", "a"] : x => x}', 'produces the key "a" twice'),
    ("nope.x", 'unknown name "nope"'),
    ('file("/nonexistent/kiln")', "file(): cannot read"),
    ('try(nope, also_nope)', "no argument of try() could be evaluated"),
])
def test_expression_errors_are_located(expr, message):
    with pytest.raises(EvalError) as e:
        ev(expr)
    assert message in e.value.message
    assert e.value.line == 1 and e.value.col >= 1


def test_env_only_where_allowed(monkeypatch):
    monkeypatch.setenv("KILN_HCL_TEST", "from-env")
    assert ev('env("KILN_HCL_TEST")') == "from-env"
    assert ev('env("KILN_HCL_UNSET_XYZ")') == ""


def test_heredocs_keep_their_trailing_newline_and_strip_indent():
    body = hcl2_syntax.parse_config('a = <<EOT\nhi ${1}\nEOT\nb = <<-EOT\n    x\n      y\n\n    EOT\n')
    scope = Scope({}, make_funcs())
    assert evaluate(body.attr("a").expr, scope) == "hi 1\n"
    assert evaluate(body.attr("b").expr, scope) == "x\n  y\n\n"


def test_unknown_propagates():
    scope = Scope({"var": simple_namespace("var", {"x": UNKNOWN}, "x")}, make_funcs())
    assert evaluate(hcl2_syntax.parse_expression('"a${upper(var.x)}"'), scope) is UNKNOWN


# -- the build model -----------------------------------------------------------------------

def test_build_naming_and_match_names(tmp_path):
    t = load(tmp_path, NULL + 'source "null" "b" {\n  communicator = "none"\n}\n'
             'build {\n  name = "web"\n  sources = ["source.null.a", "null.b"]\n'
             '  source "null.a" {\n    name = "renamed"\n  }\n}\n'
             'build {\n  sources = ["null.a"]\n}\n')
    assert t.format == "hcl2"
    got = [(b.name, b.type, b.build_name, sorted(b.match_names), b.raw_name) for b in t.builds]
    assert got == [
        ("web.null.a", "null", "a", ["null.a"], "a"),
        ("web.null.b", "null", "b", ["null.b"], "b"),
        ("web.null.renamed", "null", "a", ["null.renamed"], "renamed"),
        ("null.a", "null", "a", ["null.a"], "a"),
    ]
    # -only/-except are globs over the full names
    assert [b.name for b in select_builds(t, ("web.*",), ())] == [
        "web.null.a", "web.null.b", "web.null.renamed"]
    assert [b.name for b in select_builds(t, (), ("*.renamed", "web.null.a"))] == [
        "web.null.b", "null.a"]


def test_provisioners_run_in_file_order_with_dynamic_blocks(tmp_path):
    t = load(tmp_path, NULL + 'build {\n  sources = ["source.null.a"]\n'
             '  provisioner "shell-local" {\n    inline = ["one"]\n  }\n'
             '  post-processor "manifest" {}\n'
             '  dynamic "provisioner" {\n    for_each = ["two", "three"]\n'
             '    labels = ["shell-local"]\n    content {\n      inline = [provisioner.value]\n'
             '    }\n  }\n'
             '  provisioner "shell-local" {\n    inline = ["four"]\n  }\n}\n')
    provs = t.builds[0].provisioners
    assert [p.config.to_plain()["inline"][0] for p in provs] == ["one", "two", "three", "four"]
    assert [p.index for p in provs] == [0, 1, 2, 3]
    assert [p.type for p in t.provisioners] == ["shell-local"] * 4


def test_provisioner_options_and_only_except(tmp_path):
    t = load(tmp_path, NULL + 'source "null" "b" {\n  communicator = "none"\n}\n'
             'build {\n  sources = ["null.a", "null.b"]\n'
             '  provisioner "shell-local" {\n    only = ["null.b"]\n    pause_before = "1m30s"\n'
             '    max_retries = 3\n    timeout = "10s"\n    name = "named"\n'
             '    inline = ["x"]\n  }\n'
             '  provisioner "shell-local" {\n    except = ["null.b"]\n    inline = ["y"]\n'
             '    override = {\n      a = {\n        inline = ["for a"]\n      }\n    }\n  }\n}\n')
    a, b = t.builds
    assert [p.config.to_plain() for p in a.provisioners] == [{"inline": ["y"]}]
    (p,) = b.provisioners
    assert (p.only, p.pause_before, p.max_retries, p.timeout, p.name, p.label) == (
        ("null.b",), 90.0, 3, 10.0, "named", "named")
    ov = a.provisioners[0].override
    assert ov["a"].to_plain() == {"inline": ["for a"]}
    assert ov["null.a"].to_plain() == {"inline": ["for a"]}  # keyed the way prepare looks it up
    # prepare applies the override to build a only
    prep = Preparer(t, Options())
    built = prep.prepare(list(t.builds))
    assert not prep.problems
    assert built[0].provisioners[0].plugin.config.inline == ["for a"]


def test_post_processor_chains(tmp_path):
    t = load(tmp_path, NULL + 'build {\n  sources = ["null.a"]\n'
             '  post-processor "manifest" {\n    name = "m"\n    keep_input_artifact = true\n  }\n'
             '  post-processors {\n    post-processor "shell-local" {\n      inline = ["a"]\n'
             '    }\n    post-processor "manifest" {\n      only = ["null.a"]\n    }\n  }\n}\n')
    chains = t.builds[0].post_processors
    assert [[(p.chain, p.index, p.type, p.name) for p in c] for c in chains] == [
        [(0, 0, "manifest", "m")], [(1, 0, "shell-local", "shell-local"), (1, 1, "manifest", "manifest")]]
    assert chains[0][0].keep_input_artifact is True and chains[1][1].only == ("null.a",)


def test_error_cleanup_provisioner(tmp_path):
    t = load(tmp_path, NULL + 'build {\n  sources = ["null.a"]\n'
             '  error-cleanup-provisioner "shell-local" {\n    inline = ["cleanup"]\n  }\n}\n')
    assert t.builds[0].error_cleanup.config.to_plain() == {"inline": ["cleanup"]}


def test_nested_source_adds_settings_and_contextual_values(tmp_path):
    t = load(tmp_path, 'source "file" "f" {\n  content = "${source.type}/${source.name}"\n}\n'
             'build {\n  name = "b"\n  source "source.file.f" {\n    name = "g"\n'
             '    target = "out/${source.name}.txt"\n  }\n'
             '  provisioner "shell-local" {\n    inline = ["${build.name} ${build.ID} ${build.Host}"]\n'
             '  }\n}\n')
    (b,) = t.builds
    assert b.config.to_plain() == {"content": "file/g", "target": "out/g.txt"}
    assert b.provisioners[0].config.to_plain() == {"inline": ["b {{.ID}} {{.Host}}"]}


def test_nested_blocks_become_objects_and_lists(tmp_path):
    t = load(tmp_path, 'source "null" "a" {\n  communicator = "none"\n'
             '  tags {\n    a = 1\n  }\n  disk {\n    size = 1\n  }\n  disk {\n    size = 2\n  }\n'
             '  dynamic "disk" {\n    for_each = [3]\n    content {\n      size = disk.value\n'
             '    }\n  }\n}\nbuild {\n  sources = ["null.a"]\n}\n')
    cfg = t.builds[0].config
    assert cfg.to_plain() == {"communicator": "none", "tags": {"a": 1},
                              "disk": [{"size": 1}, {"size": 2}, {"size": 3}]}
    size = cfg.get("disk").value[2].get("size")
    assert (size.loc.line, size.loc.path) == (15, "source.null.a.disk[2].size")


def test_node_locations_point_at_expressions(tmp_path):
    t = load(tmp_path, NULL + 'build {\n  sources = ["null.a"]\n  provisioner "shell-local" {\n'
             '    inline = [\n      "first",\n      "second",\n    ]\n  }\n}\n')
    cfg = t.builds[0].provisioners[0].config
    items = cfg.get("inline").value
    assert [(n.loc.line, n.loc.col, n.loc.path) for n in items] == [
        (8, 7, "build.provisioner[0].inline[0]"), (9, 7, "build.provisioner[0].inline[1]")]
    assert t.builds[0].loc.line == 1 and t.builds[0].config.get("communicator").loc.line == 2


def test_go_templates_in_plugin_fields_pass_through(tmp_path):
    t = load(tmp_path, NULL + 'build {\n  sources = ["null.a"]\n  provisioner "shell-local" {\n'
             '    execute_command = ["sh", "-c", "{{.Vars}} {{.Script}}"]\n    inline = ["x"]\n'
             '  }\n}\n')
    assert t.builds[0].provisioners[0].config.to_plain()["execute_command"][2] == \
        "{{.Vars}} {{.Script}}"


def test_path_and_packer_values(tmp_path):
    t = load(tmp_path, 'source "file" "f" {\n  target = "${path.root}/x"\n'
             '  content = "${packer.version} ${path.cwd}"\n}\nbuild {\n  sources = ["file.f"]\n}\n')
    cfg = t.builds[0].config.to_plain()
    assert cfg["target"] == f"{tmp_path}/x"
    assert cfg["content"] == f"{HCL2_COMPAT_VERSION} {os.getcwd()}"


def test_json_syntax(tmp_path):
    doc = {"variable": {"n": {"type": "number", "default": 2}},
           "source": {"null": {"j": {"communicator": "none"}}},
           "build": [{"sources": ["source.null.j"],
                      "provisioner": [{"shell-local": {"inline": ["${var.n * 2}", "x"]}}],
                      "post-processors": [{"post-processor": [{"manifest": {}}]}]}]}
    t = load_hcl2(write(tmp_path, json.dumps(doc), name="t.pkr.json"))
    (b,) = t.builds
    assert b.name == "null.j" and b.provisioners[0].config.to_plain() == {"inline": ["4", "x"]}
    assert [[p.type for p in c] for c in b.post_processors] == [["manifest"]]


def test_directory_template(tmp_path):
    (tmp_path / "a.pkr.hcl").write_text('variable "v" {\n  default = "d"\n}\n' + NULL)
    (tmp_path / "b.pkr.hcl").write_text('build {\n  sources = ["null.a"]\n'
                                        '  provisioner "shell-local" {\n    inline = [var.v]\n  }\n}\n')
    (tmp_path / "x.auto.pkrvars.hcl").write_text('v = "auto"\n')
    (tmp_path / "ignored.txt").write_text("not hcl {")
    t = load_hcl2(str(tmp_path))
    assert t.path == str(tmp_path)
    assert t.builds[0].provisioners[0].config.to_plain() == {"inline": ["auto"]}
    assert t.builds[0].config.loc.file.endswith("a.pkr.hcl")


# -- variables -------------------------------------------------------------------------------

PRECEDENCE = 'variable "v" {\n  type = string\n  default = "default"\n}\n' + NULL + \
    'build {\n  sources = ["null.a"]\n  provisioner "shell-local" {\n    inline = [var.v]\n  }\n}\n'


def value_of(t) -> str:
    return t.builds[0].provisioners[0].config.to_plain()["inline"][0]


def test_variable_precedence(tmp_path, monkeypatch):
    d = tmp_path / "tpl"
    d.mkdir()
    (d / "t.pkr.hcl").write_text(PRECEDENCE)
    assert value_of(load_hcl2(str(d))) == "default"
    monkeypatch.setenv("PKR_VAR_v", "env")
    assert value_of(load_hcl2(str(d))) == "env"
    (d / "a.auto.pkrvars.hcl").write_text('v = "auto-a"\n')
    (d / "b.auto.pkrvars.json").write_text('{"v": "auto-b"}')
    assert value_of(load_hcl2(str(d))) == "auto-b"  # lexical order: the last one wins
    f1 = tmp_path / "one.pkrvars.hcl"
    f1.write_text('v = "file-1"\n')
    f2 = tmp_path / "two.pkrvars.json"
    f2.write_text('{"v": "file-2"}')
    assert value_of(load_hcl2(str(d), var_files=(str(f1),))) == "file-1"
    assert value_of(load_hcl2(str(d), var_files=(str(f2), str(f1)))) == "file-1"
    assert value_of(load_hcl2(str(d), {"v": "cli"}, var_files=(str(f1),))) == "cli"
    # auto files are read in directory mode only
    assert value_of(load_hcl2(str(d / "t.pkr.hcl"))) == "env"


def test_typed_variables_from_the_command_line(tmp_path):
    text = ('variable "n" {\n  type = number\n  default = 1\n}\n'
            'variable "l" {\n  type = list(string)\n  default = []\n}\n'
            'variable "m" {\n  type = map(number)\n  default = {}\n}\n'
            'variable "b" {\n  type = bool\n  default = false\n}\n' + NULL +
            'build {\n  sources = ["null.a"]\n  provisioner "shell-local" {\n'
            '    inline = ["${var.n + 1} ${join(",", var.l)} ${var.m.k} ${!var.b}"]\n  }\n}\n')
    t = load(tmp_path, text, cli_vars={"n": "41", "l": '["x", "y"]', "m": "{k = 7}", "b": "true"})
    assert value_of(t) == "42 x,y 7 false"
    assert {v.name: v.type for v in t.variables} == {
        "n": "number", "l": "list(string)", "m": "map(number)", "b": "bool"}


def test_optional_object_attributes_take_their_defaults(tmp_path):
    text = ('variable "disk" {\n  type = object({\n    name = string\n'
            '    size = optional(number, 10)\n    tags = optional(list(string), ["base"])\n'
            '    note = optional(string)\n  })\n  default = { name = "root" }\n}\n' + NULL +
            'build {\n  sources = ["null.a"]\n  provisioner "shell-local" {\n'
            '    inline = ["${var.disk.name}:${var.disk.size}:${join(",", var.disk.tags)}:'
            '${var.disk.note == null}"]\n  }\n}\n')
    assert value_of(load(tmp_path, text)) == "root:10:base:true"
    t = load(tmp_path, text, cli_vars={"disk": '{ name = "data", size = 50, note = "n" }'})
    assert value_of(t) == "data:50:base:false"
    bad = text.replace("optional(number, 10)", 'optional(number, "ten")')
    (p,) = problems(tmp_path, bad)  # and nothing more where the variable is used
    assert "the default of optional(...) does not fit its type" in p.message
    assert (p.loc.line, p.loc.col) == (4, 21)


def test_sensitive_values_are_collected(tmp_path):
    t = load(tmp_path, 'variable "s" {\n  default = "hunter2-secret"\n  sensitive = true\n}\n'
             'local "l" {\n  expression = "tok-${var.s}"\n  sensitive = true\n}\n'
             'locals {\n  x = sensitive("from-function")\n}\n' + NULL +
             'build {\n  sources = ["null.a"]\n  provisioner "shell-local" {\n'
             '    inline = [local.l, local.x]\n  }\n}\n')
    assert set(t.sensitive_values) >= {"hunter2-secret", "tok-hunter2-secret", "from-function"}
    assert t.mask("tok-hunter2-secret") == "<sensitive>"
    (v,) = t.variables
    assert v.sensitive and v.default == "hunter2-secret" and not v.required


def test_validation_uses_the_final_value(tmp_path):
    text = ('variable "n" {\n  type = number\n  default = 5\n  validation {\n'
            '    condition = var.n < 10\n    error_message = "The n must be small."\n  }\n}\n'
            + NULL + 'build {\n  sources = ["null.a"]\n}\n')
    load(tmp_path, text)
    (p,) = problems(tmp_path, text, cli_vars={"n": "11"})
    assert "The n must be small." in p.message and "-var" in p.message
    assert (p.loc.line, p.loc.col) == (5, 17)


def test_syntax_only_skips_values(tmp_path):
    text = 'variable "need" {\n  type = string\n}\n' + NULL + \
        'build {\n  sources = ["null.a"]\n  provisioner "shell-local" {\n    inline = [var.need]\n  }\n}\n'
    problems(tmp_path, text)
    t = load(tmp_path, text, syntax_only=True)
    assert t.variables[0].required and t.builds[0].name == "null.a"
    assert value_of(t) == "<unknown>"


# -- errors ----------------------------------------------------------------------------------

ERRORS = [
    # (template text, expected (line, col), message fragment)
    ('build {\n}\nsource "null" "a" {\n  communicator = "none"\n', (3, 1),
     "this block is not closed"),
    ('source "null" "a" {\n  x = "unterminated\n}\n', (2, 7), "unterminated string"),
    ("locals {\n  a = 1 +\n}\n", (2, 10), "an expression is missing"),
    ('locals {\n  a = "\\q"\n}\n', (2, 8), "not a valid escape"),
    ("locals {\n  a = <<EOT\nno end\n", (2, 7), "unterminated heredoc"),
    ('locals {\n  a = "%{ if true }x"\n}\n', (2, 8), "has no matching %{ endif }"),
    ("locals {\n  'single' = 1\n}\n", (2, 3), "double quotes"),
    ('source "null" {\n}\n', (1, 1), 'needs 2 labels: source "TYPE" "NAME"'),
    ('sourse "null" "a" {\n}\n', (1, 1), 'unknown block type "sourse" (did you mean "source"?)'),
    ('build {\n  provisoner "shell-local" {\n  }\n}\n', (2, 3), 'did you mean "provisioner"?'),
    ('variable "v" {\n  typo = 1\n}\n', (2, 3), 'unknown argument "typo" in variable "v"'),
    ('variable "v" {\n  type = strin\n}\n', (2, 10), '"strin" is not a type'),
    ('variable "v" {\n  type = number\n  default = "x"\n}\n', (3, 13), "is not a number"),
    ('variable "v" {\n  default = var.other\n}\n', (2, 13), "cannot refer to variables"),
    ('variable "v" {\n  default = 1\n  validation {\n    condition = true\n'
     '    error_message = "Bad."\n  }\n}\n', (4, 17), "must refer to the variable itself"),
    ('variable "v" {\n  default = 1\n  validation {\n    condition = var.v > 0\n'
     '    error_message = "lowercase and no period"\n  }\n}\n', (5, 21), "full sentence"),
    ("locals {\n  a = local.b\n  b = local.a\n}\n", (2, 7), "refers to itself"),
    ('locals {\n  a = local.nope\n}\n', (2, 7), 'there is no local named "nope"'),
    ('locals {\n  a = source.name\n}\n', (2, 7), "only available inside source"),
    ('locals {\n  a = build.ID\n}\n', (2, 7), "only available inside provisioner"),
    ('packer {\n  required_version = ">= 99.0"\n}\n', (2, 22), "excludes " + HCL2_COMPAT_VERSION),
    ('build {\n  sources = ["nope"]\n}\n', (2, 14), "is not a source reference"),
    ('data "git-commit" "x" {\n}\n', (1, 6), 'the data source type "git-commit" is a Packer'),
    ('data "amazon-amy" "x" {\n}\n', (1, 6), 'did you mean "amazon-ami"'),
    ('data "null" "x" {\n  input = "a"\n  inptu = "b"\n}\n', (3, 3),
     'unknown configuration key "inptu"'),
    ('data "null" "x" {\n  input = local.a\n}\nlocals {\n  a = data.null.x.output\n}\n',
     (5, 7), "local.a refers to itself (directly or through other locals or data sources)"),
    ('data "null" "x" {\n  input = "a"\n}\nlocals {\n  a = data.null.y.output\n}\n',
     (5, 7), 'there is no data "null" "y"'),
    ('data "null" "x" {\n  input = "a"\n}\nlocals {\n  a = data.null.x.outptu\n}\n',
     (5, 7), 'has no attribute "outptu" (did you mean "output"?)'),
    ('locals {\n  a = data.null.x.output\n}\n', (2, 7), 'there is no data source of type "null"'),
]


@pytest.mark.parametrize("text, where, message", ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_errors_are_located_with_a_caret(tmp_path, text, where, message):
    if "build {" not in text:
        text += NULL + 'build {\n  sources = ["null.a"]\n}\n'
    found = problems(tmp_path, text)
    match = [p for p in found if message in p.message]
    assert match, [p.format() for p in found]
    p = match[0]
    assert p.loc.file.endswith("t.pkr.hcl")
    assert (p.loc.line, p.loc.col) == where, p.format()
    lines = p.snippet.splitlines()
    assert lines[-1].index("^") == 6 + where[1]  # the caret is under the column
    assert p.format().startswith(f"{p.loc.file}:{where[0]}:{where[1]}")


def test_all_problems_of_a_template_are_reported_together(tmp_path):
    found = problems(tmp_path, 'variable "a" {\n  descripton = "x"\n}\nlocals {\n'
                     '  b = upper(1, 2)\n  c = [1][5]\n  d = nofunc()\n}\n' + NULL +
                     'build {\n  sources = ["null.a", "null.zz"]\n}\n')
    msgs = " | ".join(p.message for p in found)
    for fragment in ('unknown argument "descripton"', "upper() takes 1 argument",
                     "index 5 is out of range", 'unknown function "nofunc"', 'unknown source "null.zz"'):
        assert fragment in msgs, msgs


def test_cli_var_problems(tmp_path):
    text = PRECEDENCE
    (p,) = problems(tmp_path, text, cli_vars={"vv": "x"})
    assert p.loc.file == "-var" and 'vv=x: the template declares no variable "vv"' in p.message
    (p,) = problems(tmp_path, 'variable "n" {\n  type = number\n}\n' + NULL +
                    'build {\n  sources = ["null.a"]\n}\n', cli_vars={"n": "ten"})
    assert '"ten" is not a number' in p.message


def test_var_file_problems_and_undeclared_names(tmp_path):
    vf = tmp_path / "x.pkrvars.hcl"
    vf.write_text('v = "ok"\nundeclared = 1\n')
    t = load_hcl2(write(tmp_path, PRECEDENCE), var_files=(str(vf),))
    assert value_of(t) == "ok"
    assert any('"undeclared"' in w and "x.pkrvars.hcl:2:1" in w for w in t.warnings)
    vf.write_text('v = [\n')
    (p,) = problems(tmp_path, PRECEDENCE, var_files=(str(vf),))
    assert (p.loc.file, p.loc.line, p.loc.col) == (str(vf), 1, 5)


def test_required_plugins_are_reported_not_installed(tmp_path):
    t = load(tmp_path, 'packer {\n  required_version = "~> 1.8"\n  required_plugins {\n'
             '    amazon = {\n      version = ">= 1.0"\n      source = "github.com/hashicorp/amazon"\n'
             '    }\n    happy = {\n      version = "1.0"\n      source = "example.com/x/happy"\n'
             '    }\n  }\n}\n' + NULL + 'build {\n  sources = ["null.a"]\n}\n')
    assert t.min_version == "~> 1.8"
    assert any("amazon" in w and "amazon-ebs" in w and "downloads nothing" in w for w in t.warnings)
    assert any("happy" in w and "no components" in w for w in t.warnings)


@pytest.mark.parametrize("constraint, ok", [
    (">= 1.7.0", True), ("< 1.9.0", False), ("~> 1.8", True), ("~> 1.8.1", False),
    (">= 1.2.0, < 2.0.0", True), ("= 1.9.0", True), ("!= 1.9.0", False), ("1.9.0", True),
])
def test_version_constraints(constraint, ok):
    assert (check_version_constraint(constraint, "1.9.0") == "") is ok


def test_prepare_errors_point_into_the_hcl_file(tmp_path):
    path = write(tmp_path, NULL + 'build {\n  sources = ["null.a"]\n'
                 '  provisioner "shell-local" {\n    inlin = ["x"]\n  }\n}\n')
    t = load_template(path, Options())
    prep = Preparer(t, Options())
    prep.prepare(select_builds(t, (), ()))
    p = next(p for p in prep.problems if "inlin" in p.message)
    assert (p.loc.file, p.loc.line, p.loc.col) == (path, 7, 5)
    assert 'did you mean "inline"' in p.message


# -- the corpora -----------------------------------------------------------------------------

def corpus_cases():
    for p in sorted(CORPUS.iterdir()):
        if p.is_dir() or p.name.endswith((".pkr.hcl", ".pkr.json")):
            yield p


def expectation(p: Path) -> tuple[bool, str]:
    head = (p / "variables.pkr.hcl").read_text() if p.is_dir() else p.read_text()
    m = re.search(r"kiln: (valid|invalid)(?:: (.*))?", head)
    assert m, f"{p} has no 'kiln:' expectation"
    return m.group(1) == "valid", (m.group(2) or "").strip().rstrip(";")


def test_corpus_is_big_enough():
    cases = list(corpus_cases())
    assert len(cases) >= 20
    assert sum(expectation(p)[0] for p in cases) >= 10
    assert sum(not expectation(p)[0] for p in cases) >= 10


@pytest.mark.parametrize("path", list(corpus_cases()), ids=lambda p: p.name)
def test_corpus_validates_as_expected(path):
    valid, message = expectation(path)
    options = Options()
    try:
        t = load_template(str(path), options)
        prep = Preparer(t, options)
        prep.prepare(select_builds(t, (), ()))
        if prep.problems:
            raise TemplateError(prep.problems)
    except TemplateError as e:
        assert not valid, e.format()
        text = e.format()
        assert message in text, text
        for p in e.problems:
            assert p.loc.file and p.loc.line >= 1, p.format()
        return
    assert valid, f"{path.name} should be rejected with: {message}"


REAL = sorted(REAL_WORLD.glob("*.pkr.hcl"))


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name[:60])
def test_real_world_templates_load_or_fail_cleanly(path):
    for syntax_only in (True, False):
        try:
            load_hcl2(str(path), syntax_only=syntax_only)
        except TemplateError as e:
            for p in e.problems:
                assert p.message and p.loc.file, p
                if p.loc.line:
                    assert p.snippet
    assert hcl2_fmt.format_text(path.read_text()) == hcl2_fmt.format_text(
        hcl2_fmt.format_text(path.read_text()))


def test_real_world_amazon_ami_data_source_validates_without_aws(monkeypatch):
    # no credentials and no endpoint: validating must not try AWS, the id is unknown
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    path = REAL_WORLD / "gruntwork-io__terratest__examples__packer-docker-example__build.pkr.hcl"
    t = load_hcl2(str(path))
    ami = t.build("amazon-ebs.ubuntu-ami")
    assert ami.config.get("source_ami").value == "<unknown>"
    prep = Preparer(t, Options())
    prepared = prep.prepare(list(t.builds))
    assert not prep.problems, [p.format() for p in prep.problems]
    assert [b.name for b in prepared] == ["amazon-ebs.ubuntu-ami", "docker.ubuntu-docker"]


def test_data_source_outputs_flow_into_locals_and_builds(tmp_path):
    text = ('variable "v" {\n  default = "x"\n}\n'
            'data "null" "d" {\n  input = "from-${var.v}"\n}\n'
            'locals {\n  l = upper(data.null.d.output)\n}\n' + NULL
            + 'build {\n  sources = ["null.a"]\n  provisioner "shell-local" {\n'
            '    inline = [local.l, data.null.d.output]\n  }\n}\n')
    for run_data, want in ((True, ["FROM-X", "from-x"]), (False, ["<unknown>", "<unknown>"])):
        t = load(tmp_path, text, evaluate_data=run_data)
        (prov,) = t.build("null.a").provisioners
        assert [n.value for n in prov.config.get("inline").value] == want


def test_unknown_values_pass_for_fields_of_any_type(tmp_path):
    # a data source's map output feeding a map field, its string output a string field
    text = ('data "amazon-ami" "base" {\n  filters = { name = "base-*" }\n'
            '  owners = ["self"]\n  most_recent = true\n  region = "us-east-1"\n}\n'
            'source "amazon-ebs" "a" {\n  region = "us-east-1"\n  instance_type = "t3.micro"\n'
            '  ssh_username = "admin"\n  ami_name = "x-{{timestamp}}"\n'
            '  source_ami = data.amazon-ami.base.id\n  tags = data.amazon-ami.base.tags\n'
            '  associate_public_ip_address = data.amazon-ami.base.name\n}\n'
            'build {\n  sources = ["source.amazon-ebs.a"]\n}\n')
    t = load(tmp_path, text)
    prep = Preparer(t, Options())
    (b,) = prep.prepare(list(t.builds))
    assert not prep.problems, [p.format() for p in prep.problems]
    assert b.builder.config.source_ami == "<unknown>"
    assert b.builder.config.tags == {}


def test_real_world_multi_file_directory(tmp_path):
    prefix = "hashicorp__learn-packer-getting-started__more_complex__"
    for p in REAL_WORLD.glob(prefix + "*"):
        (tmp_path / p.name[len(prefix):]).write_text(p.read_text())
    t = load_hcl2(str(tmp_path), var_files=(str(tmp_path / "dev.pkrvars.hcl"),))
    assert [b.name for b in t.builds] == ["docker.example-2", "docker.example", "null.example-3"]
    null = t.builds[2]
    assert [p.type for p in null.provisioners] == ["shell-local"]  # the shell one excepts it
    assert t.builds[0].provisioners[0].config.to_plain()["environment_vars"] == ["FLAVOR=chocolate"]
    assert any("required_plugins" in w for w in t.warnings)


# -- robustness -----------------------------------------------------------------------------

SEEDS = [p.read_text() for p in sorted(CORPUS.glob("*.pkr.hcl"))][:12]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), cut=st.floats(0, 1),
       edits=st.lists(st.tuples(st.floats(0, 1), st.sampled_from(
           ['"', "{", "}", "[", "]", "${", "%{", "<<EOF\n", "\n", "=", "...", "~}", "#", "/*",
            "\\", "for ", "(", ")", "?", ":", "-", "!", ".", "*", "", "\x00", "é"]),
           st.integers(0, 4)), max_size=4),
       tmp=st.just(None))
def test_mutated_or_truncated_hcl_gives_only_template_errors(tmp_path_factory, seed, cut, edits, tmp):
    text = seed[: int(len(seed) * cut)] if cut < 0.5 else seed
    for where, insert, delete in edits:
        i = int(len(text) * where)
        text = text[:i] + insert + text[i + delete:]
    d = tmp_path_factory.mktemp("fuzz")
    path = d / "t.pkr.hcl"
    path.write_text(text)
    try:
        t = load_hcl2(str(path))
        Preparer(t, Options()).prepare(select_builds(t, (), ()))
    except TemplateError as e:
        for p in e.problems:
            p.format()
    try:
        out = hcl2_fmt.format_text(text)
    except hcl2_fmt.FormatError as e:
        assert "internal error" not in e.message
    else:
        assert hcl2_fmt.format_text(out) == out


@pytest.mark.parametrize("text", [
    "locals { a = " + "[" * 5000 + " }\n",
    "locals { a = " + "(" * 500 + "1" + ")" * 500 + " }\n",
    "locals { a = " + "-" * 3000 + "1 }\n",
    "a {\n" * 500,
    "locals { a = " + " + ".join(["1"] * 5000) + " }\n",
])
def test_pathological_nesting_is_a_clean_error(tmp_path, text):
    with pytest.raises(TemplateError):
        load(tmp_path, text + NULL + 'build {\n  sources = ["null.a"]\n}\n')


# -- fmt -------------------------------------------------------------------------------------

UGLY = """\
variable "x" {
type = string
    default="abc" # trailing comment
  description = "d"
}
locals {
  a = {
    bb = 1
    ccc = [1,2,
      3]
  }
  long_name = -1
  x = var.a!=null ? upper( var.a ) :"z"
  y = [for s in ["a"]: s if s!="b"]
  z = local.list[*].name
  h = <<EOT
  keep   this   heredoc   exactly
EOT
}


// a comment before a block
source "null" "a" {
  communicator="none" /* inline */
}
build {
  sources=["source.null.a"]
}
"""

PRETTY = """\
variable "x" {
  type        = string
  default     = "abc" # trailing comment
  description = "d"
}

locals {
  a = {
    bb = 1
    ccc = [1, 2,
    3]
  }
  long_name = -1
  x         = var.a != null ? upper(var.a) : "z"
  y         = [for s in ["a"] : s if s != "b"]
  z         = local.list[*].name
  h         = <<EOT
  keep   this   heredoc   exactly
EOT
}

// a comment before a block
source "null" "a" {
  communicator = "none" /* inline */
}

build {
  sources = ["source.null.a"]
}
"""


def test_fmt_canonical_layout():
    assert hcl2_fmt.format_text(UGLY) == PRETTY
    assert hcl2_fmt.format_text(PRETTY) == PRETTY


@pytest.mark.parametrize("path", sorted(CORPUS.rglob("*.pkr.hcl")) + REAL,
                         ids=lambda p: p.name[:50])
def test_fmt_is_idempotent_and_keeps_meaning(path):
    text = path.read_text()
    try:
        once = hcl2_fmt.format_text(text)
    except hcl2_fmt.FormatError as e:  # a corpus file with a syntax error on purpose
        assert "internal error" not in e.message and path.name.startswith("invalid-")
        return
    assert hcl2_fmt.format_text(once) == once
    # same tokens, hence the same template
    assert hcl2_fmt._significant(once) == hcl2_fmt._significant(text)


def test_corpus_is_formatted():
    unformatted = []
    for p in sorted(CORPUS.rglob("*.pkr.hcl")):
        try:
            if hcl2_fmt.format_text(p.read_text()) != p.read_text():
                unformatted.append(p.name)
        except hcl2_fmt.FormatError:
            assert p.name == "invalid-unclosed-block.pkr.hcl"
    assert not unformatted


def run_fmt(argv, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = fmt_command.cmd_fmt(argv, False)
    finally:
        sys.stdin = old
    return code, out.getvalue(), err.getvalue()


def test_fmt_command(tmp_path):
    (tmp_path / "sub").mkdir()
    ugly, sub = tmp_path / "a.pkr.hcl", tmp_path / "sub" / "b.pkrvars.hcl"
    ugly.write_text(UGLY)
    sub.write_text("a=1\nbb = 2\n")
    (tmp_path / "c.json").write_text("{}")
    code, out, _ = run_fmt(["-check", str(tmp_path)])
    assert (code, out) == (3, f"{ugly}\n") and ugly.read_text() == UGLY
    code, out, _ = run_fmt(["-check", "-recursive", str(tmp_path)])
    assert code == 3 and out.splitlines() == [str(ugly), str(sub)]
    code, out, _ = run_fmt(["-diff", "-write=false", str(ugly)])
    assert code == 0 and "\n-type = string\n" in out and "\n+  type        = string\n" in out
    assert f"--- old/{str(ugly).lstrip('/')}" in out and ugly.read_text() == UGLY
    code, out, _ = run_fmt(["-recursive", str(tmp_path)])
    assert code == 0 and ugly.read_text() == PRETTY and sub.read_text() == "a  = 1\nbb = 2\n"
    assert run_fmt(["-check", "-recursive", str(tmp_path)])[:2] == (0, "")
    assert run_fmt(["-"], UGLY)[:2] == (0, PRETTY)
    assert run_fmt(["-check", "-"], UGLY)[0] == 3
    code, _, err = run_fmt([str(tmp_path / "c.json")])
    assert code == 1 and "JSON files are not formatted" in err
    bad = tmp_path / "bad.pkr.hcl"
    bad.write_text("a = \n")
    code, _, err = run_fmt([str(bad)])
    assert code == 1 and f"{bad}:1:5" in err and bad.read_text() == "a = \n"
    assert run_fmt([str(tmp_path / "missing.pkr.hcl")])[0] == 1
    assert run_fmt([])[0] == 1


def test_fmt_through_the_cli(tmp_path):
    p = tmp_path / "t.pkr.hcl"
    p.write_text(UGLY)
    proc = subprocess.run([*KILN, "fmt", "-check", str(p)], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 3 and proc.stdout == f"{p}\n"


# -- hcl2_upgrade ----------------------------------------------------------------------------

def test_upgrade_translates_go_templates(tmp_path):
    src = tmp_path / "t.json"
    src.write_text(json.dumps({
        "variables": {"a": "x", "home": "{{env `HOME`}}", "derived": "{{user `a`}}-{{env `USER`}}",
                      "secret": "s", "req": None},
        "sensitive-variables": ["secret"],
        "builders": [{"type": "null", "name": "one", "communicator": "none"},
                     {"type": "file", "target": "{{template_dir}}/{{build_name}}.txt",
                      "content": "{{isotime \"2006\"}} {{timestamp}} {{uuid}} ${lit}"}],
        "provisioners": [
            {"type": "shell-local", "only": ["one"], "pause_before": "1s", "max_retries": "2",
             "inline": ["{{user `derived`}} {{split \"a-b\" \"-\" 1}} {{upper `x`}} {{.Vars}}",
                        "{{build `ID`}} {{build_type}} {{replace_all \"a\" \"b\" \"aa\"}} "
                        "{{ isotime | clean_resource_name }} {{pwd}}"],
             "override": {"one": {"inline": ["over"]}}}],
        "error-cleanup-provisioner": {"type": "shell-local", "inline": ["cleanup"]},
        "post-processors": ["manifest", [{"type": "shell-local", "inline": ["a"], "name": "n",
                                          "keep_input_artifact": True, "except": ["file"]}]],
    }))
    res = upgrade(str(src))
    text = res.text
    for fragment in [
        'default = env("HOME")', "sensitive = true", 'variable "req" {\n  type = string\n}',
        'derived = var.derived != "" ? var.derived : "${var.a}-${var.derived_env_USER}"',
        'source "file" "file"', 'target  = "${path.root}/${source.name}.txt"',
        '${legacy_isotime("2006")} ${legacy_timestamp()} ${uuidv4()} $${lit}',
        'only         = ["null.one"]', "max_retries  = 2",
        '"${local.derived} ${split("-", "a-b")[1]} ${upper("x")} {{.Vars}}"',
        '${build.ID} ${source.type} ${replace("aa", "a", "b")} {{ isotime | clean_resource_name }}',
        "${path.cwd}", 'error-cleanup-provisioner "shell-local"', 'post-processor "manifest" {}',
        'except              = ["file.file"]', "one = {",
    ]:
        assert fragment in text, (fragment, text)
    assert hcl2_fmt.format_text(text) == text
    t = load_hcl2(write(tmp_path, text, "up.pkr.hcl"), {"req": "r"})
    assert [b.name for b in t.builds] == ["null.one", "file.file"]
    assert t.builds[1].build_name == "file"


def test_upgrade_command_writes_next_to_the_template(tmp_path):
    src = tmp_path / "t.json"
    src.write_text('{"builders": [{"type": "null", "communicator": "none"}]}')
    proc = subprocess.run([*KILN, "hcl2_upgrade", str(src)], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "t.json.pkr.hcl").exists()
    out = tmp_path / "o.pkr.hcl"
    proc = subprocess.run([*KILN, "hcl2_upgrade", f"-output-file={out}", str(src)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and out.read_text().startswith("# Converted from t.json")
    (tmp_path / "bad.json").write_text('{"builders": [}')
    proc = subprocess.run([*KILN, "hcl2_upgrade", str(tmp_path / "bad.json")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "bad.json:1:15" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_values_are_fitted_to_the_plugin_schema(tmp_path):
    """Numbers and bools in string fields read as HCL writes them; a block written once
    fits a list field."""
    t = load(tmp_path, 'source "file" "f" {\n  target = "x"\n  content = true\n}\n'
             'build {\n  sources = ["file.f"]\n  provisioner "shell-local" {\n'
             '    inline = [false, 1.5, 7]\n    env = { A = true }\n    valid_exit_codes = [0, 3]\n'
             '  }\n}\n')
    (b,) = t.builds
    assert b.config.to_plain() == {"target": "x", "content": "true"}
    assert b.provisioners[0].config.to_plain() == {
        "inline": ["false", "1.5", "7"], "env": {"A": "true"}, "valid_exit_codes": [0, 3]}


def test_legacy_variables_block_and_typed_env_values(tmp_path, monkeypatch):
    monkeypatch.setenv("PKR_VAR_sizes", "[1, 2]")
    t = load(tmp_path, 'variables {\n  region = "us-east-1"\n  count = 2\n}\n'
             'variable "sizes" {\n  type = list(number)\n  default = []\n}\n' + NULL +
             'build {\n  sources = ["null.a"]\n  provisioner "shell-local" {\n'
             '    inline = ["${var.region} ${var.count * 2} ${sum(var.sizes)}"]\n  }\n}\n',
             cli_vars={"count": "5"})
    assert value_of(t) == "us-east-1 10 3"
    assert {v.name: (v.default, v.required) for v in t.variables} == {
        "region": ("us-east-1", False), "count": ("2", False), "sizes": ("[]", False)}


def test_validate_and_inspect_commands(tmp_path):
    path = write(tmp_path, 'variable "need" {\n  type = string\n}\n' + NULL +
                 'build {\n  name = "b"\n  sources = ["null.a"]\n'
                 '  provisioner "shell-local" {\n    inline = [var.need]\n  }\n}\n')
    run = [*KILN]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bad = subprocess.run([*run, "validate", path], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and f"{path}:1:1" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr
    ok = subprocess.run([*run, "validate", "-syntax-only", path], capture_output=True, text=True,
                        env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ok = subprocess.run([*run, "validate", "-var", "need=x", path], capture_output=True,
                        text=True, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    ins = subprocess.run([*run, "inspect", path], capture_output=True, text=True, env=env)
    assert ins.returncode == 0 and "b.null.a" in ins.stdout and "need" in ins.stdout


hcl2_lib = pytest.importorskip  # python-hcl2 is only a cross-check here


@pytest.mark.parametrize("path", sorted(CORPUS.rglob("*.pkr.hcl")) + REAL,
                         ids=lambda p: p.name[:50])
def test_structure_matches_python_hcl2(path):
    """An independent HCL parser (python-hcl2) sees the same blocks, labels and arguments."""
    hcl2 = hcl2_lib("hcl2")
    text = path.read_text()
    try:
        theirs = hcl2.loads(text)
    except Exception:  # its syntax errors are lark's
        with pytest.raises(hcl2_syntax.HCLSyntaxError):
            hcl2_syntax.parse_config(text)
        return
    assert _py_sig(theirs) == _my_sig(hcl2_syntax.parse_config(text))


_META = {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}


def _unquote(s: str) -> str:
    return s[1:-1] if len(s) >= 2 and s[0] == s[-1] == '"' else s


def _is_block(x) -> bool:
    while isinstance(x, dict):
        if x.get("__is_block__"):
            return True
        keys = [k for k in x if k not in _META]
        if len(keys) != 1:
            return False
        x = x[keys[0]]
    return False


def _py_sig(d: dict) -> tuple:
    out = []
    for k, v in d.items():
        if k in _META:
            continue
        if isinstance(v, list) and v and all(_is_block(e) for e in v):
            for e in v:
                labels = []
                while not e.get("__is_block__"):
                    (lk,) = [x for x in e if x not in _META]
                    labels.append(_unquote(lk))
                    e = e[lk]
                out.append(("block", k, tuple(labels), _py_sig(e)))
        else:
            out.append(("attr", k))
    return tuple(sorted(out, key=repr))


def _my_sig(body) -> tuple:
    out = []
    for it in body.items:
        if isinstance(it, hcl2_syntax.Attribute):
            out.append(("attr", it.name))
        else:
            out.append(("block", it.type, tuple(it.labels), _my_sig(it.body)))
    return tuple(sorted(out, key=repr))


@pytest.mark.parametrize("text,warning", [
    ('source "null" "a" {\n  communicator = "none"\n}\nbuild {\n}\n',
     "t.pkr.hcl:4:1: the build block has no sources, so it builds nothing"),
    ('source "null" "a" {\n  communicator = "none"\n}\nbuild {\n  sources = []\n}\n',
     "the build block has no sources, so it builds nothing"),
    ('source "null" "a" {\n  communicator = "none"\n}\n',
     "the template has no build block, so it builds nothing"),
])
def test_nothing_to_build_is_a_warning_as_packer_accepts_it(tmp_path, text, warning):
    t = load(tmp_path, text)
    assert t.builds == ()
    assert any(warning in w for w in t.warnings), t.warnings


def test_upgrade_writes_weakly_typed_json_values_with_their_hcl2_types(tmp_path):
    """JSON decoding is weak and HCL2's is typed: the upgrade writes what JSON meant."""
    src = tmp_path / "t.json"
    src.write_text(json.dumps({
        "variables": {"codes": "0,3"},
        "builders": [{"type": "null", "name": "one", "communicator": "none"}],
        "provisioners": [
            {"type": "shell-local", "only": "one", "inline": "echo a,echo b",
             "valid_exit_codes": "{{user `codes`}}", "max_retries": True, "pause_before": 1000},
            {"type": "shell-local", "inline": ["x"], "only_on": "linux", "timeout": 2000000000}],
        "post-processors": [
            {"type": "manifest", "custom_data": [{"a": "1"}, {"b": "2"}]},
            {"type": "shell-local", "inline": ["y"], "execute_command": "sh {{.Script}}",
             "only": "one"}],
    }))
    text = upgrade(str(src)).text
    for fragment in ['only             = ["null.one"]', 'inline           = ["echo a", "echo b"]',
                     'valid_exit_codes = split(",", var.codes)', "max_retries      = 1",
                     'pause_before     = "1µs"', 'only_on = ["linux"]', 'timeout = "2s"',
                     'a = "1"\n      b = "2"', 'execute_command = ["sh {{.Script}}"]',
                     'only            = "one"']:
        assert fragment in text, (fragment, text)
    # the post-processor's single name stays as written: Packer's JSON refuses it, so HCL2 too
    with pytest.raises(TemplateError, match="only must be a list"):
        load_hcl2(write(tmp_path, text, "up.pkr.hcl"))
