"""``kiln hcl2_upgrade``: a legacy JSON (or YAML) template -> an equivalent ``.pkr.hcl``.

The HCL2 file builds to the same result in Kiln: variables (sensitive ones stay sensitive),
one source per builder (named after the builder, so ``build_name`` and the manifest stay
the same), one build block, provisioners with ``only``/``except``/``override``/
``pause_before``/``max_retries``/``timeout``, the error-cleanup provisioner and every
post-processor chain.

Go-template actions are translated where HCL2 has an exact equivalent::

    {{user `x`}}            var.x  (local.x for variables whose default uses templates)
    {{env `X`}}             env("X")          (variable defaults only, as in JSON)
    {{isotime "layout"}}    legacy_isotime("layout")
    {{strftime "%Y"}}       legacy_strftime("%Y")
    {{timestamp}}           legacy_timestamp()   (Unix seconds, a Kiln function)
    {{uuid}}                uuidv4()
    {{template_dir}}        path.root         {{pwd}}  path.cwd
    {{build_name}}          source.name       {{build_type}}  source.type
    {{build `ID`}}          build.ID
    {{split s "-" 1}}       split("-", s)[1]
    {{replace_all a b s}}   replace(s, a, b)  {{replace a b -1 s}} likewise
    {{lower s}} {{upper s}} lower(s) / upper(s)

Anything else (``{{.Vars}}``, ``clean_resource_name``, ``{{if}}``...) stays as Go-template
text: plugins render it at run time exactly as they do for JSON. Where nothing renders it
(a variable default, ``only``, a duration), the upgrade says so in a warning.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..golang import quote_escaped
from ..plugins import PluginCatalog
from ..source import Node

__all__ = ["upgrade", "UpgradeResult"]


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PROV_META = ("type", "only", "except", "override", "pause_before", "max_retries", "timeout")
_PP_META = ("type", "name", "only", "except", "keep_input_artifact")
RFC3339 = "2006-01-02T15:04:05Z07:00"


class UpgradeError(Exception):
    pass


@dataclass
class UpgradeResult:
    text: str
    warnings: list[str] = field(default_factory=list)


# -- Go template actions --------------------------------------------------------------------


class _Untranslatable(Exception):
    pass


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<num>-?\d+(?:\.\d+)?)"""
                    r"""|(?P<field>\.[A-Za-z_][\w.]*|\.)|(?P<var>\$\w*)|(?P<ident>[A-Za-z_]\w*)"""
                    r"""|(?P<p>[|()]))""")


