#!/usr/bin/env bash
# run_sanitized.sh thread|address|debug|fault [--ft VERSION] [--ci | --all | --build-only] [-- PYTEST_ARGS...]
#
#   --ft VERSION  the free-threaded CPython to use: 3.14 (the default), 3.15 or
#                 3.13 (`make tsan FT=3.13` passes it).
#
#   thread   ThreadSanitizer: free-threaded CPython built --with-thread-sanitizer
#            (tools/build_sanitized_python.sh), the extension built with
#            NOGIL_COLLECTIONS_SANITIZE=thread, the threaded and race tests.
#   address  AddressSanitizer + UBSan: the same with --with-address-sanitizer
#            --with-undefined-behavior-sanitizer and NOGIL_COLLECTIONS_SANITIZE=address;
#            the whole test suite (use-after-free is not a multi-thread-only bug).
#   debug    no sanitizer: the normal free-threaded interpreter, the extension at
#            -O0 -g3 with C asserts on (NOGIL_COLLECTIONS_DEBUG=1), for gdb/rr.
#            Prints how to run it under gdb.  Runs the tests unless --build-only.
#   fault    no sanitizer: the normal free-threaded interpreter, the extension
#            built with NOGIL_COLLECTIONS_FAULT_INJECTION=1: every suspension
#            point (docs/design.md) detaches the thread for a moment, so the
#            critical section really is suspended there (_core/faultinject.h).
#
# Selection:  default  thread: tests/test_core.py, test_qsbr.py, test_race_*.py and
#                      the threaded tests (-k "thread or race or concurren or
#                      shared") of test_list*.py / test_dict*.py /
#                      test_shared_*.py (not the race harness's
#                      self-checks);  address, debug: all of tests/;
#                      fault: the threaded, race, fault-injection and fuzz tests.
#             --ci     the bounded subset recommended for CI (docs/development.md)
#             --all    all of tests/ (any kind)
#             -- ARGS  passed to pytest after the selection (e.g. -- -x -k stress);
#                      test paths given here replace the default file selection.
#
# Each kind has its own venv in the checkout (.venv-tsan, .venv-asan, .venv-debug,
# .venv-fault on 3.14; .venv-tsan-313t, .venv-fault-315t, ... on the others;
# test dependencies pinned in pyproject.toml) and its own private build tree
# (build/sanitized/<kind>[-313t]/: a copy of setup.py + src/ built in place), so it never
# touches src/*.so, build/ or the other venvs.  Reports go to
# build/sanitized/<kind>/logs/; the run fails if the sanitizer reported anything
# that the suppression files do not cover.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PIP_VERSION="${PIP_VERSION:-26.2.1}"
TIMEOUT="${NOGIL_COLLECTIONS_SAN_TIMEOUT:-3600}"   # whole pytest run, seconds

KIND="${1:-}"; shift || true
case "$KIND" in
    thread)  TAG=tsan ;;
    address) TAG=asan ;;
    debug)   TAG=debug ;;
    fault)   TAG=fault ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
say() { echo "[san-$TAG] $*" >&2; }
die() { echo "[san-$TAG] ERROR: $*" >&2; exit 1; }

MODE=default
FTV=3.14
while (( $# )); do
    case "$1" in
        --ft) shift; FTV="${1:-}"
              case "$FTV" in 3.13|3.14|3.15) ;; *) die "--ft takes 3.13, 3.14 or 3.15" ;; esac ;;
        --ci) MODE=ci ;;
        --all) MODE=all ;;
        --build-only) MODE=build-only ;;
        --) shift; break ;;
        *) die "unknown option $1 (pytest arguments go after --)" ;;
    esac
    shift
done
EXTRA=("$@")

# 3.14 (the primary) keeps the plain names, as .venv does.
suffix=""
[[ "$FTV" == 3.14 ]] || suffix="-${FTV/./}t"
VENV="$ROOT/.venv-$TAG$suffix"
WORK="$ROOT/build/sanitized/$TAG$suffix"
TREE="$WORK/tree"
LOGS="$WORK/logs"

# ------------------------------------------------------------------ interpreter
say "free-threaded CPython $FTV"
if [[ "$KIND" == debug || "$KIND" == fault ]]; then
    PY="$(bash "$ROOT/tools/bootstrap_python_ft.sh" "$FTV" | tail -n1)" || die "no free-threaded CPython $FTV (see above)"
