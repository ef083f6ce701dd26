"""Instructions per element of a Python-loop shape (benchmarks/pyloop.py), by
callgrind: robust to machine load, where wall-clock time is not.

    .venv/bin/python tools/ir_per_op.py append list ConcurrentList
    PYTHONPATH=src .venv/bin/python tools/ir_per_op.py "d.pop(k)+refill" dict ConcurrentDict

For each implementation the program runs four times under ``valgrind
--tool=callgrind``: the shape with a small and a large element count, and the
same two with the setup only (the containers and argument lists built, the
loop not run).  (large - small) - (large setup - small setup), over the
difference of the counts, is the cost of one element of the loop alone:
start-up, imports and setup cancel out.  The cyclic GC is off.  Prints
Ir/element per implementation and each one's ratio to the first.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL, LARGE = 2_000, 22_000


def child(shape: str, impl_name: str, n: int, run_loop: bool) -> None:
    import gc

    gc.disable()
    sys.path.insert(0, str(ROOT))
    from benchmarks import pyloop, registry

    impl = next(i for i in registry.load_implementations() if i.name == impl_name)
    _family, build = pyloop._shapes()[shape]
    warm_setup, warm_run, _c = build(impl, SMALL)
    warm_run(warm_setup())  # the same warm-up (specialisation) in all four programs
    setup, run, _count = build(impl, n)
    state = setup()
    if run_loop:
        run(state)


def _count(shape: str, impl_name: str, n: int) -> int:
    """Elements the shape's loop handles at size n (its own unit, e.g. keys x passes)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import pyloop, registry

    impl = next(i for i in registry.load_implementations() if i.name == impl_name)
    return pyloop._shapes()[shape][1](impl, n)[2]


def ir(shape: str, impl: str, n: int, run_loop: bool = True) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               sys.executable, __file__, "--child", shape, impl, str(n), str(int(run_loop))]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=False)
        m = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or m is None:
            raise SystemExit(f"{cmd}: {proc.stderr[-2000:]}")
        return int(m.group(1))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], int(argv[3]), argv[4] == "1")
        return 0
    if len(argv) < 2:
        print(__doc__)
        return 2
    shape, impls = argv[0], argv[1:]
    first = None
    for impl in impls:
        loop = ir(shape, impl, LARGE) - ir(shape, impl, SMALL)
        setup = ir(shape, impl, LARGE, False) - ir(shape, impl, SMALL, False)
        per = (loop - setup) / (_count(shape, impl, LARGE) - _count(shape, impl, SMALL))
        first = first or per
        print(f"{shape:18} {impl:24} {per:9.1f} Ir/element  {per / first:.3f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
