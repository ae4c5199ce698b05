"""YAML templates: PyYAML events turned into located nodes.

Imported only when a YAML file is read, so JSON templates never pay for PyYAML.
"""

from __future__ import annotations

from typing import Any, NoReturn

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from .errors import Problem, TemplateError
from .source import Loc, Node, join_path
from .textlines import (
    _YAML_BREAKS,
    MAX_ALIAS_EXPANSION,
    MAX_DEPTH,
    _a,
    _describe_char,
    _Lines,
)

_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE
_TAG = "tag:yaml.org,2002:"
_STR, _MAP, _SEQ = _TAG + "str", _TAG + "map", _TAG + "seq"
_MERGE_TAG = _TAG + "merge"
_CONSTRUCTED = {_TAG + "int", _TAG + "float", _TAG + "bool", _TAG + "null"}
_AS_STRING = {_STR, _TAG + "timestamp", _TAG + "value"}  # kept as the text written
_NO_KEY, _MERGE, _SKIP = object(), object(), object()


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


class _Frame:
    __slots__ = ("node", "is_map", "key", "merges", "height", "size", "anchor")

    def __init__(self, node: Node, is_map: bool, anchor: str | None):
        self.node = node
        self.is_map = is_map
        self.key: Any = _NO_KEY
        self.merges: list[list[Node]] = []
        self.height = 1  # levels of nesting, this one included
        self.size = 1  # values, aliases expanded
        self.anchor = anchor