else
    PY="$(bash "$ROOT/tools/build_sanitized_python.sh" "$KIND" "$FTV" | tail -n1)" || die "no $KIND-sanitized CPython $FTV (see above)"
fi
PREFIX="$(cd "$(dirname "$PY")/.." && pwd)"

# Quiet sanitizer settings for the setup steps (pip, Cython, the C compiler
# driver running under an instrumented interpreter): CPython's own findings
# there are not ours.  Strict settings are exported just before pytest.
quiet_env() {
    export ASAN_OPTIONS="detect_leaks=0"
    export UBSAN_OPTIONS="halt_on_error=0:print_stacktrace=0"
    export TSAN_OPTIONS="exitcode=0:report_bugs=0"
}
quiet_env

# ------------------------------------------------------------------ venv
# The dependencies are the same wheels as in the normal venv of this version
# (same SOABI, e.g. cpython-314t-x86_64-linux-gnu: a sanitizer does not change
# the ABI), so when that venv exists its pip -- not instrumented -- installs
# them into this venv's site-packages with --target: pip under TSAN took 13
# of the 20 minutes of CI's tsan-ci phase (venv with ensurepip 5, the groups 8).
# Otherwise (no normal venv yet) the venv gets its own pip, slowly.
normal_venv="$ROOT/.venv"
[[ "$FTV" == 3.14 ]] || normal_venv="$ROOT/.venv-${FTV/./}t"
soabi() { "$1" -c 'import sysconfig; print(sysconfig.get_config_var("SOABI"))' 2>/dev/null || true; }
stamp="$VENV/.stamp-san-env"
want="$PY $(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    rm -rf "$VENV"
    if [[ -x "$normal_venv/bin/python" && "$(soabi "$normal_venv/bin/python")" == "$(soabi "$PY")" ]]; then
        say "creating $VENV on $PY (no pip of its own)"
        "$PY" -m venv --without-pip "$VENV"
        site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
        say "installing the pinned build and test dependency groups into $site with $normal_venv's pip"
        (cd "$ROOT" && "$normal_venv/bin/python" -m pip install -q --disable-pip-version-check \
            --only-binary=:all: --target "$site" --group build --group test 2>&1 \
            | grep -v '^WARNING: Location' || exit "${PIPESTATUS[0]}")
    else
        say "creating $VENV on $PY"
        "$PY" -m venv "$VENV"
        say "installing the pinned build and test dependency groups into $VENV (its own pip: slow under a sanitizer; a $normal_venv made first by make test-${FTV/./}t avoids that)"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "pip==$PIP_VERSION"
        (cd "$ROOT" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
            --only-binary=:all: --group build --group test)
    fi
    echo "$want" > "$stamp"
fi

# ------------------------------------------------------------------ extension
# A private copy of the sources: Cython writes .c files next to the .pyx and an
# in-place build writes .so files there, which must never mix with the normal
# builds in src/.  tar keeps mtimes, so unchanged modules are not rebuilt.
mkdir -p "$TREE/src" "$LOGS"
# Drop files that no longer exist in src/ (and build products of removed .pyx).
(cd "$TREE/src" && find . -type f ! -path '*/__pycache__/*' -print0) |
while IFS= read -r -d '' f; do
    case "$f" in
        *.so) base="${f%%.cpython-*}"; [[ -e "$ROOT/src/$base.pyx" ]] || rm -f "$TREE/src/$f" ;;
        *.c)  [[ -e "$ROOT/src/${f%.c}.pyx" || -e "$ROOT/src/$f" ]] || rm -f "$TREE/src/$f" ;;
        *)    [[ -e "$ROOT/src/$f" ]] || rm -f "$TREE/src/$f" ;;
    esac
done
tar -C "$ROOT/src" --exclude='*.so' --exclude='*.c' --exclude='__pycache__' -cf - . | tar -C "$TREE/src" -xf -
cp -p "$ROOT/src/nogil_collections/_core/qsbr_domain.c" "$TREE/src/nogil_collections/_core/"
cp -p "$ROOT/setup.py" "$ROOT/pyproject.toml" "$ROOT/README.md" "$TREE/"
case "$KIND" in
    thread)  export NOGIL_COLLECTIONS_SANITIZE=thread ;;
    address) export NOGIL_COLLECTIONS_SANITIZE=address ;;
    debug)   export NOGIL_COLLECTIONS_DEBUG=1 ;;
    fault)   export NOGIL_COLLECTIONS_FAULT_INJECTION=1 ;;
