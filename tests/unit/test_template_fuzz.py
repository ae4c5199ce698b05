"""Property: whatever a template file contains, Kiln answers with a clean error or a Template."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kiln.backend.engine.prepare import Options, Preparer, select_builds
from kiln.backend.engine.session import load_template
from kiln.backend.template.errors import TemplateError

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "validate"
SEEDS = [p.read_text() for p in sorted(CORPUS.glob("ok_*.json"))]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 99999) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
KEYS = ["type", "name", "builders", "provisioners", "post-processors", "variables", "inline", "only",
        "except", "override", "communicator", "target", "content", "pause_before", "max_retries",
        "keep_input_artifact", "sensitive-variables", "error-cleanup-provisioner", "output"]


def check(path: str) -> None:
    cwd = os.getcwd()
    os.chdir(os.path.dirname(path))
    try:
        t = load_template(path, Options())
        prep = Preparer(t, Options())
        prep.prepare(select_builds(t, (), ()))
        for p in prep.problems:
            assert p.loc.file and p.message
    except TemplateError as e:
        assert e.problems
        for p in e.problems:
            assert p.message
            p.format()
    finally:
        os.chdir(cwd)


def mutate(doc, path, value):
    """Set a value somewhere inside the document (path of keys/indexes, clipped to what exists)."""
    node = doc
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[step % len(node)]]
        elif isinstance(node, list) and node:
            node = node[step % len(node)]
    if isinstance(node, dict):
        node[KEYS[path[-1] % len(KEYS)]] = value
    elif isinstance(node, list):
        node.append(value)
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), path=st.lists(st.integers(0, 50), min_size=1, max_size=5), value=json_values)
def test_structural_mutations_give_clean_errors(tmp_path, seed, path, value):
    doc = mutate(json.loads(seed), path, value)
    f = tmp_path / "t.json"
    f.write_text(json.dumps(doc))
    check(str(f))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 2000), junk=st.binary(max_size=20))
def test_byte_mutations_give_clean_errors(tmp_path, seed, cut, junk):
    data = seed.encode()
    cut = cut % (len(data) + 1)
    f = tmp_path / "t.json"
    f.write_bytes(data[:cut] + junk + data[cut:])
    check(str(f))
