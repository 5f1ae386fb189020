# Auth against real servers: htpasswd Basic on docker-registry with
# credentials from a test config.json; a credential helper; the Bearer
# token flow against the registry's `token` auth with a small issuer; wrong
# credentials give a clear error; secrets never appear in the output.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"
command -v htpasswd >/dev/null || skip "htpasswd (apache2-utils) is not installed"

W=$T/w
mkdir -p "$W"
ferry-build keygen -o "$W/k" >/dev/null
export HOME=$T/home
mkdir -p "$HOME"
unset REGISTRY_AUTH_FILE
SECRET='s3cret-Pa55'
b64() { printf '%s' "$1" | base64 -w0; }

# images first, into an open registry; then the same storage behind auth
export REG_DATA_DIR=$T/data
start_registry open
make_shared_images "$W/L"
push "$W/L:a" library/app-a:1
push "$W/L:b" library/app-b:1
stop_registry

build() { # OUT_PREFIX: build the spec; output kept in OUT_PREFIX.log
	rc=0
	ferry-build build "$W/spec.yaml" -o "$1.tar" --key "$W/k.key" --cache "$1.cache" >"$1.log" 2>&1 || rc=$?
	cat "$1.log"
	return $rc
}

# --- htpasswd Basic ---
htpasswd -Bbc "$W/htpasswd" alice "$SECRET" >/dev/null 2>&1
printf 'auth:\n  htpasswd:\n    realm: ferry-test\n    path: %s\n' "$W/htpasswd" >"$W/basic.yml"
start_registry basic "$W/basic.yml"
spec_header "$W/spec.yaml"
printf '  - app-a:1\n  - app-b:1\n' >>"$W/spec.yaml"
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$REG_PORT/v2/" | grep -q 401 || fail "registry is not behind auth"

# no credentials: a clear error naming the host
export DOCKER_CONFIG=$W/none
expect_fail 1 "127.0.0.1:$REG_PORT requires credentials" build "$W/anon"
# wrong password
mkdir -p "$W/bad"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$REG_PORT" "$(b64 "alice:wrong-pass")" >"$W/bad/config.json"
export DOCKER_CONFIG=$W/bad
expect_fail 1 "refused the credentials from $W/bad/config.json" build "$W/bad"
grep -q wrong-pass "$W/bad.log" && fail "a secret was printed"
# right password (key written with a scheme, as docker login sometimes does)
mkdir -p "$W/good"
printf '{"auths":{"http://127.0.0.1:%s":{"auth":"%s"}}}' "$REG_PORT" "$(b64 "alice:$SECRET")" >"$W/good/config.json"
export DOCKER_CONFIG=$W/good
build "$W/basic" || fail "basic auth build: $(cat "$W/basic.log")"
grep -q "$SECRET" "$W/basic.log" && fail "the secret was printed"
ferry-install verify "$W/basic.tar" --pubkey "$W/k.pub" >/dev/null

# --- $REGISTRY_AUTH_FILE (containers auth.json) ---
export DOCKER_CONFIG=$W/none
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$REG_PORT" "$(b64 "alice:$SECRET")" >"$W/auth.json"
REGISTRY_AUTH_FILE=$W/auth.json build "$W/authfile" || fail "REGISTRY_AUTH_FILE build: $(cat "$W/authfile.log")"

# --- a credential helper on PATH (credHelpers, then credsStore) ---
mkdir -p "$W/bin"
cat >"$W/bin/docker-credential-ferrytest" <<EOF2
#!/bin/sh
[ "\$1" = get ] || exit 1
read -r server || true
echo "\$server" >>"$W/helper.calls"
[ "\$server" = "127.0.0.1:$REG_PORT" ] || { echo "credentials not found in native keychain"; exit 1; }
printf '{"ServerURL":"%s","Username":"alice","Secret":"%s"}\n' "\$server" "$SECRET"
EOF2
chmod +x "$W/bin/docker-credential-ferrytest"
mkdir -p "$W/helper" "$W/store"
printf '{"credHelpers":{"127.0.0.1:%s":"ferrytest"}}' "$REG_PORT" >"$W/helper/config.json"
printf '{"credsStore":"ferrytest"}' >"$W/store/config.json"
export PATH="$W/bin:$PATH"
DOCKER_CONFIG=$W/helper build "$W/helper" || fail "credHelpers build: $(cat "$W/helper.log")"
grep -q "docker-credential-ferrytest" "$W/helper.log" || fail "helper not reported: $(cat "$W/helper.log")"
DOCKER_CONFIG=$W/store build "$W/store" || fail "credsStore build: $(cat "$W/store.log")"
[ "$(grep -c . "$W/helper.calls")" = 2 ] || fail "helper ran $(grep -c . "$W/helper.calls") times, want once per build"
stop_registry