esac
unset NOGIL_COLLECTIONS_ONLY
# Cython (pure Python here) is several times slower under an instrumented
# interpreter; its output does not depend on the interpreter or the C flags,
# so generate the .c files with the project's normal free-threaded venv when
# it has the same Cython.  setup.py's cythonize() then finds them up to date.
cyver() { "$1" -c 'import Cython; print(Cython.__version__)' 2>/dev/null || true; }
if [[ "$KIND" != debug && "$KIND" != fault && -x "$ROOT/.venv/bin/python" ]] \
        && [[ "$(cyver "$ROOT/.venv/bin/python")" == "$(cyver "$VENV/bin/python")" ]]; then
    say "cythonizing with $ROOT/.venv/bin/python"
    (cd "$TREE" && env -u NOGIL_COLLECTIONS_SANITIZE -u NOGIL_COLLECTIONS_DEBUG \
        "$ROOT/.venv/bin/python" setup.py -q --version > "$LOGS/cythonize.log" 2>&1) \
        || { tail -n 40 "$LOGS/cythonize.log" >&2; die "cythonize failed (see $LOGS/cythonize.log)"; }
fi
flags="SANITIZE=${NOGIL_COLLECTIONS_SANITIZE:-} DEBUG=${NOGIL_COLLECTIONS_DEBUG:-} FAULT=${NOGIL_COLLECTIONS_FAULT_INJECTION:-}"
# Rebuild everything when the flags changed (setuptools only compares mtimes).
force=()
[[ -f "$WORK/.flags" && "$(cat "$WORK/.flags")" == "$flags" ]] || force=(--force)
say "building the extension ($flags) in $TREE"
(cd "$TREE" && nice -n 10 "$VENV/bin/python" setup.py -q build_ext --inplace \
    --build-temp "$WORK/temp" "${force[@]}" > "$LOGS/build_ext.log" 2>&1) \
    || { tail -n 40 "$LOGS/build_ext.log" >&2; die "extension build failed (see $LOGS/build_ext.log)"; }
echo "$flags" > "$WORK/.flags"
export PYTHONPATH="$TREE/src"
"$VENV/bin/python" - <<'EOF' || die "the extension does not load or re-enabled the GIL"
import sys, nogil_collections, nogil_collections._core._qsbr  # noqa: F401
assert not sys._is_gil_enabled(), "the GIL got enabled: the run would test nothing"
import os
if os.environ.get("NOGIL_COLLECTIONS_FAULT_INJECTION"):
    from nogil_collections import _fault_injection
    assert _fault_injection.ENABLED, "fault injection was not compiled in"
EOF

if [[ "$MODE" == build-only ]]; then
    say "built: PYTHONPATH=$TREE/src $VENV/bin/python"
    [[ "$KIND" == debug ]] && say "debug: cd $ROOT && PYTHONPATH=$TREE/src gdb -ex run --args $VENV/bin/python -m pytest -p no:cacheprovider tests/test_x.py -x"
    exit 0
fi

