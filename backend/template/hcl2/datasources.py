"""HCL2 data blocks: checked when read, run (through the caller's data-source runner) once,
when something refers to them and the load evaluates data."""

from __future__ import annotations

from typing import Any

from ..errors import did_you_mean
from ..plugins import (
    DataSourceFailed,
    PluginUnavailable,
)
from . import syntax as S
from .common import _IDENT, _File, _has_unknown, _Poisoned
from .expr import (
    UNKNOWN,
    Namespace,
)
from .schema import shape


class _DataSources:
    """Part of the HCL2 loader (loader.py): its attributes are the loader's."""

    def top_data(self, f: _File, b: S.Block) -> None:
        for label, (line, col) in zip(b.labels, b.label_locs, strict=False):
            if not _IDENT.match(label):
                self.p.add(f.path, line, col, f'"{label}" is not a valid data source label '
                           "(letters, digits, _ and -, starting with a letter)")
                return
        key = f"{b.labels[0]}.{b.labels[1]}"
        if key in self.data_blocks:
            old, ofile = self.data_blocks[key]
            self.p.add(f.path, b.line, b.col, f'data "{b.labels[0]}" "{b.labels[1]}" is defined '
                       f"twice (first in {ofile}:{old.line})")
            return
        if b.labels[0] not in self.catalog.names("data source"):
            self.bad_data_types.add(b.labels[0])  # references to it say nothing more
            line, col = b.label_locs[0]
            self.p.add(f.path, line, col, self.catalog.unknown_message("data source", b.labels[0])
                       + "; look the value up once and pass it in with -var or a var file")
            return
        self.data_blocks[key] = (b, f.path)

    # -- data sources -------------------------------------------------------------------
    def _data_types(self) -> list[str]:
        return sorted({k.split(".", 1)[0] for k in self.data_blocks})

    def _data_missing(self, type_name: str) -> str:
        return (f'there is no data source of type "{type_name}"'
                f"{did_you_mean(type_name, self._data_types())}; declare one with "
                f'data "{type_name}" "NAME" {{ ... }}')

    def _data_type(self, type_name: str) -> Namespace:
        names = sorted(k.split(".", 1)[1] for k in self.data_blocks
                       if k.split(".", 1)[0] == type_name)
        if type_name in self.bad_data_types:
            raise _Poisoned(f"data source type {type_name} (reported above)")
        if not names:
            raise KeyError(type_name)

        def missing(name: str) -> str:
            return (f'there is no data "{type_name}" "{name}"{did_you_mean(name, names)} '
                    f"(declared: {', '.join(names)})")

        def get(name: str) -> Any:
            if name not in names:
                raise KeyError(name)
            return self.data(type_name, name)

        return Namespace(f"data.{type_name}", get, lambda: names, missing)

    def _add_data_secret(self, value: str) -> None:
        if value and len(value) >= 3:  # as the build context: shorter would mask everything
            self.sensitive.add(value)

    def data(self, type_name: str, name: str) -> dict[str, Any]:
        """A data source's outputs: looked up once (for a build), else unknown."""
        from ..decode import Decoder, secret_values

        key = f"{type_name}.{name}"
        if key in self.data_values:
            return self.data_values[key]
        b, file = self.data_blocks[key]
        state = self.data_state.get(key)
        if state == "failed":
            raise _Poisoned(f"data.{key} has an error (reported above)")
        if state == "busy":
            self.data_state[key] = "failed"
            self.p.add(file, b.line, b.col, f"data.{key} refers to itself (directly or through "
                       "locals)")
            raise _Poisoned("cycle")
        self.data_state[key] = "busy"
        path = f"data.{key}"
        try:
            cls = self.catalog.lookup("data source", type_name)
        except PluginUnavailable as e:
            cls = None
            self.p.add(file, b.line, b.col, str(e), path)
        before = len(self.p.items)
        node = self.body_node(b.body, self.scope(), file, path, what=f'data "{type_name}"')
        if cls is None or len(self.p.items) != before:
            self.data_state[key] = "failed"
            raise _Poisoned(f"{path} has an error (reported above)")
        unknown = dict.fromkeys(cls.outputs, UNKNOWN)
        if self.syntax_only:
            self.data_state[key] = "done"
            self.data_values[key] = unknown
            return unknown
        dec = Decoder(strict_lists=True)
        config = dec.decode(cls.Config, shape("data source", type_name, node))
        for prob in dec.problems:
            self.p.add(prob.loc.file, prob.loc.line, prob.loc.col, prob.message, prob.loc.path)
        if config is None or dec.problems:
            self.data_state[key] = "failed"
            raise _Poisoned(f"{path} has an error (reported above)")
        self.sensitive.update(x for x in secret_values(config) if x)
        self.data_configs[key] = (type_name, name, config)
        outputs = unknown
        if self.evaluate_data and not _has_unknown(node):
            try:
                outputs, warnings = self.run_data(cls, config, self._add_data_secret)
                for w in warnings:
                    self.p.warn(file, b.line, b.col, f"{path}: {w}")
            except DataSourceFailed as e:
                self.p.add(file, b.line, b.col, str(e), path)
                self.data_state[key] = "failed"
                raise _Poisoned(f"{path} has an error (reported above)") from None
        self.data_state[key] = "done"
        self.data_values[key] = outputs
        return outputs

