# Shared helpers for benchmarks. Figures are ratios against a peer run in
# the same process on the same data.
set -eu
TOP=${FERRY_TOP:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${FERRY_BUILD_DIR:-$TOP/build}
export PATH="$BUILD:$PATH"
B=$(mktemp -d "${FERRY_BENCH_TMP:-/var/tmp}/ferry-bench.XXXXXX")
BENCH_PIDS=""
trap 'for p in $BENCH_PIDS; do kill $p 2>/dev/null || true; done; rm -rf "$B"' EXIT
# serve keeps its index in a private cache folder: one of its own per run
export XDG_CACHE_HOME="$B/xdg-cache"
# bundles carry no installer (docs/portable.md) unless a bench asks
export FERRY_INSTALLER=none

# now: seconds with nanoseconds
now() { date +%s.%N; }
# secs_of CMD...: wall seconds of a command (output discarded)
secs_of() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now); echo "$t1 - $t0" | bc -l; }
# peak_rss_kb CMD...: max RSS in KiB (GNU time)
peak_rss_kb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n 1; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
fmt() { printf '%.3f' "$1"; }

# make_layout DIR TAG N_LAYERS MB_EACH [SEED]: an OCI image of random layers,
# made by hand (blobs named by sha256) so any size is quick to produce.
make_layout() {
	local dir=$1 tag=$2 n=$3 mb=$4 seed=${5:-0}
	mkdir -p "$dir/blobs/sha256"
	echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
	local layers="" diffs="" i
	for i in $(seq 1 "$n"); do
		local f="$dir/blobs/sha256/tmp"
		openssl enc -aes-128-ctr -pass "pass:$seed-$tag-$i" -nosalt -pbkdf2 </dev/zero 2>/dev/null |
			head -c "$((mb * 1024 * 1024))" >"$f"
		local h
		h=$(sha256sum "$f" | cut -d' ' -f1)
		mv "$f" "$dir/blobs/sha256/$h"
		layers="$layers${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$h\",\"size\":$((mb * 1024 * 1024))}"
		diffs="$diffs${diffs:+,}\"sha256:$h\""
	done
	local cfg="{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diffs]},\"config\":{}}"
	local ch ms mh
	ch=$(printf '%s' "$cfg" | sha256sum | cut -d' ' -f1)
	printf '%s' "$cfg" >"$dir/blobs/sha256/$ch"
	ms="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$ch\",\"size\":${#cfg}},\"layers\":[$layers]}"
	mh=$(printf '%s' "$ms" | sha256sum | cut -d' ' -f1)
	printf '%s' "$ms" >"$dir/blobs/sha256/$mh"
	echo "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$mh\",\"size\":${#ms},\"annotations\":{\"org.opencontainers.image.ref.name\":\"$tag\"}}]}" >"$dir/index.json"
}
