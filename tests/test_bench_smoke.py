"""The benchmark harness at tiny sizes, so that it cannot rot (measures nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `benchmarks` is a package at the repository root
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import registry, scaling  # noqa: E402


def test_cli_smoke_writes_table_json_markdown_and_plots(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--no-progress", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "== scaling: dict-like" in proc.stdout
    assert "churn writes, reads/writes 90/10 churn" in proc.stdout
    assert "== single-thread cost per operation (list-like)" in proc.stdout

    result = json.loads((tmp_path / "latest.json").read_text())
    env_info = result["environment"]
    assert env_info["machine"]["cpu_count"] >= 1
    assert env_info["interpreter"]["version"] == sys.version.split()[0]
    assert "nogil_collections" in env_info["packages"]
    names = {i["name"] for i in result["implementations"]}
    assert {
        "dict",
        "dict+Lock",
        "ConcurrentDict",
        "list",
        "list+Lock",
        "ConcurrentList",
        "tuple",
    } <= names
    # Every available implementation of the case's family was measured at every thread count.
    points = {(p["impl"], p["family"], p["threads"]) for p in result["scaling"]}
    for impl in result["implementations"]:
        if impl["available"] and (impl["family"] == "seq" or "setitem" in impl["ops"]):
            assert {(impl["name"], impl["family"], t) for t in (1, 2)} <= points, impl["name"]
        if not impl["available"]:
            assert impl["note"], f"{impl['name']} unavailable without a reason"
    assert all(p["median_ops_per_s"] > 0 for p in result["scaling"])
    ops = {(c["impl"], c["op"]) for c in result["single_thread"]}
    assert {("dict", "getitem"), ("dict", "pop"), ("list", "append"), ("list", "len")} <= ops
    assert {m["impl"] for m in result["memory"]} >= {"dict", "list", "tuple"}

    md = (tmp_path / "latest.md").read_text()
    assert "| implementation | 1T med/best | 2T med/best |" in md
    assert "#### Headline" in md
    assert "== headline" in proc.stdout
    plots = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert plots == ["throughput-100-0.png", "throughput-90-10.png"]


class _Placeholder:
    """Like the placeholder classes that exist before the real containers land."""

    def __init__(self, *args: object) -> None:
        pass


def test_registry_turns_a_non_working_class_into_a_skip_with_reason() -> None:
    impl = registry._finish(registry.Impl("fake", registry.MAP, _Placeholder, "ours"))
    assert not impl.available
    assert "not subscriptable" in impl.note


def test_registry_probes_missing_operations() -> None:
    class NoLen(dict):  # type: ignore[type-arg]
        def __len__(self) -> int:
            raise TypeError("no len")

    impl = registry._finish(registry.Impl("nolen", registry.MAP, NoLen, "peer"))
    assert impl.available
    assert "len" not in impl.ops
    assert {"getitem", "setitem", "get", "contains", "iter", "pop"} <= impl.ops


@pytest.mark.parametrize("mix", [100, 99, 90, 50])
def test_schedule_has_the_advertised_write_share(mix: int) -> None:
    case = scaling.Case(registry.MAP, mix, "str", "immortal", "local")
    sched = scaling._schedule(case, 100 - mix)
    assert len(sched) == scaling.CYCLE
    assert sum(sched) == 100 - mix


@pytest.mark.parametrize("keytype", ["str", "int"])
@pytest.mark.parametrize("name", ["dict", "ConcurrentDict"])
def test_churn_writes_delete_and_reinsert_without_changing_the_contents(
    keytype: str, name: str
) -> None:
    impl = next(i for i in registry.load_implementations() if i.name == name)
    assert "delitem" in impl.ops
    case = scaling.Case(registry.MAP, 50, keytype, "immortal", "local", "churn")
    assert scaling.applicable(impl, case)
    container, keys, values = scaling.build_container(impl, case, 64)
    before = dict(zip(keys, values, strict=True))
    rate = scaling.run_threads(container, case, keys, values, threads=2, cycles_per_thread=2)
    assert rate > 0
    assert dict(container.items()) == before  # the churn keys are gone again, nothing else moved
    assert not set(scaling.churn_keys(case, 0)) & set(scaling.churn_keys(case, 1))
    assert not set(scaling.churn_keys(case, 0)) & set(keys)


@pytest.mark.parametrize("key", ["key:0000001", 1_000_003, 10**30])
def test_local_copies_are_equal_but_distinct_objects(key: object) -> None:
    copy = scaling._local_copy(key)
    assert copy == key
    assert copy is not key
