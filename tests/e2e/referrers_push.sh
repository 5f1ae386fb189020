# Push of referrers (docs/supply-chain.md "Push"), loopback only, with two
# Debian docker-registry 2.8 (no referrers API), skopeo and openssl:
#  - upstream: acme/app:1 signed the way `cosign sign --key` does
#    (cosign_sign.py) plus an SBOM with a `subject` and its OCI 1.1 fallback
#    index sha256-<hex>; acme/other:1 unsigned. The bundle carries both.
#  - `ferry-install push` into a second docker-registry: the report counts
#    2 referrers pushed; the target answers no referrers API, so the tag
#    scheme goes: the .sig tag, the fallback index tag and the SBOM by
#    digest. From its access log: the subject's manifest PUT comes before
#    every PUT of its referrers (and the SBOM's before its fallback index),
#    and /v2/ is pinged once. The pushed .sig manifest has the upstream
#    digest (byte-exact), so does the fallback index.
#  - skopeo, with a registries.d `use-sigstore-attachments: true` entry for
#    the target, copies app:1 into dir: and gets signature-1; stock openssl
#    verifies it over its payload, which names the image's digest; the
#    unsigned image gets none.
#  - a second push makes no writes: zero POST, PUT or PATCH in the access
#    log, and the report says 0 referrers pushed, 2 already there.
#  - a registry with the referrers API (a stand-in: a proxy in front of a
#    third docker-registry that answers GET /v2/<name>/referrers/<digest>
#    with an image index, as OCI 1.1 registries do): the SBOM goes by
#    digest after its subject, the .sig by tag, and no fallback tag is made;
#    a second push writes nothing.
#  - a registry that answers no referrers API but answers a manifest PUT
#    with OCI-Subject (the same proxy, adding the header): after the SBOM's
#    PUT, no fallback tag is made.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"
for t in openssl curl jq; do command -v "$t" >/dev/null || skip "$t is not installed"; done
python3 -c 'import cryptography' 2>/dev/null || skip "python3-cryptography is not installed"
SIGN="python3 $(dirname "$0")/cosign_sign.py"

