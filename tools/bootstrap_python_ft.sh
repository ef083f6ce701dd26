#!/usr/bin/env bash
# Find or build a free-threaded CPython and print its path on the last line of stdout.
#
# Search order (issue #2):
#   1. $PYTHON_FT
#   2. python3.14t or python3.13t on PATH
#   3. a cached build under ~/.cache/nogil-collections/
# Otherwise build CPython 3.13 with --disable-gil from Debian's source package
# `python3.13`, fetched with `apt-get source` through a private apt configuration
# (the machine's own apt state is never touched). The mirror is read from the
# machine's own apt sources; no host name is written anywhere in this repository.
#
# `bootstrap_python_ft.sh --fetch-only` skips the search and the build: it makes
# sure the upstream source tarball is in the cache (downloading it if needed)
# and prints its path instead (used by tools/build_sanitized_python.sh).
set -euo pipefail

CACHE_ROOT="${NOGIL_COLLECTIONS_CACHE:-$HOME/.cache/nogil-collections}"
PREFIX="$CACHE_ROOT/python3.13t"
CACHED_PY="$PREFIX/bin/python3.13t"
# Preferred first. Newer sid versions were listed but not downloadable when checked.
CANDIDATES=("3.13.15-1:forky" "3.13.5-2+deb13u5:trixie")
SRC_DIR="$CACHE_ROOT/src"
TOTAL_STEPS=6
FETCH_ONLY=0
case "${1:-}" in
    "") ;;
    --fetch-only) FETCH_ONLY=1; TOTAL_STEPS=3 ;;
    *) echo "usage: $0 [--fetch-only]" >&2; exit 2 ;;
esac

say()  { echo "[python-ft] $*" >&2; }
step() { echo "[python-ft] step $1/$TOTAL_STEPS: $2" >&2; }
die()  {
    echo "[python-ft] ERROR: $*" >&2
    echo "[python-ft] Alternative: install a free-threaded CPython (3.13t or 3.14t) yourself" >&2
    echo "[python-ft] and point PYTHON_FT at it, e.g. PYTHON_FT=/opt/python3.13t/bin/python3.13t make test" >&2
    exit 1
}

is_free_threaded() {
    "$1" -c 'import sys, sysconfig; sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") and sys.version_info >= (3, 13) else 1)' 2>/dev/null
}

if (( FETCH_ONLY )); then
    if orig="$(ls "$SRC_DIR"/python3.13_*.orig.tar.* 2>/dev/null | head -n1)" && [[ -n "$orig" ]]; then
        say "using cached source $orig"; echo "$orig"; exit 0
    fi
    say "no cached python3.13 source tarball; downloading it"
elif [[ -n "${PYTHON_FT:-}" ]]; then
    is_free_threaded "$PYTHON_FT" || die "PYTHON_FT=$PYTHON_FT is not a free-threaded CPython >= 3.13"
    say "using \$PYTHON_FT"; echo "$PYTHON_FT"; exit 0
fi
if (( ! FETCH_ONLY )); then
    for name in python3.14t python3.13t; do
        if p="$(command -v "$name")" && is_free_threaded "$p"; then
            say "using $p from PATH"; echo "$p"; exit 0
        fi
    done
    if [[ -x "$CACHED_PY" ]] && is_free_threaded "$CACHED_PY"; then
        say "using cached build $CACHED_PY"; echo "$CACHED_PY"; exit 0
    fi
    say "no free-threaded CPython found; building CPython 3.13 with --disable-gil (takes a few minutes, once per machine)"
fi

step 1 "checking tools (apt-get, C compiler, make)"
command -v apt-get >/dev/null || die "apt-get not found: cannot fetch Debian's python3.13 source package"
if (( ! FETCH_ONLY )); then
command -v cc >/dev/null || command -v gcc >/dev/null || die "no C compiler (cc/gcc) found"
command -v make >/dev/null || die "make not found"
missing=()
for pkg in libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev uuid-dev libncurses-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
    say "installing build dependencies: ${missing[*]}"
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 \
            || die "could not install build dependencies: ${missing[*]}"
    else
        die "missing build dependencies (${missing[*]}); install them or run as root"
    fi
