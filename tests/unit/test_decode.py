"""The plugin config decoder: Packer's weak typing (mapstructure with WeaklyTypedInput and
its comma-splitting hook), rendering, and where Kiln is deliberately stricter."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from kiln.backend.template.decode import Decoder, Deferred, opt
from kiln.backend.template.source import Loc, from_plain


@dataclass
class Sample:
    names: list[str] = opt(default_factory=list)
    codes: list[int] = opt(default_factory=list)
    args: list[Deferred] = opt(default_factory=list)
    mapping: dict[str, str] = opt(default_factory=dict)
    text: str = opt("")
    number: int = opt(0)
    flag: bool = opt(False)
    late: dict[str, str] = opt(default_factory=dict, render=False)


def render(text: str, loc: Loc) -> str:
    return text.replace("{{pwd}}", "/work").replace("{{user `d`}}", "shared")


def decode(config: dict, **kw) -> tuple[Sample | None, list[str]]:
    d = Decoder(render=render, **kw)
    obj = d.decode(Sample, from_plain(config, Loc("t.json")))
    return obj, [p.message for p in d.problems]


def test_map_keys_are_rendered_like_values():
    obj, problems = decode({"mapping": {"{{pwd}}/{{user `d`}}": "/mnt/{{user `d`}}"},
                            "late": {"{{pwd}}": "{{pwd}}"}})
    assert problems == []
    # Packer 1.6.6 leaves the value alone when the key was templated too (README)
    assert obj.mapping == {"/work/shared": "/mnt/shared"}
    assert obj.late == {"{{pwd}}": "{{pwd}}"}  # fields rendered later keep their braces


def test_a_string_splits_at_commas_for_every_kind_of_list():
    obj, problems = decode({"names": "a,b", "codes": "0,3", "args": "-d,{{.Image}}"})
    assert problems == []
    assert (obj.names, obj.codes, obj.args) == (["a", "b"], [0, 3], ["-d", "{{.Image}}"])
    obj, _ = decode({"names": "", "codes": 5})
    assert (obj.names, obj.codes) == ([], [5])


def test_scalars_convert_as_go_converts_them():
    obj, problems = decode({"text": 5.0, "number": "0x1f", "flag": "t"})
    assert problems == [] and (obj.text, obj.number, obj.flag) == ("5", 31, True)
    assert decode({"text": 1e21})[0].text == "1000000000000000000000"
    assert decode({"text": True})[0].text == "1"
    assert decode({"number": "010"})[0].number == 8  # a leading 0 is octal to Go
    assert decode({"number": 7.9})[0].number == 7  # JSON numbers truncate into ints
    assert decode({"number": "1_000"})[1] == ['expected an integer, got "1_000"']
    assert decode({"number": "0x_ff"})[0].number == 255


def test_a_list_of_objects_merges_into_one_object():
    obj, problems = decode({"mapping": [{"a": "1"}, {"b": "2", "a": "3"}]})
    assert problems == [] and obj.mapping == {"a": "3", "b": "2"}
    assert decode({"mapping": []})[0].mapping == {}


@pytest.mark.parametrize("config", [{"names": "a,b"}, {"codes": 5}, {"args": "x"}])
def test_hcl2_lists_take_lists_only(config):
    """Packer converts HCL2 values by type: no comma splitting, no single value as a list."""
    obj, problems = decode(config, strict_lists=True)
    assert problems and problems[0].startswith("expected a list")
    assert decode({"names": ["a,b"]}, strict_lists=True)[0].names == ["a,b"]


def test_run_time_lists_are_split_but_not_rendered():
    obj, problems = decode({"args": "{{pwd}} a,b"})
    assert problems == [] and obj.args == ["{{pwd}} a", "b"]


def test_a_later_raw_is_decoded_over_the_earlier_as_packer_does():
    """A provisioner's override: lists replace item by item, maps gain keys."""
    d = Decoder(render=render)
    obj = d.decode(Sample, [from_plain({"names": ["a", "b", "c"], "mapping": {"k": "1"},
                                        "text": "old", "number": 3}, Loc("t.json")),
                            from_plain({"names": ["x"], "mapping": {"j": "2"}, "text": "new"},
                                       Loc("t.json"))])
    assert d.problems == []
    assert (obj.names, obj.mapping, obj.text, obj.number) == (
        ["x", "b", "c"], {"k": "1", "j": "2"}, "new", 3)