pull_setup
push "$W/L:a" acme/app:1
push "$W/L:b" acme/other:1
A=$(manifest_digest acme/app:1)
O=$(manifest_digest acme/other:1)
[ -n "$A" ] && [ -n "$O" ] || fail "registry gave no digests"
AH=${A#sha256:}
$SIGN keygen "$W"
SIGD=$($SIGN sign "127.0.0.1:$REG_PORT" acme/app "$A" "$W/key.pem" docker.io/acme/app:1)
SBOMD=$($SIGN sbom "127.0.0.1:$REG_PORT" acme/app "$A")
FALLD=$(manifest_digest "acme/app:sha256-$AH")
[ -n "$SIGD" ] && [ -n "$SBOMD" ] && [ -n "$FALLD" ] || fail "signing gave no digests"

spec_header "$W/spec.yaml"
printf '  - docker.io/acme/app:1\n  - docker.io/acme/other:1\n' >>"$W/spec.yaml"
ferry-build build "$W/spec.yaml" -o "$W/b.tar" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>"$W/err" ||
	fail "build failed: $(cat "$W/err")"
[ "$(tar -xOf "$W/b.tar" bundle.json | jq '.referrers | length')" = 2 ] || fail "the bundle should carry 2 referrers"
stop_registry

# --- the target: another docker-registry (no referrers API)
start_registry tgt
TP=$REG_PORT
TLOG=$REG_LOG
ferry-install push "$W/b.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$TP" --plain-http >"$W/push1" 2>&1 ||
	fail "push: $(cat "$W/push1")"
grep -q "has no referrers API" "$W/push1" || fail "push did not find the target without the API: $(cat "$W/push1")"
grep -q "pushed 2 images to .*; 2 referrers pushed, 0 already there" "$W/push1" ||
	fail "push report: $(tail -n 1 "$W/push1")"
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$TP/v2/docker.io/acme/app/referrers/$A" | grep -qx 404 ||
	fail "the target registry answers the referrers API"
# the registry's access log: one line per request, in the order answered
cp "$TLOG" "$W/log1"
n=$(grep -c '"GET /v2/ HTTP' "$W/log1" || true)
[ "$n" = 1 ] || fail "push pinged /v2/ $n times (expected once)"
R=/v2/docker.io/acme/app/manifests
line() { grep -nE "\"PUT $R/$1 HTTP[^\"]*\" 201 " "$W/log1" | head -n 1 | cut -d: -f1; }
subj=$(line 1)
sig=$(line "sha256-$AH\\.sig")
sbom=$(line "$SBOMD")
fall=$(line "sha256-$AH")
[ -n "$subj" ] && [ -n "$sig" ] && [ -n "$sbom" ] && [ -n "$fall" ] ||
	fail "missing manifest PUTs (subject '$subj', .sig '$sig', sbom '$sbom', fallback '$fall'): $(grep PUT "$W/log1")"
[ "$subj" -lt "$sig" ] && [ "$subj" -lt "$sbom" ] && [ "$subj" -lt "$fall" ] ||
	fail "a referrer went before its subject (lines: subject $subj, .sig $sig, sbom $sbom, fallback $fall)"
[ "$sbom" -lt "$fall" ] || fail "the fallback index went before the SBOM it lists"
# byte-exact: the target serves the upstream digests
[ "$(manifest_digest "docker.io/acme/app:sha256-$AH.sig")" = "$SIGD" ] || fail "the pushed .sig is not $SIGD"
[ "$(manifest_digest "docker.io/acme/app:sha256-$AH")" = "$FALLD" ] || fail "the pushed fallback index is not $FALLD"
curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$TP$R/sha256-$AH.sig" >"$W/sig.json"
[ "sha256:$(sha256sum <"$W/sig.json" | cut -c1-64)" = "$SIGD" ] || fail "the .sig bytes differ from upstream"
[ "$(manifest_digest "docker.io/acme/app:1")" = "$A" ] || fail "app:1 is not at $A"

# skopeo fetches the signature from the target (registries.d by its name)
mkdir -p "$W/registries.d"
printf 'docker:\n  127.0.0.1:%s:\n    use-sigstore-attachments: true\n' "$TP" >"$W/registries.d/t.yaml"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
for img in app other; do
	skopeo --registries.d "$W/registries.d" --policy "$W/policy.json" copy -q --src-tls-verify=false \
		"docker://127.0.0.1:$TP/docker.io/acme/$img:1" "dir:$W/dir-$img" 2>"$W/skopeo.err" ||
		fail "skopeo copy $img: $(cat "$W/skopeo.err")"
done
[ -s "$W/dir-app/signature-1" ] || fail "skopeo fetched no signature from the target: $(ls "$W/dir-app")"
[ -e "$W/dir-app/signature-2" ] && fail "skopeo fetched more than one signature"
[ -e "$W/dir-other/signature-1" ] && fail "skopeo fetched a signature for the unsigned image"
python3 - "$W/dir-app/signature-1" "$W" "$A" <<'PY' || fail "signature-1 is not the cosign signature"
import base64, json, sys
raw = open(sys.argv[1], "rb").read()
head = b"\0sigstore-json\n"
assert raw.startswith(head), raw[:20]
j = json.loads(raw[len(head):])
assert j["mimeType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
payload = base64.b64decode(j["payload"])
p = json.loads(payload)
assert p["critical"]["image"]["docker-manifest-digest"] == sys.argv[3], p
assert p["critical"]["identity"]["docker-reference"] == "docker.io/acme/app:1", p
open(sys.argv[2] + "/fetched.payload", "wb").write(payload)
open(sys.argv[2] + "/fetched.sig", "wb").write(
    base64.b64decode(j["annotations"]["dev.cosignproject.cosign/signature"]))
PY
openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/fetched.sig" "$W/fetched.payload" >/dev/null ||
	fail "openssl does not verify the signature fetched from the target"
sed 's/acme/evil/' "$W/fetched.payload" >"$W/bad.payload"
openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/fetched.sig" "$W/bad.payload" >/dev/null 2>&1 &&
	fail "openssl verified a changed payload"

# a second push makes no writes
mark=$(wc -l <"$TLOG")
ferry-install push "$W/b.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$TP" --plain-http >"$W/push2" 2>&1 ||
	fail "second push: $(cat "$W/push2")"
tail -n +"$((mark + 1))" "$TLOG" >"$W/log2"
grep -q '"ferry/' "$W/log2" || fail "the second push left no trace in the access log"
grep -E '"(POST|PUT|PATCH) ' "$W/log2" && fail "the second push wrote to the registry"
[ "$(grep -c '"GET /v2/ HTTP' "$W/log2" || true)" = 1 ] || fail "the second push pinged /v2/ more than once"
grep -q "0 blobs uploaded (0 bytes), .* 0 mounted, 0 manifests put; 0 referrers pushed, 2 already there" "$W/push2" ||
	fail "second push report: $(tail -n 1 "$W/push2")"
stop_registry

# --- a registry with the referrers API (stand-in: a proxy answers the API
# with an image index and forwards every other request to docker-registry)
start_registry api
PP=$(free_port)
cat >"$W/api_proxy.py" <<'PY'
import http.client, re, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
listen, up, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
INDEX = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))
    def go(self):
        b = self.body()
        if mode == "api" and self.command == "GET" and re.match(r"^/v2/.+/referrers/sha256:[0-9a-f]{64}$", self.path):
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
            self.send_header("Content-Length", str(len(INDEX)))
            self.end_headers()
            self.wfile.write(INDEX)
            return
        c = http.client.HTTPConnection("127.0.0.1", up, timeout=60)
        h = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "content-length", "connection")}
        h["Content-Length"] = str(len(b))
        c.request(self.command, self.path, body=b, headers=h)
        r = c.getresponse()
        data = r.read()
        self.send_response(r.status)
        subject = None
        if mode == "subject" and self.command == "PUT" and "/manifests/" in self.path and r.status == 201:
            try:
                subject = json.loads(b).get("subject", {}).get("digest")
            except ValueError:
                pass
        if subject:
            self.send_header("OCI-Subject", subject)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        c.close()
    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = go
