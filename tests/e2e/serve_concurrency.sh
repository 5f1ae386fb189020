# ferry-install serve under load: 32 clients fetch every blob at once while
# one client reads a byte per second; the fast clients all finish with the
# right bytes, a stalled connection is timed out, and the server's peak RSS
# stays under 64 MiB.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci curl python3 sha256sum

CLIENTS=${FERRY_SERVE_CLIENTS:-32}
RSS_LIMIT_KB=$((64 * 1024))
# Sanitizer builds (make check-asan / check-tsan set FERRY_SANITIZER) carry
# shadow memory and allocator quarantines: the cap is 4x there, which still
# catches memory that grows with clients or bundle size.
[ -n "${FERRY_SANITIZER:-}" ] && RSS_LIMIT_KB=$((RSS_LIMIT_KB * 4))

# --- a bundle with a few large layers (64 MB in all)
S=$T/src
mkdir -p "$S"
for i in 1 2 3; do
	python3 -c 'import os,sys; sys.stdout.buffer.write(os.urandom(int(sys.argv[1])))' \
		$((i * 8 * 1024 * 1024 + i)) >"$S/f$i.bin"
done
echo small >"$S/small.txt"
make_image "$S/l" a "$S/f1.bin" "$S/f3.bin"
make_image "$S/l" b "$S/f2.bin" "$S/small.txt"
cat >"$S/spec.yaml" <<'EOF'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: load, version: "1"}
images:
  - {ref: docker.io/library/big:a, from: "oci-layout:./l:a"}
  - {ref: registry.k8s.io/big:b, from: "oci-layout:./l:b"}
EOF
ferry-build keygen -o "$S/k" >/dev/null
BUNDLE=$S/b.tar
ferry-build build "$S/spec.yaml" -o "$BUNDLE" --key "$S/k.key" --cache "$S/cache" >/dev/null

# every (repository, blob) pair the bundle serves, with sizes
python3 - "$BUNDLE" >"$T/blobs" <<'EOF'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
idx = json.load(t.extractfile("index.json"))
seen = set()
for m in idx["manifests"]:
    name = m["annotations"]["io.containerd.image.name"]
    repo = name.rsplit(":", 1)[0]
    man = json.load(t.extractfile("blobs/sha256/" + m["digest"][7:]))
    for d in [m] + [man["config"]] + man["layers"]:
        if d["digest"] not in seen:
            seen.add(d["digest"])
            print(repo, d["digest"], t.getmember("blobs/sha256/" + d["digest"][7:]).size)
EOF
nblobs=$(wc -l <"$T/blobs")
total=$(awk '{s += $3} END {print s}' "$T/blobs")
echo "$nblobs blobs, $total bytes per client"

# twice: a thread per connection (the default), then an epoll pool
n=0
for mode in "" "--threads 2"; do
	n=$((n + 1))
	echo "--- ${mode:-a thread per connection}"
	serve_start "load$n" "$BUNDLE" --pubkey "$S/k.pub" --timeout 5 $mode
	U=$SERVE_URL
	biggest=$(sort -k3 -n "$T/blobs" | tail -n 1)
	set -- $biggest
	SLOW_URL=$U/v2/$1/blobs/$2

	# --- the slow reader (1 byte/s) starts first and stays connected throughout
	curl -s --limit-rate 1 -o "$T/slow$n.out" "$SLOW_URL" &
	SLOW=$!
	FERRY_PIDS="$FERRY_PIDS $SLOW"
	# --- a stalled client: half a request, then silence
	python3 - "$SERVE_HP" >"$T/stalled$n" 2>&1 <<-'EOF' &
	import socket, sys, time
	h, p = sys.argv[1].rsplit(":", 1)
	s = socket.create_connection((h, int(p)))
	s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
	t0 = time.time()
	s.settimeout(60)
	try:
	    data = s.recv(1)
	except Exception as e:
	    data = repr(e).encode()
	print("closed after %.1fs %r" % (time.time() - t0, data))
	EOF
	STALLED=$!
	FERRY_PIDS="$FERRY_PIDS $STALLED"
	sleep 1

	# --- the fleet
	start=$(date +%s.%N)
	pids=""
	for c in $(seq "$CLIENTS"); do
		(
			while read -r repo dig size; do
				got=$(curl -sf "$U/v2/$repo/blobs/$dig" | sha256sum | cut -d' ' -f1)
				[ "sha256:$got" = "$dig" ] || { echo "client $c: $dig came back as $got"; exit 1; }
			done <"$T/blobs"
		) >"$T/client$n.$c" 2>&1 &
		pids="$pids $!"
	done
	failed=0
	for p in $pids; do wait "$p" || failed=$((failed + 1)); done
	secs=$(echo "$(date +%s.%N) - $start" | bc)
	[ $failed -eq 0 ] || { cat "$T"/client$n.*; fail "$failed of $CLIENTS clients failed"; }
	mb=$(echo "$CLIENTS * $total / 1048576" | bc)
	echo "$CLIENTS clients fetched and checked $mb MiB in ${secs}s while the slow client was connected"
	kill -0 "$SLOW" 2>/dev/null || fail "the slow client was disconnected (it should just be slow)"
	slow_bytes=$(stat -c %s "$T/slow$n.out" 2>/dev/null || echo 0)
	echo "slow client: $slow_bytes bytes so far"

	# --- the stalled client was timed out (--timeout 5)
	for _ in $(seq 100); do kill -0 "$STALLED" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$STALLED" 2>/dev/null && fail "the stalled connection was never closed"
	cat "$T/stalled$n"
	grep -qE "closed after ([5-9]|1[0-9])\.[0-9]s b''" "$T/stalled$n" || fail "stalled client: $(cat "$T/stalled$n")"

	# --- memory
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVE_PID/status")
	echo "server peak RSS (VmHWM): $hwm kB"
	[ "$hwm" -lt $RSS_LIMIT_KB ] || fail "peak RSS $hwm kB is over $((RSS_LIMIT_KB / 1024)) MiB"
	kill "$SLOW" 2>/dev/null || true
	serve_stop "$SERVE_PID" "$SERVE_NAME"
done
echo "ok: concurrency and bounded memory"
exit 0
