"""Go duration, durafmt and reference-time layout formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from kiln.backend.template.golang import (
    durafmt,
    format_duration,
    format_duration_ns,
    go_quote,
    go_time_format,
    parse_duration,
    parse_duration_ns,
    rfc3339,
    strftime,
)

# ------------------------------------------------------------------ parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("-1s", -1.0),
        ("+5s", 5.0),
        ("0", 0.0),
        ("-0", 0.0),
        ("+0", 0.0),
        ("0s", 0.0),
        ("1h2m3s", 3723.0),
        ("1h2m3.5s", 3723.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("300us", 0.0003),
        ("300\u00b5s", 0.0003),
        ("300\u03bcs", 0.0003),
        ("7ns", 7e-9),
        ("1m1m", 120.0),
        ("2h45m", 9900.0),
        ("0.1s", 0.1),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, abs=1e-12)


def test_parse_duration_exact_nanoseconds() -> None:
    assert parse_duration_ns("1.5h") == 5_400_000_000_000
    assert parse_duration_ns("1h2m3.000000004s") == 3_723_000_000_004
    assert parse_duration_ns("-1.5s") == -1_500_000_000
    assert parse_duration_ns("9223372036854775807ns") == (1 << 63) - 1
    assert parse_duration_ns("-9223372036854775808ns") == -(1 << 63)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", 'time: invalid duration ""'),
        ("x", 'time: invalid duration "x"'),
        ("-", 'time: invalid duration "-"'),
        (".s", 'time: invalid duration ".s"'),
        ("s", 'time: invalid duration "s"'),
        ("1", 'time: missing unit in duration "1"'),
        ("1.5", 'time: missing unit in duration "1.5"'),
        ("1s2", 'time: missing unit in duration "1s2"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("5 s", 'time: unknown unit " s" in duration "5 s"'),
        ("9999999999h", 'time: invalid duration "9999999999h"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ('"1s"', 'time: invalid duration "\\"1s\\""'),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


def test_parse_duration_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(5)  # type: ignore[arg-type]


# ------------------------------------------------------------------ format_duration


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"),
        (10, "10s"),
        (90, "1m30s"),
        (3600, "1h0m0s"),
        (3723.5, "1h2m3.5s"),
        (0.5, "500ms"),
        (1.5, "1.5s"),
        (-1, "-1s"),
        (-90, "-1m30s"),
        (0.0000015, "1.5\u00b5s"),
        (1e-9, "1ns"),
        (0.048562, "48.562ms"),
        (100 * 3600, "100h0m0s"),
        (61.000000001, "1m1.000000001s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_duration_ns_round_trip() -> None:
    for text in ["1h0m0s", "1m30s", "500ms", "1.5s", "2h45m0s", "-3.25s", "999ns", "1.001ms"]:
        assert format_duration_ns(parse_duration_ns(text)) == text


# ------------------------------------------------------------------ durafmt


@pytest.mark.parametrize(
    "seconds, text",
    [
        (63.2, "1 minute 3 seconds"),
        (0.048562, "48 milliseconds 562 microseconds"),
        (0.052101, "52 milliseconds 101 microseconds"),
        (1, "1 second"),
        (2, "2 seconds"),
        (0, "0 seconds"),
        (3600, "1 hour"),
        (3661, "1 hour 1 minute"),
        (90061, "1 day 1 hour"),
        (8 * 86400, "1 week 1 day"),
        (400 * 86400, "1 year 5 weeks"),
        (0.000001, "1 microsecond"),
        (0.001001, "1 millisecond 1 microsecond"),
        (-2.5, "-2 seconds 500 milliseconds"),
        (5e-7, ""),
        (59.9999, "59 seconds 999 milliseconds"),
    ],
)
def test_durafmt(seconds: float, text: str) -> None:
    assert durafmt(seconds) == text


def test_durafmt_limit() -> None:
    assert durafmt(3661.5, limit=0) == "1 hour 1 minute 1 second 500 milliseconds"
    assert durafmt(3661.5, limit=1) == "1 hour"
    assert durafmt(3661.5, limit=3) == "1 hour 1 minute 1 second"


# ------------------------------------------------------------------ Go layouts

T = datetime(2024, 5, 17, 23, 40, 16, tzinfo=UTC)
TF = datetime(2024, 5, 17, 23, 40, 16, 123450, tzinfo=UTC)
MORNING = datetime(2006, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "dt, layout, text",
    [
        (T, "2006-01-02T15:04:05Z07:00", "2024-05-17T23:40:16Z"),
        (T, "20060102150405", "20240517234016"),
        (T, "Jan _2 15:04:05.000", "May 17 23:40:16.000"),
        (TF, "Jan _2 15:04:05.000", "May 17 23:40:16.123"),
        (TF, "15:04:05.999999999", "23:40:16.12345"),
        (T, "15:04:05.999", "23:40:16"),
        (TF, "15:04:05,000000", "23:40:16,123450"),
        (TF, "05.000000000", "16.123450000"),
        (T, "Monday, January 2, 2006", "Friday, May 17, 2024"),
        (T, "Mon Jan 2 06", "Fri May 17 24"),
        (T, "3:04PM pm", "11:40PM pm"),
        (MORNING, "3:4:5 PM", "3:4:5 AM"),
        (MORNING, "03:04:05 pm", "03:04:05 am"),
        (MORNING, "1/2/06 _2|02", "1/2/06  2|02"),
        (datetime(2024, 1, 1, 12, tzinfo=UTC), "3 PM", "12 PM"),
        (datetime(2024, 1, 1, 0, tzinfo=UTC), "03 PM", "12 AM"),
        (T, "MST -0700 -07:00 -07 -070000 -07:00:00", "UTC +0000 +00:00 +00 +000000 +00:00:00"),
        (T, "Z0700 Z07:00 Z07 Z070000 Z07:00:00", "Z Z Z Z Z"),
        (T, "002 __2", "138 138"),
        (datetime(2024, 1, 5, tzinfo=UTC), "002|__2", "005|  5"),
        (T, "_2006", "_2024"),
        (T, "2006-01-02T15:04:05Z", "2024-05-17T23:40:16Z"),
        (T, "literal text: xyz", "literal text: xyz"),
        (T, "1.0", "5.0"),
        (T, "05.00x", "16.00x"),
        (T, "0", "0"),
        (T, "", ""),
        (T, "Janx Mond", "Mayx Frid"),
    ],
)
def test_go_time_format(dt: datetime, layout: str, text: str) -> None:
    assert go_time_format(dt, layout) == text


def test_go_time_format_converts_to_utc() -> None:
    local = datetime(2024, 5, 18, 1, 40, 16, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339(local) == "2024-05-17T23:40:16Z"
    naive = datetime(2024, 5, 17, 23, 40, 16)
    assert rfc3339(naive) == "2024-05-17T23:40:16Z"


def test_rfc3339() -> None:
    assert rfc3339(T) == "2024-05-17T23:40:16Z"
    assert rfc3339(TF) == "2024-05-17T23:40:16Z"


@pytest.mark.parametrize(
    "fmt, text",
    [
        ("%Y-%m-%d %H:%M:%S", "2024-05-17 23:40:16"),
        ("%y%m%d", "240517"),
        ("%a %A %b %B %h", "Fri Friday May May May"),
        ("%I %p %j %e", "11 PM 138 17"),
        ("%Z %z", "UTC +0000"),
        ("%f %L", "123450 123"),
        ("100%% %q", "100% %q"),
        ("trailing %", "trailing %"),
        ("2006 literal", "2006 literal"),
    ],
)
def test_strftime(fmt: str, text: str) -> None:
    assert strftime(TF, fmt) == text


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n\t\x01') == '"a\\"b\\\\c\\n\\t\\x01"'
