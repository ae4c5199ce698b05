"""The event schema as a consumer of `kiln build -events` relies on it: what the JSON Schema
accepts and refuses, the status words, the README's table, and the command that writes
both."""

from __future__ import annotations

import json

import jsonschema
import pytest
from kiln.backend.engine import schema


def validator():
    return jsonschema.Draft202012Validator(schema.json_schema())


def event(kind: str, **data):
    return {"type": kind, "ts": 1.5, "seq": 1, "run": "r", **data}


STAGE = {"index": 0, "name": "Connect", "kind": "builder", "status": "pending", "source": ""}
GOOD = [
    event("run.started", template="t.json", builds=["b"], build_types={"b": "null"},
          options={"on_error": "cleanup", "parallel_builds": 0, "debug": False, "force": False},
          log_dir="/l", schema=schema.SCHEMA),
    event("build.started", build="b", build_type="null", stages=[STAGE]),
    event("output", build="b", stage=None, stream="ui-error", lines=["x"]),
    event("output", build="b", stage=1, stream="stdout", lines=[], partial=True),
    event("paused", build="b", stage=1, prompt="p", error="e", choices=["retry"]),
    event("build.finished", build="b", status="crashed", duration=0.5, error="e", kept=False,
          access_hint="", stages=[{"name": "n", "kind": "provisioner", "status": "failed",
                                   "duration": 1}]),
    event("run.finished", status="succeeded", exit_code=0, duration=1.0),
    event("output.dropped", build="b", lines=3),
]


@pytest.mark.parametrize("ev", GOOD, ids=[e["type"] for e in GOOD])
def test_events_as_kiln_writes_them_are_valid(ev):
    validator().validate(ev)


BAD = [
    ("an unknown event type", event("run.paused")),
    ("a field no event declares", {**GOOD[6], "extra": 1}),
    ("a required field missing", {k: v for k, v in GOOD[6].items() if k != "exit_code"}),
    ("a status that is no status word", {**GOOD[6], "status": "done"}),
    ("a stream that does not exist", {**GOOD[2], "stream": "stdlog"}),
    ("a stage kind that does not exist", {**GOOD[1], "stages": [{**STAGE, "kind": "step"}]}),
    ("a number as the run id", {**GOOD[6], "run": 5}),
    ("a string as the sequence", {**GOOD[6], "seq": "1"}),
    ("lines that are not text", {**GOOD[2], "lines": [1]}),
    ("a build type map of numbers", {**GOOD[0], "build_types": {"b": 1}}),
    ("an option missing", {**GOOD[0], "options": {"on_error": "cleanup"}}),
    ("a boolean that is text", {**GOOD[5], "kept": "no"}),
    ("a summary stage without duration",
     {**GOOD[5], "stages": [{"name": "n", "kind": "provisioner", "status": "failed"}]}),
]


@pytest.mark.parametrize("why, ev", BAD, ids=[b[0] for b in BAD])
def test_what_kiln_never_writes_is_refused(why, ev):
    assert not validator().is_valid(ev), why


def test_the_status_words():
    assert [s.value for s in schema.Status] == [
        "pending", "running", "succeeded", "failed", "skipped", "cached", "cancelling",
        "cancelled", "crashed", "paused"]
    assert schema.Status.FAILED == "failed" and str(schema.Status.CRASHED) == "crashed"
    assert schema.SCHEMA == "kiln.events/1"


def test_the_schema_documents_every_field():
    doc = schema.json_schema()
    assert doc["$id"] == "kiln.events/1"
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert len(doc["oneOf"]) == len(schema.EVENTS) == 17
    finished = doc["$defs"]["run.finished"]
    assert finished["required"] == ["type", "ts", "seq", "run", "status", "exit_code",
                                    "duration"]
    assert finished["properties"]["exit_code"] == {"type": "integer",
                                                   "description": "kiln build's exit code"}
    assert finished["properties"]["type"] == {"const": "run.finished"}
    started = doc["$defs"]["run.started"]
    assert "schema" in started["properties"] and "schema" not in started["required"]
    assert doc["$defs"]["StageInfo"]["required"] == ["index", "name", "kind", "status", "source"]
    assert doc["$defs"]["status"] == {"enum": [s.value for s in schema.Status]}
    output = doc["$defs"]["output"]["properties"]
    assert output["stage"]["anyOf"] == [{"type": "integer"}, {"type": "null"}]
    assert output["stream"]["enum"] == ["ui", "ui-error", "stdout", "stderr"]


def test_the_readme_table():
    table = schema.readme_table()
    lines = table.splitlines()
    assert lines[:2] == ["| type | fields |", "| --- | --- |"]
    assert lines[2].startswith("| `run.started` | `template`: ")
    assert "`schema` (optional): " in lines[2]
    row = [ln for ln in lines if ln.startswith("| `run.finished` |")][0]
    assert row == ("| `run.finished` | `status`: how the run ended; `exit_code`: kiln build's "
                   "exit code; `duration`: seconds |")
    assert lines[-1].startswith("Statuses: `pending`, `running`, `succeeded`, `failed` "
                                "(a step said no), ")
    assert lines[-1].endswith("`paused` (waiting for an answer).")
    readme = f"intro\n{schema.README_BEGIN}old table\n{schema.README_END}after\n"
    assert schema.readme_with_table(readme) == \
        f"intro\n{schema.README_BEGIN}\n{table}\n{schema.README_END}after\n"


def test_the_command_prints_or_writes_the_schema(tmp_path, monkeypatch, capsys):
    assert schema.main([]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == schema.json_schema() and printed == schema.schema_text()
    assert schema.schema_text().endswith("}\n") and schema.schema_text().startswith("{\n  \"")
    target = tmp_path / "events.schema.json"
    readme = tmp_path / "README.md"
    readme.write_text(f"a\n{schema.README_BEGIN}{schema.README_END}b\n")
    monkeypatch.setattr(schema, "SCHEMA_FILE", target)
    assert schema.main(["--write"]) == 0
    assert target.read_text() == schema.schema_text()
    assert readme.read_text() == f"a\n{schema.README_BEGIN}{schema.README_END}b\n"
    assert schema.main(["--write", "--readme", str(readme)]) == 0
    assert readme.read_text() == schema.readme_with_table(
        f"a\n{schema.README_BEGIN}{schema.README_END}b\n")
    assert capsys.readouterr().out == ""


def test_the_readme_table_goes_between_the_first_markers():
    readme = (f"{schema.README_BEGIN}old\n{schema.README_END}middle\n{schema.README_END}end\n")
    assert schema.readme_with_table(readme) == (
        f"{schema.README_BEGIN}\n{schema.readme_table()}\n{schema.README_END}middle\n"
        f"{schema.README_END}end\n")
