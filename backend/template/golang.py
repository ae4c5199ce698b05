"""Go-compatible text formats: durations, human build times and reference-time layouts.

Everything here is written from the documented behaviour of Go's ``time`` package and of the
``durafmt`` library as Packer uses them (see docs/packer-semantics.md §1.6, §4.2, §5.1).
Times are always formatted in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = [
    "parse_duration",
    "parse_duration_ns",
    "format_duration",
    "format_duration_ns",
    "durafmt",
    "go_time_format",
    "rfc3339",
    "strftime",
    "go_quote",
    "RFC3339_LAYOUT",
]

RFC3339_LAYOUT = "2006-01-02T15:04:05Z07:00"

_NS = 1
_US = 1000 * _NS
_MS = 1000 * _US
_S = 1000 * _MS
_MIN = 60 * _S
_H = 60 * _MIN
_MAX_DURATION = (1 << 63) - 1

_UNITS = {
    "ns": _NS,
    "us": _US,
    "\u00b5s": _US,  # micro sign
    "\u03bcs": _US,  # greek small letter mu
    "ms": _MS,
    "s": _S,
    "m": _MIN,
    "h": _H,
}


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def quote_escaped(s: str, control_format: str) -> str:
    """Double-quote ``s`` with backslash escapes; other control characters (and DEL) are
    written with ``control_format`` applied to their code point."""
    out = ['"']
    for ch in s:
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(control_format.format(ord(ch)))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_quote(s: str) -> str:
    """Double-quote ``s`` roughly like Go's ``strconv.Quote``."""
    return quote_escaped(s, "\\x{:02x}")


# --------------------------------------------------------------------------- durations


def parse_duration_ns(s: str) -> int:
    """Parse a Go duration string (``time.ParseDuration``) into integer nanoseconds."""
    if not isinstance(s, str):
        raise ValueError(f"time: invalid duration {go_quote(str(s))}")
    orig = s
    invalid = ValueError(f"time: invalid duration {go_quote(orig)}")
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    i, n = 0, len(s)
    while i < n:
        if not (s[i] == "." or s[i].isascii() and s[i].isdigit()):
            raise invalid
        # integer part
        start = i
        while i < n and "0" <= s[i] <= "9":
            i += 1
        pre = i > start
        whole = int(s[start:i]) if pre else 0
        # fraction
        frac, scale, post = 0, 1.0, False
        if i < n and s[i] == ".":
            i += 1
            fstart = i
            while i < n and "0" <= s[i] <= "9":
                if scale < 1e18:  # further digits cannot change the result
                    frac = frac * 10 + int(s[i])
                    scale *= 10
                i += 1
            post = i > fstart
        if not pre and not post:
            raise invalid
        ustart = i
        while i < n and s[i] != "." and not ("0" <= s[i] <= "9"):
            i += 1
        unit_name = s[ustart:i]
        if not unit_name:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(
                f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(orig)}"
            )
        if whole > (1 << 63) // unit:
            raise invalid
        value = whole * unit
        if frac:
            value += int(float(frac) * (unit / scale))
        total += value
        if total > _MAX_DURATION + 1:
            raise invalid
    if total > _MAX_DURATION and not neg:
        raise invalid
    return -total if neg else total


def parse_duration(s: str) -> float:
    """Parse a Go duration string into seconds (float).

    ``"1m30s"`` → 90.0, ``"1.5h"`` → 5400.0, ``"500ms"`` → 0.5, ``"0"`` → 0.0. Errors raise
    ``ValueError`` with Go's texts (``time: invalid duration "x"``, ``time: missing unit in
    duration "1"``, ``time: unknown unit "d" in duration "1d"``).
    """
    return parse_duration_ns(s) / 1e9


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Fraction ``v / 10**prec`` without trailing zeros (``".5"``) and the integer part."""
    digits = []
    printed = False
    for _ in range(prec):
        d = v % 10
        printed = printed or d != 0
        if printed:
            digits.append(str(d))
        v //= 10
    frac = ("." + "".join(reversed(digits))) if printed else ""
    return frac, v


def format_duration_ns(ns: int) -> str:
    """Go's ``Duration.String()`` for an integer nanosecond count."""
    ns = int(ns)
    neg = ns < 0
    u = -ns if neg else ns
    if u < _S:
        if u == 0:
            return "0s"
        if u < _US:
            text = f"{u}ns"
        elif u < _MS:
            frac, whole = _fmt_frac(u, 3)
            text = f"{whole}{frac}\u00b5s"
        else:
            frac, whole = _fmt_frac(u, 6)
            text = f"{whole}{frac}ms"
    else:
        frac, secs_total = _fmt_frac(u, 9)
        text = f"{secs_total % 60}{frac}s"
        mins_total = secs_total // 60
        if mins_total > 0:
            text = f"{mins_total % 60}m{text}"
            hours = mins_total // 60
            if hours > 0:
                text = f"{hours}h{text}"
    return "-" + text if neg else text


