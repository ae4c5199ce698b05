"""Packer's built-in template functions (legacy JSON engine)."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kiln.backend.plugins.amazon.funcs import amazon_extra_funcs, clean_resource_name_amazon
from kiln.backend.template import funcs as funcs_mod
from kiln.backend.template.funcs import (
    FUNCTION_NAMES,
    PACKER_FUNCTION_NAMES,
    START_TIME,
    FuncContext,
    UnsetVariable,
    packer_funcs,
    time_ordered_uuid,
)
from kiln.backend.template.gotmpl import RenderError, check, render, render_until_stable

START = datetime(2024, 5, 17, 23, 40, 16, 123456, tzinfo=UTC)


def ctx(**kw: Any) -> FuncContext:
    kw.setdefault("user_vars", {"a": "x", "csv": "a,b,c", "empty": ""})
    kw.setdefault("template_path", "/srv/templates/web.json")
    kw.setdefault("start_time", START)
    return FuncContext(**kw)


def run(text: str, data: Any = None, **kw: Any) -> str:
    return render(text, packer_funcs(ctx(**kw)), data)


def fails(text: str, **kw: Any) -> RenderError:
    with pytest.raises(RenderError) as info:
        run(text, **kw)
    return info.value


# ------------------------------------------------------------------ user / env


def test_user() -> None:
    assert run("{{ user `a` }}") == "x"
    assert run("{{user `empty`}}|") == "|"
    assert run("[{{ user `unset` }}]") == "[]"


def test_user_unset_in_variables_section() -> None:
    err = fails("{{ user `unset` }}", variables_section=True)
    assert isinstance(err, UnsetVariable)
    assert err.name == "unset"
    assert str(err) == "variable not set: unset"
    assert run("{{ user `a` }}", variables_section=True) == "x"


def test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_TEST_VAR", "from-env")
    monkeypatch.delenv("KILN_TEST_UNSET", raising=False)
    assert run("{{ env `KILN_TEST_VAR` }}", allow_env=True) == "from-env"
    assert run("[{{ env `KILN_TEST_UNSET` }}]", allow_env=True) == "[]"
    assert str(fails("{{ env `KILN_TEST_VAR` }}")) == "env vars are not allowed here"


# ------------------------------------------------------------------ time functions


def test_timestamp_is_start_time() -> None:
    assert run("{{ timestamp }}") == str(int(START.timestamp())) == "1715989216"


def test_isotime() -> None:
    assert run("{{ isotime }}") == "2024-05-17T23:40:16Z"
    assert run('{{ isotime "2006-01-02" }}') == "2024-05-17"
    assert run("{{ isotime `20060102150405` }}") == "20240517234016"
    assert run("{{ isotime `Jan _2 15:04:05.000` }}") == "May 17 23:40:16.123"
    err = fails("{{ isotime `a` `b` }}")
    assert "at most one" in str(err)


def test_strftime() -> None:
    assert run("{{ strftime `%Y-%m-%d %H:%M:%S` }}") == "2024-05-17 23:40:16"


def test_default_start_time_is_shared_and_utc() -> None:
    c1 = FuncContext(user_vars={}, template_path=None)
    c2 = FuncContext(user_vars={}, template_path=None)
    assert c1.start_time is c2.start_time is START_TIME
    assert START_TIME.tzinfo is not None and START_TIME.utcoffset().total_seconds() == 0
    f = packer_funcs(c1)
    assert f["timestamp"]() == f["timestamp"]() == str(int(START_TIME.timestamp()))


def test_uuid_is_time_ordered() -> None:
    before = int(time.time())
    value = run("{{ uuid }}")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value)
    assert before <= int(value[:8], 16) <= int(time.time())
    assert run("{{ uuid }}") != value
    assert time_ordered_uuid(0x01020304).startswith("01020304-")


# ------------------------------------------------------------------ build context


def test_build_name_and_type() -> None:
    assert run("{{ build_name }}/{{ build_type }}", build_name="web", build_type="docker") == (
        "web/docker"
    )
    assert str(fails("{{ build_name }}")) == "build_name not available"
    assert str(fails("{{ build_type }}")) == "build_type not available"


def test_pwd_and_template_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("{{ pwd }}") == os.getcwd()
    assert run("{{ template_dir }}") == "/srv/templates"
    rel = run("{{ template_dir }}", template_path="sub/t.json")
    assert rel == str(tmp_path / "sub")
    assert str(fails("{{ template_dir }}", template_path=None)) == "template path not available"


def test_packer_version() -> None:
    assert run("{{ packer_version }}") == "1.6.6"
    assert run("{{ packer_version }}", packer_version="1.9.4") == "1.9.4"
    assert str(fails("{{ packer_version }}", packer_version="")) == "packer_version not available"


# ------------------------------------------------------------------ string functions


def test_split() -> None:
    assert run("{{ split (user `csv`) `,` 0 }}") == "a"
    assert run('{{ split "a-b-c" "-" 2 }}') == "c"
    assert run('{{ split "abc" "" 1 }}') == "b"
    assert run('{{ split "" "," 0 }}') == ""
    err = fails("{{ split (user `csv`) `,` 3 }}")
    assert str(err) == (
        "the substring 3 was unavailable using the separator value, ,, only 3 values were found"
    )
    assert "expected int; got string" in str(fails('{{ split "a" "," "0" }}'))
    assert "index out of range" in str(fails('{{ split "a" "," -1 }}'))


def test_replace() -> None:
    assert run('{{ replace "a" "b" 1 "aaa" }}') == "baa"
    assert run('{{ replace "a" "b" 2 "aaa" }}') == "bba"
    assert run('{{ replace "a" "b" -1 "aaa" }}') == "bbb"
    assert run('{{ replace "a" "b" 0 "aaa" }}') == "aaa"
    assert run('{{ replace "" "-" -1 "ab" }}') == "-a-b-"
    assert run('{{ "a.b.c" | replace "." "_" 1 }}') == "a_b.c"
    assert run('{{ replace_all "." "_" "a.b.c" }}') == "a_b_c"
    assert run('{{ "a.b.c" | replace_all "." "" }}') == "abc"


def test_lower_upper() -> None:
    assert run("{{ lower `MiXeD` }}|{{ upper `MiXeD` }}") == "mixed|MIXED"
    assert run("{{ upper `stra\u00dfe \u00e9` }}") == "STRA\u00dfE \u00c9"  # no SS expansion
    assert run("{{ user `a` | upper }}") == "X"
    assert str(fails("{{ upper 3 }}")) == "wrong type for value; expected string; got int"
    assert str(fails("{{ lower true }}")) == "wrong type for value; expected string; got bool"


# ------------------------------------------------------------------ build


def test_build_returns_placeholder_for_known_keys() -> None:
    keys = ["ID", "Host", "Port"]
    assert run("{{ build `ID` }}", build_data_keys=keys) == "{{.ID}}"
    f = packer_funcs(ctx(build_data_keys=keys))
    assert (
        render_until_stable(
            "ssh {{ build `Host` }}:{{ build `Port` }}",
            f,
            {
                "Host": "10.0.0.1",
                "Port": 22,
            },
        )
        == "ssh 10.0.0.1:22"
    )


def test_build_with_real_values() -> None:
    assert run("{{ build `ID` }}", build_data_keys={"ID": "i-123", "Port": 22}) == "i-123"
    assert run("{{ build `Port` }}", build_data_keys={"ID": "i-123", "Port": 22}) == "22"


def test_build_errors() -> None:
    assert str(fails("{{ build `Nope` }}", build_data_keys=["ID"])) == (
        "loaded data, but couldnt find Nope in it."
    )
    assert str(fails("{{ build `ID` }}")) == (
        "Error validating build variable: the given variable ID will not be passed into your "
        "plugin."
    )


# ------------------------------------------------------------------ unsupported functions


def test_sed_always_fails() -> None:
    err = fails("{{ sed `s/a/b/` `abc` }}")
    assert "deprecated" in str(err) and "replace" in str(err)


@pytest.mark.parametrize(
    "call",
    [
        "consul_key `a/b`",
        "vault `secret/x` `key`",
        "aws_secretsmanager `name`",
        "aws_secretsmanager `name` `key`",
        "aws_secretsmanager_raw `name`",
    ],
)
def test_network_functions(call: str) -> None:
    name = call.split()[0]
    outside = fails("{{ " + call + " }}")
    assert str(outside) == f"{name} is only allowed in the variables section"
    inside = fails("{{ " + call + " }}", variables_section=True, allow_env=True)
    assert f"{name} is not supported by Kiln" in str(inside)
    assert "network service" in str(inside)
    assert not isinstance(inside, UnsetVariable)


# ------------------------------------------------------------------ amazon extras


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("my-ami 2024-05-17T23:40:16Z", "my-ami 2024-05-17T23-40-16Z"),
        ("a(b)[c] d.e/f-g'h@i_j", "a(b)[c] d.e/f-g'h@i_j"),
        ("a:b,c;d*e+f=g", "a-b-c-d-e-f-g"),
        ("caf\u00e9", "caf--"),  # every UTF-8 byte becomes "-"
        ("\u20ac", "---"),
        ("", ""),
    ],
)
def test_clean_resource_name_amazon(raw: str, clean: str) -> None:
    assert clean_resource_name_amazon(raw) == clean


def test_amazon_extra_funcs() -> None:
    extra = amazon_extra_funcs()
    assert set(extra) == {"clean_resource_name", "clean_ami_name"}
    assert run("{{ isotime | clean_ami_name }}", extra=extra) == "2024-05-17T23-40-16Z"
    assert run("{{ clean_resource_name `a:b` }}", extra=extra) == "a-b"
    with pytest.raises(ValueError, match='function "clean_resource_name" not defined'):
        run("{{ clean_resource_name `a:b` }}")


def test_extra_functions_override_builtins() -> None:
    assert run("{{ user `a` }}", extra={"user": lambda k: "over:" + k}) == "over:a"


# ------------------------------------------------------------------ names


def test_function_names() -> None:
    expected = {
        "user", "env", "timestamp", "isotime", "strftime", "uuid", "build_name", "build_type",
        "pwd", "template_dir", "packer_version", "split", "replace", "replace_all", "lower",
        "upper", "build", "sed", "consul_key", "vault", "aws_secretsmanager",
        "aws_secretsmanager_raw",
    }  # fmt: skip
    assert PACKER_FUNCTION_NAMES == expected
    assert FUNCTION_NAMES == expected | {"clean_resource_name", "clean_ami_name"}
    assert set(packer_funcs(ctx())) == expected


def test_check_with_function_names() -> None:
    assert (
        check("{{ isotime | clean_ami_name }} {{ printf `%s` (user `a`) }}", FUNCTION_NAMES) == []
    )
    assert check("{{ clean_resource_name `x` }}", PACKER_FUNCTION_NAMES) == [
        'function "clean_resource_name" not defined'
    ]
    assert check("{{ nope }}", FUNCTION_NAMES) == ['function "nope" not defined']


def test_module_exports() -> None:
    for name in funcs_mod.__all__:
        assert hasattr(funcs_mod, name)


@pytest.mark.parametrize("call,instead", [
    ("{{user `x`}}", "var.NAME"), ("{{template_dir}}", "path.root"),
    ("{{packer_version}}", "packer.version"), ("{{build `ID`}}", "build.NAME"),
])
def test_json_only_functions_are_errors_in_hcl2_templates(call, instead):
    ctx = FuncContext(user_vars={"x": "1"}, template_path="/t/a.pkr.hcl",
                      build_data_keys={"ID": "i"}, hcl2=True)
    with pytest.raises(RenderError, match=f"is a function of JSON templates; in an HCL2 "
                                          f"template write {re.escape(instead)}"):
        render(call, packer_funcs(ctx))
    assert render("{{build_name}} {{upper `a`}}", packer_funcs(
        FuncContext(user_vars={}, template_path=None, build_name="b", hcl2=True))) == "b A"
