"""The event schema (kiln.backend.engine.schema) is the one truth about events: the README's
table and the JSON Schema file are generated from it, every publish call in the engine sends
what its dataclass declares, and the events of real runs validate against the JSON Schema."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import jsonschema
from kiln.backend.engine import schema

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "backend" / "engine"


def test_the_readme_table_and_the_schema_file_are_generated_from_the_schema_module():
    readme = (ROOT / "README.md").read_text()
    assert schema.readme_with_table(readme) == readme, \
        "run: python -m kiln.backend.engine.schema --write --readme README.md"
    assert schema.SCHEMA_FILE.read_text() == schema.schema_text(), \
        "run: python -m kiln.backend.engine.schema --write --readme README.md"


def publish_calls() -> list[tuple[str, int, str, set[str], bool]]:
    """(file, line, event type, keyword names, has a ** splat) of every publish("type", ...)."""
    calls = []
    for path in sorted(ENGINE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "publish" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                names = {k.arg for k in node.keywords if k.arg is not None}
                splat = any(k.arg is None for k in node.keywords)
                calls.append((path.name, node.lineno, node.args[0].value, names, splat))
    return calls


def test_every_publish_call_sends_what_its_event_declares():
    calls = publish_calls()
    assert len(calls) >= 15
    for file, line, kind, names, splat in calls:
        assert kind in schema.EVENTS, f"{file}:{line}: event {kind!r} is not in the schema"
        declared = {f.name for f in fields(schema.EVENTS[kind])}
        assert names <= declared, f"{file}:{line}: {kind} sends undeclared {names - declared}"
        required = {n for n in declared if (kind, n) not in schema.OPTIONAL}
        if not splat:
            assert required <= names, f"{file}:{line}: {kind} lacks {required - names}"
    sent = {kind for _, _, kind, _, _ in calls}
    # output.dropped is written by the JSON writer alone, never published
    assert set(schema.EVENTS) - sent == {"output.dropped"}


def run_with_events(tmp_path: Path, template: dict, *args: str) -> list[dict]:
    tpl = tmp_path / "t.json"
    tpl.write_text(json.dumps(template))
    events = tmp_path / "events.jsonl"
    subprocess.run([sys.executable, "-m", "kiln.backend.cli", "build", "-color=false",
                    f"-events={events}", *args, str(tpl)], cwd=tmp_path, capture_output=True,
                   text=True, timeout=120)
    return [json.loads(line) for line in events.read_text().splitlines()]


def test_the_events_of_real_runs_validate_against_the_json_schema(tmp_path):
    validator = jsonschema.Draft202012Validator(json.loads(schema.SCHEMA_FILE.read_text()))
    ok = run_with_events(tmp_path, {
        "builders": [{"type": "null", "name": "a", "communicator": "none"},
                     {"type": "file", "name": "b", "target": "out.txt", "content": "x"}],
        "provisioners": [{"type": "shell-local", "inline": ["echo hi", "echo err >&2"]}],
        "post-processors": [{"type": "manifest", "output": "m.json"}],
    })
    failed = run_with_events(tmp_path, {
        "builders": [{"type": "null", "communicator": "none"}],
        "provisioners": [{"type": "shell-local", "inline": ["exit 3"]}],
    })
    seen = set()
    for event in ok + failed:
        errors = sorted(validator.iter_errors(event), key=str)
        assert not errors, f"{event}: {errors[0].message}"
        seen.add(event["type"])
    assert {"run.started", "build.started", "stage.started", "stage.finished", "output",
            "artifact", "build.finished", "run.finished"} <= seen
    assert ok[-1]["status"] == "succeeded" and failed[-1]["status"] == "failed"