def format_duration(seconds: float) -> str:
    """Go's ``Duration.String()``: ``10s``, ``1m30s``, ``1h0m0s``, ``500ms``, ``1.5s``, ``0s``."""
    return format_duration_ns(round(seconds * 1e9))


_DURAFMT_UNITS = (
    ("year", 365 * 24 * 3600 * 1_000_000),
    ("week", 7 * 24 * 3600 * 1_000_000),
    ("day", 24 * 3600 * 1_000_000),
    ("hour", 3600 * 1_000_000),
    ("minute", 60 * 1_000_000),
    ("second", 1_000_000),
    ("millisecond", 1000),
    ("microsecond", 1),
)


def durafmt(seconds: float, limit: int = 2) -> str:
    """Human duration as Packer prints build times (durafmt, first ``limit`` units).

    ``63.2`` → ``1 minute 3 seconds``; ``0.048562`` → ``48 milliseconds 562 microseconds``;
    ``1`` → ``1 second``; ``0`` → ``0 seconds``. Units: year (365 days), week, day, hour,
    minute, second, millisecond, microsecond; zero units are skipped; singular for 1;
    ``limit=0`` means no limit. A negative duration is prefixed with ``-``; a non-zero
    duration below one microsecond gives ``""`` (as the Go library does).
    """
    ns = round(seconds * 1e9)
    neg = ns < 0
    ns = -ns if neg else ns
    if ns == 0:
        return "0 seconds"
    rest = ns // 1000
    words: list[str] = []
    for name, size in _DURAFMT_UNITS:
        v, rest = divmod(rest, size)
        if v == 1:
            words += [str(v), name]
        elif v > 1:
            words += [str(v), name + "s"]
    if limit > 0:
        words = words[: 2 * limit]
    text = " ".join(words)
    return "-" + text if neg and text else text


# --------------------------------------------------------------------------- time layouts

_LONG_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_LONG_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _layout_tokens(layout: str) -> list[tuple[str, str]]:
    """Split a Go layout into ``("lit", text)`` and ``("std", token)`` pieces."""
    out: list[tuple[str, str]] = []
    lit_start = 0
    i, n = 0, len(layout)

    def emit(tok: str, length: int) -> None:
        nonlocal i, lit_start
        if lit_start < i:
            out.append(("lit", layout[lit_start:i]))
        out.append(("std", tok))
        i += length
        lit_start = i

    while i < n:
        c = layout[i]
        rest = layout[i:]
        if c == "J" and rest.startswith("Jan"):
            if rest.startswith("January"):
                emit("January", 7)
            else:
                emit("Jan", 3)
            continue
        if c == "M":
            if rest.startswith("Monday"):
                emit("Monday", 6)
                continue
            if rest.startswith("Mon"):
                emit("Mon", 3)
                continue
            if rest.startswith("MST"):
                emit("MST", 3)
                continue
        if c == "0":
            if len(rest) >= 2 and "1" <= rest[1] <= "6":
                emit(rest[:2], 2)
                continue
            if rest.startswith("002"):
                emit("002", 3)
                continue
        if c == "1":
            if rest.startswith("15"):
                emit("15", 2)
            else:
                emit("1", 1)
            continue
        if c == "2":
            if rest.startswith("2006"):
                emit("2006", 4)
            else:
                emit("2", 1)
            continue
        if c == "_":
            if rest.startswith("_2"):
                if rest.startswith("_2006"):
                    # a literal underscore followed by the long year
                    i += 1
                    emit("2006", 4)
                else:
                    emit("_2", 2)
                continue
            if rest.startswith("__2"):
                emit("__2", 3)
                continue
        if c in "345":
            emit(c, 1)
            continue
        if c == "P" and rest.startswith("PM"):
            emit("PM", 2)
            continue
        if c == "p" and rest.startswith("pm"):
            emit("pm", 2)
            continue
        if c in "-Z":
            matched = False
            for tz in ("070000", "07:00:00", "0700", "07:00", "07"):
                if rest.startswith(c + tz):
                    emit(c + tz, 1 + len(tz))
                    matched = True
                    break
            if matched:
                continue
        if c in ".," and len(rest) >= 2 and rest[1] in "09":
            j = 1
            while j < len(rest) and rest[j] == rest[1]:
                j += 1
            if not (j < len(rest) and rest[j].isascii() and rest[j].isdigit()):
                emit(rest[:j], j)
                continue
        i += 1
    if lit_start < n:
        out.append(("lit", layout[lit_start:]))
    return out