ThreadingHTTPServer(("127.0.0.1", listen), H).serve_forever()
PY
python3 "$W/api_proxy.py" "$PP" "$REG_PORT" api &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$PP"
ferry-install push "$W/b.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$PP" --plain-http >"$W/push3" 2>&1 ||
	fail "push (referrers API): $(cat "$W/push3")"
grep -q "has the referrers API" "$W/push3" || fail "push did not find the referrers API: $(cat "$W/push3")"
grep -q "; 2 referrers pushed, 0 already there (referrers API)" "$W/push3" || fail "push report: $(tail -n 1 "$W/push3")"
cp "$REG_LOG" "$W/log1"
subj=$(line 1)
sig=$(line "sha256-$AH\\.sig")
sbom=$(line "$SBOMD")
[ -n "$subj" ] && [ -n "$sig" ] && [ -n "$sbom" ] || fail "missing manifest PUTs: $(grep PUT "$W/log1")"
[ "$subj" -lt "$sig" ] && [ "$subj" -lt "$sbom" ] || fail "a referrer went before its subject (API)"
grep -E "\"PUT $R/sha256-$AH HTTP" "$W/log1" && fail "a fallback tag was made on a registry with the referrers API"
curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.index.v1+json' \
	"http://127.0.0.1:$REG_PORT$R/sha256-$AH" | grep -qx 404 || fail "the fallback tag exists on the API registry"
curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$REG_PORT$R/$SBOMD" | sha256sum |
	grep -q "^${SBOMD#sha256:} " || fail "the SBOM is not on the API registry (byte-exact)"
# and again: nothing written
mark=$(wc -l <"$REG_LOG")
ferry-install push "$W/b.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$PP" --plain-http >"$W/push4" 2>&1 ||
	fail "second push (referrers API): $(cat "$W/push4")"
tail -n +"$((mark + 1))" "$REG_LOG" | grep -E '"(POST|PUT|PATCH) ' && fail "the second push (API) wrote to the registry"
grep -q "; 0 referrers pushed, 2 already there (referrers API)" "$W/push4" || fail "second push report (API): $(tail -n 1 "$W/push4")"
stop_registry

# --- a registry whose probe says nothing but whose manifest PUT answers
# OCI-Subject (the stand-in adds it for a manifest with a subject): the
# SBOM goes by digest, and then no fallback tag is made
start_registry subj
PS=$(free_port)
python3 "$W/api_proxy.py" "$PS" "$REG_PORT" subject &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$PS"
ferry-install push "$W/b.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$PS" --plain-http >"$W/push5" 2>&1 ||
	fail "push (OCI-Subject): $(cat "$W/push5")"
grep -q "has no referrers API" "$W/push5" || fail "the probe should find no API: $(cat "$W/push5")"
grep -q "answered OCI-Subject: it has the referrers API" "$W/push5" || fail "OCI-Subject not noticed: $(cat "$W/push5")"
grep -q "; 2 referrers pushed, 0 already there (referrers API)" "$W/push5" || fail "push report: $(tail -n 1 "$W/push5")"
cp "$REG_LOG" "$W/log1"
[ -n "$(line "$SBOMD")" ] || fail "the SBOM was not put by digest (OCI-Subject)"
grep -E "\"PUT $R/sha256-$AH HTTP" "$W/log1" && fail "a fallback tag was made after an OCI-Subject answer"
echo "referrers_push: ok"
