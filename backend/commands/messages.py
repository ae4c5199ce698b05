"""How commands print what went wrong: Packer's "Error:" lines, or machine-readable rows."""

from __future__ import annotations

import sys


def print_problems(err, out=None, mask=None) -> None:
    out = out or sys.stderr
    from ..template.errors import TemplateError, printable

    if mask is not None and isinstance(err, TemplateError):
        from ..template.errors import Problem

        err = TemplateError([Problem(p.loc, mask(p.message), p.severity, mask(p.snippet))
                             for p in err.problems])
    if isinstance(err, TemplateError):
        errors = [p for p in err.problems if p.severity == "error"]
        n = len(errors)
        out.write(f"Error: the template has {n} problem{'s' if n != 1 else ''}:\n\n" if n > 1 else "Error: ")
        for p in err.problems:
            out.write(printable(p.format()) + "\n")
    else:
        out.write(f"Error: {printable(str(err))}\n")
    out.flush()


def say(machine: bool, text: str) -> None:
    if machine:
        import time

        from ..api import machine_escape

        print(f"{int(time.time())},,ui,say,{machine_escape(text)}")
    else:
        from ..template.errors import printable

        print(printable(text))


def fail(machine: bool, err, mask=None) -> None:
    if machine:
        import io
        import time

        from ..api import machine_escape

        buf = io.StringIO()
        print_problems(err, buf, mask)
        print(f"{int(time.time())},,ui,error,{machine_escape(buf.getvalue().rstrip())}")
    else:
        print_problems(err, mask=mask)