def _tokens(src: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    src = src.strip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m or m.end() == pos:
            raise _Untranslatable(src)
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _go_string(tok: tuple[str, str]) -> str:
    kind, text = tok
    if kind == "raw":
        return text[1:-1]
    import json

    try:
        return json.loads(text)
    except ValueError:
        raise _Untranslatable(text) from None


def hcl_quote(s: str) -> str:
    """``s`` as an HCL quoted string literal (template sequences escaped)."""
    return quote_escaped(s, "\\u{:04x}").replace("${", "$${").replace("%{", "%%{")


def _escape_lit(s: str) -> str:
    return hcl_quote(s)[1:-1]


class _Translator:
    """Translate one template string in a context: "variable", "plugin" or "meta"."""

    def __init__(self, up: _Upgrader, context: str, where: str):
        self.up = up
        self.context = context
        self.where = where

    def pipeline(self, toks: list[tuple[str, str]]) -> str:
        cmds: list[list[tuple[str, str]]] = [[]]
        depth = 0
        for t in toks:
            if t == ("p", "|") and depth == 0:
                cmds.append([])
                continue
            if t == ("p", "("):
                depth += 1
            elif t == ("p", ")"):
                depth -= 1
            cmds[-1].append(t)
        value: str | None = None
        for cmd in cmds:
            if not cmd:
                raise _Untranslatable("empty command")
            value = self.command(cmd, value)
        assert value is not None
        return value

    def operands(self, toks: list[tuple[str, str]]) -> list[str]:
        out = []
        i = 0
        while i < len(toks):
            kind, text = toks[i]
            if text == "(" and kind == "p":
                depth, j = 1, i + 1
                while j < len(toks) and depth:
                    if toks[j] == ("p", "("):
                        depth += 1
                    elif toks[j] == ("p", ")"):
                        depth -= 1
                    j += 1
                out.append("(" + self.pipeline(toks[i + 1: j - 1]) + ")")
                i = j
                continue
            if kind in ("str", "raw"):
                out.append(hcl_quote(_go_string(toks[i])))
            elif kind == "num":
                out.append(text)
            elif kind == "ident" and text in ("true", "false"):
                out.append(text)
            else:
                raise _Untranslatable(text)
            i += 1
        return out

    def command(self, cmd: list[tuple[str, str]], piped: str | None) -> str:
        kind, name = cmd[0]
        if kind != "ident" or name in ("true", "false", "nil"):
            if len(cmd) == 1 and piped is None:
                return self.operands(cmd)[0]
            raise _Untranslatable(name)
        raw_args = cmd[1:]
        args = self.operands(raw_args)
        if piped is not None:
            args.append(piped)
        n = len(args)

        def lit(i: int) -> str:
            k, t = raw_args[i] if i < len(raw_args) else ("", "")
            if k not in ("str", "raw"):
                raise _Untranslatable(name)
            return _go_string(raw_args[i])

        if name == "user" and n == 1:
            return self.up.user_ref(lit(0), self)
        if name == "env" and n == 1:
            if self.context == "variable":
                return f"env({args[0]})"
            if self.context.startswith("local:"):
                return self.up.env_var(self.context[6:], lit(0))
            raise _Untranslatable(name)
        if name == "timestamp" and n == 0:
            return "legacy_timestamp()"
        if name == "isotime" and n <= 1:
            return f"legacy_isotime({args[0] if n else hcl_quote(RFC3339)})"
        if name == "strftime" and n == 1:
            return f"legacy_strftime({args[0]})"
        if name == "uuid" and n == 0:
            return "uuidv4()"
        if name == "template_dir" and n == 0:
            return "path.root"
        if name == "pwd" and n == 0:
            return "path.cwd"
        if name == "packer_version" and n == 0:
            return "packer.version"
        if name in ("build_name", "build_type") and n == 0:
            if self.context != "plugin" and self.context != "meta":
                raise _Untranslatable(name)
            return "source.name" if name == "build_name" else "source.type"
        if name == "build" and n == 1:
            key = lit(0)
            if self.context not in ("plugin", "meta") or not _IDENT.match(key):
                raise _Untranslatable(name)
            return f"build.{key}"
        if name == "split" and n == 3:
            return f"split({args[1]}, {args[0]})[{args[2]}]"
        if name == "replace_all" and n == 3:
            return f"replace({args[2]}, {args[0]}, {args[1]})"
        if name == "replace" and n == 4:
            try:
                count = int(args[2])
            except ValueError:
                raise _Untranslatable(name) from None
            if count < 0:
                return f"replace({args[3]}, {args[0]}, {args[1]})"
            raise _Untranslatable(name)
        if name in ("lower", "upper") and n == 1:
            return f"{name}({args[0]})"
        if name in ("consul_key", "vault", "aws_secretsmanager") and n >= 1:
            return f"{name}({', '.join(args)})"
        raise _Untranslatable(name)

    def translate(self, text: str) -> str:
        """An HCL expression for the template string ``text``."""
        if "{{" not in text:
            return hcl_quote(text)
        parts: list[tuple[str, str]] = []  # ("lit", text) | ("expr", hcl) | ("keep", go text)
        pos = 0
        for m in _ACTION.finditer(text):
            lit = text[pos: m.start()]
            if m.group(1):
                lit = lit.rstrip()
            if parts and parts[-1][0] == "trim":
                parts.pop()
                lit = lit.lstrip()
            parts.append(("lit", lit))
            body = m.group(2)
            if body.strip().startswith("/*"):
                parts.append(("lit", ""))
            else:
                head = body.strip().split(None, 1)[0] if body.strip() else ""
                if head in ("if", "else", "end", "range", "with", "define", "template", "block",
                            "break", "continue"):
                    return self.keep_all(text)
                try:
                    parts.append(("expr", self.pipeline(_tokens(body))))
                except _Untranslatable:
                    parts.append(("keep", m.group(0)))
            if m.group(3):
                parts.append(("trim", ""))
            pos = m.end()
        tail = text[pos:]
        if parts and parts[-1][0] == "trim":
            parts.pop()
            tail = tail.lstrip()
        parts.append(("lit", tail))
        parts = [p for p in parts if p[1] != "" or p[0] != "lit"]
        kept = [p[1] for p in parts if p[0] == "keep"]
        if kept and self.context != "plugin":
            self.up.warn(f"{self.where}: {', '.join(kept)} has no HCL2 equivalent and nothing "
                         "renders Go templates here; it is kept as text")
        if len(parts) == 1 and parts[0][0] == "expr":
            return parts[0][1]
        out = ['"']
        for kind, value in parts:
            if kind == "expr":
                out.append("${" + value + "}")
            else:
                out.append(_escape_lit(value))
        out.append('"')
        return "".join(out)

    def keep_all(self, text: str) -> str:
        if self.context != "plugin":
            self.up.warn(f"{self.where}: Go-template control structures have no HCL2 equivalent "
                         "here; the text is kept as it is")
        return hcl_quote(text)


# -- the upgrader -------------------------------------------------------------------------


class _Upgrader:
    def __init__(self, root: Node, path: str):
        self.root = root
        self.path = path
        self.warnings: list[str] = []
        self.vars: dict[str, str | None] = {}
        self.local_vars: set[str] = set()
        self.sensitive: set[str] = set()
        self.lines: list[str] = []
        #: builder index -> its name rendered with the variables' defaults (computed names)
        self.rendered_names: dict[int, str] = {}
        #: user variables the JSON uses without declaring them (var files may set them)
        self.undeclared: list[str] = []

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def user_ref(self, name: str, tr: _Translator) -> str:
        if name in self.local_vars and tr.context != "local:" + name:
            return f"local.{name}"
        if name in self.vars or name in self.undeclared:
            return f"var.{name}"
        if not _IDENT.match(name):
            self.warn(f'{tr.where}: the user variable "{name}" is not declared and cannot be an '
                      'HCL2 name; it renders as ""')
            return '""'
        self.undeclared.append(name)
        return f"var.{name}"

    def value(self, node: Node, context: str, where: str, indent: int) -> str:
        v = node.value
        if isinstance(v, str):
            return _Translator(self, context, where).translate(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if v is None:
            return "null"
        if isinstance(v, (int, float)):
            return repr(v) if isinstance(v, float) else str(v)
        pad = "  " * (indent + 1)
        end = "  " * indent
        if isinstance(v, list):
            if not v:
                return "[]"
            items = [self.value(x, context, f"{where}[{i}]", indent + 1) for i, x in enumerate(v)]
            if sum(len(x) for x in items) < 60 and all("\n" not in x for x in items):
                return "[" + ", ".join(items) + "]"
            return "[\n" + "".join(f"{pad}{x},\n" for x in items) + end + "]"
        if isinstance(v, dict):
            if not v:
                return "{}"
            rows = []
            for k, child in v.items():
                key = k if _IDENT.match(k) else hcl_quote(k)
                rows.append(f"{pad}{key} = {self.value(child, context, f'{where}.{k}', indent + 1)}\n")
            return "{\n" + "".join(rows) + end + "}"
        return hcl_quote(str(v))

    def emit(self, line: str = "") -> None:
        self.lines.append(line)

    def body(self, node: Node, skip: tuple[str, ...], context: str, where: str, indent: int,
             plugin: tuple[str, str] | None = None) -> None:
        pad = "  " * indent
        for k, child in node.items():
            if k in skip:
                continue
            if k.startswith("_"):
                continue
            key = k if _IDENT.match(k) else None
            if key is None:
                self.warn(f'{where}: the key "{k}" is not a valid HCL2 argument name; it is '
                          "left out")
                continue
            self.emit(f"{pad}{key} = {self.setting(child, plugin, k, f'{where}.{k}', indent)}")

    def setting(self, node: Node, plugin: tuple[str, str] | None, key: str, where: str,
                indent: int) -> str:
        """A plugin setting in the type HCL2 wants: JSON decoding is weak (a string for a
        list is split at commas, one value is a list of one, a list of objects is one
        object), HCL2 values are typed."""
        kind = _field_kind(plugin, key)
        v = node.value
        if kind == "list" and isinstance(v, str):
            if not v:
                return "[]"
            text = self.value(node, "plugin", where, indent)
            if text != hcl_quote(v):  # an expression: rendered, then split, as JSON does
                return f'split(",", {text})'
            return "[" + ", ".join(hcl_quote(x) for x in v.split(",")) + "]"
        if kind == "list" and isinstance(v, (bool, int, float)):
            return "[" + self.value(node, "plugin", where, indent) + "]"
        if kind == "map" and isinstance(v, list) and v and all(c.is_map for c in v):
            merged: dict[str, Node] = {}
            for c in v:
                merged.update(c.items())
            return self.value(Node(merged, node.loc), "plugin", where, indent)
        return self.value(node, "plugin", where, indent)

    # -- sections ---------------------------------------------------------------------------
    def run(self) -> str:
        root = self.root
        if not root.is_map:
            raise UpgradeError("the template must be a JSON object")
        builders = root.get("builders")
        if builders is None or not builders.is_list or not builders.value:
            raise UpgradeError('the template has no "builders" list')
        self.emit(f"# Converted from {os.path.basename(self.path)} by kiln hcl2_upgrade.")
        for k, child in root.items():
            if k.startswith("_") and isinstance(child.value, str):
                for ln in child.value.splitlines() or [""]:
                    self.emit(f"# {k}: {ln}")
        self.emit()
        mv = root.get("min_packer_version")
        if mv is not None and isinstance(mv.value, str) and mv.value:
            self.emit("packer {")
            self.emit(f"  required_version = {hcl_quote('>= ' + mv.value)}")
            self.emit("}")
            self.emit()
        if root.get("push") is not None:
            self.warn('"push" is left out: Atlas push no longer exists')
        self.variables()
        mark = len(self.lines)
        names = self.sources(builders)
        self.build(names)
        extra: list[str] = []
        for name in self.undeclared:
            extra += [f'variable "{name}" {{',
                      "  type        = string",
                      '  default     = ""',
                      '  description = "Used by the JSON template without a declaration (it '
                      'rendered as an empty string unless set)."',
                      "}", ""]
        self.lines[mark:mark] = extra
        return "\n".join(self.lines) + "\n"

    def variables(self) -> None:
        sv = self.root.get("sensitive-variables")
        if sv is not None and sv.is_list:
            self.sensitive = {x.value for x in sv.value if isinstance(x.value, str)}
        vnode = self.root.get("variables")
        if vnode is None or not vnode.is_map:
            return
        for name, child in vnode.items():
            v = child.value
            self.vars[name] = v if isinstance(v, str) else None
            if isinstance(v, str) and "{{" in v and not _env_only(v):
                self.local_vars.add(name)
        for name, child in vnode.items():
            if not _IDENT.match(name):
                self.warn(f'variable "{name}" is not a valid HCL2 name; it is left out')
                continue
            v = child.value
            self.emit(f'variable "{name}" {{')
            self.emit("  type = string")
            if name in self.local_vars:
                self.emit('  default = ""')
            elif v is not None:
                text = v if isinstance(v, str) else str(v)
                tr = _Translator(self, "variable", f"variables.{name}")
                self.emit(f"  default = {tr.translate(text)}")
            if name in self.sensitive:
                self.emit("  sensitive = true")
            self.emit("}")
            self.emit()
        if self.local_vars:
            self.env_vars: list[tuple[str, str]] = []
            rows = []
            for name, child in vnode.items():
                if name not in self.local_vars:
                    continue
                tr = _Translator(self, "local:" + name, f"variables.{name}")
                rows.append(f'  {name} = var.{name} != "" ? var.{name} : {tr.translate(child.value)}')
            for vname, env in self.env_vars:
                self.emit(f'variable "{vname}" {{')
                self.emit("  type = string")
                self.emit(f"  default = env({hcl_quote(env)})")
                self.emit("}")
                self.emit()
            self.emit("# Variables whose default is computed from templates: set the variable to")
            self.emit("# override the computed value.")
            self.emit("locals {")
            self.lines += rows
            self.emit("}")
            self.emit()

    def env_var(self, owner: str, env: str) -> str:
        """A variable holding env("X") for a computed default (env() works in defaults only)."""
        vname = re.sub(r"[^A-Za-z0-9_]", "_", f"{owner}_env_{env}")
        if (vname, env) not in self.env_vars:
            self.env_vars.append((vname, env))
        return f"var.{vname}"

    def sources(self, builders: Node) -> list[tuple[str, str]]:
        names: list[tuple[str, str]] = []
        used: set[str] = set()
        for i, b in enumerate(builders.value):
            if not b.is_map or not isinstance((b.get("type") or Node(None, b.loc)).value, str):
                raise UpgradeError(f"builders[{i}] has no type")
            btype = b.get("type").value
            nnode = b.get("name")
            name = _builder_name(nnode, btype)
            if "{{" in name or not _IDENT.match(name):
                rendered = self.rendered_names.get(i, "")
                if "{{" in name and _IDENT.match(rendered):
                    self.warn(f'builders[{i}]: the name "{name}" is computed; an HCL2 source name '
                              f'is fixed, so the source is called "{rendered}" (its value with the '
                              "default variables)")
                    clean = rendered
                else:
                    clean = re.sub(r"[^A-Za-z0-9_-]", "_", name) if "{{" not in name else btype
                    if not clean or not clean[0].isalpha():
                        clean = f"{btype}_{i}"
                    self.warn(f'builders[{i}]: the name "{name}" cannot be an HCL2 source name; '
                              f'the source is called "{clean}" ({{{{build_name}}}} changes with '
                              "it)")
                name = clean
            while name in used:
                name += "_"
            used.add(name)
            self.emit(f'source "{btype}" "{name}" {{')
            self.body(b, ("type", "name"), "plugin", f"builders[{i}]", 1, ("builder", btype))
            self.emit("}")
            self.emit()
            names.append((btype, name))
        self.builder_names = {}
        for (btype, name), b in zip(names, builders.value, strict=True):
            nnode = b.get("name")
            original = _builder_name(nnode, btype)
            self.builder_names[original] = f"{btype}.{name}"
            self.builder_names.setdefault(name, f"{btype}.{name}")
        return names

    def only_except(self, node: Node, where: str, pad: str, weak: bool = False) -> None:
        for key in ("only", "except"):
            lst = node.get(key)
            if lst is None:
                continue
            if lst.value is None:
                continue
            if not lst.is_list:
                if weak and not lst.is_map:  # a provisioner's single name
                    lst = Node([lst], lst.loc)
                else:  # kept as written, so HCL2 refuses it as Packer's JSON decoder does
                    self.emit(f"{pad}{key} = {self.value(lst, 'meta', f'{where}.{key}', 2)}")
                    continue
            refs = []
            for item in lst.value:
                name = _builder_name(item, "") if weak else item.value
                if isinstance(name, str) and name:
                    ref = self.builder_names.get(name)
                    if ref is None:
                        self.warn(f'{where}.{key}: "{name}" names no builder; it is kept')
                        ref = name
                    refs.append(hcl_quote(ref))
            self.emit(f"{pad}{key} = [{', '.join(refs)}]")

    def provisioner(self, p: Node, where: str, block: str, pad: str) -> None:
        if not p.is_map or not isinstance((p.get("type") or Node(None, p.loc)).value, str):
            self.warn(f"{where}: not a provisioner object; left out")
            return
        self.emit(f'{pad}{block} "{p.get("type").value}" {{')
        inner = pad + "  "
        if block == "provisioner":
            self.only_except(p, where, inner, weak=True)
        for key in ("pause_before", "timeout"):
            n = p.get(key)
            if n is not None:
                if isinstance(n.value, (int, float)):  # JSON reads a number as nanoseconds
                    from ..golang import format_duration_ns

                    n = Node(format_duration_ns(int(n.value)), n.loc)
                self.emit(f"{inner}{key} = {self.value(n, 'meta', f'{where}.{key}', 2)}")
        n = p.get("max_retries")
        if n is not None:
            v = n.value
            if isinstance(v, bool):  # read weakly, as a string: "1" or "0"
                v = int(v)
            if isinstance(v, str) and v.strip().isdigit():
                v = int(v.strip())
            text = str(v) if isinstance(v, int) and not isinstance(v, bool) else \
                self.value(n, "meta", f"{where}.max_retries", 2)
            self.emit(f"{inner}max_retries = {text}")
        o = p.get("override")
        if o is not None and o.is_map and block == "provisioner":
            self.emit(f"{inner}override = {{")
            for bname, cfg in o.items():
                ref = self.builder_names.get(bname, "")
                key = ref.split(".", 1)[1] if ref else bname
                if not cfg.is_map:
                    continue
                self.emit(f"{inner}  {key if _IDENT.match(key) else hcl_quote(key)} = "
                          f"{self.value(cfg, 'plugin', f'{where}.override.{bname}', 3)}")
            self.emit(f"{inner}}}")
        self.body(p, _PROV_META, "plugin", where, len(inner) // 2,
                  ("provisioner", p.get("type").value))
        self.emit(f"{pad}}}")

    def post_processor(self, p: Node, where: str, pad: str) -> None:
        if isinstance(p.value, str):
            self.emit(f'{pad}post-processor "{p.value}" {{}}')
            return
        if not p.is_map or not isinstance((p.get("type") or Node(None, p.loc)).value, str):
            self.warn(f"{where}: not a post-processor object; left out")
            return
        self.emit(f'{pad}post-processor "{p.get("type").value}" {{')
        inner = pad + "  "
        n = p.get("name")
        if n is not None and isinstance(n.value, str):
            self.emit(f"{inner}name = {hcl_quote(n.value)}")
        self.only_except(p, where, inner)
        k = p.get("keep_input_artifact")
        if k is not None and isinstance(k.value, bool):
            self.emit(f"{inner}keep_input_artifact = {'true' if k.value else 'false'}")
        self.body(p, _PP_META, "plugin", where, len(inner) // 2,
                  ("post-processor", p.get("type").value))
        self.emit(f"{pad}}}")

    def build(self, names: list[tuple[str, str]]) -> None:
        root = self.root
        self.emit("build {")
        d = root.get("description")
        if d is not None and isinstance(d.value, str):
            self.emit(f"  description = {hcl_quote(d.value)}")
        refs = ", ".join(hcl_quote(f"source.{t}.{n}") for t, n in names)
        self.emit(f"  sources = [{refs}]")
        provs = root.get("provisioners")
        if provs is not None and provs.is_list:
            for i, p in enumerate(provs.value):
                self.emit()
                self.provisioner(p, f"provisioners[{i}]", "provisioner", "  ")
        ec = root.get("error-cleanup-provisioner")
        if ec is not None:
            self.emit()
            self.provisioner(ec, "error-cleanup-provisioner", "error-cleanup-provisioner", "  ")
        pps = root.get("post-processors")
        if pps is not None and pps.is_list:
            for i, item in enumerate(pps.value):
                self.emit()
                if item.is_list:
                    self.emit("  post-processors {")
                    for j, sub in enumerate(item.value):
                        self.post_processor(sub, f"post-processors[{i}][{j}]", "    ")
                    self.emit("  }")
                else:
                    self.post_processor(item, f"post-processors[{i}]", "  ")
        self.emit("}")


def _builder_name(node: Node | None, btype: str) -> str:
    """A builder's name as Packer decodes it (weakly: "name": 7 is "7"); its type without one."""
    if node is None or node.value in (None, ""):
        return btype
    v = node.value
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, (int, float)):
        from ..decode import go_number_text

        return go_number_text(v)
    return v if isinstance(v, str) else btype


def _field_kind(plugin: tuple[str, str] | None, key: str) -> str:
    """"list", "map" or "" for a setting of a plugin (by its config's field type)."""
    if plugin is None:
        return ""
    from typing import get_origin

    from ..decode import config_fields
    from ..plugins import PluginUnavailable, catalog

    try:
        cls = catalog().lookup(*plugin)
    except PluginUnavailable:
        return ""
    spec = config_fields(cls.Config).get(key) if cls is not None else None
    if spec is None:
        return ""
    tp = spec.type
    args = [a for a in getattr(tp, "__args__", ()) if a is not type(None)]
    if get_origin(tp) not in (list, dict) and len(args) == 1:  # Optional[...]
        tp = args[0]
    origin = get_origin(tp) or tp
    return "list" if origin in (list, tuple) else "map" if origin is dict else ""


def _env_only(text: str) -> bool:
    """A default that is only literal text and {{env `X`}} actions (allowed in HCL2 defaults)."""
    for m in _ACTION.finditer(text):
        try:
            toks = _tokens(m.group(2))
        except _Untranslatable:
            return False
        if not (len(toks) == 2 and toks[0] == ("ident", "env") and toks[1][0] in ("str", "raw")):
            return False
    return True


def _rendered_builder_names(path: str, root: Node) -> dict[int, str]:
    builders = root.get("builders") if root.is_map else None
    if builders is None or not builders.is_list or not any(
            b.is_map and isinstance((b.get("name") or Node(None, b.loc)).value, str)
            and "{{" in b.get("name").value for b in builders.value):
        return {}
    from ..errors import TemplateError
    from ..legacy import load_legacy

    try:
        t = load_legacy(path)
    except TemplateError:
        return {}
    if len(t.builds) != len(builders.value):
        return {}
    return {i: b.name for i, b in enumerate(t.builds)}


def upgrade(path: str, catalog: PluginCatalog | None = None) -> UpgradeResult:
    """The HCL2 text for the JSON/YAML template at ``path``. Raises TemplateError or
    UpgradeError. ``catalog``: the plugins' configuration schemas (see :mod:`.plugins`)."""
    from ..parse import load_node
    from ..plugins import using
    from .fmt import FormatError, format_text

    root = load_node(path)
    up = _Upgrader(root, path)
    with using(catalog):
        up.rendered_names = _rendered_builder_names(path, root)
        text = up.run()
    try:
        text = format_text(text)
    except FormatError as e:
        raise UpgradeError(f"internal error: the generated HCL2 does not parse at line "
                           f"{e.line}: {e.message}") from None
    return UpgradeResult(text, up.warnings)
