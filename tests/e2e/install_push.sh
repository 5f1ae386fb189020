#!/bin/bash
# Push mode into a Debian docker-registry with htpasswd auth, inside a
# network namespace with only loopback:
#  - skopeo inspect shows every image with the bundle's digest;
#  - a second push uploads zero blobs (from the registry's access log);
#  - a layer shared by two repositories is mounted across them;
#  - install --mode push writes hosts.toml for that registry, and ctr pulls
#    through it.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need docker-registry htpasswd skopeo umoci python3 containerd ctr
assert_airgap
make_bundle

port=$(free_port)
REG=127.0.0.1:$port
mkdir -p "$T/reg"
htpasswd -Bbn ferry s3cret >"$T/reg/htpasswd"
cat >"$T/reg/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $T/reg/data
http:
  addr: $REG
  secret: ferry-e2e
auth:
  htpasswd:
    realm: ferry
    path: $T/reg/htpasswd
EOF
docker-registry serve "$T/reg/config.yml" >"$T/reg/log" 2>&1 &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$port"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" "$(printf ferry:s3cret | base64)" >"$T/auth.json"
export REGISTRY_AUTH_FILE=$T/auth.json

# no credentials: a clear error
REGISTRY_AUTH_FILE=/nonexistent expect_fail 1 "asks for credentials" \
	ferry-install push "$BUNDLE" --pubkey "$PUB" --to "$REG/mirror" --plain-http

# --- first push
ferry-install push "$BUNDLE" --pubkey "$PUB" --to "$REG/mirror" --plain-http | tee "$T/push1"
grep -qE "pushed 3 images" "$T/push1" || fail "first push"
for ref in $IMAGES; do
	want=$(bundle_digest "$ref")
	got=$(skopeo inspect --raw --tls-verify=false --creds ferry:s3cret "docker://$REG/mirror/$ref" | sha256sum | cut -d' ' -f1)
	[ "sha256:$got" = "$want" ] || fail "$ref: registry holds sha256:$got, the bundle $want"
	skopeo inspect --tls-verify=false --creds ferry:s3cret "docker://$REG/mirror/$ref" >/dev/null ||
		fail "skopeo inspect $ref"
done
echo "skopeo: every image has the bundle's digest"
# the shared base layer was mounted into the second repository
grep -E '"POST /v2/mirror/[^ ]*/blobs/uploads/\?mount=sha256:[0-9a-f]{64}&from=mirror/[^ ]* HTTP/1.1" 201' "$T/reg/log" ||
	fail "no cross-repository mount"
# children before the index
child=$(grep -nE '"PUT /v2/mirror/docker.io/library/multi/manifests/sha256:' "$T/reg/log" | head -n 1 | cut -d: -f1)
index=$(grep -nE '"PUT /v2/mirror/docker.io/library/multi/manifests/2.0 ' "$T/reg/log" | cut -d: -f1)
[ -n "$child" ] && [ -n "$index" ] && [ "$child" -lt "$index" ] || fail "the index was put before its children"

# --- second push: zero blobs uploaded, zero manifests put
mark=$(wc -l <"$T/reg/log")
ferry-install push "$BUNDLE" --pubkey "$PUB" --to "$REG/mirror" --plain-http | tee "$T/push2"
uploads=$(tail -n +"$((mark + 1))" "$T/reg/log" | grep -cE '"(POST|PUT|PATCH) /v2/[^ ]*/blobs/uploads/' || true)
puts=$(tail -n +"$((mark + 1))" "$T/reg/log" | grep -cE '"PUT /v2/[^ ]*/manifests/' || true)
echo "second push: $uploads blob upload requests, $puts manifest puts"
[ "$uploads" -eq 0 ] && [ "$puts" -eq 0 ] || fail "the second push sent data again"
grep -q "0 blobs uploaded" "$T/push2" || fail "second push counts uploads"

# --- install --mode push: then hosts.toml for that registry; ctr pulls through it
start_containerd "$T/ctd"
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--to "$REG/mirror" --plain-http --hosts-dir "$T/certs.d")
echo "$out"
echo "$out" | grep -qE "images +done 0, skipped 3" || fail "install --mode push re-sent images"
grep -qx "server = \"http://$REG/v2/mirror/docker.io\"" "$T/certs.d/docker.io/hosts.toml" ||
	fail "hosts.toml does not point at the pushed registry"
for ref in $IMAGES; do
	$CTR images pull --user ferry:s3cret --hosts-dir "$T/certs.d" "$ref" >"$T/pull.log" 2>&1 ||
		{ cat "$T/pull.log"; fail "ctr pull $ref through the pushed registry"; }
	$CTR images ls | awk -v r="$ref" '$1 == r {print $3}' | grep -qx "$(bundle_digest "$ref")" ||
		fail "$ref: wrong digest after the pull"
done
echo "ok: push"
