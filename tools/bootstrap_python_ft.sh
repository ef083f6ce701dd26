#!/usr/bin/env bash
# bootstrap_python_ft.sh [VERSION]        find or build free-threaded CPython VERSION
# bootstrap_python_ft.sh --source VERSION  print VERSION's verified source tarball
# bootstrap_python_ft.sh --fetch-only      the same as --source 3.13 (older name)
#
# VERSION is 3.14 (the default: the primary interpreter), 3.15 or 3.13.  The
# interpreter's path is printed on the last line of stdout; progress goes to stderr.
#
# Search order:
#   1. $PYTHON_FT_314 / $PYTHON_FT_315 / $PYTHON_FT_313 (the override for VERSION);
#   2. $PYTHON_FT, when it is a free-threaded CPython of VERSION (whatever version
#      PYTHON_FT is, it fills that version's slot);
#   3. python3.14t / python3.15t / python3.13t on PATH;
#   4. a cached build: $CACHE/python3.14t/bin/python3.14t (etc.), where $CACHE is
#      $NOGIL_COLLECTIONS_CACHE or ~/.cache/nogil-collections.
# Otherwise it builds one, once per machine, into that cache prefix:
#   3.14, 3.15  from the release tarball in the folder $NOGIL_COLLECTIONS_TARBALLS
#               (the Makefile sets it from its CPYTHON_TARBALLS, default
#               ../shared/cpython; there is no other default).  The tarball's sha256
#               is checked FIRST against tools/cpython-sources.sha256 (pinned in the
#               repository): a missing or altered tarball stops with an error naming
#               the file.  The extracted tree is kept as $CACHE/src/cpython-X.Y.Z
#               (the reference sources of docs/design.md).
#   3.13        from Debian's `python3.13` source package, fetched with
#               `apt-get source` through a private apt configuration (the machine's
#               own apt state is never touched; the mirror is read from the
#               machine's own apt sources; no host name is written anywhere here).
#
# NOGIL_COLLECTIONS_NO_BUILD=1: never build; what is not found is not available.
#
# Exit status: 0 found or built (path on the last line); 3 VERSION cannot be had
# here (no override, nothing on PATH or in the cache, and no source to build
# from: the message says how to provide it); 1 an error (an override that is not
# a free-threaded VERSION, a missing or altered tarball, a failed build).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE_ROOT="${NOGIL_COLLECTIONS_CACHE:-$HOME/.cache/nogil-collections}"
SRC_DIR="$CACHE_ROOT/src"
PINNED="$HERE/cpython-sources.sha256"
TARBALLS="${NOGIL_COLLECTIONS_TARBALLS:-}"
# Debian python3.13 versions, preferred first.  Newer sid versions were listed
# but not downloadable when checked.
DEBIAN_313=("3.13.15-1:forky" "3.13.5-2+deb13u5:trixie")

MODE=find
VERSION=3.14
case "${1:-}" in
    "") ;;
    --fetch-only) MODE=source; VERSION=3.13 ;;
    --source) MODE=source; VERSION="${2:-}" ;;
    3.1[345]) VERSION="$1" ;;
    *) echo "usage: $0 [3.14|3.15|3.13] | --source 3.14|3.15|3.13 | --fetch-only" >&2; exit 2 ;;
esac
case "$VERSION" in
    3.13|3.14|3.15) ;;
    *) echo "usage: $0 --source 3.14|3.15|3.13" >&2; exit 2 ;;
esac
TAG="${VERSION/./}"                 # 314
NAME="python${VERSION}t"            # python3.14t
OVERRIDE_VAR="PYTHON_FT_$TAG"       # PYTHON_FT_314
PREFIX="$CACHE_ROOT/$NAME"
CACHED_PY="$PREFIX/bin/$NAME"

