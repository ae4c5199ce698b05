"""The HCL2 function library Packer templates use (string, collection, numeric, encoding,
filesystem, date/time, UUID, hashing, type conversion), in plain Python.

:func:`make_funcs` returns a name -> callable map. Functions take evaluated values and raise
:class:`~kiln.backend.template.hcl2.expr.FuncError` (or ``ConvError``) with a message; the
evaluator adds the location of the call. ``can``/``try`` are special forms of the evaluator,
and ``env`` is only handed out for variable defaults (as Packer does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import stat
import uuid as _uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .. import golang, limits
from ..funcs import START_TIME
from .expr import (
    UNKNOWN,
    ConvError,
    FuncError,
    collect_secret_texts,
    convert,
    dedupe,
    format_number,
    hcl_equal,
    norm_number,
    to_bool,
    to_number,
    to_str,
    type_of,
)

__all__ = ["make_funcs", "go_sprintf", "rfc3339", "NETWORK_FUNCS"]

#: functions of Packer that reach a network service; Kiln names them instead of "unknown"
NETWORK_FUNCS = {
    "aws_secretsmanager": "AWS Secrets Manager",
    "aws_secretsmanager_raw": "AWS Secrets Manager",
    "vault": "HashiCorp Vault",
    "consul_key": "Consul",
}

MAX_RANGE = 1024
#: bcrypt's cost doubles the work per step; 16 takes seconds, 31 days
MAX_BCRYPT_COST = 16
#: files fileset() may look at (fileset("/", "**") would walk the whole machine)
MAX_FILESET_WALK = 200_000


# -- helpers ----------------------------------------------------------------------------


def _list(v: Any, what: str = "argument") -> list:
    if isinstance(v, list):
        return v
    raise FuncError(f"the {what} must be a list, got {type_of(v)}")


def _map(v: Any, what: str = "argument") -> dict:
    if isinstance(v, dict):
        return v
    raise FuncError(f"the {what} must be a map or object, got {type_of(v)}")


def _int(v: Any, what: str = "argument") -> int:
    n = to_number(v)
    if isinstance(n, float) and not n.is_integer():
        raise FuncError(f"the {what} must be a whole number, got {format_number(n)}")
    return int(n)


def rfc3339(dt: datetime) -> str:
    return golang.rfc3339(dt)


def _parse_ts(s: Any) -> datetime:
    text = to_str(s)
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
                     text)
    if not m:
        raise FuncError(f'"{text}" is not an RFC 3339 timestamp (such as "2024-01-02T15:04:05Z")')
    y, mo, d, h, mi, sec, frac, zone = m.groups()
    micro = int((frac or ".0")[1:7].ljust(6, "0"))
    if zone in ("Z", "z"):
        tz = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        return datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec), micro, tzinfo=tz)
    except ValueError as e:
        raise FuncError(f'"{text}" is not a valid timestamp: {e}') from None


def _re2_options() -> Any:
    import re2

    opts = re2.Options()
    opts.log_errors = False  # errors are ours to report, not RE2's on stderr
    return opts


_RE2_OPTIONS: Any = None


def _go_regex(pattern: Any) -> Any:
    """Compile with RE2: the syntax of Go's regexp (which Packer uses), and matching in
    linear time, so no pattern can make Kiln backtrack for ever (``(a+)+$``)."""
    global _RE2_OPTIONS
    import re2

    if _RE2_OPTIONS is None:
        _RE2_OPTIONS = _re2_options()
    p = to_str(pattern)
    try:
        return re2.compile(p, _RE2_OPTIONS)
    except re2.error as e:
        why = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) \
            else str(e)
        raise FuncError(f'invalid regular expression "{p}": {why}') from None


def _go_expand(template: str, m: Any) -> str:
    """Go's ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if i + 1 < n and template[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        name = ""
        if i + 1 < n and template[i + 1] == "{":
            end = template.find("}", i + 2)
            if end < 0:
                out.append(c)
                i += 1
                continue
            name = template[i + 2: end]
            i = end + 1
        else:
            j = i + 1
            while j < n and (template[j].isalnum() or template[j] == "_"):
                j += 1
            name = template[i + 1: j]
            if not name:
                out.append(c)
                i += 1
                continue
            i = j
        try:
            g = m.group(int(name)) if name.isdigit() else m.group(name)
        except IndexError:
            g = ""
        out.append(g or "")
    return "".join(out)


