"""Race testing with a linearizability checker.

Generate concurrent scenarios with hypothesis, run them on real threads or
under the controlled executor (one thread at a time, replayable schedules),
record histories with invocation/response stamps, and decide whether some
sequential order of the same calls explains every observed result
(linearizability: Herlihy & Wing 1990), with the search of Wing & Gong and
Lowe as Porcupine implements it.  See docs/testing.md.

Quick start (spec-free: the class is its own specification)::

    from nogil_collections.testing import find_race

    def test_counter(): assert find_race(Counter) is None

With an operation table and a model::

    from nogil_collections.testing import DICT_OPS, race_test

    @race_test(MyDict, DICT_OPS, dict)
    def test_my_dict_is_linearizable():
        pass
"""

from __future__ import annotations

from nogil_collections.testing._checker import (
    DICT_MODEL,
    LIST_MODEL,
    CheckResult,
    Model,
    as_model,
    check_histories,
    check_history,
    class_model,
    freeze,
    partition_history,
)
from nogil_collections.testing._controlled import Deadlock, Segment, replay
from nogil_collections.testing._executor import (
    ExecutorError,
    gil_enabled,
    run_scenario,
    switch_interval,
)
from nogil_collections.testing._history import Call, History, format_timeline
from nogil_collections.testing._ops import (
    ABSENT,
    DICT_OPS,
    LIST_OPS,
    Domain,
    Fn,
    MissingOpError,
    Op,
    OpTable,
    container_absent,
    get_table,
    register_table,
)
from nogil_collections.testing._race import (
    Budget,
    NotLinearizable,
    RaceReport,
    check_scenario,
    current_budget,
    default_executor,
    explore,
    find_race,
    is_pure_python,
    race_test,
    set_budget,
)
from nogil_collections.testing._scenario import Scenario, Step, scenarios
from nogil_collections.testing._schedule import Schedule, Strategy
from nogil_collections.testing._spec import SpecError, observe
from nogil_collections.testing._stamps import STAMP_COUNTER_KIND, make_stamp_counter, stamp

__all__ = [
    "ABSENT",
    "DICT_MODEL",
    "DICT_OPS",
    "LIST_MODEL",
    "LIST_OPS",
    "STAMP_COUNTER_KIND",
    "Budget",
    "Call",
    "CheckResult",
    "Deadlock",
    "Domain",
    "ExecutorError",
    "Fn",
    "History",
    "MissingOpError",
    "Model",
    "NotLinearizable",
    "Op",
    "OpTable",
    "RaceReport",
    "Scenario",
    "Schedule",
    "Segment",
    "SpecError",
    "Step",
    "Strategy",
    "as_model",
    "check_histories",
    "check_history",
    "check_scenario",
    "class_model",
    "container_absent",
    "current_budget",
    "default_executor",
    "explore",
    "find_race",
    "format_timeline",
    "freeze",
    "get_table",
    "gil_enabled",
    "is_pure_python",
    "make_stamp_counter",
    "observe",
    "partition_history",
    "race_test",
    "register_table",
    "replay",
    "run_scenario",
    "scenarios",
    "set_budget",
    "stamp",
    "switch_interval",
]
