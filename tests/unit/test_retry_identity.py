"""A retry finds the failed provisioner in the re-read template by identity, not position."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kiln.backend.engine.prepare import Options
from kiln.backend.engine.retry import FROM_CHANGED, MATCHED, plan_retry
from kiln.backend.template.loader import load_template

ROOT = Path(__file__).resolve().parents[2]


def sh(*lines: str, **extra) -> dict:
    return {"type": "shell-local", "inline": list(lines), **extra}


def provs(tmp_path: Path, items: list[dict], name: str = "t.json") -> list:
    path = tmp_path / name
    path.write_text(json.dumps({"builders": [{"type": "null", "communicator": "none"}],
                                "provisioners": items}, indent=2))
    return list(load_template(str(path), Options()).builds[0].provisioners)


A, B, C, X = sh("echo a"), sh("echo b-broken"), sh("echo c"), sh("echo x")
B2 = sh("echo b-fixed")


def test_unchanged_template_reruns_the_same_provisioner(tmp_path):
    old = provs(tmp_path, [A, B, C])
    plan = plan_retry(old, provs(tmp_path, [A, B, C]), 1)
    assert (plan.matched, plan.certain, plan.automatic, plan.how) == (1, True, True, "unchanged")


def test_edited_in_place_runs_at_once(tmp_path):
    old = provs(tmp_path, [A, B, C])
    plan = plan_retry(old, provs(tmp_path, [A, B2, C]), 1)
    assert (plan.matched, plan.automatic, plan.how) == (1, True, "edited in place")


def test_a_provisioner_inserted_before_the_fixed_one_is_not_taken_for_it(tmp_path):
    old = provs(tmp_path, [A, B, C])
    plan = plan_retry(old, provs(tmp_path, [A, X, B2, C]), 1)
    assert plan.matched == 2  # the fixed one (most like the failed one), not the inserted one
    assert not plan.automatic and plan.prefix_changed
    assert plan.choices() == [MATCHED, FROM_CHANGED]
    assert plan.first_changed == 1
    assert "Before it: provisioner 2" in plan.detail() and "echo x" in plan.detail()
    assert "provisioner 3" in plan.details()[MATCHED]
    assert "provisioner 2" in plan.details()[FROM_CHANGED]


def test_unchanged_failed_one_after_an_insertion_still_asks(tmp_path):
    old = provs(tmp_path, [A, B, C])
    plan = plan_retry(old, provs(tmp_path, [A, X, B, C]), 1)
    assert plan.matched == 2 and plan.certain and not plan.automatic
    assert plan.note_for(MATCHED, "t.json").endswith("it was provisioner 2 at line 15")


def test_a_removed_provisioner_before_it_asks(tmp_path):
    old = provs(tmp_path, [A, X, B, C])
    plan = plan_retry(old, provs(tmp_path, [A, B2, C]), 2)
    assert plan.matched == 1 and not plan.automatic
    assert any("was removed" in n for n in plan.notes)


def test_the_failed_provisioner_deleted(tmp_path):
    old = provs(tmp_path, [A, B, C])
    plan = plan_retry(old, provs(tmp_path, [A, C]), 1)
    assert plan.matched is None and not plan.automatic
    assert "no longer in the template" in plan.prompt()
    assert plan.choices() == [FROM_CHANGED] and plan.first_changed == 1


def test_a_type_change_in_place_is_a_guess(tmp_path):
    old = provs(tmp_path, [A, B, C])
    plan = plan_retry(old, provs(tmp_path, [A, {"type": "breakpoint"}, C]), 1)
    assert plan.matched == 1 and not plan.certain and not plan.automatic


def test_moves_are_found_by_name_in_hcl2(tmp_path):
    def hcl(blocks: list[tuple[str, str]]) -> str:
        out = 'source "null" "x" {\n  communicator = "none"\n}\nbuild {\n  sources = ["source.null.x"]\n'
        for name, cmd in blocks:
            n = f'    name = "{name}"\n' if name else ""
            out += f'  provisioner "shell-local" {{\n{n}    inline = ["{cmd}"]\n  }}\n'
        return out + "}\n"

    def load(blocks):
        p = tmp_path / "t.pkr.hcl"
        p.write_text(hcl(blocks))
        return list(load_template(str(p), Options()).builds[0].provisioners)

    old = load([("", "echo a"), ("web", "echo broken"), ("", "echo c")])
    plan = plan_retry(old, load([("", "echo a"), ("web", "echo fixed"), ("", "echo new"),
                                 ("", "echo c2")]), 1)
    assert (plan.matched, plan.automatic, plan.how) == (1, True, "found by its name")
    twice = plan_retry(old, load([("", "echo a"), ("web", "echo x"), ("web", "echo fixed")]), 1)
    assert not twice.certain and "2 provisioners are named" in twice.how


def _read_until(proc: subprocess.Popen, text: str, seen: list[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while text not in "".join(seen):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {text!r} in:\n{''.join(seen)}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536).decode()
            if not chunk:
                raise AssertionError(f"ended before {text!r}:\n{''.join(seen)}")
            seen.append(chunk)
    return "".join(seen)


def test_the_terminal_prompt_offers_the_matched_and_the_first_changed_one(tmp_path):
    marker = tmp_path / "m"
    path = tmp_path / "t.json"

    def write(items):
        path.write_text(json.dumps({"builders": [{"type": "null", "communicator": "none"}],
                                    "provisioners": items}, indent=2))

    write([sh(f"echo a >> {marker}"), sh(f"echo b-broken >> {marker}", "exit 1"),
           sh(f"echo c >> {marker}")])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
                             "-on-error=ask", str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    seen: list[str] = []
    try:
        _read_until(proc, "your choice", seen)
        write([sh(f"echo a >> {marker}"), sh(f"echo x >> {marker}"),
               sh(f"echo b-fixed >> {marker}"), sh(f"echo c >> {marker}")])
        proc.stdin.write(b"r\n")
        proc.stdin.flush()
        out = _read_until(proc, "your choice [m/f/r/s/c/a]", seen)
        assert "[m] run the matched one: provisioner 3" in out
        assert "[f] run from the first changed one: provisioner 2" in out
        proc.stdin.write(b"m\n")
        proc.stdin.close()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0, "".join(seen)
    assert marker.read_text().split() == ["a", "b-broken", "b-fixed", "c"]


@pytest.mark.parametrize("answer", ["s", "c"])
def test_an_unparsable_template_keeps_the_terminal_build_paused(tmp_path, answer):
    marker = tmp_path / "m"
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"builders": [{"type": "null", "communicator": "none"}],
                                "provisioners": [sh(f"echo broken >> {marker}", "exit 1")]},
                               indent=2))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
                             "-on-error=ask", str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    seen: list[str] = []
    try:
        _read_until(proc, "your choice", seen)
        path.write_text(path.read_text().replace("{", "{{", 1))
        proc.stdin.write(b"r\n")
        proc.stdin.flush()
        out = _read_until(proc, "could not be read again", seen)
        _read_until(proc, "your choice", [out])
        assert "t.json:1:" in "".join(seen)
        proc.stdin.write(f"{answer}\n".encode())
        proc.stdin.close()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert marker.read_text().split() == ["broken"]  # the old command never ran again
    assert proc.returncode == (0 if answer == "s" else 1)
