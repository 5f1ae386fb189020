# --lock writes SPEC.lock.yaml, --locked refuses a tag that moved; a TLS
# registry verified with the spec's `ca:` and a client certificate
# (cert:/key:), refused without them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"
command -v openssl >/dev/null || skip "openssl is not installed"

W=$T/w
mkdir -p "$W"
ferry-build keygen -o "$W/k" >/dev/null
export REG_DATA_DIR=$T/data
start_registry open
make_shared_images "$W/L"
push "$W/L:a" library/app-a:1
push "$W/L:b" library/app-b:1
A=$(manifest_digest library/app-a:1)
spec_header "$W/spec.yaml"
printf '  - app-a:1\n  - app-b:1\n' >>"$W/spec.yaml"
build() { # NAME [options]
	n=$1
	shift
	rc=0
	ferry-build build "$W/spec.yaml" -o "$W/$n.tar" --key "$W/k.key" --cache "$W/cache" "$@" >"$W/$n.log" 2>&1 || rc=$?
	cat "$W/$n.log"
	return $rc
}

# --- lock ---
expect_fail 1 "spec.lock.yaml" build nolock --locked
build lock --lock >/dev/null || fail "--lock build: $(cat "$W/lock.log")"
[ -f "$W/spec.lock.yaml" ] || fail "no spec.lock.yaml"
python3 - "$W/spec.lock.yaml" "$A" <<'EOF' || fail "lock: $(cat "$W/spec.lock.yaml")"
import sys, yaml
l = yaml.safe_load(open(sys.argv[1]))
assert l["apiVersion"] == "ferry/v1" and l["kind"] == "Lock", l
assert {"ref": "docker.io/library/app-a:1", "digest": sys.argv[2]} in l["images"], l
EOF
build locked --locked >/dev/null || fail "--locked build: $(cat "$W/locked.log")"
# the tag moves: --locked refuses, naming both digests
push "$W/L:b" library/app-a:1
expect_fail 2 "docker.io/library/app-a:1 now points to sha256:[0-9a-f]{64}, but the lock file pins $A" build moved --locked
[ ! -e "$W/moved.tar" ] || fail "a bundle was written against the lock"
expect_fail 64 "exclude each other" build both --lock --locked
stop_registry

# --- TLS with ca:, then a client certificate ---
cd "$W"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ferry-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile san.ext 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout cli.key -out cli.csr -subj /CN=ferry-client 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' >cli.ext
openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 2 -extfile cli.ext 2>/dev/null
cd - >/dev/null
printf 'http:\n  tls:\n    certificate: %s\n    key: %s\n' "$W/srv.pem" "$W/srv.key" >"$W/tls.yml"
# the registry's http: block is in the header; append tls under it
start_tls() { # EXTRA_YAML
	REG_PORT=$(free_port)
	sed -e "s#@PORT@#$REG_PORT#" "$1" >"$T/tls-reg.yml"
	docker-registry serve "$T/tls-reg.yml" >"$T/tls-reg.log" 2>&1 &
	REG_PID=$!
	REG_LOG=$T/tls-reg.log
	FERRY_PIDS="$FERRY_PIDS $REG_PID"
	wait_port "$REG_PORT"
}
cat >"$W/tls-base.yml" <<EOF2
version: 0.1
log:
  level: warn
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $REG_DATA_DIR
http:
  addr: 127.0.0.1:@PORT@
  tls:
    certificate: $W/srv.pem
    key: $W/srv.key
EOF2
start_tls "$W/tls-base.yml"
SPEC_INSECURE= spec_header "$W/spec.yaml" "ca: ca.pem"
printf '  - app-a:1\n' >>"$W/spec.yaml"
rm -rf "$W/cache"
build tls --json >/dev/null || fail "TLS build with ca: $(cat "$W/tls.log")"
# the registry offers HTTP/2 over TLS (ALPN): the transfers used it
python3 - "$W/tls.log" <<'PY' || fail "no HTTP/2: $(grep summary "$W/tls.log")"
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
s = [e for e in s if e["event"] == "summary"][0]
sys.exit(0 if s["http2_responses"] > 0 else 1)
PY
ferry-install verify "$W/tls.tar" --pubkey "$W/k.pub" >/dev/null
ferry_requests "$REG_LOG" | grep -q '^GET /v2/library/app-a/blobs/' || fail "no blob came over TLS"
# without ca: the certificate is refused
SPEC_INSECURE= spec_header "$W/spec.yaml"
printf '  - app-a:1\n' >>"$W/spec.yaml"
rm -rf "$W/cache"
expect_fail 1 "certificate" build noca
stop_registry

# a registry that wants a client certificate
cp "$W/tls-base.yml" "$W/tls-mtls.yml"
printf '    clientcas:\n      - %s\n' "$W/ca.pem" >>"$W/tls-mtls.yml"
start_tls "$W/tls-mtls.yml"
SPEC_INSECURE= spec_header "$W/spec.yaml" "ca: ca.pem"
printf '  - app-a:1\n' >>"$W/spec.yaml"
rm -rf "$W/cache"
expect_fail 1 "127.0.0.1:$REG_PORT" build nocert
SPEC_INSECURE= spec_header "$W/spec.yaml" "ca: ca.pem" "cert: cli.pem" "key: cli.key"
printf '  - app-a:1\n' >>"$W/spec.yaml"
build mtls >/dev/null || fail "client-certificate build: $(cat "$W/mtls.log")"
echo "pull_lock_tls: ok"
