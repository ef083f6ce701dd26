"""Real code: plain Python loops over a shared container, the way users write them.

The scaling suite (scaling.py) drives every container through one C loop that
never touches the container's reference count, to measure the containers
themselves.  User code does not look like that.  It writes ``x = c[k]`` in a
``for`` loop, with ``c`` a local variable, a module global, ``self.c`` or a
closure variable; on free-threaded 3.13 each of those loads increfs the shared
container (``LOAD_FAST``, ``LOAD_GLOBAL``, ``LOAD_ATTR``, ``LOAD_DEREF``) and
bounces its header's cache line between cores.  This suite measures that:

* **Access patterns** (:data:`ACCESSES`): the loop reaches the container as a
  local, a module global, ``self.c`` (a thread-owned holder object), a closure
  variable, through a thread-owned ``functools.partial`` (any container; a
  partial of a bound method on 3.15+, :func:`benchmarks.harness.thread_owned`), or
  through a per-thread ``handle()`` (ours).  Everything a thread uses except
  the container is created in that thread, before the barrier.
* **Mixes**: read-only; 90/10 (every tenth operation overwrites a present
  key or index); churn (dicts: every tenth operation deletes one of the
  thread's own churn keys and inserts it again).
* **Applications** (:func:`applications`): a memo cache with a hot working
  set (``get_or_insert`` / ``setdefault`` / a lock), a word count
  (``update_item`` / a locked ``dict`` / a ``Counter`` under a lock / one
  ``Counter`` per thread merged at the end), and a read-mostly registry
  with rare whole-table updates (``update`` / copy-on-write rebinding / a
  lock).  Every application checks its result after each repetition: a
  fast wrong answer fails the run.

Threads start on a barrier; each times its own loop; the throughput of a
repetition is all threads' operations over (last end - first start).  Work is
calibrated at one thread to last ``target_time`` and split over the threads;
repetitions are interleaved across variants.  The cyclic GC is off while
timing.  All of that is harness.py's, shared with scaling.py.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from benchmarks import harness
from benchmarks.harness import ThreadWork, gc_paused, interleaved, per_thread, run_on_barrier
from benchmarks.registry import MAP, SEQ, Impl
from benchmarks.tables import BUILTIN, fmt_table, impl_key, ratio

#: Access patterns, in table order.  "handle" applies to containers with .handle().
ACCESSES = ("local", "global", "attr", "closure", "partial", "handle")
ACCESS_LABELS = {
    "local": "local name",
    "global": "module global",
    "attr": "self.c",
    "closure": "closure variable",
    "partial": harness.THREAD_OWNED_LABEL,
    "handle": "handle()",
}
#: The accesses that load the container by name (and so write its reference
#: count, unless it is immortal).
BY_NAME = ("local", "global", "attr", "closure")
MIXES = ("read", "90/10", "churn")
BLOCK = 10  # a write mix has one write per BLOCK operations
KEYS_PER_THREAD = 1000


# ------------------------------------------------------------------ loop code
# One template per mix; {setup}, {get}, {put}, {rm} name the container the way
# the access pattern does.  The loops are generated (exec) so that each access
# pattern runs exactly the bytecode a user would write, and nothing else.
_READ = """
def loop(container, ks, ws, cs, v, reps):
    {setup}
    for _ in range(reps):
        for k in ks:
            x = {get}(k)
"""

_MIXED = """
def loop(container, ks, ws, cs, v, reps):
    {setup}
    for _ in range(reps):
        for block, w in zip(ks, ws):
            for k in block:
                x = {get}(k)
            {put}(w, v)
"""

_CHURN = """
def loop(container, ks, ws, cs, v, reps):
    {setup}
    for _ in range(reps):
        for block, ck in zip(ks, cs):
            for k in block:
                x = {get}(k)
            {rm}(ck)
            {put}(ck, v)