def _regex_result(m: Any, rx: Any) -> Any:
    if rx.groupindex:
        return {name: m.group(name) for name in rx.groupindex}
    if rx.groups:
        return [g for g in m.groups()]
    return m.group(0)


# -- Go printf ---------------------------------------------------------------------------

_VERB_RE = re.compile(r"%([-+# 0]*)(?:\[(\d+)\])?(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def _json_text(v: Any) -> str:
    return _jsonencode(v)


def go_sprintf(fmt: str, args: list) -> str:
    out: list[str] = []
    pos = 0
    argi = 0
    used = 0
    while True:
        i = fmt.find("%", pos)
        if i < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:i])
        m = _VERB_RE.match(fmt, i)
        if not m:
            raise FuncError(f"invalid format verb at offset {i} of the format string")
        flags, index, width, prec, verb = m.groups()
        pos = m.end()
        if verb == "%":
            out.append("%")
            continue
        if index:
            argi = int(index) - 1
        if width == "*":
            if argi >= len(args):
                raise FuncError("not enough arguments for the * width")
            width = str(_int(args[argi]))
            argi += 1
        if prec == "*":
            if argi >= len(args):
                raise FuncError("not enough arguments for the * precision")
            prec = str(_int(args[argi]))
            argi += 1
        if argi >= len(args):
            raise FuncError(f"not enough arguments for the verb %{verb} (it needs argument "
                            f"{argi + 1}, {len(args)} given)")
        v = args[argi]
        argi += 1
        used = max(used, argi)
        out.append(_format_one(verb, v, flags, int(width) if width else None,
                               None if prec is None else int(prec or 0)))
    if used < len(args) and argi < len(args):
        raise FuncError(f"too many arguments: the format uses {used}, {len(args)} given")
    return "".join(out)