# --- Bearer tokens from an issuer the test runs ---
python3 -c 'import cryptography' 2>/dev/null || skip "python3 cryptography is missing (Bearer part)"
TPORT=$(free_port)
mkdir -p "$W/tok"
IDTOK='idtok-7Rq2-refresh'
python3 "$(dirname "$0")/pull_token.py" "$TPORT" "$W/tok" ferry-svc ferry-iss alice "$SECRET" "$W/token.log" "$IDTOK" &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$TPORT"
cat >"$W/token.yml" <<EOF2
auth:
  token:
    realm: http://127.0.0.1:$TPORT/token
    service: ferry-svc
    issuer: ferry-iss
    rootcertbundle: $W/tok/token.crt
EOF2
start_registry bearer "$W/token.yml"
spec_header "$W/spec.yaml"
printf '  - app-a:1\n  - app-b:1\n' >>"$W/spec.yaml"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$REG_PORT" "$(b64 "alice:$SECRET")" >"$W/good/config.json"
export DOCKER_CONFIG=$W/good
build "$W/bearer" || fail "bearer build: $(cat "$W/bearer.log")"
ferry-install verify "$W/bearer.tar" --pubkey "$W/k.pub" >/dev/null
# one token per repository scope, bought with credentials, reused for every request
python3 - "$W/token.log" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
scopes = sorted(s for r in reqs for s in r["scope"])
assert scopes == ["repository:library/app-a:pull", "repository:library/app-b:pull"], reqs
assert all(r["auth"] and r["status"] == 200 and r["service"] == ["ferry-svc"] for r in reqs), reqs
PY
# every registry request after the ping carried the token
n401=$(ferry_requests "$REG_LOG" | awk '$3==401 && $2!="/v2/"' | wc -l)
[ "$n401" = 0 ] || fail "$n401 requests were refused: tokens not reused"
# an expired (or revoked) token: the registry answers 401, the client drops
# it, buys a new one for that scope once, and the build goes on
: >"$W/token.log"
echo '["repository:library/app-a:pull"]' >"$W/tok/stale"
build "$W/bearer-stale" || fail "build with a stale token: $(cat "$W/bearer-stale.log")"
ferry-install verify "$W/bearer-stale.tar" --pubkey "$W/k.pub" >/dev/null
python3 - "$W/token.log" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
a = [r for r in reqs if r["scope"] == ["repository:library/app-a:pull"]]
b = [r for r in reqs if r["scope"] == ["repository:library/app-b:pull"]]
assert [r["stale"] for r in a] == [True, False], reqs
assert [r["stale"] for r in b] == [False], reqs
PY
[ "$(cat "$W/tok/stale")" = "[]" ] || fail "the stale token was never asked for"
n401=$(ferry_requests "$REG_LOG" | awk '$3==401 && $2!="/v2/"' | wc -l)
[ "$n401" -ge 1 ] || fail "the registry never refused the stale token"
# anonymous: the issuer gives a token with no access -> clear error
export DOCKER_CONFIG=$W/none
expect_fail 1 "requires credentials" build "$W/bearer-anon"
# wrong credentials: the token server refuses them
export DOCKER_CONFIG=$W/bad
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$REG_PORT" "$(b64 "alice:wrong-pass")" >"$W/bad/config.json"
expect_fail 1 "token server http://127.0.0.1:$TPORT/token refused the credentials" build "$W/bearer-bad"
grep -q wrong-pass "$W/bearer-bad.log" && fail "a secret was printed"