"""

# How each access pattern names the container.  "{c}" is the expression the
# loop uses; subscription is spelled out below.
_ACCESS_CODE = {
    "local": ("c = container", "c"),
    "global": ("", "C"),
    "attr": ("self = _Holder(container)", "self.c"),
    "partial": (
        "get = _partial(_getitem, container); put = _partial(_setitem, container); "
        "rm = _partial(_delitem, container)",
        None,
    ),
    "handle": ("h = container.handle()", "h"),
}


class _Holder:
    """What ``self`` is in ``self.c``: an application object holding the container."""

    __slots__ = ("c",)

    def __init__(self, c: Any) -> None:
        self.c = c


def _source(access: str, mix: str) -> str:
    template = {"read": _READ, "90/10": _MIXED, "churn": _CHURN}[mix]
    if access == "closure":
        # The local-name loop as an inner function that reads the enclosing
        # function's `c` (a cell: LOAD_DEREF on every access).
        inner = _source("local", mix).replace(
            "def loop(container, ks, ws, cs, v, reps):\n    c = container\n",
            "def inner(ks, ws, cs, v, reps):\n    pass\n",
        )
        body = "\n".join("    " + line if line else line for line in inner.splitlines())
        return (
            "\ndef loop(container, ks, ws, cs, v, reps):\n    c = container\n"
            + body
            + "\n    return inner(ks, ws, cs, v, reps)\n"
        )
    setup, name = _ACCESS_CODE[access]
    if name is None:  # partial
        get, put, rm = "get", "put", "rm"
        src = template.format(setup=setup or "pass", get=get, put=put, rm=rm)
        return src
    src = template.format(setup=setup or "pass", get="{GET}", put="{PUT}", rm="{RM}")
    # Subscription syntax, not method calls: what users write.
    src = src.replace("x = {GET}(k)", f"x = {name}[k]")
    src = src.replace("{PUT}(w, v)", f"{name}[w] = v").replace("{PUT}(ck, v)", f"{name}[ck] = v")
    src = src.replace("{RM}(ck)", f"del {name}[ck]")
    return src


def compile_loop(access: str, mix: str, namespace: dict[str, Any]) -> Callable[..., None]:
    """The loop function of one access pattern and mix, compiled in ``namespace``
    (whose ``C`` is the module global of the "global" pattern)."""
    import operator

    namespace.update(
        _Holder=_Holder,
        _partial=harness.thread_owned,
        _getitem=operator.getitem,
        _setitem=operator.setitem,
        _delitem=operator.delitem,
    )
    code = compile(_source(access, mix), f"<realcode {access} {mix}>", "exec")
    exec(code, namespace)
    fn: Callable[..., None] = namespace.pop("loop")
    return fn


# ------------------------------------------------------------------ data
def _keys(family: str, n: int) -> list[Any]:
    if family == MAP:
        return [f"key:{i:07d}" for i in range(n)]
    return list(range(n))


def _own(k: Any) -> Any:
    """An equal key object owned by the calling thread."""
    return k[:1] + k[1:] if isinstance(k, str) else k


@dataclass(frozen=True)
class Cell:
    """One measured series: implementation, access pattern, mix."""

    impl: str
    role: str
    family: str
    access: str
    mix: str

    @property
    def label(self) -> str:
        return f"{self.impl} ({ACCESS_LABELS[self.access]})"


@dataclass
class Result:
    cell: Cell
    threads: int
    ops_per_rep: int
    runs: list[float]  # ops/s per repetition

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def best(self) -> float:
        return max(self.runs)

    def to_json(self) -> dict[str, Any]:
        c = self.cell
        return {
            "impl": c.impl,
            "role": c.role,
            "family": c.family,
            "access": c.access,
            "mix": c.mix,
            "threads": self.threads,
            "ops_per_rep": self.ops_per_rep,
            "runs_ops_per_s": [round(r, 1) for r in self.runs],
            "median_ops_per_s": round(self.median, 1),
            "best_ops_per_s": round(self.best, 1),
        }


def applicable(impl: Impl, access: str, mix: str) -> bool:
    if not impl.available or not impl.supports("getitem"):
        return False
    if mix != "read" and (impl.readonly or not impl.supports("setitem")):
        return False
    if mix == "churn" and (impl.family != MAP or not impl.supports("delitem")):
        return False
    if impl.by_name_only:
        return access in BY_NAME
    if access == "handle":
        return impl.role == "ours"
    return True


def cells_for(impls: list[Impl], accesses: dict[str, tuple[str, ...]]) -> list[tuple[Impl, Cell]]:
    """Every (implementation, access, mix) of the plan ``{mix: accesses}``."""
    out = []
    for mix, acc in accesses.items():
        for impl in impls:
            for access in acc:
                if applicable(impl, access, mix):
                    out.append((impl, Cell(impl.name, impl.role, impl.family, access, mix)))
    return out


# ------------------------------------------------------------------ running
def _prepare(impl: Impl, size: int) -> Any:
    keys = _keys(impl.family, size)
    if impl.family == MAP:
        return impl.make([(k, i % 256) for i, k in enumerate(keys)])
    return impl.make([i % 256 for i in range(size)])


def _thread_data(
    cell: Cell, size: int, tid: int, container: Any
) -> tuple[list[Any], list[Any], list[Any], int]:
    """Keys for one thread (built in that thread): the read keys (blocks of
    BLOCK - 1 for the write mixes), the write keys and the churn keys."""
    rng = random.Random(1000 + tid)
    keys = _keys(cell.family, size)
    own = [_own(keys[rng.randrange(size)]) for _ in range(KEYS_PER_THREAD)]
    if cell.mix == "read":
        return own, [], [], len(own)
    blocks = [own[j : j + BLOCK - 1] for j in range(0, len(own), BLOCK - 1)]
    writes = [_own(keys[rng.randrange(size)]) for _ in blocks]
    churn: list[Any] = []
    if cell.mix == "churn":
        churn = [f"churn:{tid:03d}:{j:04d}" for j in range(len(blocks))]
        for c in churn:
            container[c] = 0
    ops = sum(len(b) for b in blocks) + len(blocks)
    return blocks, writes, churn, ops


def run_once(
    container: Any, cell: Cell, size: int, threads: int, reps_per_thread: int
) -> tuple[float, int]:
    """One repetition; returns (aggregate ops/s, ops)."""
    namespace: dict[str, Any] = {"C": container}

    def prepare(tid: int) -> ThreadWork:
        loop = compile_loop(cell.access, cell.mix, dict(namespace))
        ks, ws, cs, n = _thread_data(cell, size, tid, container)
        loop(container, ks, ws, cs, 0, 1)  # warm up: first touch of everything

        def timed() -> int:
            loop(container, ks, ws, cs, 0, reps_per_thread)
            return n * reps_per_thread

        def drop_churn_keys() -> None:
            for c in cs:
                del container[c]

        return ThreadWork(timed, drop_churn_keys)

    ops, elapsed = run_on_barrier(threads, prepare, "realcode")
    return ops / elapsed, ops


def _calibrate(container: Any, cell: Cell, size: int, target_time: float) -> int:
    def seconds_for(reps: int) -> float:
        rate, ops = run_once(container, cell, size, 1, reps)
        return ops / rate

    return harness.calibrate(seconds_for, target_time, min_fraction=1 / 8, limit=1 << 16)


def measure_loops(
    impls: list[Impl],
    plan: dict[str, tuple[str, ...]],
    thread_counts: list[int],
    size: int,
    repeats: int,
    target_time: float,
    cpus: int,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Every cell of ``plan`` at every thread count (repetitions interleaved)."""
    planned = cells_for(impls, plan)
    cells = [cell for _, cell in planned]
    containers = {impl.name: _prepare(impl, size) for impl, _ in planned}
    opcount: dict[tuple[Cell, int], int] = {}
    with gc_paused():
        reps = [_calibrate(containers[cell.impl], cell, size, target_time) for cell in cells]

        def run(i: int, threads: int) -> float:
            cell = cells[i]
            share = per_thread(reps[i], threads, cpus)
            rate, opcount[(cell, threads)] = run_once(
                containers[cell.impl], cell, size, threads, share
            )
            return rate

        runs = interleaved(range(len(cells)), thread_counts, repeats, run, progress, "real code")
    return [
        Result(cell, t, opcount[(cell, t)], runs[(i, t)])
        for i, cell in enumerate(cells)
        for t in thread_counts
    ]


