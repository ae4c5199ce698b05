"""Bad templates cannot make validate (or the dashboard) use unbounded memory or time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kiln.backend.engine.prepare import Options, Preparer, select_builds
from kiln.backend.template.errors import TemplateError
from kiln.backend.template.loader import load_template

KILN = [sys.executable, "-m", "kiln.backend.cli"]
NULL_HCL = 'source "null" "x" {\n  communicator = "none"\n}\nbuild {\n  sources = ["source.null.x"]\n}\n'


def validate(path: Path) -> str:
    """Load and prepare as `kiln validate` does; the problems' text ("" when valid)."""
    try:
        t = load_template(str(path), Options())
        prep = Preparer(t, Options())
        prep.prepare(select_builds(t, (), ()))
        if prep.problems:
            raise TemplateError(prep.problems)
    except TemplateError as e:
        return str(e)
    return ""


def hcl(tmp_path: Path, locals_: str) -> Path:
    p = tmp_path / "t.pkr.hcl"
    p.write_text("locals {\n" + locals_ + "\n}\n" + NULL_HCL)
    return p


def doubling_json(tmp_path: Path, base: str, levels: int, extra: dict | None = None) -> Path:
    v = {"v0": base}
    for i in range(1, levels + 1):
        v[f"v{i}"] = f"{{{{user `v{i - 1}`}}}}{{{{user `v{i - 1}`}}}}"
    v.update(extra or {})
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"variables": v, "builders": [{"type": "null", "communicator": "none"}]}))
    return p


def test_doubled_user_variables_stop_at_the_size_limit(tmp_path):
    err = validate(doubling_json(tmp_path, "a" * (1 << 20), 5))  # 32 MiB at the fifth
    assert 't.json:1:' in err and 'variables.v5: cannot render the value of variable "v5"' in err
    assert "more than 16 MiB long (Kiln's limit)" in err


def test_many_large_variables_stop_at_the_total_budget(tmp_path):
    extra = {f"w{i}": "{{user `v3`}}x" for i in range(20)}  # 20 x 8 MiB > 128 MiB in all
    err = validate(doubling_json(tmp_path, "a" * (1 << 20), 3, extra))
    assert "renders more than 128 MiB of text in all (Kiln's limit)" in err


def test_doubled_hcl2_locals_stop_at_the_size_limit(tmp_path):
    big = "a" * (1 << 20)
    lines = [f'  l0 = "{big}"'] + [f'  l{i} = "${{local.l{i - 1}}}${{local.l{i - 1}}}"'
                                    for i in range(1, 6)]
    err = validate(hcl(tmp_path, "\n".join(lines)))
    assert "t.pkr.hcl:7:" in err  # l5, the first one over
    assert "the string would be 33,554,432 characters long, more than Kiln's limit of 16 MiB" in err


@pytest.mark.parametrize("expr, message", [
    ('format("%020000000d", 1)', "format(): the width of %d 20,000,000 is larger than Kiln's limit"),
    ('format("%.20000000f", 1)', "format(): the precision of %f 20,000,000 is larger"),
    ('indent(20000000, "a\\nb")', "indent(): the indented text would be 20,000,003 characters"),
    ('replace(join("", [for i in range(1000) : "aaaaaaaaaaaaaaaaaaaa"]), "a", '
     'join("", [for i in range(1000) : "b"]))', "replace(): the result would be"),
    ('setproduct(range(1000), range(1000), range(2))', "setproduct(): the product would have"),
], ids=["format-width", "format-precision", "indent", "replace", "setproduct"])
def test_functions_that_would_allocate_too_much_are_errors(tmp_path, expr, message):
    err = validate(hcl(tmp_path, f"  x = {expr}"))
    assert "t.pkr.hcl:2:" in err and message in err, err


def test_a_value_shared_many_times_cannot_be_written_out_whole(tmp_path):
    lines = ['  a0 = ["xxxxxxxxxxxxxxxx"]'] + [f"  a{i} = [local.a{i - 1}, local.a{i - 1}]"
                                               for i in range(1, 21)]
    lines.append("  j = jsonencode(local.a20)")  # 2^20 copies written out: ~20 MB
    lines.append("  e = local.a20 == local.a20")
    err = validate(hcl(tmp_path, "\n".join(lines)))
    assert "jsonencode(): the arguments of jsonencode() would be more than 16 MiB written out" in err
    assert "e =" not in err  # comparing a value with itself does not walk its copies


