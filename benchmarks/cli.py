"""Command line: ``python -m benchmarks [--quick | --full | --smoke] [options]``."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import machine, memory, pyloop, realcode, report, scaling, single
from benchmarks.registry import MAP, SEQ, Impl, gil_enabled, load_implementations
from benchmarks.scaling import Case
from benchmarks.tables import BUILTIN, impl_key

REPO_ROOT = Path(__file__).resolve().parent.parent
ALL_MIXES = (100, 99, 90, 50)
SUITES = ("scaling", "single", "memory", "realcode")


@dataclass
class Profile:
    """Sizes and the scaling matrix of one run."""

    name: str
    threads: list[int]
    cases: list[Case]
    repeats: int
    target_time: float  # seconds per scaling repetition
    size: int  # entries in the shared container
    single_n: int  # operations per single-thread timing
    single_repeats: int
    memory_n: int
    extra: dict[str, Any] = field(default_factory=dict)
    # Real-code suite (realcode.py): {mix: access patterns}, repetitions, seconds.
    real_plan: dict[str, tuple[str, ...]] = field(default_factory=dict)
    real_repeats: int = 3
    real_target_time: float = 0.1


def _matrix(
    mixes: tuple[int, ...],
    keytypes: tuple[str, ...],
    values: tuple[str, ...],
    keys: tuple[str, ...],
    seq: bool = True,
) -> list[Case]:
    cases = [
        Case(MAP, mix, kt, v, k) for mix in mixes for kt in keytypes for v in values for k in keys
    ]
    if seq:
        cases += [Case(SEQ, mix, "int", v, k) for mix in mixes for v in values for k in keys]
    return cases


def profile(name: str) -> Profile:
    if name == "quick":
        # The headline: read-only and 90/10, str keys, thread-local keys,
        # immortal values; the dict's write mixes (90/10 churn: delete +
        # re-insert; 50/50); the shared-key read-only case shows the refcount
        # collapse; list reads with thread-local indices, and list 90/10 value
        # replacement.
        cases = [
            Case(MAP, 100, "str", "immortal", "local"),
            Case(MAP, 90, "str", "immortal", "local"),
            Case(MAP, 90, "str", "immortal", "local", "churn"),
            Case(MAP, 50, "str", "immortal", "local"),
            Case(MAP, 100, "str", "immortal", "shared"),
            Case(SEQ, 100, "int", "immortal", "local"),
            # The list's write mix: 10 % value replacements (lst[i] = v).
            Case(SEQ, 90, "int", "immortal", "local"),
        ]
        return Profile(
            "quick",
            [1, 2],
            cases,
            repeats=5,
            target_time=0.2,
            size=1024,
            # Single-thread timings are kept to about a millisecond, shorter than a
            # scheduler time slice, so that best-of-R finds an uninterrupted one.
            single_n=20_000,
            single_repeats=15,
            # The size the memory targets are stated for (issue 15).
            memory_n=100_000,
            # Real code: every access pattern read-only; the write mixes through
            # a local name and the thread-owned paths.
            real_plan={
                "read": realcode.ACCESSES,
                "90/10": ("local", "partial", "handle"),
                "churn": ("local", "partial", "handle"),
            },
            real_repeats=3,
            real_target_time=0.08,
        )
    if name == "full":
        cases = _matrix(ALL_MIXES, ("str", "int"), ("immortal", "mortal"), ("local", "shared"))
        cases += [Case(MAP, mix, "str", "immortal", "local", "churn") for mix in (99, 90, 50)]
        return Profile(
            "full",
            [1, 2, 4, 8],
            cases,
            repeats=5,
            target_time=0.15,
            size=1024,
            single_n=50_000,
            single_repeats=25,
            memory_n=100_000,
            real_plan={mix: realcode.ACCESSES for mix in realcode.MIXES},
            real_repeats=5,
            real_target_time=0.1,
        )
    if name == "smoke":
        # Tiny: only proves the harness runs end to end (tests/test_bench_smoke.py).
        cases = [
            Case(MAP, 90, "str", "immortal", "local"),  # a headline case
            Case(MAP, 90, "int", "immortal", "local", "churn"),
            Case(MAP, 100, "int", "mortal", "shared"),
            Case(SEQ, 100, "int", "immortal", "local"),  # a headline case
        ]
        return Profile(
            "smoke",
            [1, 2],
            cases,
            repeats=1,
            target_time=0.002,
            size=64,
            single_n=200,
            single_repeats=1,
            memory_n=200,
            real_plan={"read": ("local", "handle"), "churn": ("partial",)},
            real_repeats=1,
            real_target_time=0.002,
        )
    raise ValueError(name)


def _real_threads(threads: list[int], cpus: int) -> list[int]:
    """Thread counts of the real-code suite: the profile's, and every power of
    two up to the usable CPUs plus their number (1 and 2 on a 2-core machine)."""
    counts = {t for t in threads if t <= max(2, cpus)} | {1, 2, cpus}
    p = 4
    while p < cpus:
        counts.add(p)
        p *= 2
    return sorted(counts)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="nogil_collections benchmarks: scaling, single-thread cost, memory, real code.",
    )
    mode = ap.add_mutually_exclusive_group()
    for name, help_text in (
        ("quick", "headline only, about 1-3 minutes on 2 cores (default)"),
        (
            "full",
            "the whole matrix: threads 1,2,4,8; 4 mixes; str/int keys; "
            "immortal/mortal values; thread-local/shared keys",
        ),
        ("smoke", "tiny sizes: checks that the harness works, measures nothing"),
    ):
        mode.add_argument(
            f"--{name}", action="store_const", const=name, dest="profile", help=help_text
        )
    ap.set_defaults(profile="quick")
    ap.add_argument(
        "--suites", default=",".join(SUITES), help=f"comma-separated subset of {','.join(SUITES)}"
    )
    ap.add_argument("--threads", type=_ints, help="override thread counts, e.g. 1,2,4")
    ap.add_argument(
        "--mixes", type=_ints, help="read percentages for every variant of the profile, e.g. 100,50"
    )
    ap.add_argument("--repeats", type=int, help="repetitions per scaling point (R)")
    ap.add_argument("--target-time", type=float, help="seconds per scaling repetition")
    ap.add_argument("--size", type=int, help="entries in the shared container")
    ap.add_argument("--impls", help="comma-separated substrings: only matching implementations")
    ap.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "results",
        help="output folder (default: results/ at the repository root, git-ignored)",
    )
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument(
        "--publish-plots",
        type=Path,
        metavar="DIR",
        help="also copy the PNGs to DIR (e.g. docs/img/performance) and link them "
        "from latest.md relative to docs/",
    )
    return ap.parse_args(argv)


def _select(impls: list[Impl], spec: str | None) -> list[Impl]:
    if not spec:
        return impls
    wanted = [s.strip().lower() for s in spec.split(",") if s.strip()]
    return [i for i in impls if any(w in i.name.lower() for w in wanted)]


def _scaling_json(points: list[scaling.Point]) -> list[dict[str, Any]]:
    """Points with the derived figures the tables show (on medians)."""
    by = {(p.impl, p.case, p.threads): p for p in points}
    out = []
    for p in points:
        d = p.to_json()
        one = by.get((p.impl, p.case, 1))
        ref = by.get((BUILTIN[p.case.family], p.case, p.threads))
        d["scaling_vs_1_thread"] = round(p.median / one.median, 4) if one else None
        d["ratio_vs_builtin"] = round(p.median / ref.median, 4) if ref else None
        out.append(d)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prof = profile(args.profile)
    if args.threads:
        prof.threads = args.threads
    if args.mixes:
        # Every variant (family, key type, values, key sharing) of the profile, at these mixes.
        variants = dict.fromkeys(
            (c.family, c.keytype, c.values, c.keys, c.write) for c in prof.cases
        )
        prof.cases = [
            Case(f, m, kt, v, k, w)
            for m in args.mixes
            for (f, kt, v, k, w) in variants
            if m < 100 or w == "replace"
        ]
    if args.repeats:
        prof.repeats = args.repeats
    if args.target_time:
        prof.target_time = args.target_time
    if args.size:
        prof.size = args.size
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = set(suites) - set(SUITES)
    if unknown:
        print(f"unknown suite(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2

    gil_before = gil_enabled()
    impls = _select(load_implementations(), args.impls)
    env = machine.describe(impls)
    if gil_before is not gil_enabled() or (
        env["interpreter"]["free_threaded_build"] and env["interpreter"]["gil_enabled_at_runtime"]
    ):
        print(
            "WARNING: the GIL is enabled on a free-threaded build (an imported module "
            "re-enabled it, or PYTHON_GIL=1): scaling numbers are GIL numbers.",
            file=sys.stderr,
        )
    cpus = env["machine"]["usable_cpus"] or 1

    ordered = sorted(impls, key=lambda i: impl_key(i.role, i.name))
    # The container-only suites (scaling, single, memory) skip the real-code-only variants.
    plain = [i for i in impls if not i.by_name_only]
    containers = [i for i in ordered if not i.by_name_only]
    scaling_cases = prof.cases if "scaling" in suites else []
    total = scaling.count_steps(containers, scaling_cases, prof.threads, prof.repeats)
    if "single" in suites:
        total += single.count_steps(plain) + pyloop.count_steps(plain)
    if "memory" in suites:
        total += sum(1 for i in plain if i.available)
    real_threads = _real_threads(prof.threads, cpus)
    if "realcode" in suites:
        total += realcode.count_loop_steps(ordered, prof.real_plan, real_threads, prof.real_repeats)
        total += realcode.count_app_steps(real_threads, prof.real_repeats)
    bar = report.Progress(total, enabled=not args.no_progress)

    t0 = time.monotonic()
    points: list[scaling.Point] = []
    costs: list[single.Cost] = []
    pycosts: list[pyloop.LoopCost] = []
    fps: list[memory.Footprint] = []
    loops: list[realcode.Result] = []
    apps: list[realcode.AppResult] = []
    try:
        for case in scaling_cases:
            points += scaling.measure(
                containers,
                case,
                prof.threads,
                prof.size,
                prof.repeats,
                prof.target_time,
                cpus,
                progress=bar.step,
            )
        if "single" in suites:
            costs = single.measure(
                plain, prof.size, prof.single_n, prof.single_repeats, progress=bar.step
            )
            pycosts = pyloop.measure(
                plain, prof.single_n, prof.single_repeats, progress=bar.step
            )
        if "memory" in suites:
            fps = memory.measure(plain, prof.memory_n, progress=bar.step)
        if "realcode" in suites:
            loops = realcode.measure_loops(
                ordered,
                prof.real_plan,
                real_threads,
                prof.size,
                prof.real_repeats,
                prof.real_target_time,
                cpus,
                progress=bar.step,
            )
            apps = realcode.measure_apps(
                real_threads,
                prof.real_repeats,
                prof.real_target_time * 2,
                cpus,
                progress=bar.step,
            )
    finally:
        bar.close()
    duration = time.monotonic() - t0

    settings = {
        "profile": prof.name,
        "threads": prof.threads,
        "repeats": prof.repeats,
        "target_time_s": prof.target_time,
        "size": prof.size,
        "chunk": scaling.CHUNK,
        "single_n": prof.single_n,
        "memory_n": prof.memory_n,
        "realcode_threads": real_threads,
        "realcode_repeats": prof.real_repeats,
        "realcode_target_time_s": prof.real_target_time,
    }
    print(report.render_text(env, impls, points, costs, fps, loops, apps, pycosts))
    print(
        f"\nScaling cells: median / best of {prof.repeats} repetitions (Mops/s, all threads). "
        "spread* = (max - min) / median, worst over thread counts.\n"
        f"Run took {duration:.0f} s."
    )

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tag = env["interpreter"]["tag"]
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    result = {
        "schema": 1,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(duration, 1),
        "settings": settings,
        "environment": env,
        "implementations": [
            {
                "name": i.name,
                "family": i.family,
                "role": i.role,
                "available": i.available,
                "ops": sorted(i.ops),
                "note": i.note,
                "by_name_only": i.by_name_only,
                "version": env["packages"].get(i.package) if i.package else sys.version.split()[0],
            }
            for i in impls
        ],
        "scaling": _scaling_json(points),
        "single_thread": [c.to_json() for c in costs],
        "single_thread_python_loop": [c.to_json() for c in pycosts],
        "ceiling_check": realcode.ceiling_check(loops, env).to_json(),
        "memory": [f.to_json() for f in fps],
        "realcode_loops": [r.to_json() for r in loops],
        "realcode_apps": [a.to_json() for a in apps],
    }
    json_path = out / f"bench-{tag}-{prof.name}-{stamp}.json"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    shutil.copyfile(json_path, out / "latest.json")
    shutil.copyfile(json_path, out / f"latest-{tag}.json")

    plots: list[Path] = []
    plot_prefix = "plots/"
    plot_note = ""
    if points and not args.no_plots and not report.can_plot():
        plot_note = "plots skipped: matplotlib is not installed for this interpreter"
        print(plot_note, file=sys.stderr)
    if points and not args.no_plots and not plot_note:
        kind = "free-threaded" if env["interpreter"]["free_threaded_build"] else "GIL"
        suffix = f"Python {env['interpreter']['version']} {kind}, {cpus} CPUs"
        plots = report.write_plots(points, out / "plots", suffix)
        if args.publish_plots:
            args.publish_plots.mkdir(parents=True, exist_ok=True)
            for p in plots:
                shutil.copyfile(p, args.publish_plots / p.name)
            try:
                plot_prefix = os.path.relpath(args.publish_plots, REPO_ROOT / "docs") + "/"
            except ValueError:
                plot_prefix = str(args.publish_plots) + "/"
    md = report.render_markdown(
        env,
        impls,
        points,
        costs,
        fps,
        plots,
        plot_prefix,
        settings,
        loops,
        apps,
        duration,
        pycosts,
        plot_note,
    )
    (out / "latest.md").write_text(md)
    (out / f"latest-{tag}.md").write_text(md)
    print(
        f"wrote {json_path}, {out / 'latest.md'}"
        + (f" and {len(plots)} plot(s) in {out / 'plots'}" if plots else "")
    )
    return 0
