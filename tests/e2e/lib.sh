# Shared helpers for e2e tests. Source it: . "$(dirname "$0")/lib.sh"
set -eu
TOP=${FERRY_TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${FERRY_BUILD_DIR:-$TOP/build}
export PATH="$BUILD:$PATH"
T=$(mktemp -d /tmp/ferry-e2e.XXXXXX)
FERRY_PIDS=""
cleanup() {
	for p in $FERRY_PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $FERRY_PIDS; do wait "$p" 2>/dev/null || true; done
	rm -rf "$T"
}
trap cleanup EXIT
# Bundles carry no installer unless a test asks (--with-installer): the
# same bundles whether or not `make portable` has run.
export FERRY_INSTALLER=none
# FERRY_INSTALL=PATH: the tests run that ferry-install (e.g. the portable
# build, docs/portable.md) instead of $BUILD's.
if [ -n "${FERRY_INSTALL:-}" ]; then
	mkdir -p "$T/ferry-install-bin"
	ln -s "$(realpath "$FERRY_INSTALL")" "$T/ferry-install-bin/ferry-install"
	export PATH="$T/ferry-install-bin:$PATH"
fi
export XDG_CACHE_HOME="$T/cache"
export SOURCE_DATE_EPOCH=1700000000

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "$*"; exit 77; }

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		echo $((20000 + RANDOM % 20000))
}

# Wait until a TCP port answers (up to ~10 s).
wait_port() {
	for _ in $(seq 100); do
		(exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	fail "port $1 never opened"
}

# expect_fail EXIT_CODE PATTERN cmd...: the command must exit with EXIT_CODE
# and print PATTERN (grep -E) on stderr or stdout.
expect_fail() {
	want=$1 pat=$2; shift 2
	set +e
	out=$("$@" 2>&1); rc=$?
	set -e
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* -- $out"
	echo "$out" | grep -qE -- "$pat" || fail "expected /$pat/ in output of: $* -- $out"
	echo "  refused as expected (exit $rc): $(echo "$out" | tail -n 1)"
}

# make_image LAYOUT TAG FILE...: an OCI image made with umoci holding FILEs.
make_image() {
	layout=$1 tag=$2; shift 2
	[ -d "$layout" ] || umoci init --layout "$layout"
	umoci new --image "$layout:$tag"
	for f in "$@"; do
		umoci insert --rootless --image "$layout:$tag" "$f" "/data/$(basename "$f")" >/dev/null
	done
}