def count_loop_steps(
    impls: list[Impl], plan: dict[str, tuple[str, ...]], thread_counts: list[int], repeats: int
) -> int:
    return repeats * len(thread_counts) if cells_for(impls, plan) else 0


# ------------------------------------------------------------------ applications
@dataclass
class App:
    """One variant of an application workload."""

    workload: str  # "memo cache" or "word count"
    variant: str  # what the threads use
    role: str
    setup: Callable[[], Any]  # shared state, built before the threads
    worker: Callable[[Any, int, int], int]  # (state, tid, reps) -> ops; runs in its thread
    check: Callable[[Any, int, int], None]  # (state, threads, reps) raises if wrong


# ---- memo cache: every thread looks up keys drawn from a skewed distribution
# (90 % of the lookups hit a hot set of 64 keys out of 4096); a miss computes
# the value and inserts it.  Correct: every cached value is f(key), and (where
# the variant promises it) each key was computed once.
MEMO_KEYS = 4096
MEMO_HOT = 64
MEMO_LOOKUPS = 2000


def _memo_f(n: int) -> int:
    return (n * 2654435761) % 1000003


def _memo_stream(tid: int) -> list[str]:
    rng = random.Random(77 + tid)
    out = []
    for _ in range(MEMO_LOOKUPS):
        n = rng.randrange(MEMO_HOT) if rng.random() < 0.9 else rng.randrange(MEMO_KEYS)
        out.append(f"memo:{n:05d}")
    return out


def _memo_check(state: Any, threads: int, reps: int) -> None:
    cache = state["cache"]
    computed: Counter[str] = Counter()
    for part in state["computed"]:
        computed.update(part)
    items = cache.snapshot() if hasattr(cache, "snapshot") else dict(cache)
    for k, v in items.items():
        if v != _memo_f(int(k[5:])):
            raise AssertionError(f"memo cache: wrong value for {k}")
    if state["once"] and any(n != 1 for n in computed.values()):
        raise AssertionError("memo cache: a value was computed twice")
    expected = set()
    for t in range(threads):
        expected.update(_memo_stream(t))
    if set(items) != expected or set(computed) != expected:
        raise AssertionError("memo cache: keys missing or extra")