class _YAMLComposer:
    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Node, int, int]] = {}  # name -> node, height, size
        self.problems: list[Problem] = []
        self.copied = 0
        self.root: Node | None = None
        self.lines: _Lines | None = None

    # -- locations and errors ------------------------------------------------------
    def loc(self, mark: Any, path: str) -> Loc:
        return Loc(self.file, mark.line + 1, mark.column + 1, path)

    def problem(self, loc: Loc, message: str) -> Problem:
        if self.lines is None:
            self.lines = _Lines(self.text, _YAML_BREAKS)
        return Problem(loc, message, snippet=self.lines.snippet(loc.line, loc.col))

    def fail(self, loc: Loc, message: str) -> NoReturn:
        raise TemplateError(self.problem(loc, message))

    def child_path(self) -> str:
        if not self.stack:
            return ""
        f = self.stack[-1]
        if not f.is_map:
            return join_path(f.node.loc.path, len(f.node.value))
        if isinstance(f.key, str):
            return join_path(f.node.loc.path, f.key)
        return f.node.loc.path

    # -- composing -----------------------------------------------------------------
    def compose(self, loader: Any) -> Node | None:
        documents = 0
        stack = self.stack
        while True:
            ev = loader.get_event()
            cls = ev.__class__
            if cls is ScalarEvent:
                self.scalar(loader, ev)
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                is_map = cls is MappingStartEvent
                if len(stack) >= MAX_DEPTH:
                    self.fail(
                        self.loc(ev.start_mark, ""),
                        f"invalid YAML: nesting is too deep (more than {MAX_DEPTH} levels)",
                    )
                loc = self.loc(ev.start_mark, self.child_path())
                if ev.tag not in (None, "!", _MAP if is_map else _SEQ):
                    self.problems.append(
                        self.problem(loc, f"unsupported YAML tag {_short_tag(ev.tag)}")
                    )
                node = Node({}, loc, {}) if is_map else Node([], loc)
                stack.append(_Frame(node, is_map, ev.anchor))
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                f = stack.pop()
                if f.merges:
                    self.merge(f)
                if f.anchor is not None:
                    self.anchors[f.anchor] = (f.node, f.height, f.size)
                self.attach(f.node, f.height, f.size)
            elif cls is AliasEvent:
                self.alias(ev)
            elif cls is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    self.fail(
                        self.loc(ev.start_mark, ""),
                        "a template must be a single YAML document, but a second one starts here",
                    )
            elif cls is StreamEndEvent:
                return self.root
            # StreamStart and DocumentEnd need nothing.

    def scalar(self, loader: Any, ev: Any) -> None:
        loc = self.loc(ev.start_mark, self.child_path())
        tag = ev.tag
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        value: Any = ev.value
        merge_key = False
        if tag in _CONSTRUCTED:
            node = yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style)
            try:
                value = loader.yaml_constructors[tag](loader, node)
            except Exception:
                self.problems.append(
                    self.problem(loc, f"cannot read {ev.value!r} as {_short_tag(tag)}")
                )
                value = ev.value
        elif tag == _MERGE_TAG:
            merge_key = bool(self.stack) and self.stack[-1].is_map and self.stack[-1].key is _NO_KEY
        elif tag not in _AS_STRING:
            self.problems.append(self.problem(loc, f"unsupported YAML tag {_short_tag(tag)}"))
        node = Node(value, loc)
        if ev.anchor is not None:
            self.anchors[ev.anchor] = (node, 0, 1)
        self.attach(node, 0, 1, merge_key)

    def alias(self, ev: Any) -> None:
        loc = self.loc(ev.start_mark, self.child_path())
        name = ev.anchor
        if name not in self.anchors:
            if any(f.anchor == name for f in self.stack):
                self.fail(loc, f"invalid YAML: alias *{name} is used inside its own anchor")
            self.fail(loc, f"invalid YAML: undefined alias *{name}")
        src, height, size = self.anchors[name]
        if len(self.stack) + height > MAX_DEPTH:
            self.fail(
                loc, f"invalid YAML: nesting is too deep (more than {MAX_DEPTH} levels) via *{name}"
            )
        if self.copied + size > MAX_ALIAS_EXPANSION:
            self.too_many_copies(loc)
        self.attach(self.repath(src, loc), height, size)

    def repath(self, src: Node, loc: Loc) -> Node:
        """A copy of ``src`` placed at ``loc``; descendants keep their own line/col."""
        top = Node(None, loc)
        work = [(src, top)]
        while work:
            s, d = work.pop()
            v = s.value
            self.copied += 1
            if self.copied > MAX_ALIAS_EXPANSION:
                self.too_many_copies(loc)
            if isinstance(v, dict):
                d.value = out = {}
                d.key_locs = kl = {}
                skl = s.key_locs or {}
                for k, child in v.items():
                    p = join_path(d.loc.path, k)
                    c = out[k] = Node(None, child.loc.at(p))
                    kl[k] = skl[k].at(p) if k in skl else c.loc
                    work.append((child, c))
            elif isinstance(v, list):
                d.value = out_list = []
                for i, child in enumerate(v):
                    c = Node(None, child.loc.at(join_path(d.loc.path, i)))
                    out_list.append(c)
                    work.append((child, c))
            else:
                d.value = v
        return top

    def too_many_copies(self, loc: Loc) -> NoReturn:
        self.fail(loc, f"invalid YAML: aliases expand to more than {MAX_ALIAS_EXPANSION:,} values")

    def attach(self, node: Node, height: int, size: int, merge_key: bool = False) -> None:
        if not self.stack:
            self.root = node
            return
        f = self.stack[-1]
        if height + 1 > f.height:
            f.height = height + 1
        f.size += size
        parent = f.node
        if not f.is_map:
            parent.value.append(node)
            return
        key = f.key
        if key is _NO_KEY:  # `node` is a key
            if merge_key:
                f.key = _MERGE
            elif isinstance(node.value, str):
                key = node.value
                kloc = node.loc.at(join_path(parent.loc.path, key))
                first = parent.key_locs.get(key)
                if first is None:
                    parent.key_locs[key] = kloc
                else:
                    self.problems.append(
                        self.problem(
                            kloc, f'duplicate key "{key}" (first defined at line {first.line})'
                        )
                    )
                f.key = key
            else:
                shown = "a list or mapping" if not node.is_scalar else _a(node.type_name())
                hint = f' (write "{node.value}" in quotes)' if node.is_scalar else ""
                self.problems.append(
                    self.problem(
                        node.loc.at(parent.loc.path),
                        f"keys must be strings; this key is {shown}{hint}",
                    )
                )
                f.key = _SKIP
            return
        f.key = _NO_KEY
        if key is _SKIP:
            return
        if key is _MERGE:
            sources = node.value if node.is_list else [node]
            if all(isinstance(s, Node) and s.is_map for s in sources):
                f.merges.append(sources)
            else:
                self.problems.append(
                    self.problem(
                        node.loc, "a YAML merge (<<) needs a mapping or a list of mappings"
                    )
                )
            return
        parent.value[key] = node

    def merge(self, f: _Frame) -> None:
        """Apply ``<<`` merge keys: explicit keys win, then earlier sources."""
        node = f.node
        explicit: dict[str, Node] = node.value
        explicit_locs = node.key_locs or {}
        merged: dict[str, Node] = {}
        merged_locs: dict[str, Loc] = {}
        for sources in reversed(f.merges):
            for src in sources:
                src_locs = src.key_locs or {}
                for k, v in src.value.items():
                    if k in explicit or k in merged:
                        continue
                    p = join_path(node.loc.path, k)
                    merged[k] = self.repath(v, v.loc.at(p))
                    merged_locs[k] = src_locs[k].at(p) if k in src_locs else merged[k].loc
        merged.update(explicit)
        merged_locs.update(explicit_locs)
        node.value = merged
        node.key_locs = merged_locs


