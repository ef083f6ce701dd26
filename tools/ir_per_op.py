"""Instructions per element of a Python-loop shape (benchmarks/pyloop.py), by
callgrind: robust to machine load, where wall-clock time is not.

    .venv/bin/python tools/ir_per_op.py append list ConcurrentList
    PYTHONPATH=src .venv/bin/python tools/ir_per_op.py "d.pop(k)+refill" dict ConcurrentDict

For each implementation the shape runs twice under ``valgrind --tool=callgrind``
with a small and a large element count; the difference of the two programs'
total instruction counts over the difference of the counts is the cost of one
element (start-up, imports and setup cancel out).  Prints Ir/element per
implementation and each one's ratio to the first.
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


def child(shape: str, impl_name: str, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks import pyloop, registry

    impl = next(i for i in registry.load_implementations() if i.name == impl_name)
    _family, build = pyloop._shapes()[shape]
    setup, run, _count = build(impl, n)
    run(setup())  # warm-up at the small size: specialisation happens here for both sizes
    setup2, run2, _c = build(impl, n)
    run2(setup2())


def ir(shape: str, impl: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
               sys.executable, __file__, "--child", shape, impl, str(n)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=False)
        m = re.search(r"Collected : (\d+)", proc.stderr)
        if proc.returncode != 0 or m is None:
            raise SystemExit(f"{cmd}: {proc.stderr[-2000:]}")
        return int(m.group(1))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], int(argv[3]))
        return 0
    if len(argv) < 2:
        print(__doc__)
        return 2
    shape, impls = argv[0], argv[1:]
    first = None
    for impl in impls:
        per = (ir(shape, impl, LARGE) - ir(shape, impl, SMALL)) / (LARGE - SMALL)
        first = first or per
        print(f"{shape:18} {impl:24} {per:9.1f} Ir/element  {per / first:.3f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