def _memo_apps() -> list[App]:
    from nogil_collections import ConcurrentDict

    def fresh(cache: Any, once: bool) -> Callable[[], Any]:
        return lambda: {"cache": cache(), "computed": [], "once": once}

    def counter(state: Any) -> Callable[[str], Callable[[], int]]:
        # Bookkeeping for the check: how often each value was computed, in a
        # Counter owned by the calling thread (no shared lock in the timing).
        mine: Counter[str] = Counter()
        state["computed"].append(mine)

        def counted(k: str) -> Callable[[], int]:
            def factory() -> int:
                mine[k] += 1
                return _memo_f(int(k[5:]))

            return factory

        return counted

    def cd_worker(use_handle: bool) -> Callable[[Any, int, int], int]:
        def work(state: Any, tid: int, reps: int) -> int:
            stream = _memo_stream(tid)
            cache = state["cache"].handle() if use_handle else state["cache"]
            counted = counter(state)
            total = 0
            for _ in range(reps):
                for k in stream:
                    v = cache.get(k)
                    if v is None:
                        v = cache.get_or_insert(k, counted(k))
                    total += v
            return reps * len(stream)

        return work

    def dict_setdefault(state: Any, tid: int, reps: int) -> int:
        # The idiom on a builtin dict: may compute a value twice, stores one.
        stream = _memo_stream(tid)
        cache = state["cache"]
        counted = counter(state)
        total = 0
        for _ in range(reps):
            for k in stream:
                v = cache.get(k)
                if v is None:
                    v = cache.setdefault(k, counted(k)())
                total += v
        return reps * len(stream)

    def dict_lock(state: Any, tid: int, reps: int) -> int:
        stream = _memo_stream(tid)
        cache = state["cache"]
        lock = state["cache_lock"]
        counted = counter(state)
        total = 0
        for _ in range(reps):
            for k in stream:
                with lock:
                    v = cache.get(k)
                    if v is None:
                        v = cache[k] = counted(k)()
                total += v
        return reps * len(stream)

    def with_lock(make: Callable[[], Any]) -> Callable[[], Any]:
        def build() -> Any:
            s = make()
            s["cache_lock"] = threading.Lock()
            return s

        return build

    return [
        App("memo cache", "ConcurrentDict get + get_or_insert (local)", "ours",
            fresh(ConcurrentDict, True), cd_worker(False), _memo_check),
        App("memo cache", "ConcurrentDict get + get_or_insert (handle)", "ours",
            fresh(ConcurrentDict, True), cd_worker(True), _memo_check),
        App("memo cache", "dict get + setdefault", "builtin",
            fresh(dict, False), dict_setdefault, _memo_check),
        App("memo cache", "dict + Lock", "locked",
            with_lock(fresh(dict, True)), dict_lock, _memo_check),
    ]


# ---- word count: every thread counts the words of its own text (a Zipf-like
# vocabulary of 500 words) into one shared table.  Correct: the table equals
# the Counter of all threads' texts (times the repetitions).
WORDS = [f"w{i:03d}" for i in range(500)]
WORDS_PER_THREAD = 2000


def _text(tid: int) -> list[str]:
    rng = random.Random(5 + tid)
    weights = [1.0 / (i + 1) for i in range(len(WORDS))]
    return [w[:1] + w[1:] for w in rng.choices(WORDS, weights, k=WORDS_PER_THREAD)]


def _count_check(state: Any, threads: int, reps: int) -> None:
    expected: Counter[str] = Counter()
    for t in range(threads):
        expected.update(_text(t))
    for w in expected:
        expected[w] *= reps
    got = state["result"]()
    if dict(got) != dict(expected):
        raise AssertionError("word count: wrong totals")


