#!/bin/bash
# Volumes (docs/bundle-format.md "Volumes"): the same 1 GiB bundle as one
# file and as parts of FERRY_BENCH_PART (default 256M, so that part
# boundaries fall inside 128 MiB layers), same run, same machine:
#   1. building: wall time, peak RSS (GNU time) and bytes read and written
#      (rchar/wchar of /proc/PID/io, which add up the reaped children) of
#      the build with --volume-size vs without, each from an empty cache;
#      "no extra pass" means no more bytes read or written than the
#      single-file build;
#   2. ferry-install verify from the parts vs from the one file;
#   3. serve: time to the first manifest GET from the parts (index reused,
#      as for every start after the first), and throughput of 8 clients
#      fetching every blob (bench/serve.sh's method) from parts vs one file.
# Goals (issue 16): build RSS no higher than the single-file build and no
# extra pass; verify and serve throughput >= 0.95x; first byte < 0.1 s.
. "$(dirname "$0")/lib.sh"
for t in curl python3 bc; do
	command -v $t >/dev/null || { echo "volumes: $t is not installed; skipped"; exit 0; }
done
[ -x /usr/bin/time ] || { echo "volumes: GNU time is not installed; skipped"; exit 0; }
PART=${FERRY_BENCH_PART:-256M}
CLIENTS=${FERRY_BENCH_CLIENTS:-8}
RUNS=${FERRY_BENCH_RUNS:-5}
echo "volumes: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (a shared machine: figures are noisy)"

