"""Output: progress bar, terminal tables, markdown tables and PNG plots."""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, TextIO

from benchmarks import harness, pyloop, realcode
from benchmarks.memory import Footprint
from benchmarks.registry import MAP, Impl
from benchmarks.scaling import Case, Point
from benchmarks.single import Cost
from benchmarks.tables import BUILTIN, fmt_table, impl_key, ratio, with_ratio


# ------------------------------------------------------------------ progress
class Progress:
    """A one-line progress bar on a terminal; sparse plain lines otherwise."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, enabled: bool = True) -> None:
        self.total = max(1, total)
        self.done = 0
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.t0 = time.monotonic()
        self._last_decile = -1

    def step(self, label: str) -> None:
        """Announce the step about to run (counted as done when the next one starts)."""
        if not self.enabled:
            self.done += 1
            return
        frac = self.done / self.total
        elapsed = time.monotonic() - self.t0
        eta = f"{elapsed / frac * (1 - frac):4.0f}s left" if self.done else "   ...   "
        if self.tty:
            width = 28
            fill = int(width * frac)
            bar = "#" * fill + "-" * (width - fill)
            line = f"\r[{bar}] {self.done:>3}/{self.total} {eta}  {label[:48]:<48}"
            self.stream.write(line)
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(f"[bench] {self.done}/{self.total} ({elapsed:.0f}s) {label}\n")
                self.stream.flush()
        self.done += 1

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()


# ------------------------------------------------------------------ tables
def scaling_groups(points: list[Point]) -> dict[Case, list[Point]]:
    groups: dict[Case, list[Point]] = defaultdict(list)
    for p in points:
        groups[p.case].append(p)
    return groups


def scaling_table(case: Case, pts: list[Point], markdown: bool = False) -> str:
    """One row per implementation.

    Columns: median / best Mops/s at each thread count, the scaling of the
    median relative to 1 thread, the ratio of the median to the builtin at
    the same thread count, and the worst spread over the thread counts.
    """
    by = {(p.impl, p.threads): p for p in pts}
    builtin = BUILTIN[case.family]
    impls = sorted({(p.role, p.impl) for p in pts}, key=lambda ri: impl_key(*ri))
    threads = sorted({p.threads for p in pts})
    headers = ["implementation"]
    headers += [f"{t}T med/best" for t in threads]
    headers += [f"scaling {t}T" for t in threads if t != 1]
    headers += [f"vs {builtin} {t}T" for t in threads]
    headers += ["spread*"]
    rows = []
    for role, name in impls:
        one = by.get((name, 1))
        row = [f"**{name}**" if markdown and role == "ours" else name]
        for t in threads:
            p = by.get((name, t))
            row.append(f"{p.median / 1e6:.2f}/{p.best / 1e6:.2f}" if p else "-")
        for t in threads:
            if t == 1:
                continue
            p = by.get((name, t))
            row.append(ratio(p.median, one.median if one else None) if p else "-")
        for t in threads:
            p, ref = by.get((name, t)), by.get((builtin, t))
            row.append(ratio(p.median, ref.median if ref else None) if p else "-")
        spreads = [by[(name, t)].spread for t in threads if (name, t) in by]
        row.append(f"{max(spreads) * 100:.0f}%" if spreads else "-")
        rows.append(row)
    return fmt_table(headers, rows, markdown)


def headline_table(points: list[Point], markdown: bool = False) -> str | None:
    """The headline: str keys (list: int indices), immortal values, thread-local keys;
    read-only and 90/10 at 1 and 2 threads.  Cells: median Mops/s (ratio to the builtin)."""
    wanted = {(MAP, "str"), ("seq", "int")}
    pts = [
        p
        for p in points
        if (p.case.family, p.case.keytype) in wanted
        and p.case.values == "immortal"
        and p.case.keys == "local"
        and p.case.mix in (100, 90)
        and p.case.write == "replace"
        and p.threads in (1, 2)
    ]
    if not pts:
        return None
    by = {(p.impl, p.case.mix, p.threads): p for p in pts}
    family = {p.impl: p.case.family for p in pts}
    impls = sorted(
        {(p.role, p.impl) for p in pts}, key=lambda ri: (family[ri[1]] != MAP, *impl_key(*ri))
    )
    threads = sorted({p.threads for p in pts})
    headers = ["implementation"]
    for mix in (100, 90):
        label = "read-only" if mix == 100 else "90/10"
        headers += [f"{label} {t}T" for t in threads]
        if 1 in threads and len(threads) > 1:
            headers.append(f"{label} scaling")
    rows = []
    for role, name in impls:
        builtin = BUILTIN[family[name]]
        row = [f"**{name}**" if markdown and role == "ours" else name]
        for mix in (100, 90):
            for t in threads:
                p, ref = by.get((name, mix, t)), by.get((builtin, mix, t))
                if p is None:
                    row.append("-")
                else:
                    ref_median = ref.median if ref and name != builtin else None
                    row.append(with_ratio(f"{p.median / 1e6:.2f}", p.median, ref_median))
            if 1 in threads and len(threads) > 1:
                one, top = by.get((name, mix, 1)), by.get((name, mix, threads[-1]))
                row.append(ratio(top.median, one.median) if one and top else "-")
        rows.append(row)
    return fmt_table(headers, rows, markdown)


def single_table(costs: list[Cost], family: str, markdown: bool = False) -> str:
    rows_ = [c for c in costs if c.family == family]
    ops = list(dict.fromkeys(c.op for c in rows_))
    impls = sorted({(c.role, c.impl) for c in rows_}, key=lambda ri: impl_key(*ri))
    by = {(c.impl, c.op): c for c in rows_}
    builtin = BUILTIN[family]
    headers = ["op", *(name for _r, name in impls)]
    rows = []
    for op in ops:
        ref = by.get((builtin, op))
        row = [op]
        for _r, name in impls:
            c = by.get((name, op))
            if c is None:
                row.append("n/a")
            else:
                ref_ns = ref.ns_per_op if ref and name != builtin else None
                row.append(with_ratio(f"{c.ns_per_op:.1f} ns", c.ns_per_op, ref_ns))
        rows.append(row)
    return fmt_table(headers, rows, markdown)


#: The Python-loop shapes and the C-loop operation each corresponds to.
_C_LOOP_OF = {
    "append": ("seq", "append"),
    "pop()": ("seq", "pop"),
    "d.pop(k)+refill": (MAP, "pop"),
    "iter 1000": ("seq", "iter"),
    "x in lst (16)": ("seq", "contains"),
    "x in lst (1000)": ("seq", "contains"),
}


def pyloop_table(
    pycosts: list[pyloop.LoopCost], costs: list[Cost], markdown: bool = False
) -> str | None:
    """Single-thread cost in Python loops: one row per shape; ns per element of
    each implementation (ratio to the builtin); the target for ours; whether
    ours meets it; and ours' ratio in the C loop (single.py) beside it."""
    if not pycosts:
        return None
    shapes = list(dict.fromkeys(c.shape for c in pycosts))
    impls = sorted({(c.role, c.impl) for c in pycosts}, key=lambda ri: impl_key(*ri))
    by = {(c.impl, c.shape): c for c in pycosts}
    cby = {(c.impl, c.op): c for c in costs}
    headers = ["shape (Python loop)", *(name for _r, name in impls)]
    headers += ["target (ours)", "met", "ours, C loop"]
    rows = []
    for shape in shapes:
        family = next(c.family for c in pycosts if c.shape == shape)
        builtin = BUILTIN[family]
        ref = by.get((builtin, shape))
        row = [shape]
        ours_ratios: list[float] = []
        for role, name in impls:
            c = by.get((name, shape))
            if c is None:
                row.append("n/a" if any(x.impl == name and x.family == family for x in pycosts)
                           else "")
                continue
            ref_ns = ref.ns_per_item if ref and name != builtin else None
            row.append(with_ratio(f"{c.ns_per_item:.1f} ns", c.ns_per_item, ref_ns))
            if role == "ours" and ref_ns:
                ours_ratios.append(c.ns_per_item / ref_ns)
        target = pyloop.TARGETS.get(shape)
        row.append(f"<= {target:.2f}x" if target else "-")
        if ours_ratios and target:
            row.append("yes" if max(ours_ratios) <= target else "**no**" if markdown else "NO")
        else:
            row.append("-")
        cfam, cop = _C_LOOP_OF.get(shape, (family, ""))
        cref = cby.get((BUILTIN[cfam], cop))
        cours = [c for (name, op), c in cby.items() if op == cop and c.family == cfam
                 and c.role == "ours"]
        row.append(ratio(cours[0].ns_per_op, cref.ns_per_op if cref else None) if cours else "-")
        rows.append(row)
    return fmt_table(headers, rows, markdown)


