#!/usr/bin/env bash
# test_all.sh test|env -- `make test` / `make env` over every interpreter.
#
# For 3.14t (the primary), 3.15t, 3.13t, in that order, then the GIL python3
# (3.11 on the project's machines): find or build the interpreter
# (tools/bootstrap_python_ft.sh VERSION), then `make test-314t` (or env-314t,
# ...).  A free-threaded version that cannot be had here (exit status 3 of the
# bootstrap: nothing found, nothing to build it from) is skipped with a note on
# how to provide it.  Every interpreter runs even after another failed; the run
# fails at the end if any test run failed, any bootstrap failed with an error,
# or no free-threaded interpreter at all could be had.
#
# NOGIL_COLLECTIONS_REQUIRE_FT=3.13,3.14,3.15 (set by .ci/run) turns a skip of
# those versions into a failure: CI, which has the tarball folder, must test all.
# The last lines are a summary, one per interpreter.
set -uo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"
case "$what" in test|env) ;; *) echo "usage: $0 test|env" >&2; exit 2 ;; esac
make_cmd="${MAKE:-make}"
require=",${NOGIL_COLLECTIONS_REQUIRE_FT:-},"
logs=build/test-logs
mkdir -p "$logs"

status=0
ft_had=0
summary=()
# A pytest summary line, e.g. "965 passed, 13 skipped in 290.12s (0:04:50)".
pytest_line() { grep -aE '^(=+ )?[0-9]+ (passed|failed|error|errors|skipped|deselected|xfailed|xpassed|warnings?)\b.* in [0-9.]+s.*$' "$1" | tail -n1 | sed -E 's/^=+ //; s/ =+$//'; }

run_one() {  # run_one LABEL TARGET
    local label="$1" target="$2" log="$logs/$2.log" rc
    "$make_cmd" --no-print-directory "$target" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    local detail=""
    [[ "$what" == test ]] && detail="$(pytest_line "$log")"
    if (( rc == 0 )); then
        summary+=("$(printf '%-11s %-4s %s' "$label" "$what" "passed${detail:+: $detail}")")
    else
        summary+=("$(printf '%-11s %-4s %s' "$label" "$what" "FAILED (exit $rc)${detail:+: $detail}; log: $log")")
        status=1
    fi
}

for v in 3.14 3.15 3.13; do
    tag="${v/./}t"
    echo "[$what] ---- free-threaded $v: finding or building the interpreter"
    py="$(bash tools/bootstrap_python_ft.sh "$v" | tail -n1)"
    rc=${PIPESTATUS[0]}
    case "$rc" in
        0)
            ft_had=1
            run_one "$("$py" -c 'import sys; print(sys.version.split()[0])')t" "$what-$tag"
            ;;
        3)
            if [[ "$require" == *",$v,"* ]]; then
                summary+=("$(printf '%-11s %-4s %s' "${v}t" "$what" "FAILED: skipped, but NOGIL_COLLECTIONS_REQUIRE_FT requires it (how to provide it: above)")")
                status=1
            else
                summary+=("$(printf '%-11s %-4s %s' "${v}t" "$what" "skipped: not available here (how to provide it: above, or docs/development.md)")")
            fi
            ;;
        *)
            summary+=("$(printf '%-11s %-4s %s' "${v}t" "$what" "FAILED: could not get the interpreter (error above)")")
            status=1
            ;;
    esac
done

gil_label="$("${NOGIL_COLLECTIONS_GIL_PYTHON:-python3}" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo python3)"
run_one "$gil_label" "$what-gil"

if (( ! ft_had )); then
    summary+=("no free-threaded interpreter at all could be had: nothing tested the lock-free code (see docs/development.md, \"The free-threaded interpreters\")")
    status=1
fi
echo
echo "==== make $what: summary ===="
printf '%s\n' "${summary[@]}"
exit "$status"
