#!/bin/bash
# ferry-install serve against Debian's docker-registry (distribution 2.x),
# same run, same images, loopback only:
#   1. time to first manifest GET: serve start on a bundle verified once
#      before, vs unpacking the same bundle into docker-registry's storage
#      (a direct kernel copy of every blob, the fastest unpack there is)
#      plus its start-up, measured the same way;
#   2. throughput: 8 parallel clients fetch every blob, from the bundle vs
#      from docker-registry holding the same images pushed with skopeo;
#   3. peak RSS of both servers.
# FERRY_BENCH_GB sets the bundle size (default 2; the issue asks for >= 2).
. "$(dirname "$0")/lib.sh"
for t in docker-registry skopeo curl python3 bc; do
	command -v $t >/dev/null || { echo "serve: $t is not installed; skipped"; exit 0; }
done
GB=${FERRY_BENCH_GB:-2}
CLIENTS=${FERRY_BENCH_CLIENTS:-8}
RUNS=${FERRY_BENCH_RUNS:-5}
IMAGES=4
# layers of 128 MiB, spread over IMAGES images
layers=$(echo "n = $GB * 8 / $IMAGES; if (n < 1) 1 else n" | bc)
layers=${layers%.*}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# wait_200 URL: poll with curl until the URL answers 200 (every ~5 ms)
wait_200() {
	local i
	for i in $(seq 20000); do
		curl -sf -o /dev/null -H "Accept: application/vnd.oci.image.manifest.v1+json" "$1" && return 0
		sleep 0.005
	done
	return 1
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# --- the images and the bundle
spec=$B/spec.yaml
printf 'apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: bench-serve, version: "1"}\nimages:\n' >"$spec"
for i in $(seq $IMAGES); do
	make_layout "$B/img$i" v1 "$layers" 128 "serve$i"
	printf '  - {ref: "bench.local/serve/img%s:1", from: "oci-layout:./img%s:v1"}\n' "$i" "$i" >>"$spec"
done
ferry-build keygen -o "$B/k" >/dev/null
ferry-build build "$spec" -o "$B/b.tar" --key "$B/k.key" --cache "$B/cache" --quiet >/dev/null
rm -rf "$B/cache"
size=$(stat -c %s "$B/b.tar")
echo "serve: bundle $((size / 1048576)) MiB, $IMAGES images of $layers x 128 MiB layers"
M=/v2/bench.local/serve/img1/manifests/1

# --- ferry: the first start verifies and indexes; later starts reuse that
sync # let the build's writes settle before timing anything
cat "$B/b.tar" >/dev/null
port=$(free_port)
t0=$(now)
ferry-install serve "$B/b.tar" --pubkey "$B/k.pub" --listen 127.0.0.1:$port >/dev/null 2>"$B/first.err" &
pid=$!
BENCH_PIDS="$BENCH_PIDS $pid"
wait_200 "http://127.0.0.1:$port$M" || { cat "$B/first.err"; echo "serve: ferry never answered"; exit 1; }
first=$(echo "$(now) - $t0" | bc -l)
kill $pid; wait $pid || true
for r in $(seq $RUNS); do
	port=$(free_port)
	t0=$(now)
	ferry-install serve "$B/b.tar" --pubkey "$B/k.pub" --listen 127.0.0.1:$port >/dev/null 2>"$B/f.err" &
	pid=$!
	BENCH_PIDS="$BENCH_PIDS $pid"
	wait_200 "http://127.0.0.1:$port$M" || { cat "$B/f.err"; exit 1; }
	echo "$(now) - $t0" | bc -l >>"$B/ferry.ttfb"
	sync
	kill $pid; wait $pid || true
done
grep -q "index reused" "$B/f.err" || { cat "$B/f.err"; echo "serve: the index was not reused"; exit 1; }
ferry_ttfb=$(median <"$B/ferry.ttfb")

# --- docker-registry: unpack the bundle into its storage, then start it
unpack() { # BUNDLE ROOT: the registry's filesystem layout, blobs copied in-kernel
	python3 - "$1" "$2" <<'EOF'
import json, os, sys, tarfile
src, root = sys.argv[1], sys.argv[2] + "/docker/registry/v2"
t = tarfile.open(src)
members = {m.name: m for m in t.getmembers()}
fd = os.open(src, os.O_RDONLY)
def blob(hexd):
    m = members["blobs/sha256/" + hexd]
    d = "%s/blobs/sha256/%s/%s" % (root, hexd[:2], hexd)
    if os.path.exists(d + "/data"):
        return
    os.makedirs(d, exist_ok=True)
    out = os.open(d + "/data", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    off, left = m.offset_data, m.size
    while left:
        n = os.copy_file_range(fd, out, left, off)
        off += n; left -= n
    os.close(out)
def link(path, hexd):
    os.makedirs(path, exist_ok=True)
    open(path + "/link", "w").write("sha256:" + hexd)
idx = json.load(t.extractfile("index.json"))
for e in idx["manifests"]:
    name, tag = e["annotations"]["io.containerd.image.name"].rsplit(":", 1)
    r = "%s/repositories/%s" % (root, name)
    mh = e["digest"][7:]
    blob(mh)
    man = json.load(t.extractfile("blobs/sha256/" + mh))
    for d in [man["config"]] + man["layers"]:
        blob(d["digest"][7:])
        link("%s/_layers/sha256/%s" % (r, d["digest"][7:]), d["digest"][7:])
    link("%s/_manifests/revisions/sha256/%s" % (r, mh), mh)
    link("%s/_manifests/tags/%s/current" % (r, tag), mh)
    link("%s/_manifests/tags/%s/index/sha256/%s" % (r, tag, mh), mh)
EOF
}
registry_config() { # ROOT PORT
	cat <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $1}
  cache: {blobdescriptor: inmemory}
  delete: {enabled: false}
http:
  addr: 127.0.0.1:$2
EOF
}
for r in $(seq $RUNS); do
	rm -rf "$B/reg"
	sync
	port=$(free_port)
	registry_config "$B/reg" $port >"$B/reg.yml"
	t0=$(now)
	unpack "$B/b.tar" "$B/reg"
	docker-registry serve "$B/reg.yml" >"$B/reg.log" 2>&1 &
	pid=$!
	BENCH_PIDS="$BENCH_PIDS $pid"
	wait_200 "http://127.0.0.1:$port$M" || { tail "$B/reg.log"; echo "serve: docker-registry never answered"; exit 1; }
	echo "$(now) - $t0" | bc -l >>"$B/reg.ttfb"
	kill $pid; wait $pid 2>/dev/null || true
done
reg_ttfb=$(median <"$B/reg.ttfb")
rm -rf "$B/reg"
printf 'serve: time to first manifest GET: ferry %.3fs (first start, with full verify: %.2fs), unpack + docker-registry %.3fs (medians of %d)\n' \
	"$ferry_ttfb" "$first" "$reg_ttfb" "$RUNS"
echo "serve: time-to-first-byte ratio docker-registry/ferry = $(ratio "$reg_ttfb" "$ferry_ttfb")x (goal: ferry < 1 s and >= 20x)"

# --- throughput: 8 clients, every blob, from each server
python3 - "$B/b.tar" >"$B/blobs" <<'EOF'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
for e in json.load(t.extractfile("index.json"))["manifests"]:
    repo = e["annotations"]["io.containerd.image.name"].rsplit(":", 1)[0]
    man = json.load(t.extractfile("blobs/sha256/" + e["digest"][7:]))
    for d in [man["config"]] + man["layers"]:
        print(repo, d["digest"], d["size"])
EOF
per_client=$(awk '{s += $3} END {printf "%d", s}' "$B/blobs")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
fetch_all() { # BASE_URL SERVER_PID: CLIENTS curls, each fetching every blob (own
	# order); prints wall seconds and the server's CPU seconds
	local c pids="" c0 c1
	for c in $(seq "$CLIENTS"); do
		shuf --random-source=<(yes $c) "$B/blobs" |
			awk -v u="$1" '{print "url = \"" u "/v2/" $1 "/blobs/" $2 "\"\noutput = \"/dev/null\""}' >"$B/curl.$c"
	done
	local t0 t1
	c0=$(cpu_ticks "$2")
	t0=$(now)
	for c in $(seq "$CLIENTS"); do
		curl -s -K "$B/curl.$c" -w '%{http_code} %{url_effective}\n' >"$B/codes.$c" &
		pids="$pids $!"
	done
	for c in $pids; do wait $c || { echo "serve: a client failed" >&2; return 1; }; done
	t1=$(now)
	c1=$(cpu_ticks "$2")
	if grep -hv '^200 ' "$B"/codes.* >&2; then
		echo "serve: some fetches failed (above)" >&2
		return 1
	fi
	echo "$(echo "$t1 - $t0" | bc -l) $(echo "($c1 - $c0) / $(getconf CLK_TCK)" | bc -l)"
}
mibps() { echo "$CLIENTS * $per_client / 1048576 / $1" | bc -l; }

port=$(free_port)
ferry-install serve "$B/b.tar" --pubkey "$B/k.pub" --listen 127.0.0.1:$port >/dev/null 2>"$B/f.err" &
fpid=$!
BENCH_PIDS="$BENCH_PIDS $fpid"
wait_200 "http://127.0.0.1:$port$M"
FERRY_URL=http://127.0.0.1:$port
# docker-registry, with the images pushed by skopeo (from the ferry server)
rport=$(free_port)
registry_config "$B/reg" $rport >"$B/reg.yml"
docker-registry serve "$B/reg.yml" >"$B/reg.log" 2>&1 &
rpid=$!
BENCH_PIDS="$BENCH_PIDS $rpid"
t0=$(now)
for i in $(seq $IMAGES); do
	skopeo copy -q --preserve-digests --src-tls-verify=false --dest-tls-verify=false \
		"docker://127.0.0.1:$port/bench.local/serve/img$i:1" \
		"docker://127.0.0.1:$rport/bench.local/serve/img$i:1"
done
push=$(echo "$(now) - $t0" | bc -l)
REG_URL=http://127.0.0.1:$rport
fetch_all "$FERRY_URL" $fpid >/dev/null # warm both
fetch_all "$REG_URL" $rpid >/dev/null
best_f=999999 best_r=999999 cpu_f=0 cpu_r=0
for _ in 1 2 3; do
	read -r f fc < <(fetch_all "$FERRY_URL" $fpid)
	read -r r rc < <(fetch_all "$REG_URL" $rpid)
	if [ "$(echo "$f < $best_f" | bc)" = 1 ]; then best_f=$f cpu_f=$fc; fi
	if [ "$(echo "$r < $best_r" | bc)" = 1 ]; then best_r=$r cpu_r=$rc; fi
done
frss=$(awk '/^VmHWM/ {print $2}' /proc/$fpid/status)
rrss=$(awk '/^VmHWM/ {print $2}' /proc/$rpid/status)
printf 'serve: skopeo push of the same images into docker-registry took %.1fs\n' "$push"
printf 'serve: %d clients x %d MiB: ferry %.2fs (%.0f MiB/s), docker-registry %.2fs (%.0f MiB/s)\n' \
	"$CLIENTS" "$((per_client / 1048576))" "$best_f" "$(mibps "$best_f")" "$best_r" "$(mibps "$best_r")"
echo "serve: throughput ratio ferry/docker-registry = $(ratio "$best_r" "$best_f")x (goal >= 1.5x)"
printf 'serve: server CPU for those runs: ferry %.2fs, docker-registry %.2fs (%sx less); the clients share the same CPUs\n' \
	"$cpu_f" "$cpu_r" "$(ratio "$cpu_r" "$cpu_f")"
echo "serve: peak RSS ferry $((frss / 1024)) MiB, docker-registry $((rrss / 1024)) MiB (goal: ferry < 64 MiB)"
kill $fpid $rpid 2>/dev/null || true
wait $fpid 2>/dev/null || true