def test_files_read_into_values_are_bounded(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"a" * ((16 << 20) + 1))
    err = validate(hcl(tmp_path, f'  x = file("{big}")\n  y = file("/dev/zero")\n'
                                 f'  z = filesha256("{big}")'))
    assert "is larger than 16 MiB (Kiln's limit for a file read into a value)" in err
    assert 'cannot read "/dev/zero": it is not a regular file' in err
    assert "t.pkr.hcl:4:" not in err  # hashing streams the file: any size is fine


@pytest.mark.parametrize("value, message", [
    ('{{printf "%020000000d" 1}}', "printf: the width or precision in %020000000d is larger than "
                                  "Kiln's limit of 1 MiB"),
    ("{{replace_all `a` `" + "b" * 1000 + "` `" + "a" * 100000 + "`}}",
     "the replaced text would be 100,000,000 characters long"),
], ids=["printf", "replace_all"])
def test_printf_and_replace_in_json_templates_are_bounded(tmp_path, value, message):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"variables": {"w": value},
                             "builders": [{"type": "null", "communicator": "none"}]}))
    err = validate(p)
    assert "variables.w" in err and message in err, err


def run_validate(path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*KILN, "validate", str(path)], capture_output=True, text=True,
                          timeout=timeout)


def test_a_backtracking_regex_answers_at_once(tmp_path):
    # Python's re takes years on this; RE2 (the engine family of Go's regexp) is linear
    p = hcl(tmp_path, '  x = regex("(a+)+$", "' + "a" * 60 + 'b")\n'
                      '  y = regex("^(a|aa)+$", "' + "a" * 60 + 'b")')
    r = run_validate(p, timeout=60)
    assert r.returncode == 1
    assert "regex(): the pattern did not match anything in the string" in r.stderr


def test_regexes_follow_go_syntax(tmp_path):
    err = validate(hcl(tmp_path, '  a = regex("a$", "a\\n")\n  b = regex("a\\\\Z", "a")\n'
                                 '  c = regex("a\\\\z", "a")'))
    assert "t.pkr.hcl:2:" in err  # $ is the end of the text, as in Go
    assert 't.pkr.hcl:3:' in err and "invalid regular expression" in err  # \\Z is not Go
    assert "t.pkr.hcl:4:" not in err


def test_loops_over_loops_stop_at_the_step_budget(tmp_path):
    p = hcl(tmp_path, "  x = [for i in range(1000) : [for j in range(1000) : [for k in "
                      "range(10) : k]]]")
    r = run_validate(p, timeout=120)
    assert r.returncode == 1
    assert "t.pkr.hcl:2:" in r.stderr
    assert "takes more than 5,000,000 steps (Kiln's limit)" in r.stderr
    assert r.stderr.count("Kiln's limit") == 1  # said once, not for every later expression


def test_validating_a_large_template_is_linear(tmp_path, monkeypatch):
    """No full garbage collection walks the growing template again and again while it is
    loaded and prepared, and the function table is made once per build, not once per
    provisioner."""
    import gc

    import kiln.backend.engine.prepare as prepare_mod
    import kiln.backend.template.loader as loader_mod
    from kiln.backend.template import funcs as F

    p = tmp_path / "t.json"
    p.write_text(json.dumps({
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": [f"echo {i}"]} for i in range(20000)],
    }))
    # the names static checks use are computed once per process, on first use: not per build
    assert F.FUNCTION_NAMES
    made = []
    real = F.packer_funcs
    monkeypatch.setattr(F, "packer_funcs", lambda ctx: made.append(1) or real(ctx))
    busy = [False]  # inside load_template or Preparer.prepare (one thread: this test's)

    def during(fn):
        def wrapped(*a, **k):
            busy[0] = True
            try:
                return fn(*a, **k)
            finally:
                busy[0] = False
        return wrapped

    monkeypatch.setattr(loader_mod, "load_template", during(loader_mod.load_template))
    monkeypatch.setattr(prepare_mod.Preparer, "prepare", during(prepare_mod.Preparer.prepare))
    full: list[int] = []

    def watch(phase, info):
        if phase == "start" and info["generation"] == 2 and busy[0]:
            full.append(1)

    gc.callbacks.append(watch)
    try:
        t = loader_mod.load_template(str(p), Options())
        prep = prepare_mod.Preparer(t, Options())
        prep.prepare(select_builds(t, (), ()))
    finally:
        gc.callbacks.remove(watch)
    assert not prep.problems
    assert full == []
    assert len(made) <= 3