def _to_utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _std_value(dt: datetime, tok: str) -> str:
    if tok == "2006":
        return f"{dt.year:04d}"
    if tok == "06":
        return f"{dt.year % 100:02d}"
    if tok == "January":
        return _LONG_MONTHS[dt.month - 1]
    if tok == "Jan":
        return _LONG_MONTHS[dt.month - 1][:3]
    if tok == "01":
        return f"{dt.month:02d}"
    if tok == "1":
        return str(dt.month)
    if tok == "Monday":
        return _LONG_DAYS[dt.weekday()]
    if tok == "Mon":
        return _LONG_DAYS[dt.weekday()][:3]
    if tok == "02":
        return f"{dt.day:02d}"
    if tok == "_2":
        return f"{dt.day:2d}"
    if tok == "2":
        return str(dt.day)
    yday = dt.timetuple().tm_yday
    if tok == "002":
        return f"{yday:03d}"
    if tok == "__2":
        return f"{yday:3d}"
    if tok == "15":
        return f"{dt.hour:02d}"
    hour12 = dt.hour % 12 or 12
    if tok == "03":
        return f"{hour12:02d}"
    if tok == "3":
        return str(hour12)
    if tok == "04":
        return f"{dt.minute:02d}"
    if tok == "4":
        return str(dt.minute)
    if tok == "05":
        return f"{dt.second:02d}"
    if tok == "5":
        return str(dt.second)
    if tok == "PM":
        return "PM" if dt.hour >= 12 else "AM"
    if tok == "pm":
        return "pm" if dt.hour >= 12 else "am"
    if tok == "MST":
        return "UTC"
    if tok[0] == "Z":
        return "Z"  # the time is always UTC
    if tok[0] == "-":
        return "+" + tok[1:].replace("7", "0")  # -0700 -> +0000, -07:00 -> +00:00, ...
    if tok[0] in ".,":
        digits = min(len(tok) - 1, 9)
        nanos = f"{dt.microsecond * 1000:09d}"[:digits]
        if tok[1] == "9":
            nanos = nanos.rstrip("0")
            return tok[0] + nanos if nanos else ""
        return tok[0] + nanos
    raise AssertionError(tok)  # pragma: no cover


def go_time_format(dt: datetime, layout: str) -> str:
    """Format ``dt`` (converted to UTC) with a Go reference-time layout.

    The reference instant is ``Mon Jan 2 15:04:05 -0700 MST 2006``; e.g. layout
    ``2006-01-02T15:04:05Z07:00`` gives ``2024-05-17T23:40:16Z``. Anything that is not a
    layout token is copied literally.
    """
    dt = _to_utc(dt)
    parts = []
    for kind, value in _layout_tokens(layout):
        parts.append(value if kind == "lit" else _std_value(dt, value))
    return "".join(parts)


def rfc3339(dt: datetime) -> str:
    """``dt`` in UTC as Go's RFC 3339 layout (``2024-05-17T23:40:16Z``)."""
    return go_time_format(dt, RFC3339_LAYOUT)


_STRFTIME = {
    "a": "Mon",
    "A": "Monday",
    "b": "Jan",
    "h": "Jan",
    "B": "January",
    "d": "02",
    "e": "_2",
    "H": "15",
    "I": "03",
    "j": "002",
    "m": "01",
    "M": "04",
    "p": "PM",
    "S": "05",
    "y": "06",
    "Y": "2006",
    "Z": "MST",
    "z": "-0700",
}


def strftime(dt: datetime, fmt: str) -> str:
    """C-style strftime in UTC (the directive set Packer's ``strftime`` offers).

    ``%a %A %b %h %B %d %e %H %I %j %m %M %p %S %y %Y %Z %z`` plus ``%f`` (microseconds),
    ``%L`` (milliseconds) and ``%%``; an unknown directive is copied as is.
    """
    dt = _to_utc(dt)
    out = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        d = fmt[i + 1]
        i += 2
        if d == "%":
            out.append("%")
        elif d in _STRFTIME:
            out.append(_std_value(dt, _STRFTIME[d]))
        elif d == "f":
            out.append(f"{dt.microsecond:06d}")
        elif d == "L":
            out.append(f"{dt.microsecond // 1000:03d}")
        else:
            out.append("%" + d)
    return "".join(out)
