"""The plugin config decoder: Packer's weak typing (mapstructure with WeaklyTypedInput and
its comma-splitting hook), rendering, and where Kiln is deliberately stricter."""

from __future__ import annotations

from dataclasses import dataclass

from backend.template.decode import Decoder, Deferred, opt
from backend.template.source import Loc, from_plain


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