say()  { echo "[$NAME] $*" >&2; }
STEP=0; TOTAL_STEPS=0
step() { STEP=$(( STEP + 1 )); echo "[$NAME] step $STEP/$TOTAL_STEPS: $*" >&2; }
die()  { echo "[$NAME] ERROR: $*" >&2; exit 1; }
how_to_provide() {
    echo "[$NAME] To test on $VERSION free-threaded: put $NAME on PATH, or set $OVERRIDE_VAR=/path/to/$NAME," >&2
    if [[ "$VERSION" == 3.13 ]]; then
        echo "[$NAME] or let this script build it from Debian's python3.13 source package (needs apt-get, a C compiler and root for the build dependencies)." >&2
    else
        echo "[$NAME] or name a folder holding $(tarball_name) (sha256 pinned in tools/cpython-sources.sha256):" >&2
        echo "[$NAME]   make test CPYTHON_TARBALLS=/path/to/folder" >&2
    fi
}
unavailable() {
    echo "[$NAME] NOT AVAILABLE: $*" >&2
    how_to_provide
    exit 3
}

# A complete free-threaded CPython of VERSION (not a half-installed prefix:
# venv and ensurepip are installed after the binary).
is_ft_version() {
    "$1" - "$VERSION" <<'EOF' >/dev/null 2>&1
import sys, sysconfig
import ensurepip, venv  # noqa: F401
ok = sysconfig.get_config_var("Py_GIL_DISABLED") and "%d.%d" % sys.version_info[:2] == sys.argv[1]
sys.exit(0 if ok else 1)
EOF
}
version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo "?"; }

# ------------------------------------------------------------------ tarballs (3.14, 3.15)
tarball_name() { awk -v v="Python-$VERSION." 'index($2, v) == 1 { print $2; exit }' "$PINNED"; }
pinned_sha()   { awk -v f="$1" '$2 == f { print $1; exit }' "$PINNED"; }

# Print the verified tarball's path; exit 3 when no tarball folder was named.
verified_tarball() {
    local name want got path
    name="$(tarball_name)"
    [[ -n "$name" ]] || die "no tarball for $VERSION pinned in $PINNED"
    [[ -n "$TARBALLS" ]] || unavailable "no CPython source tarball folder was named (CPYTHON_TARBALLS for make, NOGIL_COLLECTIONS_TARBALLS for this script)"
    [[ -d "$TARBALLS" ]] || die "the CPython source tarball folder $TARBALLS does not exist"
    path="$TARBALLS/$name"
    [[ -f "$path" ]] || die "missing source tarball: $path (expected sha256 $(pinned_sha "$name"), pinned in tools/cpython-sources.sha256)"
    want="$(pinned_sha "$name")"
    got="$(sha256sum "$path" | cut -d' ' -f1)"
    [[ "$got" == "$want" ]] || die "altered source tarball: $path has sha256 $got, tools/cpython-sources.sha256 pins $want"
    say "sha256 OK: $path"
    echo "$path"
}

# ------------------------------------------------------------------ Debian (3.13)
APT_DIR="$CACHE_ROOT/apt"
# Debian's files (.dsc, .orig.tar.xz, .debian.tar.xz) go to src/debian-3.13/;
# older bootstraps left them in src/ itself, which is still looked at.
DEBIAN_DIR="$SRC_DIR/debian-3.13"
debian_cached() { { compgen -G "$DEBIAN_DIR/python3.13_*.orig.tar.*" || compgen -G "$SRC_DIR/python3.13_*.orig.tar.*"; } | head -n1 || true; }

