# Helpers for the serve_*.sh tests (not a test itself: tests/run runs *.sh).
# Source after lib.sh:  . "$(dirname "$0")/serve_lib.bash"

need() {
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "$c is not installed"
	done
}

# serve_fixture: a signed bundle with
#   docker.io/library/x:1, :latest   a 3 MB random layer + a small one
#   docker.io/library/x:2, :3        a small image
#   quay.io/library/x:1              same bare path as docker.io's (collides)
#   gcr.io/ml-pipeline/y:2           a second upstream host
# Sets BUNDLE, PUB, KEY, FX (its folder) and DIG_<name> manifest digests.
serve_fixture() {
	FX=$T/fx
	mkdir -p "$FX/files"
	python3 -c 'import os,sys; sys.stdout.buffer.write(os.urandom(3000000))' >"$FX/files/big.bin"
	echo "one $RANDOM" >"$FX/files/one.txt"
	echo "two $RANDOM" >"$FX/files/two.txt"
	echo "quay $RANDOM" >"$FX/files/quay.txt"
	echo "gcr $RANDOM" >"$FX/files/gcr.txt"
	L=$FX/layout
	make_image "$L" x1 "$FX/files/one.txt" "$FX/files/big.bin"
	make_image "$L" x2 "$FX/files/two.txt"
	make_image "$L" q1 "$FX/files/quay.txt"
	make_image "$L" y2 "$FX/files/gcr.txt" "$FX/files/one.txt"
	cat >"$FX/spec.yaml" <<'EOF'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: serve-test, version: "1"}
images:
  - {ref: docker.io/library/x:1, from: "oci-layout:./layout:x1"}
  - {ref: docker.io/library/x:2, from: "oci-layout:./layout:x2"}
  - {ref: docker.io/library/x:3, from: "oci-layout:./layout:x2"}
  - {ref: docker.io/library/x:latest, from: "oci-layout:./layout:x1"}
  - {ref: quay.io/library/x:1, from: "oci-layout:./layout:q1"}
  - {ref: gcr.io/ml-pipeline/y:2, from: "oci-layout:./layout:y2"}
EOF
	ferry-build keygen -o "$FX/k" >/dev/null
	KEY=$FX/k.key
	PUB=$FX/k.pub
	BUNDLE=$FX/b.tar
	ferry-build build "$FX/spec.yaml" -o "$BUNDLE" --key "$KEY" --cache "$FX/cache" >"$FX/build.log" 2>&1 ||
		{ cat "$FX/build.log"; fail "ferry-build failed"; }
	DIG_X1=$(bundle_digest docker.io/library/x:1)
	DIG_X2=$(bundle_digest docker.io/library/x:2)
	DIG_Q1=$(bundle_digest quay.io/library/x:1)
	DIG_Y2=$(bundle_digest gcr.io/ml-pipeline/y:2)
	[ -n "$DIG_X1" ] && [ -n "$DIG_Q1" ] && [ -n "$DIG_Y2" ] || fail "fixture digests missing"
}

# bundle_digest REF [BUNDLE]: the manifest digest index.json gives REF.
bundle_digest() {
	tar -xOf "${2:-$BUNDLE}" index.json | python3 -c '
import json, sys
for m in json.load(sys.stdin)["manifests"]:
    if m.get("annotations", {}).get("io.containerd.image.name") == sys.argv[1]:
        print(m["digest"])' "$1"
}

# big_blob [BUNDLE]: digest of the largest blob.
big_blob() {
	tar -tvf "${1:-$BUNDLE}" | awk '$6 ~ /^blobs\/sha256\// {print $3, $6}' | sort -n |
		tail -n 1 | sed 's|.*blobs/sha256/|sha256:|'
}

# serve_start NAME BUNDLE ARGS...: start `ferry-install serve` on a random
# loopback port; waits for its ready file. Sets SERVE_URL (http[s]://H:P),
# SERVE_HP (H:P), SERVE_PID; output goes to $T/NAME.out and $T/NAME.err.
serve_start() {
	name=$1 b=$2
	shift 2
	rm -f "$T/$name.ready"
	ferry-install serve "$b" --listen 127.0.0.1:0 --ready-file "$T/$name.ready" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" &
	SERVE_PID=$!
	SERVE_NAME=$name
	FERRY_PIDS="$FERRY_PIDS $SERVE_PID"
	for _ in $(seq 300); do
		[ -s "$T/$name.ready" ] && break
		kill -0 "$SERVE_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$T/$name.ready" ] || { cat "$T/$name.err" >&2; fail "serve $name did not become ready"; }
	SERVE_URL=$(cat "$T/$name.ready")
	SERVE_HP=${SERVE_URL#*://}
	# serve writes the ready file, then prints "ready:": give stdout a moment
	for _ in $(seq 50); do
		grep -q "^ready: $SERVE_URL\$" "$T/$name.out" && break
		sleep 0.1
	done
	grep -q "^ready: $SERVE_URL\$" "$T/$name.out" || fail "no 'ready:' line on stdout"
}

# serve_stop PID [NAME]: SIGTERM, and the server must exit 0.
serve_stop() {
	kill -TERM "$1"
	set +e
	wait "$1"
	rc=$?
	set -e
	if [ "$rc" -ne 0 ]; then
		[ -n "${2:-}" ] && tail -n 30 "$T/$2.err" >&2
		fail "serve exited $rc after SIGTERM"
	fi
}

# tamper_blob SRC DST DIGEST: a copy of SRC whose blob DIGEST has one byte
# flipped in place (the signature and SHA256SUMS are untouched).
tamper_blob() {
	python3 - "$1" "$2" "${3#sha256:}" <<'EOF'
import shutil, sys, tarfile
src, dst, hexd = sys.argv[1:4]
shutil.copyfile(src, dst)
with tarfile.open(src) as t:
    m = t.getmember("blobs/sha256/" + hexd)
with open(dst, "r+b") as f:
    pos = m.offset_data + m.size // 2
    f.seek(pos)
    b = f.read(1)
    f.seek(pos)
    f.write(bytes([b[0] ^ 0x01]))
EOF
}

# http_code ARGS...: curl's status code (no body).
http_code() {
	curl -s -o /dev/null -w '%{http_code}' "$@"
}