fi
fi  # ! FETCH_ONLY

step 2 "reading the Debian mirror from this machine's apt sources"
mirror=""
# deb822 .sources files: the first URIs line whose stanza is not a security suite.
for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    mirror="$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 !~ /security/ && u ~ /debian\/?$/) {print u; exit} }' "$f")"
    [[ -n "$mirror" ]] && break
done
if [[ -z "$mirror" && -f /etc/apt/sources.list ]]; then
    mirror="$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
fi
[[ -n "$mirror" ]] || die "could not find a Debian mirror in /etc/apt/sources.list{,.d/}"
mirror="${mirror%/}"
say "mirror taken from apt sources"

step 3 "fetching Debian's python3.13 source package through a private apt configuration"
APT_DIR="$CACHE_ROOT/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial" "$APT_DIR/etc/sources.list.d" "$APT_DIR/etc/preferences.d"
cat > "$APT_DIR/etc/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror forky main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main
SRC
APT_OPTS=(
    -o "Dir::State::Lists=$APT_DIR/lists"
    -o "Dir::Cache=$APT_DIR"
    -o "Dir::Cache::archives=$APT_DIR/archives"
    -o "Dir::Etc::SourceList=$APT_DIR/etc/sources.list"
    -o "Dir::Etc::SourceParts=$APT_DIR/etc/sources.list.d"
    -o "Dir::Etc::Preferences=$APT_DIR/etc/preferences"
    -o "Dir::Etc::PreferencesParts=$APT_DIR/etc/preferences.d"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
)
apt-get "${APT_OPTS[@]}" update -qq >&2 || die "apt-get update on the private configuration failed"
rm -rf "$SRC_DIR"; mkdir -p "$SRC_DIR"
got=""
for cand in "${CANDIDATES[@]}"; do
    ver="${cand%%:*}"
    say "trying python3.13=$ver (${cand##*:})"
    if (cd "$SRC_DIR" && apt-get "${APT_OPTS[@]}" source --download-only -qq "python3.13=$ver" >&2); then
        got="$ver"; break
    fi
done
[[ -n "$got" ]] || die "could not download python3.13 source ($(printf '%s ' "${CANDIDATES[@]}"))"
orig="$(ls "$SRC_DIR"/python3.13_*.orig.tar.* | head -n1)"
say "downloaded python3.13 $got"
if (( FETCH_ONLY )); then echo "$orig"; exit 0; fi

step 4 "unpacking the upstream sources"
mkdir -p "$SRC_DIR/cpython"
tar -xf "$orig" -C "$SRC_DIR/cpython" --strip-components=1

step 5 "configuring and compiling with --disable-gil (make -j$(nproc))"
BUILD_LOG="$CACHE_ROOT/build.log"
say "full log: $BUILD_LOG"
(
    cd "$SRC_DIR/cpython"
    ./configure --disable-gil --prefix="$PREFIX" --with-ensurepip=install >"$BUILD_LOG" 2>&1
    make -j"$(nproc)" >>"$BUILD_LOG" 2>&1
) || { tail -n 30 "$BUILD_LOG" >&2; die "CPython build failed (see $BUILD_LOG)"; }

step 6 "installing into $PREFIX"
(cd "$SRC_DIR/cpython" && make install >>"$BUILD_LOG" 2>&1) || { tail -n 30 "$BUILD_LOG" >&2; die "make install failed"; }
is_free_threaded "$CACHED_PY" || die "the build at $CACHED_PY is not free-threaded"
rm -rf "$SRC_DIR/cpython"   # keep the downloaded tarballs (reference C sources), drop the build tree
say "done: $("$CACHED_PY" -VV)"
echo "$CACHED_PY"
