# Models over HTTP from a real nginx on loopback: a download cut halfway
# resumes with Range; a 302 to another port is followed; a wrong sha256 is
# refused; a 404 is a clear error and no bundle; url: without sha256 needs
# --allow-unpinned, and then the digest is recorded.
. "$(dirname "$0")/lib.sh"
command -v nginx >/dev/null || skip "nginx is not installed (Debian: apt-get install nginx)"
cd "$T"
ferry-build keygen -o k >/dev/null
mkdir -p www/files www/cdn ntmp
python3 -c 'import os; open("www/files/model.onnx","wb").write(os.urandom(3 << 20))'
cp www/files/model.onnx www/cdn/weights.bin
echo '{"architectures": ["x"]}' >www/cdn/config.json
SHA=$(sha256sum www/files/model.onnx | cut -d' ' -f1)
P1=$(free_port); P2=$(free_port); P3=$(free_port)
cat >nginx.conf <<C
daemon off;
master_process off;
worker_processes 1;
user root;
pid $T/nginx.pid;
error_log $T/nginx.err;
events { worker_connections 64; }
http {
    log_format auth '\$server_port "\$request" \$status auth=[\$http_authorization]';
    access_log $T/access.log;
    access_log $T/auth.log auth;
    client_body_temp_path $T/ntmp/body;
    proxy_temp_path $T/ntmp/proxy;
    fastcgi_temp_path $T/ntmp/fcgi;
    uwsgi_temp_path $T/ntmp/uwsgi;
    scgi_temp_path $T/ntmp/scgi;
    server {
        listen 127.0.0.1:$P1;
        root $T/www;
        location = /org/model/resolve/main/weights.bin { return 302 http://127.0.0.1:$P2/cdn/weights.bin; }
    }
    server { listen 127.0.0.1:$P2; root $T/www; }
}
C
nginx -c "$T/nginx.conf" -p "$T" &
FERRY_PIDS="$FERRY_PIDS $!"
python3 "$TOP/tests/e2e/helpers/cutproxy.py" "$P3" "$P1" "$T/proxy.log" &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$P1"; wait_port "$P2"; wait_port "$P3"

spec() { # spec NAME URL [SHA]
	cat >"$1.yaml" <<Y
apiVersion: ferry/v1
kind: Bundle
metadata: {name: $1}
models:
- name: mnist
  version: "1"
  url: $2
${3:+  sha256: $3}
Y
}

# 1. cut halfway through, resumed with Range in the same build
spec cut "http://127.0.0.1:$P3/files/model.onnx" "$SHA"
ferry-build build cut.yaml -o cut.tar --key k.key 2>cut.log || { cat cut.log; fail "build through the cutting proxy failed"; }
cat cut.log
grep -q 'resuming at byte' cut.log || fail "no resume in the log"
grep -q '^/files/model.onnx -$' proxy.log || fail "first request missing: $(cat proxy.log)"
grep -Eq '^/files/model.onnx [Rr]ange: bytes=[1-9][0-9]*-$' proxy.log || fail "no Range request: $(cat proxy.log)"
tar xOf cut.tar models/mnist/1/model.onnx | sha256sum | grep -q "^$SHA " || fail "resumed file differs"
echo "resumed after a cut: $(cat proxy.log | tr '\n' ';')"

# the shared cache: a second build downloads nothing
: >access.log
ferry-build build cut.yaml -o again.tar --key k.key 2>again.log
grep -q 'in the cache' again.log || fail "not served from the cache: $(cat again.log)"
cmp cut.tar again.tar || fail "same inputs gave different bundles"

# 2. a 302 to another port, like Hugging Face resolve/ URLs
WSHA=$(sha256sum www/cdn/weights.bin | cut -d' ' -f1)
rm -rf cache
spec redir "http://127.0.0.1:$P1/org/model/resolve/main/weights.bin" "$WSHA"
ferry-build build redir.yaml -o redir.tar --key k.key 2>redir.log || { cat redir.log; fail "redirect not followed"; }
grep -q "\"GET /cdn/weights.bin" access.log || fail "the redirect target was never asked for"
tar tf redir.tar | grep -qx 'models/mnist/1/weights.bin' || fail "weights.bin missing"
echo "302 to port $P2 followed"

# 2b. a Hugging Face token goes to the model host only, never along the
# resolve/ redirect to another host (here: another port, another origin)
rm -rf cache
: >auth.log
HF_TOKEN=hf_e2e_secret HF_ENDPOINT=http://127.0.0.1:$P1 \
	ferry-build build redir.yaml -o redir2.tar --key k.key 2>redir2.log || { cat redir2.log; fail "redirect with HF_TOKEN"; }
grep -q "^$P1 \"GET /org/model/resolve/main/weights.bin HTTP/1.1\" 302 auth=\[Bearer hf_e2e_secret\]$" auth.log ||
	fail "the token did not go to the model host: $(cat auth.log)"
grep -q "^$P2 \"GET /cdn/weights.bin HTTP/1.1\" 200 auth=\[-\]$" auth.log ||
	fail "the redirect target was not asked without Authorization: $(cat auth.log)"
grep -q hf_e2e_secret redir2.log && fail "the token was printed"
# without HF_ENDPOINT, 127.0.0.1 is not Hugging Face: no token at all
rm -rf cache
: >auth.log
HF_TOKEN=hf_e2e_secret ferry-build build redir.yaml -o redir3.tar --key k.key 2>redir3.log
grep -q hf_e2e_secret auth.log && fail "the token went to a host that is not Hugging Face: $(cat auth.log)"
echo "HF_TOKEN sent to the model host only"

# 3. a wrong sha256
rm -rf cache
spec wrong "http://127.0.0.1:$P2/files/model.onnx" "$(echo x | sha256sum | cut -d' ' -f1)"
expect_fail 2 "wrong.yaml:5: model mnist: http://127.0.0.1:$P2/files/model.onnx: the 3145728 bytes downloaded hash to sha256:$SHA, the spec says" \
	ferry-build build wrong.yaml -o wrong.tar --key k.key
[ ! -e wrong.tar ] || fail "a bundle was written despite the wrong sha256"

# 4. 404
spec missing "http://127.0.0.1:$P2/files/nope.onnx" "$SHA"
expect_fail 1 "missing.yaml:5: model mnist: GET http://127.0.0.1:$P2/files/nope.onnx: the server answered HTTP 404" \
	ferry-build build missing.yaml -o missing.tar --key k.key
[ ! -e missing.tar ] || fail "a bundle was written despite the 404"
ls cache/downloads 2>/dev/null | grep -q . && fail "the 404 left a partial download"

# 5. no sha256: refused, unless --allow-unpinned (then recorded)
spec unpinned "http://127.0.0.1:$P2/cdn/config.json"
expect_fail 1 "unpinned.yaml:5: model mnist: a url: model needs 'sha256:'" \
	ferry-build build unpinned.yaml -o unpinned.tar --key k.key
ferry-build build unpinned.yaml -o unpinned.tar --key k.key --allow-unpinned --quiet
CSHA=$(sha256sum www/cdn/config.json | cut -d' ' -f1)
tar xOf unpinned.tar bundle.json | python3 -c '
import json, sys
m = json.load(sys.stdin)["modelArtifacts"][0]
assert m["pinned"] is False and m["sha256"] == sys.argv[1], m
assert m["files"][0]["mediaType"] == "application/vnd.cncf.model.weight.config.v1.raw", m
print("unpinned model recorded as", m["sha256"])' "$CSHA"
exit 0
