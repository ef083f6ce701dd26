"""Where the fields every reader loads sit in memory (docs/design.md, memory layout).

A read-mostly container must not share the cache line of its hot fields with
anything that other threads write: its own header (reference counts) or a
neighbouring heap object's header.  These tests check the layout the type
declares and, on the free-threaded build (mimalloc), real allocations.
"""

from __future__ import annotations

import itertools
import sysconfig
from collections import Counter

import pytest

from nogil_collections import ConcurrentDict, ConcurrentList

FREE_THREADED_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
LINE = 64


def test_dict_hot_fields_own_their_lines() -> None:
    d = ConcurrentDict(a=1)
    # Asserts: hot words at offset >= 128 and % 64 == 0, writer words inside
    # the first line of the writer lock object, size a multiple of 64.
    d._check()
    assert ConcurrentDict.__basicsize__ % LINE == 0


@pytest.mark.skipif(not FREE_THREADED_BUILD, reason="mimalloc size classes: free-threaded build")
def test_dict_objects_are_line_aligned_so_no_neighbour_shares_the_hot_line() -> None:
    # Blocks of a size class that is a multiple of 64 are 64-byte aligned in
    # mimalloc: the hot lines of every dict are the dict's alone.
    dicts = [ConcurrentDict() for _ in range(256)]
    misaligned = [id(d) % LINE for d in dicts if id(d) % LINE]
    assert not misaligned, f"{len(misaligned)} of 256 dicts are not 64-byte aligned"


@pytest.mark.skipif(not FREE_THREADED_BUILD, reason="mimalloc size classes: free-threaded build")
def test_dict_writer_words_share_the_writer_lock_line() -> None:
    # version/used sit right after the writer lock's header, whose ob_mutex
    # every write takes: one line per write moves between writing threads.
    from nogil_collections import _dict

    dicts = [ConcurrentDict() for _ in range(256)]
    for d in dicts:
        addr, off, size = _dict._writer_lock_layout(d)
        assert addr % LINE == 0, "writer lock not 64-byte aligned"
        assert off + size <= LINE, "writer words off the mutex's line"


@pytest.mark.skipif(not FREE_THREADED_BUILD, reason="mimalloc size classes: free-threaded build")
def test_list_hot_fields_sit_in_a_line_of_their_own() -> None:
    lists = [ConcurrentList() for _ in range(256)]
    offset = lists[0]._layout()[0]
    hot_bytes = 32  # ncl_state's reader line: version, size, array, shared
    # The block size: the most common gap between neighbouring allocations.
    gaps = Counter(b - a for a, b in itertools.pairwise(sorted(map(id, lists))))
    stride = gaps.most_common(1)[0][0]
    assert stride >= ConcurrentList.__basicsize__
    for lst in lists:
        lst._check()
        start = id(lst) + offset
        first_line = start - start % LINE
        end_line = -(-(start + hot_bytes) // LINE) * LINE
        assert first_line >= id(lst) + 32, "hot line holds the object's own header"
        assert end_line <= id(lst) + stride, "hot line reaches into the next object"
