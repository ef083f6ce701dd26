"""False-sharing probe for ConcurrentDict's hot fields (docs/design.md, memory layout).

One thread reads a dict through a thread-owned partial (no traffic on the dict's own
header) while another thread increfs and decrefs (non-owner: atomic) either the dict's
memory neighbour -- the object in the next mimalloc block -- or a far object.  Both
conditions have one busy hammer thread, so the ratio isolates a shared cache line between
the dict's hot fields and the neighbour's header: about 1.0x when none is shared.

    .venv/bin/python tools/false_sharing_probe.py
"""
import threading, time, operator, functools, gc, statistics
from collections import deque
from nogil_collections import ConcurrentDict
KEYS = [f"key:{i:07d}" for i in range(1024)]
gc.disable()
B = ConcurrentDict.__basicsize__
block = {208: 224}.get(B, B)
pool = [ConcurrentDict() for _ in range(600)]
ids = {id(d): d for d in pool}
c = nb = None
for a in pool:
    if id(a) % 64 == 0 and id(a) + block in ids:
        c, nb = a, ids[id(a) + block]; break
far = pool[-1] if pool[-1] is not nb and pool[-1] is not c else pool[-2]
c.update((k, i % 256) for i, k in enumerate(KEYS))
stop = [False]
def hammer(obj):
    x = obj
    while not stop[0]:
        for _ in range(1000):
            y = x; y = x; y = x; y = x
def reader(out):
    ks = [k[:1] + k[1:] for k in KEYS]
    f = functools.partial(operator.getitem, c); sink = deque(maxlen=0).extend
    t = time.perf_counter()
    for _ in range(300): sink(map(f, ks))
    out.append(300 * 1024 / (time.perf_counter() - t) / 1e6)
res = {"neighbour": [], "far": []}
for r in range(8):
    for which, obj in (("neighbour", nb), ("far", far)):
        stop[0] = False; h = threading.Thread(target=hammer, args=(obj,)); h.start()
        out = []; t = threading.Thread(target=reader, args=(out,)); t.start(); t.join()
        stop[0] = True; h.join(); res[which].append(out[0])
n, f = statistics.median(res["neighbour"]), statistics.median(res["far"])
print(f"basicsize {B} (block {block}), dict at {id(c)%64} mod 64, neighbour +{id(nb)-id(c)}: "
      f"reader median M/s: neighbour hammered {n:.2f}, far object hammered {f:.2f} -> {n/f:.2f}x")
