"""Mutation testing of Kiln's modules with mutmut 3 on the fast tests (scripts/mutation.sh).

mutmut names a mutant after the file's path and its trampolines record the function's
``__module__``; the two agree only when the path is the import name. In the repository
the code lives in backend/ (installed as kiln.backend), so each run stages a copy as
kiln/backend/ in a private work directory (.mutation/, git-ignored): mutmut mutates
kiln/backend/, puts its mutants/ directory first on sys.path, and the tests' imports of
kiln.backend resolve to the mutated copy rather than to the editable install.

Score: killed / (mutants tried - equivalent mutants listed in tests/mutation/equivalent.toml);
a timeout counts as killed (the breakage is noticed: the run never ends), "no tests" as
survived. An equivalent entry names the mutant and the line it introduces; an entry whose
line no longer matches (the code moved on) is reported as stale and not excluded.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation"
EQUIVALENT = ROOT / "tests" / "mutation" / "equivalent.toml"
MAX_CHILDREN = "2"
KILLED = {1, 3, 36, 24, -24, 152, 255}  # failed tests, pytest internal error, timeouts


def module_path(arg: str) -> Path:
    """backend/engine/build.py, engine/build.py, kiln.backend.engine.build or engine.build
    -> the path under backend/ (engine/build.py)."""
    text = arg.strip()
    if not text.endswith(".py"):
        text = text.replace(".", "/") + ".py"
    for prefix in ("kiln/backend/", "backend/"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    rel = Path(text)
    if not (ROOT / "backend" / rel).is_file():
        raise SystemExit(f"mutation: no module backend/{rel}")
    return rel


def dotted(rel: Path) -> str:
    return "kiln.backend." + ".".join(rel.with_suffix("").parts)


def stage(modules: list[Path]) -> None:
    """A fresh work directory: kiln/backend (the code to mutate), tests, pyproject.toml with
    only the requested modules to mutate, and what the tests read from the repository."""
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(mode=0o700)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "backend", WORK / "kiln" / "backend", ignore=ignore, symlinks=True)
    for name in ("tests", "backend", "templates"):
        shutil.copytree(ROOT / name, WORK / name, ignore=ignore, symlinks=True)
    for name in ("README.md", "ARCHITECTURE.md", "setup.py"):
        shutil.copy2(ROOT / name, WORK / name)
    text = (ROOT / "pyproject.toml").read_text()
    only = ", ".join(json.dumps(f"kiln/backend/{rel.as_posix()}") for rel in modules)
    text, count = re.subn(r"(?m)^\[tool\.mutmut\]\n", f"[tool.mutmut]\nonly_mutate = [{only}]\n",
                          text)
    if count != 1:
        raise SystemExit("mutation: pyproject.toml has no [tool.mutmut] section")
    (WORK / "pyproject.toml").write_text(text)


def generate() -> None:
    """Write the mutants (mutants/**/*.py and their .meta lists) without running tests."""
    code = ("import mutmut.__main__ as m\n"
            "m.copy_src_dir(); m.copy_also_copy_files(); m.create_mutants(" + MAX_CHILDREN + ")\n")
    subprocess.run([sys.executable, "-c", code], cwd=WORK, check=True,
                   stdout=subprocess.DEVNULL)


def meta(rel: Path) -> dict:
    path = WORK / "mutants" / "kiln" / "backend" / (rel.as_posix() + ".meta")
    return json.loads(path.read_text())


def mutmut_run(names: list[str], log) -> None:
    mutmut = Path(sys.executable).with_name("mutmut")
    command = [str(mutmut), "run", "--max-children", MAX_CHILDREN, *names]
    # mutmut exits non-zero when a clean run fails; the log says why
    result = subprocess.run(command, cwd=WORK, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"mutation: mutmut failed (exit {result.returncode}); "
                         f"see {log.name}")


def equivalents() -> list[dict]:
    if not EQUIVALENT.is_file():
        return []
    return tomllib.loads(EQUIVALENT.read_text()).get("equivalent", [])


def mutant_diff(name: str) -> str:
    code = ("import sys, mutmut.__main__\n"
            "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
            "print(get_diff_for_mutant(sys.argv[1]))\n")
    return subprocess.run([sys.executable, "-c", code, name], cwd=WORK, capture_output=True,
                          text=True).stdout


def introduced(diff: str) -> set[str]:
    return {line[1:].strip() for line in diff.splitlines()
            if line.startswith("+") and not line.startswith("+++")}


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/mutation.sh",
        description="Mutation score of Kiln modules on the fast tests (tests/unit, no "
                    "Docker/sshd/moto/Packer/ansible/TUI).")
    parser.add_argument("modules", nargs="+", metavar="MODULE",
                        help="backend/engine/build.py, engine/build.py or kiln.backend.engine.build")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="run N mutants per module, drawn at random (seeded)")
    parser.add_argument("--seed", type=int, default=18, help="the sample's seed (default 18)")
    parser.add_argument("--show-survivors", action="store_true",
                        help="print each surviving mutant's diff")
    args = parser.parse_args()
    modules = list(dict.fromkeys(module_path(m) for m in args.modules))

    started = time.monotonic()
    stage(modules)
    generate()
    chosen: dict[Path, list[str]] = {}
    for rel in modules:
        names = sorted(meta(rel)["exit_code_by_key"])
        if args.sample and args.sample < len(names):
            names = sorted(random.Random(args.seed).sample(names, args.sample))
        chosen[rel] = names
    log_path = WORK / "mutmut.log"
    with log_path.open("w") as log:
        wanted = [n for rel in modules
                  for n in (chosen[rel] if args.sample else [dotted(rel) + ".*"])]
        mutmut_run(wanted, log)

    listed = equivalents()
    for rel in modules:
        codes = meta(rel)["exit_code_by_key"]
        total_generated = len(codes)
        names = chosen[rel]
        equivalent: set[str] = set()
        for entry in listed:
            name = entry["mutant"]
            if name not in names:
                continue
            if entry["line"].strip() in introduced(mutant_diff(name)):
                equivalent.add(name)
            else:
                print(f"stale equivalent entry (its line no longer matches): {name}")
        counted = [n for n in names if n not in equivalent]
        killed = [n for n in counted if codes.get(n) in KILLED]
        survivors = [n for n in counted if codes.get(n) not in KILLED]
        score = 100.0 * len(killed) / len(counted) if counted else 100.0
        sampled = f" [sample {len(names)} of {total_generated}]" if args.sample else ""
        print(f"{dotted(rel)} {len(killed)}/{len(counted)} = {score:.1f}% "
              f"(equivalent: {len(equivalent)}){sampled}")
        if args.show_survivors:
            for name in survivors:
                print(f"--- survived: {name} (exit {codes.get(name)})")
                print(mutant_diff(name))
    print(f"wall time {time.monotonic() - started:.0f} s; mutmut's log: {log_path}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
