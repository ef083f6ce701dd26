"""JSON support: ``json.dumps(obj, default=json_default)``.

Why a ``default`` hook and not plain ``json.dumps(cd)``: the standard
library offers no supported way for a type that is not a ``list``/``dict``
subclass to be encoded as an array or object.

* The C encoder (``Modules/_json.c``, used by ``json.dumps`` whenever it can)
  takes the array path only for ``PyList_Check``/``PyTuple_Check`` objects and
  the object path only for ``PyDict_Check`` ones; everything else goes to
  ``default``.
* The pure-Python encoder (``Lib/json/encoder.py``: 3.11 with ``indent``,
  or ``c_make_encoder`` missing) tests ``isinstance(o, (list, tuple))`` and
  ``isinstance(o, dict)``; ``list`` and ``dict`` are not ABCs, so a
  ``register`` has no effect (only lying through ``__class__`` would).
* Making ``ConcurrentList``/``ConcurrentDict`` subclasses of ``list``/``dict``
  would pass those checks but give wrong output silently: the C encoder then
  reads the builtin's own storage, which would be empty (``PyDict_GET_SIZE``
  returns 0 -> ``{}``; ``PySequence_Fast`` returns the list itself -> ``[]``),
  and so would every other C function that uses the ``PyList_*``/``PyDict_*``
  macros on a subclass.  The lock-free layout cannot live in the builtin's
  storage, so we do not subclass.

``default`` (and a ``JSONEncoder`` subclass overriding ``default``) is the
supported hook, and it is what orjson (``default=``) and msgspec
(``enc_hook=``) offer too; ``json_default`` works with all three.
"""

from __future__ import annotations

import json
from typing import Any

from nogil_collections._dict import ConcurrentDict
from nogil_collections._handle import ConcurrentDictHandle, ConcurrentListHandle
from nogil_collections._list import ConcurrentList

__all__ = ["json_default"]

_PLAIN_ENCODER = json.JSONEncoder()
_CONTAINERS = (ConcurrentDict, ConcurrentList, ConcurrentDictHandle, ConcurrentListHandle)


def json_default(obj: Any) -> Any:
    """``default`` hook for ``json.dump``/``json.dumps`` (and orjson's
    ``default``, msgspec's ``enc_hook``).

    A ``ConcurrentDict`` becomes a builtin ``dict`` and a ``ConcurrentList`` a
    builtin ``list`` (or their handles), each one consistent point-in-time
    ``snapshot()``.  The
    encoder calls the hook again for concurrent containers nested inside, so
    each nested container is snapshotted when the encoder reaches it (each
    consistent, not all at the same instant).  Anything else raises the
    ``TypeError`` ``json.JSONEncoder.default`` raises.

    >>> import json
    >>> json.dumps(ConcurrentDict(a=ConcurrentList([1, 2])), default=json_default)
    '{"a": [1, 2]}'
    """
    if isinstance(obj, _CONTAINERS):
        return obj.snapshot()
    # "Object of type X is not JSON serializable", worded as this Python's json.
    return _PLAIN_ENCODER.default(obj)