# Download Debian's python3.13 source package into $DEBIAN_DIR and print the
# upstream tarball's path.  Exit 3 when apt cannot be used here.
debian_fetch() {
    local mirror="" f got="" ver cand orig
    command -v apt-get >/dev/null || unavailable "apt-get not found: cannot fetch Debian's python3.13 source package"
    # deb822 .sources files: the first URIs line whose stanza is not a security suite.
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        mirror="$(awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 !~ /security/ && u ~ /debian\/?$/) {print u; exit} }' "$f")"
        [[ -n "$mirror" ]] && break
    done
    if [[ -z "$mirror" && -f /etc/apt/sources.list ]]; then
        mirror="$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
    fi
    [[ -n "$mirror" ]] || unavailable "could not find a Debian mirror in /etc/apt/sources.list{,.d/}"
    mirror="${mirror%/}"
    say "mirror taken from apt sources"
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial" "$APT_DIR/etc/sources.list.d" "$APT_DIR/etc/preferences.d"
    cat > "$APT_DIR/etc/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror forky main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main
SRC
    local apt_opts=(
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
    apt-get "${apt_opts[@]}" update -qq >&2 || unavailable "apt-get update on the private configuration failed"
    # Only Debian's python3.13 files: $SRC_DIR also holds the extracted 3.14/3.15 trees.
    mkdir -p "$DEBIAN_DIR"
    rm -f "$DEBIAN_DIR"/python3.13_*
    for cand in "${DEBIAN_313[@]}"; do
        ver="${cand%%:*}"
        say "trying python3.13=$ver (${cand##*:})"
        if (cd "$DEBIAN_DIR" && apt-get "${apt_opts[@]}" source --download-only -qq "python3.13=$ver" >&2); then
            got="$ver"; break
        fi
    done
    [[ -n "$got" ]] || unavailable "could not download Debian's python3.13 source ($(printf '%s ' "${DEBIAN_313[@]}"))"
    orig="$(debian_cached)"
    say "downloaded python3.13 $got"
    echo "$orig"
}

# ------------------------------------------------------------------ --source
if [[ "$MODE" == source ]]; then
    if [[ "$VERSION" == 3.13 ]]; then
        orig="$(debian_cached)"
        if [[ -n "$orig" ]]; then say "using cached source $orig"; echo "$orig"; exit 0; fi
        say "no cached python3.13 source tarball; downloading it"
        debian_fetch
    else
        verified_tarball
    fi
    exit 0
fi

# ------------------------------------------------------------------ search
override="${!OVERRIDE_VAR:-}"
if [[ -n "$override" ]]; then
    is_ft_version "$override" || die "$OVERRIDE_VAR=$override is not a free-threaded CPython $VERSION (it is $(version_of "$override"))"
    say "using \$$OVERRIDE_VAR=$override"; echo "$override"; exit 0
fi
if [[ -n "${PYTHON_FT:-}" ]]; then
    "$PYTHON_FT" -c 'import sys, sysconfig; sys.exit(0 if sysconfig.get_config_var("Py_GIL_DISABLED") and sys.version_info >= (3, 13) else 1)' 2>/dev/null \
        || die "PYTHON_FT=$PYTHON_FT is not a free-threaded CPython >= 3.13"
    if is_ft_version "$PYTHON_FT"; then
        say "using \$PYTHON_FT=$PYTHON_FT"; echo "$PYTHON_FT"; exit 0
    fi
fi
if p="$(command -v "$NAME")" && is_ft_version "$p"; then
    say "using $p from PATH"; echo "$p"; exit 0
fi
if [[ -x "$CACHED_PY" ]] && is_ft_version "$CACHED_PY"; then
    say "using cached build $CACHED_PY"; echo "$CACHED_PY"; exit 0
fi

# ------------------------------------------------------------------ build
if [[ "${NOGIL_COLLECTIONS_NO_BUILD:-0}" == 1 ]]; then
    unavailable "not found (no $OVERRIDE_VAR or PYTHON_FT of that version, no $NAME on PATH, no $CACHED_PY), and NOGIL_COLLECTIONS_NO_BUILD=1 forbids building it"
fi
if [[ "$VERSION" != 3.13 && -z "$TARBALLS" ]]; then
    unavailable "not found (no $OVERRIDE_VAR or PYTHON_FT of that version, no $NAME on PATH, no $CACHED_PY), and no CPython source tarball folder was named to build it from"
fi
# One build per version at a time: a second `make test` waits, then finds it.
mkdir -p "$CACHE_ROOT"
exec 9>"$CACHE_ROOT/build-$NAME.lock"
if ! flock -n 9; then
    say "another process is building $NAME; waiting for it"
    flock 9
    if [[ -x "$CACHED_PY" ]] && is_ft_version "$CACHED_PY"; then
        say "using cached build $CACHED_PY"; echo "$CACHED_PY"; exit 0
    fi
fi

if [[ "$VERSION" == 3.13 ]]; then
    TOTAL_STEPS=5
    say "no free-threaded CPython 3.13 found; building it from Debian's python3.13 source package (a few minutes, once per machine)"
else
    TOTAL_STEPS=5
    say "no free-threaded CPython $VERSION found; building it from $(tarball_name) (about 10 minutes on 2 cores, once per machine)"
    step "verifying the sha256 of $(tarball_name) against tools/cpython-sources.sha256"
    tarball="$(verified_tarball)"
fi

step "checking tools (C compiler, make, build dependencies)"
command -v cc >/dev/null || command -v gcc >/dev/null || unavailable "no C compiler (cc/gcc) found"
command -v make >/dev/null || unavailable "make not found"
missing=()
if command -v dpkg >/dev/null; then
    for pkg in libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev uuid-dev libncurses-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
fi
if (( ${#missing[@]} )); then
    say "installing build dependencies: ${missing[*]}"
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 \
            || unavailable "could not install build dependencies: ${missing[*]}"
    else
        unavailable "missing build dependencies (${missing[*]}); install them or run as root"
    fi
fi

if [[ "$VERSION" == 3.13 ]]; then
    step "fetching Debian's python3.13 source package through a private apt configuration"
    tarball="$(debian_cached)"
    if [[ -n "$tarball" ]]; then say "using cached source $tarball"; else tarball="$(debian_fetch)"; fi
fi

BUILD_DIR="$CACHE_ROOT/build-$NAME"
BUILD_LOG="$CACHE_ROOT/build-$NAME.log"
step "unpacking $(basename "$tarball") into $BUILD_DIR"
rm -rf "$BUILD_DIR"; mkdir -p "$BUILD_DIR"
tar -xf "$tarball" -C "$BUILD_DIR" --strip-components=1
say "full log: $BUILD_LOG"

step "configuring and compiling with --disable-gil (make -j$(nproc))"
start=$SECONDS
(
    cd "$BUILD_DIR"
    ./configure --disable-gil --prefix="$PREFIX" --with-ensurepip=install >"$BUILD_LOG" 2>&1
    make -j"$(nproc)" >>"$BUILD_LOG" 2>&1
) || { tail -n 30 "$BUILD_LOG" >&2; die "CPython $VERSION build failed (see $BUILD_LOG)"; }

step "installing into $PREFIX"
rm -rf "$PREFIX"
(cd "$BUILD_DIR" && make install >>"$BUILD_LOG" 2>&1) || { tail -n 30 "$BUILD_LOG" >&2; die "make install failed (see $BUILD_LOG)"; }
is_ft_version "$CACHED_PY" || die "the build at $CACHED_PY is not a complete free-threaded CPython $VERSION"

# Keep the upstream tree as the reference sources (docs/design.md cites them);
# Debian's 3.13 tarball itself stays in $DEBIAN_DIR for that.
tree="$(basename "$tarball")"; tree="$SRC_DIR/cpython-${tree#Python-}"; tree="${tree%.tar.*}"
if [[ "$VERSION" != 3.13 && ! -d "$tree" ]]; then
    (cd "$BUILD_DIR" && make clean >/dev/null 2>&1) || true
    mkdir -p "$SRC_DIR"; mv "$BUILD_DIR" "$tree"
    say "source tree kept at $tree"
else
    rm -rf "$BUILD_DIR"
fi
say "built in $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s: $("$CACHED_PY" -VV)"
echo "$CACHED_PY"