def memory_table(fps: list[Footprint], markdown: bool = False) -> str:
    fps = sorted(fps, key=lambda f: (f.family != MAP, *impl_key(f.role, f.impl)))
    ref = {f.family: f.traced_bytes_per_item for f in fps if f.impl == BUILTIN[f.family]}
    headers = ["implementation", "elements", "traced B/elem", "vs builtin", "getsizeof B/elem"]
    rows = [
        [
            f.impl,
            str(f.n),
            f"{f.traced_bytes_per_item:.1f}",
            ratio(f.traced_bytes_per_item, ref.get(f.family)),
            f"{f.sizeof_bytes_per_item:.1f}",
        ]
        for f in fps
    ]
    return fmt_table(headers, rows, markdown)


def unavailable_lines(impls: list[Impl]) -> list[str]:
    return [f"{i.name}: skipped, {i.note}" for i in impls if not i.available]


def _case_order(case: Case) -> tuple[Any, ...]:
    # The headline first: mappings, str keys, immortal values, thread-local keys, read-only.
    return (
        case.family != MAP,
        case.keytype != "str",
        case.values != "immortal",
        case.keys != "local",
        -case.mix,
        case.write != "replace",
    )


def render_text(
    env: dict[str, Any],
    impls: list[Impl],
    points: list[Point],
    costs: list[Cost],
    fps: list[Footprint],
    loops: list[Any] | None = None,
    apps: list[Any] | None = None,
    pycosts: list[pyloop.LoopCost] | None = None,
) -> str:
    out: list[str] = []
    it = env["interpreter"]
    m = env["machine"]
    kind = "free-threaded" if it["free_threaded_build"] else "GIL"
    out.append(
        f"Python {it['version']} ({it['tag']}, {kind} build, GIL enabled at runtime: "
        f"{it['gil_enabled_at_runtime']}); {m['cpu_model']}, {m['usable_cpus']} usable CPUs"
    )
    out.append(realcode.ceiling_check(loops or [], env).line())
    vers = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    out.append(f"packages: {vers}")
    for line in unavailable_lines(impls):
        out.append(f"  ! {line}")
    head = headline_table(points)
    if head:
        out += [
            "",
            "== headline (container only, C loop): median Mops/s (ratio to the builtin); "
            "str keys / int indices, immortal values, thread-local keys",
            head,
        ]
    real = realcode.headline_table(loops or [])
    if real:
        out += [
            "",
            "== headline (real code, Python loop `x = c[k]`): median Mops/s, read-only, "
            "str keys / int indices, container reached as a local name or a thread-owned path",
            real,
        ]
    for case in sorted(scaling_groups(points), key=_case_order):
        pts = [p for p in points if p.case == case]
        out.append("")
        out.append(f"== scaling: {case.label}, reads/writes {case.mix_label}")
        out.append(scaling_table(case, pts))
    for family in (MAP, "seq"):
        if any(c.family == family for c in costs):
            out.append("")
            out.append(
                f"== single-thread cost per operation ({BUILTIN[family]}-like), C loop "
                f"[{interp_label(env)}]"
            )
            out.append(single_table(costs, family))
    table = pyloop_table(pycosts or [], costs)
    if table:
        out += [
            "",
            "== single-thread cost, Python loop (the shapes users write): ns per element "
            f"(ratio to the builtin) [{interp_label(env)}]",
            table,
        ]
    if fps:
        out.append("")
        out.append("== memory per element (tracemalloc while filling one at a time; getsizeof)")
        out.append(memory_table(fps))
    for family in (MAP, "seq"):
        table = realcode.access_matrix(loops or [], family)
        if table:
            out += [
                "",
                f"== real code, read-only, {_REAL_TITLES[family].split(' (')[0]}: scaling at 2T "
                f"by how the loop reaches the container (2T ratio to the builtin's local name) "
                f"[{interp_label(env)}]",
                table,
            ]
    for mix in realcode.MIXES:
        for family in (MAP, "seq"):
            table = realcode.loop_table(loops or [], mix, family)
            if table:
                out += ["", f"== real code: {_REAL_TITLES[family]}, {_MIX_TITLES[mix]}", table]
    table = realcode.app_table(apps or [])
    if table:
        out += ["", "== real code: applications, median M ops/s (result checked every run)", table]
    return "\n".join(out)


