# Faults through a fault-injecting proxy in front of a real docker-registry:
# 429 + Retry-After, a connection cut mid-blob (resumed with Range),
# corrupted bytes (refused naming the digest), 500s past the retry budget
# (no bundle, cache consistent), SIGKILL mid-transfer (the rerun fetches
# only the missing bytes, from the registry's access log), and a 307 to
# another port that must not receive Authorization; manifest answers
# without Docker-Content-Digest.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"

pull_setup
rand_file "$W/big.bin" 3000000 9
make_image "$W/L" big "$W/big.bin"
push "$W/L:a" library/app-a:1
push "$W/L:big" library/big:1

PPORT=$(free_port)
RPORT=$(free_port)
RULES=$W/rules.json
PLOG=$W/proxy.log
echo '{}' >"$RULES"
: >"$PLOG"
python3 "$(dirname "$0")/fault_proxy.py" --listen "127.0.0.1:$PPORT" --redirect "127.0.0.1:$RPORT" \
	--route "/=127.0.0.1:$REG_PORT" --rules "$RULES" --log "$PLOG" &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$PPORT"
wait_port "$RPORT"

SPEC_ENDPOINT=127.0.0.1:$PPORT spec_header "$W/spec.yaml"
printf '  - app-a:1\n  - big:1\n' >>"$W/spec.yaml"
BIGM=$(manifest_digest library/big:1)
BIG=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$REG_PORT/v2/library/big/manifests/1" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
BIGSIZE=$(curl -sfI "http://127.0.0.1:$REG_PORT/v2/library/big/blobs/$BIG" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ength: //p')
[ -n "$BIGM" ] && [ "$BIGSIZE" -gt 2000000 ] || fail "test image not served"

build() { # NAME [ferry-build options]: output in $W/NAME.log
	n=$1
	shift
	rc=0
	ferry-build build "$W/spec.yaml" -o "$W/$n.tar" --key "$W/k.key" --cache "$W/$n.cache" "$@" >"$W/$n.log" 2>&1 || rc=$?
	cat "$W/$n.log"
	return $rc
}
plog() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l); print(e["port"], e["method"], e["path"], e["range"] or "-", e["status"], e["bytes"], e["auth"])' "$PLOG"; }
cache_consistent() { # every stored blob hashes to its name
	for f in "$1"/blobs/sha256/*; do
		[ -e "$f" ] || continue
		[ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "cache blob $f is corrupt"
	done
}

# --- 429 with Retry-After: 1 on the first tries ---
BLOBS='^GET /v2/.*/blobs/sha256:'
rules() { # ACTION-JSON...: faults on every blob GET (unless an action names its own match)
	python3 -c 'import json,sys; print(json.dumps({"faults": [dict({"match": sys.argv[1]}, **json.loads(a)) for a in sys.argv[2:]]}))' "$BLOBS" "$@" >"$RULES"
}
rules '{"do": "status", "status": 429, "headers": {"Retry-After": "1"}, "count": 3}'
t0=$(date +%s.%N)
build r429 >/dev/null || fail "429 build: $(cat "$W/r429.log")"
t1=$(date +%s.%N)
python3 -c "import sys; sys.exit(0 if $t1 - $t0 >= 1.0 else 1)" || fail "the build did not wait for Retry-After"
grep -q 'HTTP 429.*waiting 1.0s' "$W/r429.log" || fail "no retry reported: $(cat "$W/r429.log")"
[ "$(plog | grep -c " 429 ")" = 3 ] || fail "expected 3 answers of 429"

# --- rate-limit headers are read and reported ---
rules '{"match": "/manifests/", "do": "ratelimit", "remaining": 40}'
build ratelimit >/dev/null || fail "ratelimit build: $(cat "$W/ratelimit.log")"
grep -q "rate limit: 37 left of 100 on 127.0.0.1:$PPORT" "$W/ratelimit.log" || fail "no rate-limit report: $(tail -n 3 "$W/ratelimit.log")"

# --- Docker schema 1 is refused with a clear message ---
rules '{"match": "^(GET|HEAD) /v2/library/old/manifests/", "do": "schema1"}'
cp "$W/spec.yaml" "$W/spec.keep"
printf '  - old:1\n' >>"$W/spec.yaml"
expect_fail 1 "docker.io/library/old:1 is a Docker schema 1 manifest: obsolete and not supported" build schema1
cp "$W/spec.keep" "$W/spec.yaml"

# --- a connection cut mid-blob: resumed with Range ---
: >"$PLOG"
rules "{\"match\": \"^GET /v2/.*/blobs/$BIG\", \"do\": \"cut\", \"after\": 700000, \"count\": 1}"
build cut >/dev/null || fail "cut build: $(cat "$W/cut.log")"
plog | grep "blobs/$BIG" >"$W/cut.req"
cat "$W/cut.req"
grep -q " - 200 700000 " "$W/cut.req" || fail "the cut did not happen"
grep -q " bytes=700000- 206 $((BIGSIZE - 700000)) " "$W/cut.req" || fail "no Range resume after the cut"
ferry-install verify "$W/cut.tar" --pubkey "$W/k.pub" >/dev/null

# --- corrupted bytes: refused, naming the digest ---
rules "{\"match\": \"^GET /v2/.*/blobs/$BIG\", \"do\": \"corrupt\"}"
expect_fail 2 "pulling docker.io/library/big:1: blob $BIG.*digest mismatch" build corrupt
[ ! -e "$W/corrupt.tar" ] || fail "a bundle was written from corrupt bytes"
[ ! -e "$W/corrupt.cache/blobs/sha256/${BIG#sha256:}" ] || fail "corrupt blob stored"
cache_consistent "$W/corrupt.cache"

# --- 500s past the retry budget ---
rules '{"do": "status", "status": 500}'
expect_fail 1 "giving up after .*HTTP 500" build r500 --retry-budget 2
[ ! -e "$W/r500.tar" ] || fail "a bundle was written after a failure"
ls "$W" | grep -q 'r500.tar.tmp' && fail "a temp bundle was left"
cache_consistent "$W/r500.cache"
echo '{}' >"$RULES"
build r500 >/dev/null || fail "rebuild after 500s: $(cat "$W/r500.log")"

# --- SIGKILL mid-transfer, then a rerun fetches only the missing bytes ---
rules '{"do": "slow", "rate": 400000}'
: >"$PLOG"
regl=$(wc -l <"$REG_LOG")
ferry-build build "$W/spec.yaml" -o "$W/kill.tar" --key "$W/k.key" --cache "$W/kill.cache" >"$W/kill1.log" 2>&1 &
bpid=$!
part=$W/kill.cache/tmp/${BIG#sha256:}.partial
for _ in $(seq 200); do
	[ -f "$part" ] && [ "$(stat -c %s "$part")" -ge 600000 ] && break
	sleep 0.05
done
kill -9 "$bpid"
wait "$bpid" 2>/dev/null || true
have=$(stat -c %s "$part")
[ "$have" -ge 600000 ] && [ "$have" -lt "$BIGSIZE" ] || fail "partial file holds $have bytes"
[ ! -e "$W/kill.tar" ] || fail "a bundle exists after SIGKILL"
# the killed build's temp bundle (laid out before the downloads) is left...
ls "$W"/kill.tar.tmp.?????? >/dev/null 2>&1 || fail "no temp bundle after SIGKILL: $(ls "$W")"
echo '{}' >"$RULES"
build kill >/dev/null || fail "rerun after SIGKILL: $(cat "$W/kill.log")"
# ...and the next build of the same output removes it
ls "$W"/kill.tar.tmp.* 2>/dev/null && fail "the killed build's temp bundle is still there"
grep -q "resuming at" "$W/kill.log" || fail "the rerun did not resume: $(cat "$W/kill.log")"
# the registry's access log: the rerun asked for the rest only
tail -n +$((regl + 1)) "$REG_LOG" | ferry_requests /dev/stdin | grep "blobs/$BIG" >"$W/kill.req" || true
cat "$W/kill.req"
last=$(tail -n 1 "$W/kill.req")
[ "$(echo "$last" | awk '{print $3}')" = 206 ] || fail "the rerun did not use Range: $last"
[ "$(echo "$last" | awk '{print $4}')" = $((BIGSIZE - have)) ] || fail "the rerun fetched $(echo "$last" | awk '{print $4}') bytes, $((BIGSIZE - have)) were missing"
plog | grep "blobs/$BIG" | grep -q " bytes=$have- 206 $((BIGSIZE - have)) " || fail "the rerun's Range does not start at the bytes on disk"
ferry-install verify "$W/kill.tar" --pubkey "$W/k.pub" >/dev/null
cache_consistent "$W/kill.cache"

# --- manifests of several images are asked for at once, not one by one ---
rules '{"match": "/manifests/", "do": "delay", "seconds": 0.3}'
: >"$PLOG"
build mpar >/dev/null || fail "build with slow manifests: $(cat "$W/mpar.log")"
python3 - "$PLOG" <<'PY' || fail "manifest requests never overlapped: $(cat "$PLOG")"
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
m = [r for r in m if "/manifests/" in r["path"]]
heads = [r for r in m if r["method"] == "HEAD"]
gets = [r for r in m if r["method"] == "GET"]
assert len(heads) == 2 and len(gets) == 2, m
def overlap(v):
    return any(a is not b and a["t0"] < b["t1"] and b["t0"] < a["t1"] for a in v for b in v)
assert overlap(heads) and overlap(gets), m
PY

# --- no Docker-Content-Digest on manifest answers: each tag is asked for
# once by HEAD and once by GET (its bytes hashed), in the batch; the
# planner does not ask again; the bundle holds the registry's digest
rules '{"match": "/manifests/", "do": "nodigest"}'
: >"$PLOG"
build nodigest >/dev/null || fail "build without Docker-Content-Digest: $(cat "$W/nodigest.log")"
python3 - "$PLOG" <<'PY' || fail "tags without a digest: $(plog)"
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
for tag in ("/v2/library/app-a/manifests/1", "/v2/library/big/manifests/1"):
    n = [r["method"] for r in m if r["path"] == tag]
    assert sorted(n) == ["GET", "HEAD"], (tag, n)
PY
ferry-install inspect "$W/nodigest.tar" --pubkey "$W/k.pub" | grep -qF "$BIGM" ||
	fail "the bundle lacks big:1 as $BIGM: $(ferry-install inspect "$W/nodigest.tar" --pubkey "$W/k.pub")"
echo '{}' >"$RULES"

# --- 307 to another port: Authorization stays with the registry ---
mkdir -p "$W/dc"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$PPORT" "$(printf 'alice:pw' | base64 -w0)" >"$W/dc/config.json"
printf '{"auth": {"basic": "alice:pw"}, "faults": [{"match": "%s", "do": "redirect"}]}' "$BLOBS" >"$RULES"
: >"$PLOG"
DOCKER_CONFIG=$W/dc build redirect >/dev/null || fail "redirect build: $(cat "$W/redirect.log")"
plog >"$W/redirect.req"
grep -q "^$PPORT GET /v2/library/big/blobs/$BIG - 307 .* True$" "$W/redirect.req" || fail "no 307: $(cat "$W/redirect.req")"
grep -q "^$RPORT GET " "$W/redirect.req" || fail "the redirect was not followed"
grep "^$RPORT " "$W/redirect.req" | grep -q "True$" && fail "Authorization was sent to the redirect target"
ferry-install verify "$W/redirect.tar" --pubkey "$W/k.pub" >/dev/null
echo "pull_faults: ok"