# ------------------------------------------------------------------ selection
cd "$ROOT"
existing() { local f; for f in "$@"; do [[ -e "$f" ]] && echo "$f"; done; return 0; }
sel=()
case "$MODE" in
    all) sel=(tests) ;;
    ci)
        if [[ "$KIND" == fault ]]; then
            # Bounded: the fault-injection and defect-regression tests
            # (deterministic suspensions, injected MemoryError, the documented
            # list of points), the threaded dict/list tests, the fuzzer at
            # its CI budget, the shared-object tests (issue 21) and the
            # list's and the dict's writes under the bare writer-lock mutex
            # (ncc_cs_try_lock).
            mapfile -t sel < <(existing tests/test_fault_injection.py tests/test_defect_regressions.py \
                tests/test_dict_threads.py tests/test_list_threads.py tests/test_fuzz_hostile.py \
                tests/test_dict_shared_threads.py tests/test_shared_list_objects.py \
                tests/test_list_fast_lock.py tests/test_dict_fast_lock.py)
        else
            # Bounded subset: the core and the reclamation domain, plus one mixed
            # list and one mixed dict race test (all operations interleaved),
            # the list iterator's nested-next() read under a replacing writer
            # (it showed issue 21's freed-item reports, defect 6) and the
            # shared list and dict iterators (issue 21: the dict's owner-to-
            # shared hand-over and __reduce__ racing __next__), and the list's
            # appends and pops and the dict's single-key writes under the bare
            # writer-lock mutex (ncc_cs_try_lock) against held and suspended
            # critical sections.
            mapfile -t sel < <(existing tests/test_core.py tests/test_qsbr.py tests/test_list_fast_lock.py \
                tests/test_dict_fast_lock.py)
            for t in tests/test_race_list.py::test_race_list_mixed_operations \
                     tests/test_race_dict.py::test_race_dict_per_key_operations_many_threads \
                     tests/test_list_hostile.py::test_del_calling_next_from_inside_the_iterators_batched_read \
                     tests/test_shared_list_objects.py::test_shared_iterator_with_a_concurrent_writer \
                     tests/test_dict_shared_threads.py::test_creator_keeps_draining_while_others_join \
                     tests/test_dict_shared_threads.py::test_reduce_racing_next_is_atomic; do
                grep -q "def ${t##*::}(" "${t%%::*}" 2>/dev/null && sel+=("$t")
            done
        fi
        ;;
    default)
        if [[ "$KIND" == thread ]]; then
            mapfile -t files < <(existing tests/test_core.py tests/test_qsbr.py tests/test_race_*.py \
                tests/test_list*.py tests/test_dict*.py tests/test_shared_*.py)
            # The *_campaign_catches_unlocked_compound_op tests check that the
            # race harness finds deliberately unlocked pure-Python compound
            # operations: no C code of ours races there, and under TSAN they
            # take half the run (60-70 s each); the normal suite runs them.
            sel=("${files[@]}" -k "(core or qsbr or race or thread or concurren or parallel or shared) and not campaign_catches")
        elif [[ "$KIND" == fault ]]; then
            mapfile -t files < <(existing tests/test_fault_injection.py tests/test_fuzz_hostile.py \
                tests/test_race_*.py tests/test_list*.py tests/test_dict*.py tests/test_shared_*.py)
            sel=("${files[@]}" -k "(fault or race or thread or concurren or parallel or fuzz or shared) and not campaign_catches")
        else
            sel=(tests)
        fi
        ;;
