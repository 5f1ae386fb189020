# The build's use of a registry's OCI 1.1 referrers API (docs/supply-chain.md
# "What is found"), loopback only. No registry with the API is in Debian 12,
# so a stand-in: a proxy in front of docker-registry 2.8 that answers
# GET /v2/<name>/referrers/<digest> with the index the fallback tag
# sha256-<hex> holds (an empty index when there is none), hides that tag
# from tags/list and manifests (a registry with the API keeps none), takes
# 0.4 s per referrers answer and records when each began and ended. A second
# docker-registry, with no API (404), holds three more images.
#  - the API registry: exactly one referrers request per image; one image is
#    asked first (the probe), alone; the others after it, several at once
#    (their intervals overlap), not one after the other;
#  - the registry without the API: exactly one referrers request in all;
#  - the answer that lists the SBOM is carried byte-exact as the fallback
#    tag sha256-<hex> (kind index, the SBOM among its artifacts), the SBOM
#    with it; the images without referrers get none;
#  - the other cosign tags are found too: acme/r2 is signed (sha256-<hex>.sig)
#    and its .sig manifest is also tagged .att and .sbom (found by tag, not
#    by content): kinds sig, att and sbom;
#  - a warm rebuild asks the same requests again, downloads no blob (the
#    upstream access log) and gives the same bundle.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"
command -v jq >/dev/null || skip "jq is not installed"
python3 -c 'import cryptography' 2>/dev/null || skip "python3-cryptography is not installed"
SIGN="python3 $(dirname "$0")/cosign_sign.py"

pull_setup
UP=$REG_PORT
ULOG=$REG_LOG
for i in 1 2 3 4 5 6; do
	if [ $((i % 2)) = 1 ]; then push "$W/L:a" "acme/r$i:1"; else push "$W/L:b" "acme/r$i:1"; fi