def _count_apps() -> list[App]:
    from nogil_collections import ConcurrentDict

    def inc(n: int) -> int:
        return n + 1

    def cd_state() -> Any:
        d: ConcurrentDict[str, int] = ConcurrentDict()
        return {"d": d, "result": d.snapshot}

    def cd_worker(use_handle: bool) -> Callable[[Any, int, int], int]:
        def work(state: Any, tid: int, reps: int) -> int:
            words = _text(tid)
            counts = state["d"].handle() if use_handle else state["d"]
            for _ in range(reps):
                for w in words:
                    counts.update_item(w, inc, 0)
            return reps * len(words)

        return work

    def locked_state() -> Any:
        d: dict[str, int] = {}
        return {"d": d, "lock": threading.Lock(), "result": lambda: d}

    def dict_lock(state: Any, tid: int, reps: int) -> int:
        words = _text(tid)
        counts, lock = state["d"], state["lock"]
        for _ in range(reps):
            for w in words:
                with lock:
                    counts[w] = counts.get(w, 0) + 1
        return reps * len(words)

    def counter_state() -> Any:
        c: Counter[str] = Counter()
        return {"c": c, "lock": threading.Lock(), "result": lambda: c}

    def counter_lock(state: Any, tid: int, reps: int) -> int:
        words = _text(tid)
        counts, lock = state["c"], state["lock"]
        for _ in range(reps):
            for w in words:
                with lock:
                    counts[w] += 1
        return reps * len(words)

    def merge_state() -> Any:
        total: Counter[str] = Counter()
        lock = threading.Lock()
        return {"total": total, "lock": lock, "result": lambda: total}

    def per_thread_counter(state: Any, tid: int, reps: int) -> int:
        # What a careful user does when only the final totals matter.
        words = _text(tid)
        mine: Counter[str] = Counter()
        for _ in range(reps):
            for w in words:
                mine[w] += 1
        with state["lock"]:
            state["total"].update(mine)
        return reps * len(words)

    return [
        App("word count", "ConcurrentDict.update_item (local)", "ours", cd_state,
            cd_worker(False), _count_check),
        App("word count", "ConcurrentDict.update_item (handle)", "ours", cd_state,
            cd_worker(True), _count_check),
        App("word count", "dict + Lock", "locked", locked_state, dict_lock, _count_check),
        App("word count", "Counter + Lock", "locked", counter_state, counter_lock, _count_check),
        App("word count", "Counter per thread, merged", "builtin", merge_state,
            per_thread_counter, _count_check),
    ]


# ---- read-mostly registry: a table of 256 settings that every thread reads;
# thread 0 replaces all of them at once (a new version) after every 1000 of
# its reads.  Every value of one version is that version's number, so a
# reader that sees two different numbers in one consistent read has seen a
# torn update.  Every 500 reads a thread takes such a read (the variant's
# way of reading the whole table at one instant).  Correct: no torn read,
# and the table ends at the last version.
REGISTRY_KEYS = [f"setting:{i:03d}" for i in range(256)]
REGISTRY_READS = 2000
REGISTRY_PERIOD = 1000
REGISTRY_CHECK = 500


def _registry_reads(tid: int) -> list[str]:
    rng = random.Random(900 + tid)
    return [_own(rng.choice(REGISTRY_KEYS)) for _ in range(REGISTRY_READS)]


def _registry_check(state: Any, threads: int, reps: int) -> None:
    if state["torn"]:
        raise AssertionError(f"registry: {state['torn'][0]} torn whole-table reads")
    final = state["current"]()
    if set(final.values()) != {state["version"][0]} or len(final) != len(REGISTRY_KEYS):
        raise AssertionError("registry: the table is not the last version")


def _registry_apps() -> list[App]:
    from nogil_collections import ConcurrentDict

    def cd_state() -> Any:
        d = ConcurrentDict(dict.fromkeys(REGISTRY_KEYS, 0))
        return {"d": d, "version": [0], "torn": [], "current": d.snapshot}

    def cd_worker(use_handle: bool) -> Callable[[Any, int, int], int]:
        def work(state: Any, tid: int, reps: int) -> int:
            reads = _registry_reads(tid)
            reg = state["d"].handle() if use_handle else state["d"]
            version = state["version"]
            total = 0
            for _ in range(reps):
                for j, k in enumerate(reads):
                    total += reg[k]
                    if j % REGISTRY_CHECK == 0 and len(set(reg.snapshot().values())) != 1:
                        state["torn"].append(j)
                    if tid == 0 and j % REGISTRY_PERIOD == 0:
                        version[0] += 1
                        reg.update(dict.fromkeys(REGISTRY_KEYS, version[0]))
            return reps * len(reads)

        return work

    def cow_state() -> Any:
        state: dict[str, Any] = {"version": [0], "torn": []}
        state["reg"] = dict.fromkeys(REGISTRY_KEYS, 0)
        state["current"] = lambda: state["reg"]
        return state

    def cow_worker(state: Any, tid: int, reps: int) -> int:
        # Copy-on-write: readers look the table up through a shared binding;
        # an update builds a new dict and rebinds it in one store.
        reads = _registry_reads(tid)
        version = state["version"]
        total = 0
        for _ in range(reps):
            for j, k in enumerate(reads):
                total += state["reg"][k]
                if j % REGISTRY_CHECK == 0 and len(set(state["reg"].values())) != 1:
                    state["torn"].append(j)
                if tid == 0 and j % REGISTRY_PERIOD == 0:
                    version[0] += 1
                    state["reg"] = dict.fromkeys(REGISTRY_KEYS, version[0])
        return reps * len(reads)

    def locked_state() -> Any:
        d = dict.fromkeys(REGISTRY_KEYS, 0)
        return {"d": d, "lock": threading.Lock(), "version": [0], "torn": [],
                "current": lambda: d}

    def locked_worker(state: Any, tid: int, reps: int) -> int:
        reads = _registry_reads(tid)
        reg, lock, version = state["d"], state["lock"], state["version"]
        total = 0
        for _ in range(reps):
            for j, k in enumerate(reads):
                with lock:
                    total += reg[k]
                if j % REGISTRY_CHECK == 0:
                    with lock:
                        values = set(reg.values())
                    if len(values) != 1:
                        state["torn"].append(j)
                if tid == 0 and j % REGISTRY_PERIOD == 0:
                    version[0] += 1
                    with lock:
                        reg.update(dict.fromkeys(REGISTRY_KEYS, version[0]))
        return reps * len(reads)

    return [
        App("registry", "ConcurrentDict, update() (local)", "ours", cd_state, cd_worker(False),
            _registry_check),
        App("registry", "ConcurrentDict, update() (handle)", "ours", cd_state, cd_worker(True),
            _registry_check),
        App("registry", "dict, copy-on-write rebinding", "builtin", cow_state, cow_worker,
            _registry_check),
        App("registry", "dict + Lock", "locked", locked_state, locked_worker, _registry_check),
    ]