def interp_label(env: dict[str, Any]) -> str:
    """``Python 3.14.7 (cp314t)``: the interpreter every table of a run belongs to."""
    it = env["interpreter"]
    return f"Python {it['version']} ({it['tag']})"


def can_plot() -> bool:
    """Whether matplotlib can be imported (no wheel exists for some interpreters)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


_REAL_TITLES = {MAP: "`x = c[k]` str keys (M ops/s)", "seq": "`x = c[i]` (M ops/s)"}
_MIX_TITLES = {
    "read": "read-only",
    "90/10": "90/10 (every 10th op `c[k] = v`)",
    "churn": "90/10 churn (every 10th op `del c[k]; c[k] = v`)",
}


def render_markdown(
    env: dict[str, Any],
    impls: list[Impl],
    points: list[Point],
    costs: list[Cost],
    fps: list[Footprint],
    plots: list[Path],
    plot_prefix: str,
    settings: dict[str, Any],
    loops: list[Any] | None = None,
    apps: list[Any] | None = None,
    duration_s: float | None = None,
    pycosts: list[pyloop.LoopCost] | None = None,
    plot_note: str = "",
) -> str:
    it = env["interpreter"]
    m = env["machine"]
    kind = "free-threaded" if it["free_threaded_build"] else "GIL"
    out = [
        "<!-- generated by `python -m benchmarks`; paste into docs/performance.md -->",
        "",
        f"### {interp_label(env)}: machine and interpreter",
        "",
        f"- **{realcode.ceiling_check(loops or [], env).line()}**",
        f"- CPU: {m['cpu_model']} ({m['cpu_count']} logical CPUs, {m['usable_cpus']} usable), "
        f"{m['system']}, load average at start {m['load_average_at_start']}",
        f"- Python {it['version']}, {kind} build, GIL enabled at runtime: "
        f"{it['gil_enabled_at_runtime']} ({it['compiler']})",
        "- packages: " + ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v),
        f"- nogil_collections commit: {env.get('git_commit')}",
        f"- settings: {', '.join(f'{k}={v}' for k, v in settings.items())}",
    ]
    if duration_s is not None:
        # So that what the docs say a run takes comes from a result file.
        out.append(f"- the run took {duration_s:.0f} s")
    for line in unavailable_lines(impls):
        out.append(f"- {line}")
    if plot_note:
        out.append(f"- {plot_note}")
    out += [
        "",
        f"Scaling cells: median / best of {settings.get('repeats')} repetitions, million "
        "operations per second summed over all threads. *scaling*: median at T threads over "
        "median at 1 thread. *vs builtin*: median over the builtin's median at the same T. "
        "spread*: (max - min) / median of the repetitions, the worst over the thread counts.",
    ]
    head = headline_table(points, markdown=True)
    if head:
        out += [
            "",
            "#### Headline (container only: C loop)",
            "",
            "Median million ops/s summed over threads (ratio to the builtin at the same thread "
            "count). dict-like: str keys; list-like: `c[i]` with int indices; immortal values, "
            "thread-local keys.",
            "",
            head,
        ]
    real = realcode.headline_table(loops or [], markdown=True)
    if real:
        out += [
            "",
            "#### Headline (real code: Python loop)",
            "",
            "Median million reads per second summed over threads. Each thread runs a plain "
            "Python loop `for k in ks: x = c[k]` (str keys; lists: `x = c[i]`), with `c` a "
            "local name, or through a thread-owned path: our `handle()`, a "
            + ("`functools.partial(operator.getitem, c)`" if harness.BINDS_WITH_PARTIAL
               else "`functools.partial(types.MethodType(operator.getitem, c))` (3.15's "
               "partial increfs its "
               "function on every call: benchmarks/harness.py, thread_owned)")
            + " for the others. On 3.13t every load of "
            "`c` increfs the shared container; see docs/performance.md, real code.",
            "",
            real,
        ]
    for case in sorted(scaling_groups(points), key=_case_order):
        pts = [p for p in points if p.case == case]
        out += ["", f"#### Scaling: {case.label}, reads/writes {case.mix_label}", ""]
        out.append(scaling_table(case, pts, markdown=True))
    if plots:
        out += ["", "#### Throughput against threads", ""]
        out += [f"![{p.stem}]({plot_prefix}{p.name})" for p in plots]
    for family in (MAP, "seq"):
        if any(c.family == family for c in costs):
            out += [
                "",
                f"#### Single-thread cost per operation ({BUILTIN[family]}-like), C loop",
                "",
            ]
            out.append(single_table(costs, family, markdown=True))
    table = pyloop_table(pycosts or [], costs, markdown=True)
    if table:
        out += [
            "",
            "#### Single-thread cost, Python loop (the shapes users write)",
            "",
            "ns per element, best of the repetitions (ratio to the builtin). *ours, C loop*: "
            "ConcurrentList/ConcurrentDict's ratio for the same operation in the C-loop table "
            "above. The builtin's loop is specialised by the interpreter (`CALL_LIST_APPEND`, "
            "`FOR_ITER_LIST`, ...); ours goes through the generic protocol.",
            "",
            table,
        ]
    if fps:
        out += ["", "#### Memory per element", ""]
        out.append(memory_table(fps, markdown=True))
    for family in (MAP, "seq"):
        table = realcode.access_matrix(loops or [], family, markdown=True)
        if table:
            out += [
                "",
                f"#### Real code, read-only, {_REAL_TITLES[family].split(' (')[0]}: scaling at 2T "
                "by how the loop reaches the container",
                "",
                "Each cell: median at 2 threads over median at 1 thread; in brackets, the "
                "2-thread throughput over the builtin's read through a local name.",
                "",
                table,
            ]
    for mix in realcode.MIXES:
        for family in (MAP, "seq"):
            table = realcode.loop_table(loops or [], mix, family, markdown=True)
            if table:
                out += ["", f"#### Real code: {_REAL_TITLES[family]}, {_MIX_TITLES[mix]}", ""]
                out.append(table)
    table = realcode.app_table(apps or [], markdown=True)
    if table:
        out += ["", "#### Real code: applications (M ops/s, result checked every run)", ""]
        out.append(table)
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ plots
_STYLE: dict[str, dict[str, Any]] = {
    "builtin": {"color": "black", "linestyle": "--", "marker": "o"},
    "ours": {"linewidth": 2.5, "marker": "s"},
    "peer": {"marker": "^"},
    "locked": {"linestyle": ":", "marker": "x"},
    "ceiling": {"color": "grey", "linestyle": "-.", "marker": "d"},
}
# One colour per implementation in every panel and every file.
_COLOURS = {
    "ConcurrentDict": "tab:red",
    "ConcurrentList": "tab:red",
    "ft_utils.ConcurrentDict": "tab:orange",
    "cereggii.AtomicDict": "tab:blue",
    "dict+Lock": "tab:green",
    "list+Lock": "tab:green",
}


def write_plots(points: list[Point], outdir: Path, title_suffix: str) -> list[Path]:
    """One PNG per mix: a panel per case, throughput (median, min-max bars) vs threads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for mix in sorted({p.case.mix for p in points}, reverse=True):
        cases = sorted({p.case for p in points if p.case.mix == mix}, key=_case_order)
        ncols = min(2 if len(cases) <= 4 else 3, len(cases))
        nrows = math.ceil(len(cases) / ncols)
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(6.4 * ncols, 4.2 * nrows), squeeze=False, layout="constrained"
        )
        for ax, case in zip(axes.flat, cases, strict=False):
            pts = [p for p in points if p.case == case]
            impls = sorted({(p.role, p.impl) for p in pts}, key=lambda ri: impl_key(*ri))
            for role, name in impls:
                series = sorted((p for p in pts if p.impl == name), key=lambda p: p.threads)
                xs = [p.threads for p in series]
                ys = [p.median / 1e6 for p in series]
                lo = [(p.median - min(p.runs)) / 1e6 for p in series]
                hi = [(max(p.runs) - p.median) / 1e6 for p in series]
                style = {"color": _COLOURS.get(name, None), **_STYLE.get(role, {})}
                ax.errorbar(xs, ys, yerr=[lo, hi], label=name, capsize=3, **style)
            ax.set_xscale("log", base=2)
            ticks = sorted({p.threads for p in pts})
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.set_ylim(bottom=0)
            ax.set_xlabel("threads")
            ax.set_ylabel("million ops/s (median, min-max)")
            ax.set_title(case.label, fontsize=9)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(cases) :]:
            ax.set_visible(False)
        fig.suptitle(f"reads/writes {mix}/{100 - mix} - {title_suffix}", fontsize=10)
        path = outdir / f"throughput-{mix}-{100 - mix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