done
A=$(manifest_digest acme/r1:1)
[ -n "$A" ] || fail "registry gave no digest"
AH=${A#sha256:}
SBOMD=$($SIGN sbom "127.0.0.1:$UP" acme/r1 "$A")
FALLD=$(manifest_digest "acme/r1:sha256-$AH")
[ -n "$SBOMD" ] && [ -n "$FALLD" ] || fail "no SBOM or fallback index upstream"
B=$(manifest_digest acme/r2:1)
$SIGN keygen "$W"
SIGD=$($SIGN sign "127.0.0.1:$UP" acme/r2 "$B" "$W/key.pem" docker.io/acme/r2:1)
for t in att sbom; do $SIGN copy "127.0.0.1:$UP" acme/r2 "sha256-${B#sha256:}.sig" acme/r2 "sha256-${B#sha256:}.$t" >/dev/null; done
[ -n "$SIGD" ] && [ "$(manifest_digest "acme/r2:sha256-${B#sha256:}.att")" = "$SIGD" ] || fail "no .sig/.att upstream"

# the second registry: no referrers API
start_registry plain
PLAIN=$REG_PORT
PLOG=$REG_LOG
for i in 1 2 3; do push "$W/L:a" "acme/p$i:1"; done

PP=$(free_port)
cat >"$W/api.py" <<'PY'
import http.client, json, re, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
listen, up, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
EMPTY = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
mu = threading.Lock()
def record(line):
    with mu, open(log, "a") as f:
        f.write(line + "\n")
def upstream(method, path, headers, body=b""):
    c = http.client.HTTPConnection("127.0.0.1", up, timeout=60)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def answer(self, status, headers, data):
        self.send_response(status)
        for k, v in headers:
            if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
    def go(self):
        n = int(self.headers.get("Content-Length", "0"))
        b = self.rfile.read(n) if n else b""
        h = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "connection")}
        m = re.match(r"^/v2/(.+)/referrers/sha256:([0-9a-f]{64})$", self.path)
        if m and self.command == "GET":
            t0 = time.time()
            time.sleep(0.4)
            r, data = upstream("GET", "/v2/%s/manifests/sha256-%s" % m.groups(),
                               {"Accept": "application/vnd.oci.image.index.v1+json"})
            if r.status != 200:
                data = EMPTY
            record("%s %.6f %.6f" % (self.path, t0, time.time()))
            self.answer(200, [("Content-Type", "application/vnd.oci.image.index.v1+json")], data)
            return
        # a registry with the API keeps no fallback tag
        if re.match(r"^/v2/.+/manifests/sha256-[0-9a-f]{64}$", self.path):
            self.answer(404, [("Content-Type", "application/json")], b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            return
        r, data = upstream(self.command, self.path, h, b)
        hs = r.getheaders()
        if self.command == "GET" and re.match(r"^/v2/.+/tags/list", self.path) and r.status == 200:
            j = json.loads(data)
            j["tags"] = [t for t in j.get("tags") or [] if not re.match(r"^sha256-[0-9a-f]{64}$", t)]
            data = json.dumps(j).encode()
        self.answer(r.status, hs, data)
    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = go
ThreadingHTTPServer(("127.0.0.1", listen), H).serve_forever()
PY
python3 "$W/api.py" "$PP" "$UP" "$W/api.log" &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$PP"
# the stand-in: the API answers, the fallback tag is hidden
[ "$(curl -sf "http://127.0.0.1:$PP/v2/acme/r1/referrers/$A" | jq -r '.manifests[0].digest')" = "$SBOMD" ] ||
	fail "the stand-in does not answer the referrers API"
curl -sf "http://127.0.0.1:$PP/v2/acme/r1/tags/list" | jq -e '.tags == ["1"]' >/dev/null ||
	fail "the stand-in lists the fallback tag"
rm -f "$W/api.log"

cat >"$W/spec.yaml" <<EOF2
apiVersion: ferry/v1
kind: Bundle
metadata:
  name: api
  version: "1"
registries:
  docker.io:
    endpoint: 127.0.0.1:$PP
    insecure: true
  plain.test:
    endpoint: 127.0.0.1:$PLAIN
    insecure: true
images:
EOF2
for i in 1 2 3 4 5 6; do echo "  - docker.io/acme/r$i:1" >>"$W/spec.yaml"; done
for i in 1 2 3; do echo "  - plain.test/acme/p$i:1" >>"$W/spec.yaml"; done

# check LOG: one request per image of the API registry, the probe alone,
# then the rest overlapping; one request to the registry without the API
check() {
	python3 - "$W/api.log" <<'PY' || fail "referrers API requests: $(cat "$W/api.log")"
import sys
rows = [l.split() for l in open(sys.argv[1])]
paths = sorted(r[0].split("/")[3] for r in rows)
assert paths == ["r%d" % i for i in range(1, 7)], paths  # one per image
iv = sorted((float(r[1]), float(r[2])) for r in rows)
probe, rest = iv[0], iv[1:]
assert all(s >= probe[1] for s, _ in rest), "an image was asked before the probe's answer"
# the rest at once: the most requests open at one time
most = max(sum(1 for s, e in rest if s <= t < e) for t, _ in rest)
assert most >= 2, "the referrers requests went one after the other: %r" % iv
print("referrers API: 1 probe, then %d requests, at most %d at once" % (len(rest), most))
PY
	[ "$(grep -c 'GET /v2/acme/p[1-3]/referrers/sha256:[0-9a-f]\{64\} HTTP[^"]*" 404' "$PLOG")" = "$1" ] ||
		fail "expected $1 referrers request to the registry without the API: $(grep referrers "$PLOG")"
}

ferry-build build "$W/spec.yaml" -o "$W/b1.tar" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>"$W/err" ||
	fail "build failed: $(cat "$W/err")"
check 1
grep -q "; 4 referrers$" "$W/err" || fail "no referrer count: $(tail -n 2 "$W/err")"
tar -xOf "$W/b1.tar" bundle.json >"$W/bundle.json"
python3 - "$W/bundle.json" "$A" "$FALLD" "$SBOMD" "$B" "$SIGD" <<'PY' || fail "bundle.json referrers are wrong"
import json, sys
b = json.load(open(sys.argv[1]))
a, falld, sbomd, bd, sigd = sys.argv[2:7]
r = b["referrers"]
assert len(r) == 4, r
tags = sorted((x["kind"], x["ref"], x["digest"]) for x in r if x["subject"] == bd)
h = bd[7:]
assert tags == [("att", "docker.io/acme/r2:sha256-%s.att" % h, sigd),
                ("sbom", "docker.io/acme/r2:sha256-%s.sbom" % h, sigd),
                ("sig", "docker.io/acme/r2:sha256-%s.sig" % h, sigd)], tags
r = [x for x in r if x["subject"] == a]
assert len(r) == 1, r
r = r[0]
assert r["kind"] == "index" and r["subject"] == a, r
assert r["ref"] == "docker.io/acme/r1:sha256-%s" % a[7:], r["ref"]
assert r["digest"] == falld, (r["digest"], falld)  # the API's answer, byte-exact
assert [x["digest"] for x in r["artifacts"]] == [sbomd], r
PY
tar -xOf "$W/b1.tar" "blobs/sha256/${FALLD#sha256:}" | sha256sum | grep -q "^${FALLD#sha256:} " ||
	fail "the fallback index is not carried byte-exact"
tar -tf "$W/b1.tar" | grep -qx "blobs/sha256/${SBOMD#sha256:}" || fail "the SBOM is not carried"

# warm: the same requests again (signatures may have been added), same bundle
grep -qE '"GET /v2/[^ ]*/blobs/' "$ULOG" || fail "the cold build downloaded no blob (access log)"
rm -f "$W/api.log"
mark=$(wc -l <"$ULOG")
ferry-build build "$W/spec.yaml" -o "$W/b2.tar" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>"$W/err" ||
	fail "warm build failed: $(cat "$W/err")"
check 2
tail -n +"$((mark + 1))" "$ULOG" | grep -E '"GET /v2/[^ ]*/blobs/' && fail "the warm build downloaded blobs"
cmp "$W/b1.tar" "$W/b2.tar" || fail "the warm bundle differs"
echo "referrers_api: ok"