def applications() -> list[App]:
    """Every application variant (ConcurrentDict must be importable)."""
    return _memo_apps() + _count_apps() + _registry_apps()


def run_app_once(app: App, threads: int, reps: int) -> float:
    state = app.setup()

    def prepare(tid: int) -> ThreadWork:
        app.worker(state, tid, 0)  # builds its data: first touch, no ops
        return ThreadWork(lambda: app.worker(state, tid, reps))

    ops, elapsed = run_on_barrier(threads, prepare, "app")
    app.check(state, threads, reps)
    return ops / elapsed


@dataclass
class AppResult:
    workload: str
    variant: str
    role: str
    threads: int
    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "variant": self.variant,
            "role": self.role,
            "threads": self.threads,
            "runs_ops_per_s": [round(r, 1) for r in self.runs],
            "median_ops_per_s": round(self.median, 1),
        }


def _seconds_for_app(app: App, reps: int) -> float:
    # Wall time of a whole one-thread run, its setup and result check included.
    t0 = time.perf_counter()
    run_app_once(app, 1, reps)
    return time.perf_counter() - t0


def measure_apps(
    thread_counts: list[int],
    repeats: int,
    target_time: float,
    cpus: int,
    progress: Callable[[str], None] | None = None,
) -> list[AppResult]:
    apps = applications()
    with gc_paused():
        reps = [
            harness.calibrate(
                partial(_seconds_for_app, app), target_time, min_fraction=1 / 4, limit=1 << 12
            )
            for app in apps
        ]

        def run(i: int, threads: int) -> float:
            return run_app_once(apps[i], threads, per_thread(reps[i], threads, cpus))

        runs = interleaved(range(len(apps)), thread_counts, repeats, run, progress, "applications")
    return [
        AppResult(app.workload, app.variant, app.role, t, runs[(i, t)])
        for i, app in enumerate(apps)
        for t in thread_counts
    ]


def count_app_steps(thread_counts: list[int], repeats: int) -> int:
    return repeats * len(thread_counts)


# ------------------------------------------------------------------ quotability
#: The machine-can-scale check (issue 20): a tuple read through a thread-owned
#: ``partial`` (no reference count written, nothing shared but the read-only
#: tuple; on 3.15+ a partial of a bound method, see harness.thread_owned) must reach
#: this scaling at 2 threads in the same run, or none of the run's scaling
#: figures may be quoted.
CEILING_MIN_SCALING = 1.7
CEILING_THREADS = 2
#: ... and at most this much (linear, plus 15%, about the repetitions' spread
#: in a quiet run): independent CPU-bound loops cannot scale beyond the thread
#: count, so a higher figure means the 1-thread median was itself disturbed
#: (a 3.14t run gave 2.62x while a builtin dict's reads "scaled" 0.97x).
CEILING_MAX_SCALING = CEILING_THREADS * 1.15