passmiss() { [ "$(echo "$1" | bc -l)" = 1 ] && echo PASS || echo MISS; }
best() { echo "if ($1 < $2) $1 else $2" | bc -l; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_200() {
	local i
	for i in $(seq 20000); do
		curl -sf -o /dev/null -H "Accept: application/vnd.oci.image.manifest.v1+json" "$1" && return 0
		sleep 0.005
	done
	return 1
}

# --- the image: 8 layers of 128 MiB (1 GiB)
make_layout "$B/img" v1 8 128 volumes
cat >"$B/spec.yaml" <<SPEC
apiVersion: ferry/v1
kind: Bundle
metadata: {name: bench-volumes, version: "1"}
images:
  - ref: bench.local/vol/big:1
    from: oci-layout:./img:v1
SPEC
ferry-build keygen -o "$B/k" >/dev/null
# the same bundle from every build (bundle.json's created time)
export SOURCE_DATE_EPOCH=1700000000

# --- 1. build: one file vs parts, each from an empty cache, alternating
# build_stats OUT [ARGS]: prints "wall_s rss_kib rchar wchar"
build_stats() {
	local out=$1
	shift
	rm -rf "$B/cache" "$B/$out".*
	rm -f "$B/$out"
	sync
	/usr/bin/time -f '%e %M' -o "$B/time.out" bash -c '
		ferry-build build "$0/spec.yaml" -o "$0/$1" --key "$0/k.key" --cache "$0/cache" --quiet "${@:2}" >/dev/null || exit 1
		awk "/^(rchar|wchar)/ {printf \"%s \", \$2}" /proc/$$/io' "$B" "$out" "$@" >"$B/io.out" ||
		{ echo "volumes: build of $out failed" >&2; return 1; }
	echo "$(cat "$B/time.out") $(cat "$B/io.out")"
}
t1=999 t2=999 r1=0 r2=0
for _ in 1 2; do
	read -r t r rc wc < <(build_stats one.tar) || exit 1
	t1=$(best "$t" "$t1")
	[ "$r" -gt "$r1" ] && r1=$r
	io1=$((rc + wc)) w1=$wc
	read -r t r rc wc < <(build_stats v.tar --volume-size "$PART") || exit 1
	t2=$(best "$t" "$t2")
	[ "$r" -gt "$r2" ] && r2=$r
	io2=$((rc + wc)) w2=$wc
done
rm -rf "$B/cache" "$B/img"
size=$(stat -c %s "$B/one.tar")
nparts=$(ls "$B"/v.tar.[0-9][0-9][0-9] | wc -l)
cat "$B"/v.tar.[0-9][0-9][0-9] | cmp -s - "$B/one.tar" || { echo "volumes: the parts joined are not the single file"; exit 1; }
echo "volumes: bundle $((size / 1048576)) MiB; parts of $PART: $nparts"
printf 'volumes: build, best of 2 from an empty cache: one file %.2fs, parts %.2fs (%sx)\n' "$t1" "$t2" "$(ratio "$t2" "$t1")"
printf 'volumes: build bytes read+written: one file %d MiB (written %d MiB), parts %d MiB (written %d MiB): %sx; %s (goal: no extra pass, <= 1.02x)\n' \
	$((io1 / 1048576)) $((w1 / 1048576)) $((io2 / 1048576)) $((w2 / 1048576)) "$(ratio "$io2" "$io1")" \
	"$(passmiss "$io2 <= $io1 * 1.02")"
echo "volumes: build peak RSS: one file $((r1 / 1024)) MiB ($r1 KiB), parts $((r2 / 1024)) MiB ($r2 KiB); $(passmiss "$r2 <= $r1 * 1.05") (goal: no higher than the single-file build, 5% noise allowed)"

# --- 2. verify: parts vs one file, warm page cache, alternating
cat "$B/one.tar" "$B"/v.tar.[0-9][0-9][0-9] >/dev/null
ferry-install verify "$B/v.tar" --pubkey "$B/k.pub" >/dev/null || { echo "volumes: verify of the parts failed"; exit 1; }
v1=999 v2=999
for _ in 1 2 3 4 5; do
	v1=$(best "$(secs_of ferry-install verify "$B/one.tar" --pubkey "$B/k.pub")" "$v1")
	v2=$(best "$(secs_of ferry-install verify "$B/v.tar.000" --pubkey "$B/k.pub")" "$v2")
done
printf 'volumes: verify, best of 5: one file %.2fs (%.0f MiB/s), parts %.2fs (%.0f MiB/s)\n' \
	"$v1" "$(echo "$size / 1048576 / $v1" | bc -l)" "$v2" "$(echo "$size / 1048576 / $v2" | bc -l)"
echo "volumes: verify speed parts/one file = $(ratio "$v1" "$v2")x; $(passmiss "$v1 / $v2 >= 0.95") (goal >= 0.95x)"

# --- 3. serve: first byte from the parts, then 8 clients from each
M=/v2/bench.local/vol/big/manifests/1
start_serve() { # BUNDLE ERRFILE [PORT]: starts serve, sets SPID and SURL
	local port=${3:-$(free_port)}
	ferry-install serve "$1" --pubkey "$B/k.pub" --listen 127.0.0.1:$port >/dev/null 2>"$2" &
	SPID=$!
	BENCH_PIDS="$BENCH_PIDS $SPID"
	SURL=http://127.0.0.1:$port
}
# ttfb BUNDLE ERRFILE: seconds from serve start to the first manifest GET
ttfb() {
	local t0 port
	port=$(free_port) # before the clock starts: python3 takes a while
	t0=$(now)
	start_serve "$1" "$2" "$port"
	wait_200 "$SURL$M" || { cat "$2" >&2; echo "volumes: serve of $1 never answered" >&2; return 1; }
	echo "$(now) - $t0" | bc -l
	kill $SPID; wait $SPID || true
}
first=$(ttfb "$B/v.tar.000" "$B/first.err") || exit 1 # verifies and indexes
ttfb "$B/one.tar" "$B/first1.err" >/dev/null || exit 1
for _ in $(seq "$RUNS"); do
	ttfb "$B/one.tar" "$B/o.err" >>"$B/one.ttfb" || exit 1
	ttfb "$B/v.tar.000" "$B/p.err" >>"$B/parts.ttfb" || exit 1
done
grep -q "index reused" "$B/p.err" || { cat "$B/p.err"; echo "volumes: the index was not reused"; exit 1; }
ttfb_p=$(median <"$B/parts.ttfb")
ttfb_1=$(median <"$B/one.ttfb")
printf 'volumes: serve, time to first manifest GET (medians of %d, index reused; curl polls every 5 ms): one file %.3fs, parts %.3fs; parts %s (goal < 0.1 s)\n' \
	"$RUNS" "$ttfb_1" "$ttfb_p" "$(passmiss "$ttfb_p < 0.1")"
printf 'volumes: serve, first start from the parts (full verify and index): %.2fs\n' "$first"

python3 - "$B/one.tar" >"$B/blobs" <<'EOF'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
for e in json.load(t.extractfile("index.json"))["manifests"]:
    repo = e["annotations"]["io.containerd.image.name"].rsplit(":", 1)[0]
    man = json.load(t.extractfile("blobs/sha256/" + e["digest"][7:]))
    for d in [man["config"]] + man["layers"]:
        print(repo, d["digest"], d["size"])
EOF
per_client=$(awk '{s += $3} END {printf "%d", s}' "$B/blobs")
fetch_all() { # BASE_URL: CLIENTS curls, each fetching every blob (own order); prints wall seconds
	local c pids="" t0 t1
	for c in $(seq "$CLIENTS"); do
		shuf --random-source=<(yes $c) "$B/blobs" |
			awk -v u="$1" '{print "url = \"" u "/v2/" $1 "/blobs/" $2 "\"\noutput = \"/dev/null\""}' >"$B/curl.$c"
	done
	t0=$(now)
	for c in $(seq "$CLIENTS"); do
		curl -s -K "$B/curl.$c" -w '%{http_code} %{size_download}\n' >"$B/codes.$c" &
		pids="$pids $!"
	done
	for c in $pids; do wait $c || { echo "volumes: a client failed" >&2; return 1; }; done
	t1=$(now)
	if grep -hv '^200 ' "$B"/codes.* >&2; then
		echo "volumes: some fetches failed (above)" >&2
		return 1
	fi
	local got
	got=$(cat "$B"/codes.* | awk '{s += $2} END {printf "%.0f", s}')
	[ "$got" = $((CLIENTS * per_client)) ] ||
		{ echo "volumes: short downloads: $got bytes, not $((CLIENTS * per_client))" >&2; head -3 "$B/codes.1" >&2; return 1; }
	echo "$t1 - $t0" | bc -l
}
start_serve "$B/one.tar" "$B/o.err"
opid=$SPID OURL=$SURL
wait_200 "$OURL$M" || { cat "$B/o.err"; exit 1; }
start_serve "$B/v.tar" "$B/p.err"
ppid=$SPID PURL=$SURL
wait_200 "$PURL$M" || { cat "$B/p.err"; exit 1; }
fetch_all "$OURL" >/dev/null || exit 1 # warm both
fetch_all "$PURL" >/dev/null || exit 1
# the servers' CPU (utime + stime, clock ticks) over the timed runs: less
# noisy than wall time on a shared machine; and the parts server's peak
# anonymous memory (RssAnon, sampled every 50 ms: VmHWM also counts the
# file pages a spanning blob's response maps, docs/serve.md)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
(
	m=0
	while kill -0 "$ppid" 2>/dev/null; do
		a=$(awk '/^RssAnon/ {print $2}' "/proc/$ppid/status" 2>/dev/null || echo 0)
		[ "${a:-0}" -gt "$m" ] && m=$a && echo "$m" >"$B/anon.max"
		sleep 0.05
	done
) &
BENCH_PIDS="$BENCH_PIDS $!"
s1=999999 s2=999999 c1=0 c2=0
for _ in 1 2 3; do
	x=$(cpu_ticks "$opid")
	s1=$(best "$(fetch_all "$OURL")" "$s1") || exit 1
	c1=$((c1 + $(cpu_ticks "$opid") - x))
	x=$(cpu_ticks "$ppid")
	s2=$(best "$(fetch_all "$PURL")" "$s2") || exit 1
	c2=$((c2 + $(cpu_ticks "$ppid") - x))
done
mibps() { echo "$CLIENTS * $per_client / 1048576 / $1" | bc -l; }
printf 'volumes: serve, %d clients x %d MiB, best of 3: one file %.2fs (%.0f MiB/s), parts %.2fs (%.0f MiB/s)\n' \
	"$CLIENTS" "$((per_client / 1048576))" "$s1" "$(mibps "$s1")" "$s2" "$(mibps "$s2")"
echo "volumes: serve throughput parts/one file = $(ratio "$s1" "$s2")x; $(passmiss "$s1 / $s2 >= 0.95") (goal >= 0.95x)"
echo "volumes: serve CPU over the 3 timed runs (utime + stime, ticks of 1/$(getconf CLK_TCK) s): one file $c1, parts $c2 ($(ratio "$c2" "$c1")x)"
echo "volumes: serve peak RSS: one file $(($(awk '/^VmHWM/ {print $2}' /proc/$opid/status) / 1024)) MiB, parts $(($(awk '/^VmHWM/ {print $2}' /proc/$ppid/status) / 1024)) MiB (file pages mapped for spanning blobs count; peak anonymous memory of parts: $(($(cat "$B/anon.max" 2>/dev/null || echo 0) / 1024)) MiB)"
kill $opid $ppid 2>/dev/null || true
wait $opid $ppid 2>/dev/null || true