# --- an identity token (what `docker login` stores for ACR and the like):
# tokens are bought with the OAuth2 refresh-token grant, a POST without a
# Basic header; it wins over the entry's auth; never printed
mkdir -p "$W/idtok"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s","identitytoken":"%s"}}}' "$REG_PORT" \
	"$(b64 "00000000-0000-0000-0000-000000000000:")" "$IDTOK" >"$W/idtok/config.json"
export DOCKER_CONFIG=$W/idtok
: >"$W/token.log"
build "$W/ident" || fail "identity token build: $(cat "$W/ident.log")"
ferry-install verify "$W/ident.tar" --pubkey "$W/k.pub" >/dev/null
grep -q "$IDTOK" "$W/ident.log" && fail "the identity token was printed"
python3 - "$W/token.log" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert reqs and all(r.get("method") == "POST" and r["grant"] == "refresh_token" and not r["auth"]
                    and r["status"] == 200 and r["service"] == ["ferry-svc"] and r["client_id"]
                    for r in reqs), reqs
assert sorted(s for r in reqs for s in r["scope"]) == ["repository:library/app-a:pull",
                                                       "repository:library/app-b:pull"], reqs
PY
# a credential helper that answers Username "<token>" gives an identity token too
cat >"$W/bin/docker-credential-ferryid" <<EOF2
#!/bin/sh
read -r server || true
printf '{"ServerURL":"%s","Username":"<token>","Secret":"%s"}\n' "\$server" "$IDTOK"
EOF2
chmod +x "$W/bin/docker-credential-ferryid"
mkdir -p "$W/idhelper"
printf '{"credHelpers":{"127.0.0.1:%s":"ferryid"}}' "$REG_PORT" >"$W/idhelper/config.json"
: >"$W/token.log"
DOCKER_CONFIG=$W/idhelper build "$W/idhelper" || fail "identity token from a helper: $(cat "$W/idhelper.log")"
grep -q '"method": "POST"' "$W/token.log" || fail "the helper's identity token was not used as one"
# push with the identity token: the refresh-token grant buys the push scopes
out=$(ferry-install push "$W/ident.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$REG_PORT/mirror" \
	--plain-http 2>&1) || fail "push with an identity token: $out"
echo "$out" | grep -q "$IDTOK" && fail "push printed the identity token"
python3 - "$W/token.log" <<'PY'
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
push = [r for r in reqs if any(":push" in s or ",push" in s for s in r["scope"])]
assert push and all(r.get("method") == "POST" and r["status"] == 200 and not r["auth"] for r in push), reqs
PY
echo "$out" | grep -q "pushed 2 images to 127.0.0.1:$REG_PORT" || fail "push with an identity token: $out"
# a wrong identity token: refused, named, not printed
printf '{"auths":{"127.0.0.1:%s":{"identitytoken":"idtok-wrong-one"}}}' "$REG_PORT" >"$W/idtok/config.json"
expect_fail 1 "refused the identity token for 127.0.0.1:$REG_PORT from $W/idtok/config.json" build "$W/ident-bad"
grep -q "idtok-wrong-one" "$W/ident-bad.log" && fail "a wrong identity token was printed"
# --- a token realm on another host (127.0.0.2; the registry is on
# 127.0.0.1): the credentials are withheld (an anonymous token is asked
# for) unless the spec allows that realm host for the registry
# (realm-credentials), and push needs --realm-credentials
stop_registry
TPORT2=$(free_port)
mkdir -p "$W/tok2"
TOKEN_ADDR=127.0.0.2 python3 "$(dirname "$0")/pull_token.py" "$TPORT2" "$W/tok2" ferry-svc ferry-iss \
	alice "$SECRET" "$W/token2.log" "$IDTOK" &
FERRY_PIDS="$FERRY_PIDS $!"
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.2/$TPORT2") 2>/dev/null && break
	sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.2/$TPORT2") 2>/dev/null || fail "the token server on 127.0.0.2 never started"
sed -e "s#http://127.0.0.1:$TPORT/token#http://127.0.0.2:$TPORT2/token#" \
	-e "s#$W/tok/token.crt#$W/tok2/token.crt#" "$W/token.yml" >"$W/token2.yml"