@dataclass
class CeilingCheck:
    """The ceiling check of one run: the tuple-through-partial read loop's
    scaling at :data:`CEILING_THREADS` threads (median over median), and the
    machine's 1-minute load average at the start against its usable CPUs."""

    scaling: float | None  # None: not measured in this run
    load_at_start: float | None = None
    cpus: int | None = None

    @property
    def busy(self) -> bool:
        """Other work was running when the run started (load average >= usable
        CPUs): the tuple may pass the check in a lull and the rest of the run
        still be taken under load."""
        return (
            self.load_at_start is not None
            and self.cpus is not None
            and self.load_at_start >= self.cpus
        )

    @property
    def superlinear(self) -> bool:
        """Above what the threads can give: the 1-thread baseline was disturbed."""
        return self.scaling is not None and self.scaling > CEILING_MAX_SCALING

    @property
    def quotable(self) -> bool:
        return (
            self.scaling is not None
            and CEILING_MIN_SCALING <= self.scaling <= CEILING_MAX_SCALING
            and not self.busy
        )

    def line(self) -> str:
        busy = (
            f"; the machine was busy at the start (load average {self.load_at_start:.2f} "
            f"on {self.cpus} usable CPUs)"
            if self.busy
            else ""
        )
        if self.scaling is None:
            return (
                "ceiling check: NOT MEASURED in this run (the real-code read suite with "
                f"'tuple ({harness.THREAD_OWNED_LABEL})' at 1 and {CEILING_THREADS} "
                f"threads did not run){busy}: scaling figures of this run are NOT QUOTABLE"
            )
        if self.quotable:
            verdict = "the run is quotable"
        elif self.scaling < CEILING_MIN_SCALING:
            verdict = (
                "the machine did not scale"
                + busy
                + ": scaling figures of this run are NOT QUOTABLE"
            )
        elif self.superlinear:
            verdict = (
                f"above {CEILING_MAX_SCALING:.2f}x, more than {CEILING_THREADS} threads can "
                "give: the 1-thread baseline was disturbed"
                + busy
                + ": scaling figures of this run are NOT QUOTABLE"
            )
        else:
            verdict = busy[2:] + ": figures of this run are NOT QUOTABLE"
        return (
            f"ceiling check: tuple read through a {harness.THREAD_OWNED_LABEL} scales "
            f"{self.scaling:.2f}x at {CEILING_THREADS} threads (needs "
            f"{CEILING_MIN_SCALING:.2f}x-{CEILING_MAX_SCALING:.2f}x): {verdict}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "what": f"tuple read through a {harness.THREAD_OWNED_LABEL}, read-only, "
            f"median scaling at {CEILING_THREADS} threads",
            "scaling": None if self.scaling is None else round(self.scaling, 4),
            "threshold": CEILING_MIN_SCALING,
            "upper_bound": CEILING_MAX_SCALING,
            "load_average_at_start": self.load_at_start,
            "usable_cpus": self.cpus,
            "busy": self.busy,
            "quotable": self.quotable,
        }


def ceiling_check(results: list[Result], env: dict[str, Any] | None = None) -> CeilingCheck:
    """The run's check; ``env`` (machine.describe()) adds the load at the start."""
    load = cpus = None
    if env is not None:
        m = env.get("machine", {})
        la = m.get("load_average_at_start")
        load = la[0] if la else None
        cpus = m.get("usable_cpus")
    by = {
        r.threads: r
        for r in results
        if r.cell.impl == "tuple" and r.cell.access == "partial" and r.cell.mix == "read"
    }
    if 1 not in by or CEILING_THREADS not in by or not by[1].median:
        return CeilingCheck(None, load, cpus)
    return CeilingCheck(by[CEILING_THREADS].median / by[1].median, load, cpus)


# ------------------------------------------------------------------ tables
def access_matrix(
    results: list[Result], family: str, threads: int = 2, markdown: bool = False
) -> str | None:
    """Read-only loops: one row per implementation, one column per way the loop
    reaches the container; each cell is the scaling at ``threads`` threads
    (median over the 1-thread median) and, in brackets, the ratio of its
    ``threads``-thread throughput to the builtin's read through a local name."""
    rs = [r for r in results if r.cell.mix == "read" and r.cell.family == family]
    by = {(r.cell.impl, r.cell.access, r.threads): r for r in rs}
    if not any(t == threads for (_i, _a, t) in by):
        return None
    builtin = BUILTIN[family]
    ref = by.get((builtin, "local", threads))
    impls = sorted({(r.cell.role, r.cell.impl) for r in rs}, key=lambda ri: impl_key(*ri))
    accesses = [a for a in ACCESSES if any(r.cell.access == a for r in rs)]
    headers = ["implementation"] + [ACCESS_LABELS[a] for a in accesses]
    rows = []
    for role, name in impls:
        row = [f"**{name}**" if markdown and role == "ours" else name]
        for a in accesses:
            one, top = by.get((name, a, 1)), by.get((name, a, threads))
            if one is None or top is None:
                row.append("-")
                continue
            cell = ratio(top.median, one.median)
            if ref is not None and not (name == builtin and a == "local"):
                cell += f" ({ratio(top.median, ref.median)})"
            row.append(cell)
        rows.append(row)
    return fmt_table(headers, rows, markdown)


