"""The templates pane: each template with its builders, validity mark and problems in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from rich.text import Text
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Tree

from .. import keys, status
from ..discovery import ProblemView, TemplateEntry

#: narrower than this, the tree leaves out "valid" after each template
WORDS_FROM = 40


@dataclass(frozen=True)
class NodeRef:
    kind: str  # template | build | problem | warning
    path: str
    build: str = ""
    problem: ProblemView | None = None

    @property
    def key(self) -> tuple:
        return (self.kind, self.path, self.build, self.problem.text if self.problem else "")


class TemplateTree(Tree[NodeRef]):
    DEFAULT_CSS = """
    TemplateTree { background: $surface; overflow-x: hidden; }
    """


class TemplatesPane(Vertical):
    BINDINGS = keys.bindings("templates")
    DEFAULT_CSS = """
    TemplatesPane > #filter { display: none; height: 1; border: none; padding: 0 1; }
    TemplatesPane > #filter.-shown { display: block; }
    TemplatesPane > TemplateTree { height: 1fr; }
    """

    ALLOW_MAXIMIZE = True  # z zooms it

    class Highlighted(Message):
        def __init__(self, ref: NodeRef | None) -> None:
            super().__init__()
            self.ref = ref

    class Rescan(Message):
        pass

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.entries: list[TemplateEntry] = []
        self.filter = ""
        self._variables: Mapping[str, str] = {}
        self._words = True  # status words after the names (not in a narrow pane)

    def on_resize(self) -> None:
        words = self.size.width >= WORDS_FROM
        if words != self._words:
            self._words = words
            self.rebuild()

    def compose(self):
        # kept as attributes: validation results may still arrive while the screen closes
        self.filter_input = Input(placeholder="filter templates (escape: close)", id="filter")
        tree: TemplateTree = TemplateTree(Text("templates"), id="tree")
        tree.show_root = False
        tree.guide_depth = 2
        self.tree_widget = tree
        yield self.filter_input
        yield tree

    def selected(self) -> NodeRef | None:
        node = self.tree_widget.cursor_node
        return node.data if node is not None else None

    def set_entries(self, entries: list[TemplateEntry], variables: Mapping[str, str]) -> None:
        self.entries = entries
        self._variables = variables
        self.rebuild()

    def rebuild(self) -> None:
        tree = self.tree_widget
        keep = self.selected()
        line = tree.cursor_line
        tree.clear()
        v = self._variables
        term = self.filter.casefold()
        target_line = None
        shown = 0
        for e in self.entries:
            names = [e.name] + e.build_names
            if term and not any(term in n.casefold() for n in names):
                continue
            shown += 1
            label = Text.assemble(
                status.status_text(v, e.status, word=False),
                " ",
                Text(e.name, style="bold"),
            )
            if self._words:  # in a narrow pane the glyph, the colour and the problem rows say it
                label.append(f"  {status.look(e.status).word}", style=status.style(v, e.status))
            ref = NodeRef("template", e.path)
            node = tree.root.add(label, data=ref, expand=True)
            for name, btype, _line in e.builds:
                node.add_leaf(
                    Text.assemble(
                        Text(name),
                        Text(f"  {btype}", style=status.theme_style(v, "foreground-muted")),
                    ),
                    data=NodeRef("build", e.path, name),
                )
            for p in e.problems:
                kind = "problem" if p.severity == "error" else "warning"
                colour = "error" if kind == "problem" else "warning"
                glyph = "✗" if kind == "problem" else "!"
                # under its template, "line:col: message" is enough; the output pane shows the
                # whole problem, wrapped, when the cursor is on it
                text = p.text.splitlines()[0].removeprefix(e.name + ":").lstrip()
                node.add_leaf(
                    Text(f"{glyph} {text}", style=status.theme_style(v, colour)),
                    data=NodeRef(kind, e.path, "", p),
                )
            for w in e.warnings[:5]:
                node.add_leaf(
                    Text(f"! {w}", style=status.theme_style(v, "warning")),
                    data=NodeRef("warning", e.path, "", ProblemView(w, e.path, 0, "warning")),
                )
        if not shown:
            msg = (
                "no template matches the filter"
                if term
                else "no templates here (*.json, *.yaml, *.pkr.hcl)"
            )
            tree.root.add_leaf(
                Text(msg, style=status.theme_style(v, "foreground-muted")), data=None
            )
        # put the cursor back where it was
        if keep is not None:
            for i in range(tree.last_line + 1):
                n = tree.get_node_at_line(i)
                if n is not None and n.data is not None and n.data.key == keep.key:
                    target_line = i
                    break
        if target_line is None:
            target_line = min(max(line, 0), max(tree.last_line, 0))
        try:
            tree.move_cursor_to_line(target_line)  # and into view
        except IndexError:  # an empty tree
            pass

    def entry(self, path: str) -> TemplateEntry | None:
        for e in self.entries:
            if e.path == path:
                return e
        return None

    # -- events -----------------------------------------------------------------------
    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        event.stop()
        self.post_message(self.Highlighted(event.node.data))

    def action_filter(self) -> None:
        f = self.filter_input
        f.add_class("-shown")
        f.value = self.filter
        f.focus()

    def action_rescan(self) -> None:
        self.post_message(self.Rescan())

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter = event.value
        self.rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.tree_widget.focus()
        if not event.value:
            self.filter_input.remove_class("-shown")

    def on_key(self, event) -> None:
        f = self.filter_input
        if event.key == "escape" and f.has_focus:
            event.stop()
            f.value = ""
            f.remove_class("-shown")
            self.filter = ""
            self.rebuild()
            self.tree_widget.focus()