def _pad(s: str, flags: str, width: int | None, numeric: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s.ljust(width)
    if "0" in flags and numeric:
        sign = s[0] if s[:1] in "+-" else ""
        return sign + s[len(sign):].rjust(width - len(sign), "0")
    return s.rjust(width)


def _bounded_sub(rx: Any, repl: str, s: str) -> str:
    """``rx.sub`` with Go's ``$1`` expansion, stopping once the result is too long."""
    grown = [len(s)]

    def one(m: Any) -> str:
        text = _go_expand(repl, m)
        grown[0] += len(text) - (m.end() - m.start())
        limits.check_string(grown[0], "the result")
        return text

    return rx.sub(one, s)


def _format_one(verb: str, v: Any, flags: str, width: int | None, prec: int | None) -> str:
    for n, what in ((width, "width"), (prec, "precision")):
        if n is not None:
            try:
                limits.check_width(n, f"the {what} of %{verb}")
            except limits.LimitError as e:
                raise FuncError(str(e)) from None
    if verb == "v":
        if "#" in flags or isinstance(v, (list, dict)):
            s = _json_text(v)
        elif v is None:
            s = "null"
        else:
            s = to_str(v)
        return _pad(s, flags, width)
    if verb == "s":
        if isinstance(v, (list, dict)):
            raise FuncError(f"%s needs a string, got {type_of(v)}")
        s = to_str(v) if v is not None else "null"
        if prec is not None:
            s = s[:prec]
        return _pad(s, flags, width)
    if verb == "q":
        s = to_str(v)
        return _pad(json.dumps(s, ensure_ascii=False), flags, width)
    if verb == "t":
        return _pad("true" if to_bool(v) else "false", flags, width)
    if verb in "dboxXc":
        if verb in "xX" and isinstance(v, str):
            try:
                to_number(v)
            except ConvError:
                h = v.encode().hex()
                return _pad(h.upper() if verb == "X" else h, flags, width)
        n = to_number(v)
        if isinstance(n, float) and not n.is_integer():
            raise FuncError(f"%{verb} needs a whole number, got {format_number(n)}")
        n = int(n)
        sign = "+" if "+" in flags else (" " if " " in flags else "-")
        spec = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X", "c": "c"}[verb]
        if verb == "c":
            return _pad(chr(n), flags, width)
        s = format(n, sign + ("#" if "#" in flags else "") + spec)
        return _pad(s, flags, width, numeric=True)
    if verb in "eEfFgG":
        n = float(to_number(v))
        sign = "+" if "+" in flags else (" " if " " in flags else "-")
        if verb in "gG" and prec is None:
            s = format_number(norm_number(n)) if verb == "g" else format_number(n).upper()
        else:
            p = 6 if prec is None else prec
            s = format(n, f"{sign}.{p}{verb}")
        return _pad(s, flags, width, numeric=True)
    raise FuncError(f"unsupported format verb %{verb}")


# -- encoding ----------------------------------------------------------------------------


def _jsonencode(v: Any) -> str:
    if v is UNKNOWN:
        raise FuncError("the value is not known yet")
    text = json.dumps(v, separators=(",", ":"), sort_keys=True, ensure_ascii=False,
                      allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") \
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _from_json(v: Any) -> Any:
    if isinstance(v, float):
        return norm_number(v)
    if isinstance(v, list):
        return [_from_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _from_json(x) for k, x in v.items()}
    return v


# -- formatdate --------------------------------------------------------------------------

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _offset(dt: datetime, colon: bool) -> str:
    off = dt.utcoffset() or timedelta(0)
    mins = int(off.total_seconds() // 60)
    sign = "+" if mins >= 0 else "-"
    mins = abs(mins)
    return f"{sign}{mins // 60:02d}{':' if colon else ''}{mins % 60:02d}"


def formatdate(spec: Any, ts: Any) -> str:
    fmt = to_str(spec)
    dt = _parse_ts(ts)
    out: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c == "'":
            j = i + 1
            lit: list[str] = []
            while True:
                if j >= n:
                    raise FuncError("the format has an unterminated quoted literal (')")
                if fmt[j] == "'":
                    if j + 1 < n and fmt[j + 1] == "'":
                        lit.append("'")
                        j += 2
                        continue
                    break
                lit.append(fmt[j])
                j += 1
            out.append("".join(lit) if lit or j > i + 1 else "'")
            i = j + 1
            continue
        if not c.isalpha():
            out.append(c)
            i += 1
            continue
        j = i
        while j < n and fmt[j] == c:
            j += 1
        tok = fmt[i:j]
        i = j
        h12 = dt.hour % 12 or 12
        table = {
            "YYYY": f"{dt.year:04d}", "YY": f"{dt.year % 100:02d}",
            "MMMM": _MONTHS[dt.month - 1], "MMM": _MONTHS[dt.month - 1][:3],
            "MM": f"{dt.month:02d}", "M": str(dt.month),
            "DD": f"{dt.day:02d}", "D": str(dt.day),
            "EEEE": _DAYS[dt.weekday()], "EEE": _DAYS[dt.weekday()][:3],
            "hh": f"{dt.hour:02d}", "h": str(dt.hour),
            "HH": f"{h12:02d}", "H": str(h12),
            "AA": "PM" if dt.hour >= 12 else "AM", "aa": "pm" if dt.hour >= 12 else "am",
            "mm": f"{dt.minute:02d}", "m": str(dt.minute),
            "ss": f"{dt.second:02d}", "s": str(dt.second),
            "ZZZZZ": _offset(dt, True), "ZZZZ": _offset(dt, False),
            "ZZZ": "UTC" if not dt.utcoffset() else _offset(dt, False),
            "Z": "Z" if not dt.utcoffset() else _offset(dt, True),
        }
        if tok not in table:
            raise FuncError(f'invalid date format verb "{tok}"; put literal letters in single '
                            "quotes ('at')")
        out.append(table[tok])
    return "".join(out)


# -- fileset -----------------------------------------------------------------------------


def _glob_regex(pattern: str) -> Any:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise FuncError(f'invalid pattern "{pattern}": unclosed [')
            body = pattern[i + 1: j]
            if body.startswith("!") or body.startswith("^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        elif c == "{":
            j = pattern.find("}", i + 1)
            if j < 0:
                raise FuncError(f'invalid pattern "{pattern}": unclosed {{')
            alts = pattern[i + 1: j].split(",")
            out.append("(?:" + "|".join(re.escape(a) for a in alts) + ")")
            i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    import re2

    global _RE2_OPTIONS
    if _RE2_OPTIONS is None:
        _RE2_OPTIONS = _re2_options()
    try:
        return re2.compile("".join(out) + r"\z", _RE2_OPTIONS)
    except re2.error:
        raise FuncError(f'invalid pattern "{pattern}"') from None


def fileset(path: Any, pattern: Any) -> list[str]:
    root = to_str(path)
    rx = _glob_regex(to_str(pattern))
    found: list[str] = []
    if not os.path.isdir(root):
        return []
    seen = 0
    for dirpath, _dirs, files in os.walk(root):
        seen += len(files) + 1
        if seen > MAX_FILESET_WALK:
            raise FuncError(f"more than {MAX_FILESET_WALK:,} files under {root} (Kiln's limit); "
                            "point fileset at a smaller directory")
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
            if rx.match(rel):
                found.append(rel)
    return sorted(found)


# -- the library -------------------------------------------------------------------------


def make_funcs(*, start_time: datetime = START_TIME, sensitive: set[str] | None = None,
               templatefile: Callable[[str, dict], str] | None = None,
               allow_env: bool = False) -> dict[str, Callable[..., Any]]:
    """Every function, for one evaluation context."""
    sens = sensitive if sensitive is not None else set()
    f: dict[str, Callable[..., Any]] = {}

    def fn(name: str | None = None):
        def deco(func):
            f[name or func.__name__.rstrip("_")] = func
            return func
        return deco

    # -- strings
    @fn()
    def format(spec, *args):
        return go_sprintf(to_str(spec), list(args))

    @fn()
    def formatlist(spec, *args):
        length = None
        for a in args:
            if isinstance(a, list):
                if length is not None and len(a) != length:
                    raise FuncError("all list arguments must have the same length")
                length = len(a)
        if length is None:
            raise FuncError("at least one argument must be a list")
        return [go_sprintf(to_str(spec), [a[i] if isinstance(a, list) else a for a in args])
                for i in range(length)]

    @fn()
    def join(sep, *lists):
        if not lists:
            raise FuncError("at least one list is required")
        items = []
        for lst in lists:
            for x in _list(lst):
                if x is None:
                    raise FuncError("cannot join a null element")
                items.append(to_str(x))
        return to_str(sep).join(items)

    @fn()
    def split(sep, s):
        sep, s = to_str(sep), to_str(s)
        if sep == "":
            return list(s)
        return s.split(sep)

    fn("lower")(lambda s: to_str(s).lower())
    fn("upper")(lambda s: to_str(s).upper())

    @fn()
    def title(s):
        out, prev_letter = [], False
        for c in to_str(s):
            out.append(c.upper() if not prev_letter else c)
            prev_letter = c.isalnum() or c in "_'"
        return "".join(out)

    @fn()
    def trim(s, cutset):
        return to_str(s).strip(to_str(cutset))

    fn("trimspace")(lambda s: to_str(s).strip())
    fn("trimprefix")(lambda s, p: to_str(s).removeprefix(to_str(p)))
    fn("trimsuffix")(lambda s, p: to_str(s).removesuffix(to_str(p)))
    fn("chomp")(lambda s: to_str(s).rstrip("\r\n"))
    fn("strrev")(lambda s: to_str(s)[::-1])
    fn("startswith")(lambda s, p: to_str(s).startswith(to_str(p)))
    fn("endswith")(lambda s, p: to_str(s).endswith(to_str(p)))
    fn("strcontains")(lambda s, p: to_str(p) in to_str(s))

    @fn()
    def replace(s, substr, repl):
        s, substr, repl = to_str(s), to_str(substr), to_str(repl)
        if len(substr) > 1 and substr.startswith("/") and substr.endswith("/"):
            return _bounded_sub(_go_regex(substr[1:-1]), repl, s)
        if len(repl) > len(substr):
            count = s.count(substr) + (1 if substr == "" else 0)
            limits.check_string(len(s) + count * (len(repl) - len(substr)), "the result")
        return s.replace(substr, repl)

    @fn()
    def regex_replace(s, pattern, repl):
        return _bounded_sub(_go_regex(pattern), to_str(repl), to_str(s))

    @fn()
    def regex(pattern, s):
        rx = _go_regex(pattern)
        m = rx.search(to_str(s))
        if not m:
            raise FuncError("the pattern did not match anything in the string")
        return _regex_result(m, rx)

    @fn()
    def regexall(pattern, s):
        rx = _go_regex(pattern)
        return [_regex_result(m, rx) for m in rx.finditer(to_str(s))]

    @fn()
    def substr(s, offset, length):
        s = to_str(s)
        off, ln = _int(offset, "offset"), _int(length, "length")
        if off < 0:
            off = len(s) + off
            if off < 0:
                raise FuncError("the offset is before the start of the string")
        if off > len(s):
            raise FuncError("the offset is past the end of the string")
        if ln == -1:
            return s[off:]
        if ln < -1:
            raise FuncError("the length must be -1 (the rest) or more")
        return s[off: off + ln]

    @fn()
    def indent(n, s):
        width = _int(n, "number of spaces")
        s = to_str(s)
        limits.check_string(len(s) + max(width, 0) * s.count("\n"), "the indented text")
        pad = " " * width
        lines = s.split("\n")
        return "\n".join([lines[0]] + [pad + ln if ln else ln for ln in lines[1:]])

    # -- collections
    @fn()
    def length(v):
        if isinstance(v, (list, dict, str)):
            return len(v)
        raise FuncError(f"the argument must be a string, list, map or object, got {type_of(v)}")

    @fn()
    def concat(*lists):
        out = []
        for x in lists:
            out += _list(x)
        return out

    @fn()
    def contains(lst, value):
        return any(hcl_equal(x, value) for x in _list(lst))

    fn("distinct")(lambda lst: dedupe(_list(lst)))

    @fn()
    def element(lst, idx):
        lst = _list(lst)
        if not lst:
            raise FuncError("cannot use element() with an empty list")
        i = _int(idx, "index")
        if i < 0:
            raise FuncError("the index must not be negative")
        return lst[i % len(lst)]

    @fn()
    def flatten(lst):
        out: list = []

        def rec(x: list) -> None:
            for y in x:
                if isinstance(y, list):
                    rec(y)
                else:
                    out.append(y)
        rec(_list(lst))
        return out

    fn("keys")(lambda m: sorted(_map(m)))
    fn("values")(lambda m: [_map(m)[k] for k in sorted(_map(m))])

    @fn()
    def lookup(m, key, *default):
        m = _map(m)
        k = to_str(key)
        if k in m:
            return m[k]
        if default:
            if len(default) > 1:
                raise FuncError("takes 2 or 3 arguments")
            return default[0]
        raise FuncError(f'the map has no key "{k}" and no default was given')

    @fn()
    def merge(*maps):
        out: dict = {}
        for m in maps:
            if m is None:
                continue
            out.update(_map(m))
        return out

    @fn()
    def range_(*args):
        if not 1 <= len(args) <= 3:
            raise FuncError("takes 1 to 3 arguments: range(limit), range(start, limit) or "
                            "range(start, limit, step)")
        nums = [to_number(a) for a in args]
        if len(nums) == 1:
            start, limit, step = 0, nums[0], 1
        elif len(nums) == 2:
            start, limit = nums
            step = 1 if limit >= start else -1
        else:
            start, limit, step = nums
        if step == 0:
            raise FuncError("the step must not be zero")
        if (step > 0 and limit < start) or (step < 0 and limit > start):
            raise FuncError("the step goes away from the limit")
        out = []
        x = start
        while (step > 0 and x < limit) or (step < 0 and x > limit):
            out.append(norm_number(x))
            if len(out) > MAX_RANGE:
                raise FuncError(f"more than {MAX_RANGE} elements")
            x += step
        return out

    fn("reverse")(lambda lst: list(reversed(_list(lst))))

    @fn()
    def slice_(lst, start, end):
        lst = _list(lst)
        s, e = _int(start, "start index"), _int(end, "end index")
        if s < 0 or e > len(lst) or s > e:
            raise FuncError(f"the indexes {s}..{e} are out of range for a list of {len(lst)}")
        return lst[s:e]

    @fn()
    def sort(lst):
        items = _list(lst)
        if any(x is None for x in items):
            raise FuncError("cannot sort a list containing null")
        return sorted(to_str(x) for x in items)

    @fn()
    def zipmap(keys, vals):
        k, v = _list(keys, "keys"), _list(vals, "values")
        if len(k) != len(v):
            raise FuncError(f"{len(k)} keys but {len(v)} values")
        return {to_str(a): b for a, b in zip(k, v, strict=False)}

    @fn()
    def coalesce(*vals):
        for v in vals:
            if v is not None and v != "":
                return v
        raise FuncError("all arguments are null or empty strings")

    @fn()
    def coalescelist(*lists):
        for v in lists:
            if _list(v):
                return v
        raise FuncError("all lists are empty")

    fn("compact")(lambda lst: [x for x in _list(lst) if x is not None and x != ""])

    @fn()
    def index(lst, value):
        for i, x in enumerate(_list(lst)):
            if hcl_equal(x, value):
                return i
        raise FuncError("the value is not in the list")

    @fn()
    def setunion(*sets):
        return dedupe([x for s in sets for x in _list(s)])

    @fn()
    def setintersection(first, *rest):
        out = dedupe(_list(first))
        for s in rest:
            other = _list(s)
            out = [x for x in out if any(hcl_equal(x, y) for y in other)]
        return out

    @fn()
    def setsubtract(a, b):
        other = _list(b)
        return [x for x in dedupe(_list(a)) if not any(hcl_equal(x, y) for y in other)]

    @fn()
    def setproduct(*sets):
        total = 1
        for s in sets:
            total *= len(dedupe(_list(s)))
            limits.check_items(total, "the product")
        out: list[list] = [[]]
        for s in sets:
            out = [p + [x] for p in out for x in dedupe(_list(s))]
        return out if sets else []

    @fn()
    def chunklist(lst, size):
        items = _list(lst)
        n = _int(size, "size")
        if n < 0:
            raise FuncError("the size must not be negative")
        if n == 0:
            return [items]
        return [items[i: i + n] for i in range(0, len(items), n)]

    fn("alltrue")(lambda lst: all(to_bool(x) for x in _list(lst)))
    fn("anytrue")(lambda lst: any(to_bool(x) for x in _list(lst)))

    @fn()
    def sum_(lst):
        items = _list(lst)
        if not items:
            raise FuncError("cannot sum an empty list")
        return norm_number(math.fsum(to_number(x) for x in items)) if any(
            isinstance(to_number(x), float) for x in items) else sum(to_number(x) for x in items)

    @fn()
    def one(lst):
        items = _list(lst)
        if len(items) > 1:
            raise FuncError(f"the list must have 0 or 1 elements, it has {len(items)}")
        return items[0] if items else None

    @fn()
    def transpose(m):
        out: dict[str, list] = {}
        for k in sorted(_map(m)):
            for v in _list(m[k], "value"):
                out.setdefault(to_str(v), []).append(k)
        return out

    # -- numbers
    fn("abs")(lambda n: norm_number(abs(to_number(n))))
    fn("ceil")(lambda n: int(math.ceil(to_number(n))))
    fn("floor")(lambda n: int(math.floor(to_number(n))))

    @fn()
    def max_(*nums):
        if not nums:
            raise FuncError("at least one number is required")
        return max(to_number(n) for n in nums)

    @fn()
    def min_(*nums):
        if not nums:
            raise FuncError("at least one number is required")
        return min(to_number(n) for n in nums)

    @fn()
    def parseint(s, base):
        b = _int(base, "base")
        if not 2 <= b <= 62:
            raise FuncError("the base must be between 2 and 62")
        text = to_str(s)
        try:
            return int(text, b) if b <= 36 else _parse_base62(text, b)
        except ValueError:
            raise FuncError(f'"{text}" is not a number in base {b}') from None

    fn("pow")(lambda a, b: norm_number(math.pow(to_number(a), to_number(b))))
    fn("signum")(lambda n: (to_number(n) > 0) - (to_number(n) < 0))
    fn("log")(lambda n, base: math.log(to_number(n), to_number(base)))

    # -- encoding
    @fn()
    def base64encode(s):
        return base64.b64encode(to_str(s).encode()).decode()

    @fn()
    def base64decode(s):
        try:
            raw = base64.b64decode(to_str(s), validate=True)
        except (ValueError, TypeError):
            raise FuncError("the string is not valid base64") from None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FuncError("the decoded bytes are not UTF-8 text") from None

    fn("jsonencode")(_jsonencode)

    @fn()
    def jsondecode(s):
        try:
            return _from_json(json.loads(to_str(s)))
        except json.JSONDecodeError as e:
            raise FuncError(f"invalid JSON: {e}") from None

    @fn()
    def yamlencode(v):
        import yaml

        return yaml.safe_dump(v, default_flow_style=False, sort_keys=True, allow_unicode=True)

    @fn()
    def yamldecode(s):
        import yaml

        try:
            return _from_json(yaml.safe_load(to_str(s)))
        except yaml.YAMLError as e:
            raise FuncError(f"invalid YAML: {e}") from None

    @fn()
    def urlencode(s):
        from urllib.parse import quote_plus

        return quote_plus(to_str(s), safe="")

    @fn()
    def csvdecode(s):
        import csv
        import io

        rows = list(csv.reader(io.StringIO(to_str(s))))
        if not rows:
            raise FuncError("the CSV has no header row")
        head = rows[0]
        out = []
        for i, row in enumerate(rows[1:], start=2):
            if len(row) != len(head):
                raise FuncError(f"line {i} has {len(row)} fields, the header has {len(head)}")
            out.append(dict(zip(head, row, strict=False)))
        return out

    # -- filesystem
    def _open(path: Any) -> Any:
        p = os.path.expanduser(to_str(path))
        try:
            fh = open(p, "rb")  # noqa: SIM115 - returned to the caller
        except OSError as e:
            raise FuncError(f'cannot read "{p}": {e.strerror or e}') from None
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # /dev/zero would never end
            fh.close()
            raise FuncError(f'cannot read "{p}": it is not a regular file')
        return fh

    def _read(path: Any) -> bytes:
        with _open(path) as fh:
            try:
                data = fh.read(limits.MAX_STRING + 1)
            except OSError as e:
                raise FuncError(f'cannot read "{to_str(path)}": {e.strerror or e}') from None
        if len(data) > limits.MAX_STRING:
            raise FuncError(f'"{to_str(path)}" is larger than '
                            f"{limits.size_text(limits.MAX_STRING)} (Kiln's limit for a file "
                            "read into a value)")
        return data

    def _digest(path: Any, algo: str) -> str:
        h = hashlib.new(algo)
        with _open(path) as fh:  # a large image is hashed, never held in memory
            while block := fh.read(1 << 20):
                h.update(block)
        return h.hexdigest()

    @fn()
    def file(path):
        try:
            return _read(path).decode("utf-8")
        except UnicodeDecodeError:
            raise FuncError(f'"{to_str(path)}" is not UTF-8 text (use filebase64)') from None

    fn("filebase64")(lambda p: base64.b64encode(_read(p)).decode())

    @fn()
    def fileexists(path):
        p = os.path.expanduser(to_str(path))
        if os.path.isdir(p):
            raise FuncError(f'"{p}" is a directory, not a file')
        return os.path.isfile(p)

    fn("abspath")(lambda p: os.path.abspath(to_str(p)))
    fn("basename")(lambda p: os.path.basename(to_str(p).rstrip("/")) or "/")
    fn("dirname")(lambda p: os.path.dirname(to_str(p).rstrip("/")) or ".")
    fn("pathexpand")(lambda p: os.path.expanduser(to_str(p)))
    fn("fileset")(fileset)
    for algo in ("md5", "sha1", "sha256", "sha512"):
        fn("file" + algo)(lambda p, a=algo: _digest(p, a))

    if templatefile is not None:
        @fn()
        def templatefile_(path, variables):
            text = file(path)
            return templatefile(text, _map(variables, "variables"))

    # -- date and time
    fn("timestamp")(lambda: rfc3339(start_time))
    fn("formatdate")(formatdate)

    @fn()
    def timeadd(ts, duration):
        dt = _parse_ts(ts)
        try:
            secs = golang.parse_duration(to_str(duration))
        except ValueError as e:
            raise FuncError(str(e)) from None
        return rfc3339(dt + timedelta(seconds=secs))

    @fn()
    def timecmp(a, b):
        x, y = _parse_ts(a), _parse_ts(b)
        return (x > y) - (x < y)

    @fn()
    def legacy_isotime(*layout):
        if len(layout) > 1:
            raise FuncError("takes at most one layout")
        if not layout:
            return golang.rfc3339(start_time)
        return golang.go_time_format(start_time, to_str(layout[0]))

    # Kiln's addition: {{timestamp}} of JSON templates (Unix seconds of the run's start), so
    # hcl2_upgrade can translate it without changing its value
    fn("legacy_timestamp")(lambda: str(int(start_time.timestamp())))
    fn("legacy_strftime")(lambda spec: golang.strftime(start_time, to_str(spec)))

    # -- uuid
    fn("uuidv4")(lambda: str(_uuid.uuid4()))
    fn("uuid")(lambda: str(_uuid.uuid4()))

    @fn()
    def uuidv5(namespace, name):
        ns = to_str(namespace)
        known = {"dns": _uuid.NAMESPACE_DNS, "url": _uuid.NAMESPACE_URL,
                 "oid": _uuid.NAMESPACE_OID, "x500": _uuid.NAMESPACE_X500}
        if ns in known:
            nsu = known[ns]
        else:
            try:
                nsu = _uuid.UUID(ns)
            except ValueError:
                raise FuncError(f'"{ns}" is not a namespace: use "dns", "url", "oid", "x500" or '
                                "a UUID") from None
        return str(_uuid.uuid5(nsu, to_str(name)))

    # -- hashing
    for algo in ("md5", "sha1", "sha256", "sha512"):
        fn(algo)(lambda s, a=algo: hashlib.new(a, to_str(s).encode()).hexdigest())
    fn("base64sha256")(lambda s: base64.b64encode(hashlib.sha256(to_str(s).encode()).digest())
                       .decode())
    fn("base64sha512")(lambda s: base64.b64encode(hashlib.sha512(to_str(s).encode()).digest())
                       .decode())

    @fn()
    def bcrypt(s, *cost):
        try:
            import bcrypt as _bcrypt
        except ImportError:
            raise FuncError("needs the Python package bcrypt (pip install bcrypt)") from None
        rounds = _int(cost[0], "cost") if cost else 10
        if not 4 <= rounds <= 31:
            raise FuncError("the cost must be between 4 and 31")
        if rounds > MAX_BCRYPT_COST:  # each step doubles the time: 31 would take days
            raise FuncError(f"a cost of {rounds} takes too long to compute; Kiln's limit is "
                            f"{MAX_BCRYPT_COST}")
        return _bcrypt.hashpw(to_str(s).encode(), _bcrypt.gensalt(rounds, prefix=b"2a")).decode()

    # -- type conversion
    @fn()
    def tostring(v):
        if v is None:
            return None
        if isinstance(v, (list, dict)):
            raise FuncError(f"cannot convert a {type_of(v)} to a string")
        return to_str(v)

    fn("tonumber")(lambda v: None if v is None else to_number(v))
    fn("tobool")(lambda v: None if v is None else to_bool(v))

    @fn()
    def tolist(v):
        if v is None:
            return None
        return list(_list(v))

    @fn()
    def toset(v):
        if v is None:
            return None
        return dedupe(_list(v))

    @fn()
    def tomap(v):
        if v is None:
            return None
        return dict(_map(v))

    @fn()
    def sensitive(v):
        collect_secret_texts(v, sens)
        return v

    fn("nonsensitive")(lambda v: v)

    @fn()
    def type_(v):
        return type_of(v)

    del f["type"]  # only a debugging aid in other tools; not part of Packer's library

    for name, service in NETWORK_FUNCS.items():
        def network(*_args, _service=service, _name=name):
            raise FuncError(f"reads from {_service}, which Kiln does not support; pass the value "
                            "in with -var or a var file instead")
        f[name] = network

    if allow_env:
        @fn()
        def env(name):
            return os.environ.get(to_str(name), "")

    return f


def _parse_base62(text: str, base: int) -> int:
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if not text:
        raise ValueError(text)
    n = 0
    for c in text:
        d = digits.find(c)
        if d < 0 or d >= base:
            raise ValueError(text)
        n = n * base + d
    return sign * n


#: every function name Kiln's HCL2 library has (for "did you mean" and docs)
FUNCTION_NAMES = tuple(sorted(make_funcs(allow_env=True, templatefile=lambda t, v: "")))

_ = convert  # re-exported for callers that convert values returned by functions