grep -q "realm: http://127.0.0.2:$TPORT2/token" "$W/token2.yml" || fail "token2.yml: $(cat "$W/token2.yml")"
start_registry foreign "$W/token2.yml"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$REG_PORT" "$(b64 "alice:$SECRET")" >"$W/good/config.json"
export DOCKER_CONFIG=$W/good
spec_header "$W/spec.yaml"
printf '  - app-a:1\n' >>"$W/spec.yaml"
: >"$W/token2.log"
expect_fail 1 "not sent to the token realm, since it is on another host \(127\.0\.0\.2\).*realm-credentials: \[127\.0\.0\.2\]" \
	build "$W/foreign"
grep -q "$SECRET" "$W/foreign.log" && fail "the secret was printed"
python3 - "$W/token2.log" <<'PY' || fail "foreign realm without allowance: $(cat "$W/token2.log")"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert reqs, "the token server was never asked"
assert all(not r["auth"] for r in reqs), reqs   # no Authorization header came
PY
# allowed for this registry in the spec: the credentials go, the build works
spec_header "$W/spec.yaml" "realm-credentials: [127.0.0.2]"
printf '  - app-a:1\n  - app-b:1\n' >>"$W/spec.yaml"
: >"$W/token2.log"
build "$W/foreign-ok" || fail "foreign realm allowed: $(cat "$W/foreign-ok.log")"
ferry-install verify "$W/foreign-ok.tar" --pubkey "$W/k.pub" >/dev/null
python3 - "$W/token2.log" <<'PY' || fail "foreign realm with allowance: $(cat "$W/token2.log")"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert reqs and all(r["auth"] and r["status"] == 200 for r in reqs), reqs
PY
# an allowance for another host does not count
spec_header "$W/spec.yaml" "realm-credentials: [127.0.0.3]"
printf '  - app-a:1\n' >>"$W/spec.yaml"
: >"$W/token2.log"
expect_fail 1 "not sent to the token realm" build "$W/foreign-other"
grep -q '"auth": true' "$W/token2.log" && fail "credentials went to a realm allowed for no one"
# an identity token is withheld the same way: no refresh-token POST
printf '{"auths":{"127.0.0.1:%s":{"identitytoken":"%s"}}}' "$REG_PORT" "$IDTOK" >"$W/idtok/config.json"
spec_header "$W/spec.yaml"
printf '  - app-a:1\n' >>"$W/spec.yaml"
: >"$W/token2.log"
DOCKER_CONFIG=$W/idtok expect_fail 1 "not sent to the token realm" build "$W/foreign-id"
grep -q '"method": "POST"' "$W/token2.log" && fail "the identity token went to a foreign realm"
grep -q "$IDTOK" "$W/foreign-id.log" && fail "the identity token was printed"
# push: the same rule, allowed with --realm-credentials
: >"$W/token2.log"
expect_fail 1 "not sent to its token realm, since it is on another host \(127\.0\.0\.2\).*--realm-credentials 127\.0\.0\.2" \
	ferry-install push "$W/foreign-ok.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$REG_PORT/fpush" --plain-http
python3 - "$W/token2.log" <<'PY' || fail "push, foreign realm without allowance: $(cat "$W/token2.log")"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert reqs and all(not r["auth"] for r in reqs), reqs
PY
: >"$W/token2.log"
out=$(ferry-install push "$W/foreign-ok.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$REG_PORT/fpush" \
	--plain-http --realm-credentials 127.0.0.2 2>&1) || fail "push with --realm-credentials: $out"
echo "$out" | grep -q "pushed 2 images" || fail "push with --realm-credentials: $out"
echo "$out" | grep -q "$SECRET" && fail "push printed the secret"
python3 - "$W/token2.log" <<'PY' || fail "push, foreign realm with allowance: $(cat "$W/token2.log")"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
push = [r for r in reqs if any("push" in s for s in r["scope"])]
assert push and all(r["auth"] and r["status"] == 200 for r in reqs), reqs
PY
expect_fail 64 "realm-credentials" ferry-install push "$W/foreign-ok.tar" --pubkey "$W/k.pub" \
	--to "127.0.0.1:$REG_PORT/fpush" --realm-credentials https://127.0.0.2/
