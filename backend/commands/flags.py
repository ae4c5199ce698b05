"""Go-style flag parsing for every command, and the flags several commands share."""

from __future__ import annotations


class UsageError(Exception):
    pass


class Flags:
    """Go-style flag parsing: -x, --x, -x=v, -x v; booleans only take -x or -x=bool."""

    def __init__(self, spec: dict[str, str]):
        self.spec = spec  # name -> "bool" | "str" | "list" | "kv"
        self.values: dict[str, object] = {}
        self.args: list[str] = []

    def parse(self, argv: list[str]) -> Flags:
        i = 0
        while i < len(argv):
            a = argv[i]
            if a == "--":
                self.args.extend(argv[i + 1:])
                break
            if not a.startswith("-") or a == "-":
                self.args.append(a)
                i += 1
                continue
            name = a.lstrip("-")
            value: str | None = None
            if "=" in name:
                name, value = name.split("=", 1)
            kind = self.spec.get(name)
            if kind is None:
                raise UsageError(f"flag provided but not defined: -{name}")
            if kind == "bool":
                if value is None:
                    self.values[name] = True
                elif value.lower() in ("1", "t", "true"):
                    self.values[name] = True
                elif value.lower() in ("0", "f", "false"):
                    self.values[name] = False
                else:
                    raise UsageError(f'invalid boolean value "{value}" for -{name}')
                i += 1
                continue
            if value is None:
                if i + 1 >= len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                value = argv[i + 1]
                i += 2
            else:
                i += 1
            if kind == "list":
                cur = self.values.setdefault(name, [])
                cur.extend(x for x in value.split(",") if x)  # type: ignore[union-attr]
            elif kind == "multi":
                self.values.setdefault(name, []).append(value)  # type: ignore[union-attr]
            else:
                self.values[name] = value
        return self

    def get(self, name: str, default=None):
        return self.values.get(name, default)


COMMON = {"var": "multi", "var-file": "multi", "only": "list", "except": "list", "h": "bool",
          "help": "bool"}


def options_from(flags: Flags):
    from ..api import Options

    vars_: dict[str, str] = {}
    for kv in flags.get("var", []):
        if "=" not in kv:
            raise UsageError(f"No '=' value in arg: {kv} (expected -var key=value)")
        k, v = kv.split("=", 1)
        vars_[k] = v
    on_error = flags.get("on-error", "cleanup") or "cleanup"
    if on_error not in ("cleanup", "abort", "ask", "run-cleanup-provisioner"):
        raise UsageError(f'invalid value "{on_error}" for -on-error: expected one of '
                         "[cleanup abort ask run-cleanup-provisioner]")
    try:
        parallel = int(flags.get("parallel-builds", 0) or 0)
    except ValueError:
        raise UsageError("-parallel-builds expects a number") from None
    return Options(
        only=tuple(flags.get("only", [])),
        except_=tuple(flags.get("except", [])),
        force=bool(flags.get("force", False)),
        on_error=on_error,
        debug=bool(flags.get("debug", False)),
        parallel_builds=parallel,
        timestamp_ui=bool(flags.get("timestamp-ui", False)),
        color=bool(flags.get("color", True)),
        vars=vars_,
        var_files=tuple(flags.get("var-file", [])),
        state_dir=flags.get("state-dir"),
        events=flags.get("events"),
    )


def positive(flags: Flags, name: str, default: int) -> int:
    raw = flags.get(name)
    if raw is None:
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise UsageError(f'invalid value "{raw}" for flag -{name}: expected a whole number') from None
    if value < 1:
        raise UsageError(f'invalid value "{raw}" for flag -{name}: expected 1 or more')
    return value


def one_template(flags: Flags, help_text: str) -> str:
    if len(flags.args) != 1:
        raise UsageError(help_text)
    return flags.args[0]
