"""Table primitives shared by every suite's tables (report.py, realcode.py):
the order of implementations, the builtin each family is compared with, ratio
cells and the text / markdown rendering."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from benchmarks.registry import MAP, SEQ

#: Rows are ordered by role, then by name.
ROLE_ORDER = {"builtin": 0, "ours": 1, "peer": 2, "locked": 3, "ceiling": 4}
#: The implementation every other one of a family is compared with.
BUILTIN = {MAP: "dict", SEQ: "list"}


def impl_key(role: str, name: str) -> tuple[int, str]:
    return (ROLE_ORDER.get(role, 9), name)


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` as ``1.23x``; ``-`` where either is missing (or not a number)."""
    if a is None or b is None or not b or math.isnan(a):
        return "-"
    return f"{a / b:.2f}x"


def with_ratio(text: str, value: float, ref: float | None) -> str:
    """A measured cell and, where there is a reference value, its ratio to it:
    ``12.3 ns (1.05x)``."""
    return text if ref is None else f"{text} ({value / ref:.2f}x)"


def fmt_table(headers: Sequence[str], rows: Iterable[Sequence[str]], markdown: bool) -> str:
    rows = [list(r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)
        )

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)
