"""Which provisioner a retry runs once the template changed on disk.

A failed provisioner is found again in the re-read template by what it is, not by its
position: by its ``name`` when it has one, else by its type, place in the file and
content, aligned against its neighbours (difflib over the provisioners' contents), so a
provisioner inserted before it does not take its place. When the match is a guess, or
the provisioners before it changed, the user decides: run the matched one, run from the
first changed one, or leave the build paused.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from ..template.model import BuildDef, ProvisionerDef

#: answers a retry may need besides the usual ones
MATCHED = "matched"
FROM_CHANGED = "from-changed"


def content_key(p: ProvisionerDef, build: BuildDef | None = None) -> str:
    """What a provisioner does, as text: equal keys mean the same provisioner, unedited."""
    override = {}
    if build is not None:
        override = {n: p.override[n].to_plain() for n in sorted(build.match_names)
                    if n in p.override}
    doc = {"type": p.type, "name": p.name, "config": p.config.to_plain(), "override": override,
           "pause_before": p.pause_before, "timeout": p.timeout, "max_retries": p.max_retries,
           "continue_on_error": p.continue_on_error}
    return json.dumps(doc, sort_keys=True, default=str)


def where(p: ProvisionerDef) -> str:
    return f"{os.path.basename(p.loc.file)}:{p.loc.line}"


def summary(p: ProvisionerDef, width: int = 80) -> str:
    """``shell at t.json:7: echo two``: enough to recognise it in a question."""
    cfg = p.config.to_plain() if p.config.is_map else {}
    what = ""
    for key in ("inline", "script", "scripts", "source", "playbook_file", "command"):
        v = cfg.get(key) if isinstance(cfg, dict) else None
        if v:
            what = v[0] if isinstance(v, list) else str(v)
            break
    label = f"{p.name} ({p.type})" if p.name else p.type
    text = f"{label} at {where(p)}" + (f": {what}" if what else "")
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class RetryPlan:
    """Where the re-read template puts the failed provisioner, and what a retry may run.

    ``old`` is what the build is running (provisioner definitions, in order), ``failed``
    the failed one's position in it; ``new`` the build's provisioners as the template now
    reads. Positions are 0-based; messages count from 1.
    """

    old: list[ProvisionerDef]
    new: list[ProvisionerDef]
    failed: int
    matched: int | None = None
    certain: bool = False
    how: str = ""
    first_changed: int | None = None
    prefix_changed: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def automatic(self) -> bool:
        """Run the matched one without asking: found for sure, nothing before it changed."""
        return self.matched is not None and self.certain and not self.prefix_changed

    def choices(self) -> list[str]:
        out = []
        if self.matched is not None:
            out.append(MATCHED)
        if self.first_changed is not None and self.first_changed != self.matched:
            out.append(FROM_CHANGED)
        return out

    def start_of(self, choice: str) -> int:
        """Position, in the new list, of the first provisioner the choice runs."""
        if choice == MATCHED and self.matched is not None:
            return self.matched
        if choice == FROM_CHANGED and self.first_changed is not None:
            return self.first_changed
        raise ValueError(choice)

    def kept(self, choice: str) -> int:
        """How many of the old provisioners stay as they ran (before the first one to run)."""
        return self.failed if choice == MATCHED else self.start_of(choice)

    # -- words ------------------------------------------------------------------------
    def prompt(self) -> str:
        if self.matched is None:
            return f"Provisioner {self.failed + 1} is no longer in the template"
        if not self.certain:
            return "The template changed around the failed provisioner"
        return "Provisioners before the failed one changed"

    def detail(self) -> str:
        old = self.old[self.failed]
        lines = [f"Failed: provisioner {self.failed + 1}, {summary(old)}."]
        if self.matched is None:
            lines.append("It is no longer in the template.")
        else:
            new = self.new[self.matched]
            head = "Now" if self.certain else "Most like it now"
            lines.append(f"{head}: provisioner {self.matched + 1}, {summary(new)} ({self.how}).")
        lines += self.notes
        return "\n".join(lines)

    def details(self) -> dict[str, str]:
        """One line per choice, for the dashboard's dialog and the terminal prompt."""
        out = {}
        if self.matched is not None:
            rest = len(self.new) - self.matched - 1
            out[MATCHED] = (f"run the matched one: provisioner {self.matched + 1} "
                            f"({summary(self.new[self.matched])})"
                            + (f", then the {rest} after it" if rest else ""))
        if FROM_CHANGED in self.choices():
            assert self.first_changed is not None
            rest = len(self.new) - self.first_changed - 1
            out[FROM_CHANGED] = (f"run from the first changed one: provisioner "
                                 f"{self.first_changed + 1} "
                                 f"({summary(self.new[self.first_changed])})"
                                 + (f", then the {rest} after it" if rest else ""))
        return out

    def note_for(self, choice: str, template: str) -> str:
        """The line the build prints when it goes on."""
        start = self.start_of(choice)
        head = f"Reloaded {os.path.basename(template)}: running provisioner {start + 1}"
        what = summary(self.new[start])
        if choice != MATCHED:
            return f"{head} ({what}), the first one that changed, and the ones after it"
        old = self.old[self.failed]
        moved = (start, self.new[start].loc.line) != (self.failed, old.loc.line)
        was = f"; it was provisioner {self.failed + 1} at line {old.loc.line}" if moved else ""
        return f"{head} again ({what}){was}"