# receipt --registry: the same auth as push. Without --realm-credentials
# the foreign realm gets no credentials and the receipt fails, naming the
# flag, writing nothing; with it, the receipt lists the two images pushed
: >"$W/token2.log"
expect_fail 1 "not sent to its token realm, since it is on another host \(127\.0\.0\.2\).*--realm-credentials 127\.0\.0\.2" \
	ferry-install receipt -o "$W/fr.receipt.json" --registry "127.0.0.1:$REG_PORT/fpush" --plain-http
[ -e "$W/fr.receipt.json" ] && fail "a failed receipt wrote its file"
python3 - "$W/token2.log" <<'PY' || fail "receipt, foreign realm without allowance: $(cat "$W/token2.log")"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
assert reqs and all(not r["auth"] for r in reqs), reqs
PY
: >"$W/token2.log"
out=$(ferry-install receipt -o "$W/fr.receipt.json" --registry "127.0.0.1:$REG_PORT/fpush" --plain-http \
	--realm-credentials 127.0.0.2 2>&1) || fail "receipt with --realm-credentials: $out"
echo "$out" | grep -q "$SECRET" && fail "receipt printed the secret"
python3 - "$W/fr.receipt.json" "$W/token2.log" <<'PY' || fail "receipt with --realm-credentials: $out"
import json, sys
r = json.load(open(sys.argv[1]))
refs = sorted(i["ref"] for i in r["images"])
assert len(refs) == 2 and all(x.endswith(("/app-a:1", "/app-b:1")) for x in refs), refs
assert len(r["blobs"]) >= 6, r["blobs"]   # two manifests, two configs, their layers
reqs = [json.loads(l) for l in open(sys.argv[2])]
assert reqs and all(r["auth"] and r["status"] == 200 for r in reqs), reqs
assert any("registry:catalog:*" in r["scope"] for r in reqs), reqs
PY
expect_fail 64 "realm-credentials" ferry-install receipt -o "$W/x.json" \
	--registry "127.0.0.1:$REG_PORT/fpush" --realm-credentials https://127.0.0.2/
expect_fail 64 "usage" ferry-install receipt -o "$W/x.json" --containerd /nonexistent \
	--realm-credentials 127.0.0.2
stop_registry

# --- an https registry naming a plain-http token realm: refused before
# anything is sent to the realm (build and push)
command -v openssl >/dev/null || skip "openssl is not installed (TLS part)"
(
	cd "$W"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ferry-test-ca 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
		-extfile san.ext 2>/dev/null
)
{
	printf '  tls:\n    certificate: %s\n    key: %s\n' "$W/srv.pem" "$W/srv.key"
	cat "$W/token.yml"
} >"$W/tls-token.yml"
start_registry tlstoken "$W/tls-token.yml"
curl -s -o /dev/null -w '%{http_code}' --cacert "$W/ca.pem" "https://127.0.0.1:$REG_PORT/v2/" | grep -q 401 ||
	fail "the TLS registry is not behind token auth"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}' "$REG_PORT" "$(b64 "alice:$SECRET")" >"$W/good/config.json"
export DOCKER_CONFIG=$W/good
SPEC_INSECURE= spec_header "$W/spec.yaml" "ca: ca.pem"
printf '  - app-a:1\n' >>"$W/spec.yaml"
: >"$W/token.log"
expect_fail 1 "registry https://127.0.0.1:$REG_PORT names a plain-HTTP token realm \(http://127.0.0.1:$TPORT/token\)" \
	build "$W/tls-http-realm"
expect_fail 1 "registry https://127.0.0.1:$REG_PORT names a plain-HTTP token realm" \
	ferry-install push "$W/foreign-ok.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$REG_PORT/tlspush" --ca "$W/ca.pem"
[ ! -s "$W/token.log" ] || fail "the plain-http realm was contacted: $(cat "$W/token.log")"
stop_registry
echo "pull_auth: ok"