def loop_table(results: list[Result], mix: str, family: str, markdown: bool = False) -> str | None:
    """Rows: implementation x access; columns: median M ops/s per thread count,
    scaling, and the ratio to the builtin read through a local name."""
    rs = [r for r in results if r.cell.mix == mix and r.cell.family == family]
    if not rs:
        return None
    threads = sorted({r.threads for r in rs})
    by = {(r.cell, r.threads): r for r in rs}
    builtin = BUILTIN[family]
    ref = {
        r.threads: r for r in rs if r.cell.impl == builtin and r.cell.access == "local"
    }
    cells = sorted(
        {r.cell for r in rs},
        key=lambda c: (*impl_key(c.role, c.impl), ACCESSES.index(c.access)),
    )
    headers = ["implementation (container reached as)"]
    headers += [f"{t}T" for t in threads]
    headers += [f"scaling {t}T" for t in threads if t != 1]
    headers += [f"vs {builtin} local {t}T" for t in threads]
    rows = []
    for cell in cells:
        name = f"**{cell.label}**" if markdown and cell.role == "ours" else cell.label
        row = [name]
        row += [f"{by[(cell, t)].median / 1e6:.2f}" if (cell, t) in by else "-" for t in threads]
        one = by.get((cell, 1))
        for t in threads:
            if t != 1:
                p = by.get((cell, t))
                row.append(ratio(p.median if p else None, one.median if one else None))
        for t in threads:
            p = by.get((cell, t))
            row.append(ratio(p.median if p else None, ref[t].median if t in ref else None))
        rows.append(row)
    return fmt_table(headers, rows, markdown)


def app_table(results: list[AppResult], markdown: bool = False) -> str | None:
    if not results:
        return None
    threads = sorted({r.threads for r in results})
    by = {(r.workload, r.variant, r.threads): r for r in results}
    variants = list(dict.fromkeys((r.workload, r.variant, r.role) for r in results))
    headers = ["workload", "variant"] + [f"{t}T" for t in threads]
    headers += [f"scaling {t}T" for t in threads if t != 1]
    rows = []
    for workload, variant, role in variants:
        name = f"**{variant}**" if markdown and role == "ours" else variant
        row = [workload, name]
        row += [f"{by[(workload, variant, t)].median / 1e6:.2f}" for t in threads]
        one = by[(workload, variant, threads[0])] if threads[0] == 1 else None
        for t in threads:
            if t != 1:
                row.append(ratio(by[(workload, variant, t)].median, one.median if one else None))
        rows.append(row)
    return fmt_table(headers, rows, markdown)


def headline_table(results: list[Result], markdown: bool = False) -> str | None:
    """Real-code headline: read-only loops ``x = c[k]`` (str keys) / ``x = c[i]``,
    each container through a local name and through its best thread-owned
    path (our handle; a partial for the others)."""
    rs = [r for r in results if r.cell.mix == "read"]
    if not rs:
        return None
    threads = sorted({r.threads for r in rs})
    by = {(r.cell, r.threads): r for r in rs}
    cells = sorted(
        {
            r.cell
            for r in rs
            if r.cell.access == "local"
            or (r.cell.access == "handle")
            or (r.cell.access == "partial" and r.cell.role != "ours")
        },
        key=lambda c: (c.family != MAP, *impl_key(c.role, c.impl), ACCESSES.index(c.access)),
    )
    ref = {
        (r.cell.family, r.threads): r
        for r in rs
        if r.cell.impl == BUILTIN[r.cell.family] and r.cell.access == "local"
    }
    ceiling = {
        r.threads: r for r in rs if r.cell.impl == "tuple" and r.cell.access == "partial"
    }
    headers = ["implementation (container reached as)"] + [f"{t}T" for t in threads]
    headers += [f"scaling {t}T" for t in threads if t != 1]
    if threads[-1] != 1:
        headers.append(f"vs builtin local {threads[-1]}T")
        if threads[-1] in ceiling:
            headers.append(f"vs tuple partial {threads[-1]}T")
    rows = []
    for cell in cells:
        name = f"**{cell.label}**" if markdown and cell.role == "ours" else cell.label
        row = [name] + [f"{by[(cell, t)].median / 1e6:.2f}" for t in threads]
        one = by.get((cell, 1))
        for t in threads:
            if t != 1:
                row.append(ratio(by[(cell, t)].median, one.median if one else None))
        if threads[-1] != 1:
            top = threads[-1]
            r = ref.get((cell.family, top))
            row.append(ratio(by[(cell, top)].median, r.median if r else None))
            if top in ceiling:
                row.append(ratio(by[(cell, top)].median, ceiling[top].median))
        rows.append(row)
    return fmt_table(headers, rows, markdown)


__all__ = [
    "ACCESSES",
    "MIXES",
    "SEQ",
    "App",
    "AppResult",
    "Cell",
    "Result",
    "access_matrix",
    "app_table",
    "applications",
    "ceiling_check",
    "compile_loop",
    "count_app_steps",
    "count_loop_steps",
    "headline_table",
    "loop_table",
    "measure_apps",
    "measure_loops",
]
