"""Type stubs for nogil_collections._handle (compiled): per-thread handles.

A handle has its container's whole API (it forwards every method), so each
handle class takes its methods from the container's stub-only API class
(_ConcurrentDictAPI, _ConcurrentListAPI) and adds only what is its own.
"""

from collections.abc import Iterable
from typing import Any, TypeVar, final, overload

from nogil_collections._dict import ConcurrentDict, _ConcurrentDictAPI
from nogil_collections._list import ConcurrentList, _ConcurrentListAPI

_K = TypeVar("_K")
_V = TypeVar("_V")
_T = TypeVar("_T")
_S = TypeVar("_S")

def _bind_types(dict_type: type, list_type: type, absent: object) -> None: ...

@final
class ConcurrentDictHandle(_ConcurrentDictAPI[_K, _V]):
    """A per-thread handle to a ConcurrentDict: its whole API, forwarded."""

    @property
    def container(self) -> ConcurrentDict[_K, _V]: ...
    @property
    def owner_thread(self) -> int: ...
    # An instance method here (the dict's is a classmethod): a new dict of the
    # container's type, not a handle.
    @overload
    def fromkeys(
        self, iterable: Iterable[_T], value: None = None, /
    ) -> ConcurrentDict[_T, Any | None]: ...
    @overload
    def fromkeys(self, iterable: Iterable[_T], value: _S, /) -> ConcurrentDict[_T, _S]: ...
    # type(container).immortal(...): a new immortal dict, not a handle.
    def immortal(self, *args: Any, **kwargs: Any) -> ConcurrentDict[Any, Any]: ...

@final
class ConcurrentListHandle(_ConcurrentListAPI[_T]):
    """A per-thread handle to a ConcurrentList: its whole API, forwarded."""

    @property
    def container(self) -> ConcurrentList[_T]: ...
    @property
    def owner_thread(self) -> int: ...
    # type(container).immortal(...): a new immortal list, not a handle.
    def immortal(self, *args: Any, **kwargs: Any) -> ConcurrentList[Any]: ...