esac
# Tests that cannot hold under a sanitizer, whatever the code does:
#  - test_bench_smoke runs the benchmark CLI (needs the `bench` group, and a
#    benchmark under a sanitizer measures the sanitizer);
#  (No test measures RSS, which the sanitizers' own per-thread state grows by
#  4-20 MiB; NOGIL_COLLECTIONS_SANITIZER, exported below, lets a test skip
#  such a measurement.)
skip=(--ignore=tests/test_bench_smoke.py)
[[ "$KIND" == debug || "$KIND" == fault ]] && skip=()
for a in "${EXTRA[@]}"; do
    # explicit test paths replace the default file selection
    if [[ "$a" == tests || "$a" == tests/* ]]; then sel=(); break; fi
done
(( ${#sel[@]} + ${#EXTRA[@]} )) || die "no test files to run yet"

# ------------------------------------------------------------------ sanitizer options
rm -f "$LOGS"/report.*
case "$KIND" in
    thread)
        # TSAN reads a single suppressions file: CPython's free-threading list
        # (installed from the source tree we built) plus ours.
        supp="$WORK/tsan-suppressions.combined.txt"
        cat "$PREFIX/share/nogil-collections/suppressions_free_threading.txt" \
            "$ROOT/tools/tsan-suppressions.txt" > "$supp"
        # halt_on_error=0: collect every report of the run.  handle_segv=0:
        # leave SIGSEGV to faulthandler (as CPython's TSAN CI does).
        export TSAN_OPTIONS="suppressions=$supp log_path=$LOGS/report exitcode=66 halt_on_error=0 handle_segv=0 second_deadlock_stack=1 history_size=4"
        ;;
    address)
        # detect_leaks=0: CPython does not free everything at exit (CPython's
        # ASAN CI runs the same way).  UBSan: report, keep going, fail at the end.
        export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:log_path=$LOGS/report"
        export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=0:log_path=$LOGS/report"
        ;;
    debug|fault)
        unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS
        ;;
esac
export PYTHONFAULTHANDLER=1
# Tests that measure memory (RSS) or timing cannot hold under a sanitizer
# (shadow memory, per-thread runtime state, 5-15x slowdown); they can skip on it.
[[ "$KIND" != debug && "$KIND" != fault ]] && export NOGIL_COLLECTIONS_SANITIZER="$KIND"

# Preflight: a deliberate bug in a throw-away C library, loaded with ctypes
# under exactly these options, must be reported -- otherwise a clean run
# would prove nothing (wrong runtime, options or suppressions too broad).
if [[ "$KIND" != debug && "$KIND" != fault ]]; then
    pf="$WORK/preflight"; rm -rf "$pf"; mkdir -p "$pf"
    cat > "$pf/bug.c" <<'EOF'
#include <stdlib.h>
/* A race TSAN must see on every run: b announces itself with a relaxed store
 * (no happens-before), a writes ncc_preflight_x only once b is inside C code (so no Python
 * code on b's side can synchronise with a after a's write), then b writes it. */
long ncc_preflight_x; static int b_in, a_done;  /* x exported: the stores stay */
static int spin(int *f) { for (long i = 0; i < 4000000000L; i++) if (__atomic_load_n(f, __ATOMIC_RELAXED)) return 1; return 0; }
void ncc_preflight_a(void) { if (spin(&b_in)) ncc_preflight_x = 1; __atomic_store_n(&a_done, 1, __ATOMIC_RELAXED); }
void ncc_preflight_b(void) { __atomic_store_n(&b_in, 1, __ATOMIC_RELAXED); if (spin(&a_done)) ncc_preflight_x = 2; }
long ncc_preflight_uaf(void) { volatile long *p = malloc(8 * sizeof *p); p[0] = 1; free((void *)p); return p[0]; }
EOF
    "${CC:-gcc}" -shared -fPIC -g -O1 -fsanitize="$KIND" "$pf/bug.c" -o "$pf/libbug.so"
    if [[ "$KIND" == thread ]]; then
        code='import ctypes, threading
lib = ctypes.CDLL(LIB)
ts = [threading.Thread(target=lib.ncc_preflight_a), threading.Thread(target=lib.ncc_preflight_b)]
[t.start() for t in ts]; [t.join() for t in ts]'
        pat='^WARNING: ThreadSanitizer: data race'
    else
        code='import ctypes; ctypes.CDLL(LIB).ncc_preflight_uaf()'
        pat='ERROR: AddressSanitizer: heap-use-after-free'
    fi
    ( export TSAN_OPTIONS="${TSAN_OPTIONS/log_path=$LOGS\/report/log_path=$pf/report}" \
             ASAN_OPTIONS="${ASAN_OPTIONS/log_path=$LOGS\/report/log_path=$pf/report}"
      timeout 300 "$VENV/bin/python" -c "LIB = '$pf/libbug.so'
$code" ) >/dev/null 2>&1 || true
    if cat "$pf"/report.* 2>/dev/null | grep -q "$pat"; then
        say "preflight: a deliberate bug is reported ($pat)"
    else
        die "preflight: the $KIND sanitizer did not report a deliberate bug; see $pf"
    fi
fi

say "pytest ${sel[*]} ${EXTRA[*]}"
start=$SECONDS
status=0
timeout --signal=INT --kill-after=60 "$TIMEOUT" "$VENV/bin/python" -m pytest -p no:cacheprovider \
    "${sel[@]}" "${skip[@]}" "${EXTRA[@]}" || status=$?
elapsed=$(( SECONDS - start ))

# ------------------------------------------------------------------ verdict
shopt -s nullglob
reports=("$LOGS"/report.*)
shopt -u nullglob
if (( ${#reports[@]} )); then
    n_tsan=$(cat "${reports[@]}" | grep -c '^WARNING: ThreadSanitizer' || true)
    n_asan=$(cat "${reports[@]}" | grep -c '^==[0-9]*==ERROR: AddressSanitizer' || true)
    n_ubsan=$(cat "${reports[@]}" | grep -c 'runtime error:' || true)
    say "sanitizer reports: $n_tsan TSAN, $n_asan ASAN, $n_ubsan UBSan in ${#reports[@]} file(s) under $LOGS:"
    for r in "${reports[@]}"; do echo "----- $r" >&2; head -c 200000 "$r" >&2; done
    if (( n_tsan + n_asan + n_ubsan )) && (( status == 0 )); then status=1; fi
fi
say "pytest took ${elapsed} s; exit status $status"
exit "$status"
