"""nogil_collections: drop-in thread-safe ``list`` and ``dict`` with lock-free reads.

``ConcurrentList`` and ``ConcurrentDict`` behave like ``list`` and ``dict``;
writes take a per-object lock, reads take none (docs/design.md), and every
single operation is linearizable (docs/guarantees.md).
"""

from __future__ import annotations

import collections.abc as _abc

from nogil_collections._dict import ABSENT, ConcurrentDict
from nogil_collections._handle import ConcurrentDictHandle, ConcurrentListHandle, _bind_types
from nogil_collections._json import json_default
from nogil_collections._list import ConcurrentList

__all__ = [
    "ABSENT",
    "ConcurrentDict",
    "ConcurrentDictHandle",
    "ConcurrentList",
    "ConcurrentListHandle",
    "__version__",
    "json_default",
]
__version__ = "0.1.0"

_bind_types(ConcurrentDict, ConcurrentList, ABSENT)
_abc.MutableSequence.register(ConcurrentList)
_abc.MutableMapping.register(ConcurrentDict)
_abc.MutableSequence.register(ConcurrentListHandle)
_abc.MutableMapping.register(ConcurrentDictHandle)