def _parse_yaml_value(text: str, file: str) -> Node:
    if text.startswith("\ufeff"):
        text = text[1:]
    bad = _NON_PRINTABLE.search(text)
    if bad:
        lines = _Lines(text, _YAML_BREAKS)
        line, col = lines.line_col(bad.start())
        raise TemplateError(
            Problem(
                Loc(file, line, col),
                f"invalid YAML: character {_describe_char(bad.group())} is not allowed in YAML",
                snippet=lines.snippet(line, col),
            )
        )
    composer = _YAMLComposer(text, file)
    try:
        loader = _YAML_LOADER(text)
        try:
            root = composer.compose(loader)
        finally:
            loader.dispose()
    except TemplateError:
        raise
    except yaml.MarkedYAMLError as e:
        raise _yaml_syntax_error(e, text, file) from None
    except RecursionError:
        raise TemplateError(
            Problem(Loc(file, 1, 1), "invalid YAML: the document is nested too deeply")
        ) from None
    except Exception as e:  # ReaderError, libyaml oddities: never a traceback
        raise TemplateError(Problem(Loc(file, 1, 1), f"invalid YAML: {e}")) from None
    if composer.problems:
        raise TemplateError(composer.problems)
    if root is None:
        raise TemplateError(
            Problem(
                Loc(file, 1, 1),
                "a template must be a YAML mapping at the top level; the file is empty",
            )
        )
    return root


def _yaml_syntax_error(e: yaml.MarkedYAMLError, text: str, file: str) -> TemplateError:
    mark = e.problem_mark or e.context_mark
    problem = e.problem or e.context or "syntax error"
    msg = f"invalid YAML: {problem}"
    if problem == "exceeded maximum nesting depth":
        # libyaml 0.2.5 (PyYAML 6.0.4's wheels) stops deep nesting before our own check.
        msg = f"invalid YAML: nesting is too deep (more than {MAX_DEPTH} levels)"
    elif e.context and e.problem:
        ctx = e.context
        cm = e.context_mark
        if cm is not None and mark is not None and (cm.line, cm.column) != (mark.line, mark.column):
            ctx += f" at line {cm.line + 1}, column {cm.column + 1}"
        msg += f" ({ctx})"
    if mark is None:
        return TemplateError(Problem(Loc(file, 1, 1), msg))
    line, col = mark.line + 1, mark.column + 1
    lines = _Lines(text, _YAML_BREAKS)
    if line <= len(lines.starts) and lines.line_text(line)[col - 1 : col] == "\t":
        msg += "; YAML does not allow tabs for indentation"
    snippet = lines.snippet(line, col)
    return TemplateError(Problem(Loc(file, line, col), msg, snippet=snippet))


def parse_yaml(text: str, file: str) -> Node:
    """Parse a YAML template; the top level must be a mapping."""
    if text.startswith("\ufeff"):
        text = text[1:]
    node = _parse_yaml_value(text, file)
    if not node.is_map:
        raise TemplateError(
            Problem(
                node.loc,
                f"a template must be a YAML mapping at the top level, not {_a(node.type_name())}",
                snippet=_Lines(text, _YAML_BREAKS).snippet(node.loc.line, node.loc.col),
            )
        )
    return node