def plan_retry(old: list[ProvisionerDef], new: list[ProvisionerDef], failed: int,
               build: BuildDef | None = None) -> RetryPlan:
    """Find ``old[failed]`` in ``new`` (see the module's docstring)."""
    plan = RetryPlan(list(old), list(new), failed)
    okeys = [content_key(p, build) for p in old]
    nkeys = [content_key(p, build) for p in new]
    target = old[failed]
    if target.name:
        same = [j for j, p in enumerate(new) if p.name == target.name]
        if len(same) == 1:
            plan.matched, plan.certain, plan.how = same[0], True, "found by its name"
        elif same:
            plan.matched = _most_like(target, [new[j] for j in same], same)
            plan.how = f'a guess: {len(same)} provisioners are named "{target.name}"'
    else:
        _align(plan, okeys, nkeys)
    # the provisioners that ran before it: still the same ones?
    common = 0
    while common < min(len(okeys), len(nkeys)) and okeys[common] == nkeys[common]:
        common += 1
    first = failed if common > failed else common
    plan.first_changed = first if first < len(new) else None
    upto = plan.matched if plan.matched is not None else len(new)
    plan.prefix_changed = okeys[:failed] != nkeys[:upto]
    if plan.prefix_changed:
        plan.notes += _changes(old[:failed], new[:upto], okeys[:failed], nkeys[:upto])
    return plan


def _align(plan: RetryPlan, okeys: list[str], nkeys: list[str]) -> None:
    f = plan.failed
    target = plan.old[f]
    sm = difflib.SequenceMatcher(None, okeys, nkeys, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if not i1 <= f < i2:
            continue
        if tag == "equal":
            plan.matched, plan.certain, plan.how = j1 + (f - i1), True, "unchanged"
        elif tag == "replace":
            if i2 - i1 == j2 - j1:
                j = j1 + (f - i1)
                plan.matched = j
                plan.certain = plan.new[j].type == target.type
                plan.how = "edited in place" if plan.certain else "a guess: its type changed"
            else:
                cands = [j for j in range(j1, j2) if plan.new[j].type == target.type]
                if cands:
                    plan.matched = _most_like(target, [plan.new[j] for j in cands], cands)
                    plan.how = "a guess: the provisioners next to it changed too"
        return


def _most_like(target: ProvisionerDef, cands: list[ProvisionerDef], positions: list[int]) -> int:
    want = json.dumps(target.config.to_plain(), sort_keys=True, default=str)
    best, score = positions[0], -1.0
    for p, j in zip(cands, positions, strict=True):
        have = json.dumps(p.config.to_plain(), sort_keys=True, default=str)
        sm = difflib.SequenceMatcher(None, want, have, autojunk=False)
        # text kept from the failed one, not difflib's ratio: that favours short newcomers
        shared = sum(b.size for b in sm.get_matching_blocks()) / max(len(want), len(have), 1)
        if shared > score:
            best, score = j, shared
    return best


def _changes(old: list[ProvisionerDef], new: list[ProvisionerDef], okeys: list[str],
             nkeys: list[str]) -> list[str]:
    """What changed among the provisioners before the failed one, one line each."""
    out = []
    sm = difflib.SequenceMatcher(None, okeys, nkeys, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            continue
        for j in range(j1, j2):
            word = "new" if tag == "insert" else "changed"
            out.append(f"Before it: provisioner {j + 1} ({summary(new[j])}) is {word}.")
        if tag == "delete":
            for i in range(i1, i2):
                out.append(f"Before it: provisioner {i + 1} ({summary(old[i])}) was removed.")
    return out[:6]


def describe_error(e: Any) -> str:
    """A load or prepare failure as the located lines the user fixes."""
    return str(e).strip() or type(e).__name__
