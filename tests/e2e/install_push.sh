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
REGISTRY_AUTH_FILE=/nonexistent expect_fail 1 "requires credentials .HTTP 401. and none were found" \
	ferry-install push "$BUNDLE" --pubkey "$PUB" --to "$REG/mirror" --plain-http

# --realm-credentials takes a host or host:port (the token-realm rules
# themselves are tested in pull_auth.sh, which runs a token server)
expect_fail 64 "realm-credentials takes a host" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:/nonexistent.sock" \
	--to "$REG/mirror" --plain-http --realm-credentials "http://127.0.0.2/token"
expect_fail 64 "realm-credentials takes a host" \
	ferry-install push "$BUNDLE" --pubkey "$PUB" --to "$REG/mirror" --plain-http \
	--realm-credentials ""

# --- first push
ferry-install push "$BUNDLE" --pubkey "$PUB" --to "$REG/mirror" --plain-http | tee "$T/push1"
grep -qE "pushed $N_IMAGES images" "$T/push1" || fail "first push"
for ref in $IMAGES; do
	want=$(bundle_digest "$ref")
	got=$(skopeo inspect --raw --tls-verify=false --creds ferry:s3cret "docker://$REG/mirror/$ref" | sha256sum | cut -d' ' -f1)
	[ "sha256:$got" = "$want" ] || fail "$ref: registry holds sha256:$got, the bundle $want"
done
for ref in $CIMAGES; do
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

# --- a tampered bundle: content is hashed while it is pushed, so a flipped
# byte (SHA256SUMS and its signature left as they are) stops the push with
# exit 2 naming the member, and no manifest or tag of the affected image is
# put. flip.py BUNDLE OUT REF [layer|manifest]: flips one byte in the
# middle of REF's own layer (one no other image has) or of its manifest,
# prints the member name and writes that blob's good bytes to OUT.blob.
cat >"$T/flip.py" <<'EOF'
import json, shutil, sys, tarfile
src, out, ref, what = sys.argv[1:5]
t = tarfile.open(src)
def blob(d):
    return json.load(t.extractfile("blobs/sha256/" + d.split(":")[1]))
mans = {m["annotations"]["io.containerd.image.name"]: m["digest"]
        for m in json.load(t.extractfile("index.json"))["manifests"]}
if what == "manifest":
    d = mans[ref]
else:
    others = set()
    for r, md in mans.items():
        if r != ref:
            man = blob(md)
            for k in man.get("manifests", []):
                others |= {l["digest"] for l in blob(k["digest"])["layers"]}
            others |= {l["digest"] for l in man.get("layers", [])}
    d = [l["digest"] for l in blob(mans[ref])["layers"] if l["digest"] not in others][0]
m = t.getmember("blobs/sha256/" + d.split(":")[1])
open(out + ".blob", "wb").write(t.extractfile(m).read())
shutil.copyfile(src, out)
with open(out, "r+b") as f:
    f.seek(m.offset_data + m.size // 2)
    b = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([b[0] ^ 0x01]))
print(m.name)
EOF
# manifest_there REPO TAG: does the registry answer for that manifest?
manifest_there() {
	curl -sf -o /dev/null -u ferry:s3cret \
		-H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json" \
		"http://$REG/v2/$1/manifests/$2"
}
# the check itself can see a pushed manifest
manifest_there mirror/example.local/demo/app2 1.0 || fail "manifest_there misses a pushed manifest"
skopeo inspect --tls-verify=false --creds ferry:s3cret "docker://$REG/mirror/example.local/demo/app2:1.0" >/dev/null ||
	fail "skopeo inspect misses a pushed image"
# a) the flipped layer is uploaded: hashed by the read that feeds the upload
# (--no-idle-hash: no idle-time hasher gets to it first)
member=$(python3 "$T/flip.py" "$BUNDLE" "$T/bad-layer.tar" example.local/demo/app2:1.0 layer)
layer_member=$member
cmp -s "$BUNDLE" "$T/bad-layer.tar" && fail "the flip changed nothing"
ferry-install verify "$T/bad-layer.tar" --pubkey "$PUB" >/dev/null 2>&1 && fail "verify takes the flipped bundle"
expect_fail 2 "digest mismatch in member '$member'" \
	ferry-install push "$T/bad-layer.tar" --pubkey "$PUB" --to "$REG/tamper" --plain-http --no-idle-hash
manifest_there tamper/example.local/demo/app2 1.0 && fail "a manifest of the tampered image was put (upload path)"
skopeo inspect --tls-verify=false --creds ferry:s3cret "docker://$REG/tamper/example.local/demo/app2:1.0" >/dev/null 2>&1 &&
	fail "skopeo finds the tampered image (upload path)"
# b) the registry holds the good blob already (HEAD 200: not read for
# upload), so only the verifier's hash can catch the flip
repo=tamper2/example.local/demo/app2
loc=$(curl -sf -u ferry:s3cret -X POST -D - -o /dev/null "http://$REG/v2/$repo/blobs/uploads/" |
	tr -d '\r' | awk -F': ' 'tolower($1) == "location" {print $2}')
[ -n "$loc" ] || fail "no upload location for the seed blob"
case $loc in http*) ;; *) loc=http://$REG$loc ;; esac
case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
curl -sf -u ferry:s3cret -X PUT -H "Content-Type: application/octet-stream" --data-binary "@$T/bad-layer.tar.blob" \
	"$loc${sep}digest=sha256:${member#blobs/sha256/}" -o /dev/null || fail "seeding the good blob"
curl -sfI -u ferry:s3cret "http://$REG/v2/$repo/blobs/sha256:${member#blobs/sha256/}" >/dev/null || fail "seed blob not there"
mark=$(wc -l <"$T/reg/log")
expect_fail 2 "digest mismatch in member '$member'" \
	ferry-install push "$T/bad-layer.tar" --pubkey "$PUB" --to "$REG/tamper2" --plain-http --no-idle-hash
tail -n +"$((mark + 1))" "$T/reg/log" | grep -qE "\"HEAD /v2/$repo/blobs/sha256:${member#blobs/sha256/} HTTP/1.1\" 200" ||
	fail "the seeded blob was not found by HEAD (the test does not test the verifier path)"
tail -n +"$((mark + 1))" "$T/reg/log" | grep -qE "\"(PUT|PATCH) /v2/$repo/blobs/uploads/[^ ]*${member#blobs/sha256/}" &&
	fail "the seeded blob was uploaded again"
manifest_there "$repo" 1.0 && fail "a manifest of the tampered image was put (HEAD path)"
# c) a flipped manifest: caught when it is read, before anything refers to it
member=$(python3 "$T/flip.py" "$BUNDLE" "$T/bad-man.tar" example.local/demo/app1:1.0 manifest)
expect_fail 2 "digest mismatch in member '$member'" \
	ferry-install push "$T/bad-man.tar" --pubkey "$PUB" --to "$REG/tamper3" --plain-http
manifest_there tamper3/example.local/demo/app1 1.0 && fail "the tampered manifest was put"
# install --mode push: the same, exit 2
expect_fail 2 "digest mismatch in member" \
	ferry-install install "$T/bad-layer.tar" --pubkey "$PUB" --target "containerd:/nonexistent.sock" \
	--to "$REG/tamper4" --plain-http --hosts-dir "$T/tamper-certs"
manifest_there tamper4/example.local/demo/app2 1.0 && fail "install --mode push put a manifest of the tampered image"
[ -e "$T/tamper-certs" ] && fail "install --mode push wrote mirror configuration for a tampered bundle"
# d) with the idle-time hashers (the default), whichever thread hashes the
# flipped layer first stops the push all the same
expect_fail 2 "digest mismatch in member '$layer_member'" \
	ferry-install push "$T/bad-layer.tar" --pubkey "$PUB" --to "$REG/tamper5" --plain-http --jobs 1
manifest_there tamper5/example.local/demo/app2 1.0 && fail "a manifest of the tampered image was put (idle-time hashers)"
# e) install --mode push --dry-run: nothing is sent, every member is hashed all the same
mark=$(wc -l <"$T/reg/log")
ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:/nonexistent.sock" \
	--to "$REG/dry" --plain-http --dry-run >"$T/dry" 2>&1 || { cat "$T/dry"; fail "push dry-run"; }
[ "$(grep -c '^ *would push ' "$T/dry")" = "$N_IMAGES" ] || { cat "$T/dry"; fail "push dry-run: not every image would be pushed"; }
grep -qE "verified [0-9]+ members .* while pushing" "$T/dry" || fail "push dry-run hashed nothing"
tail -n +"$((mark + 1))" "$T/reg/log" | grep -qE '"(POST|PUT|PATCH|HEAD|GET) /v2/' && fail "push dry-run talked to the registry"
expect_fail 2 "digest mismatch in member '$layer_member'" \
	ferry-install install "$T/bad-layer.tar" --pubkey "$PUB" --target "containerd:/nonexistent.sock" \
	--to "$REG/dry" --plain-http --dry-run
echo "tampered bundles: exit 2 naming the member, no manifest of the affected image"

# --- idle-time hashers: with one stream the CPUs idle while the registry
# answers, so they hash some blobs; --no-idle-hash leaves every blob to its
# upload. Either way every member is verified.
idle_count() { sed -nE 's/^verified ([0-9]+) members .* while pushing, ([0-9]+) of them in idle time$/\1 \2/p' "$1"; }
ferry-install push "$BUNDLE" --pubkey "$PUB" --to "$REG/idle" --plain-http --jobs 1 | tee "$T/push-idle"
read -r all idle < <(idle_count "$T/push-idle")
[ "${idle:-0}" -ge 1 ] || fail "no member was hashed by an idle-time hasher"
ferry-install push "$BUNDLE" --pubkey "$PUB" --to "$REG/noidle" --plain-http --jobs 1 --no-idle-hash | tee "$T/push-noidle"
read -r all2 idle2 < <(idle_count "$T/push-noidle")
[ "${idle2:-x}" = 0 ] || fail "--no-idle-hash: $idle2 members hashed in idle time"
[ "$all" = "$all2" ] && [ "$all" -ge 1 ] || fail "members verified: $all with idle-time hashers, $all2 without"
echo "idle-time hashers: $idle of $all members; none with --no-idle-hash"

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
echo "$out" | grep -qE "images +done 0, skipped $N_IMAGES" || fail "install --mode push re-sent images"
grep -qx "server = \"http://$REG/v2/mirror/docker.io\"" "$T/certs.d/docker.io/hosts.toml" ||
	fail "hosts.toml does not point at the pushed registry"
for ref in $CIMAGES; do
	$CTR images pull --user ferry:s3cret --hosts-dir "$T/certs.d" "$ref" >"$T/pull.log" 2>&1 ||
		{ cat "$T/pull.log"; fail "ctr pull $ref through the pushed registry"; }
	$CTR images ls | awk -v r="$ref" '$1 == r {print $3}' | grep -qx "$(bundle_digest "$ref")" ||
		fail "$ref: wrong digest after the pull"
done

# --- pull secrets for the registry that needs credentials
mkdir -p "$T/bin"
cp "$TOP/tests/fixtures/kubectl-standin" "$T/bin/kubectl"
cp "$TOP/tests/fixtures/kubectl-standin" "$T/bin/oc"
export PATH="$T/bin:$PATH"
# okd: merged into openshift-config/pull-secret, the existing entries kept
export KUBECTL_STANDIN_LOG=$T/okd.log
KUBECTL_STANDIN_PULL_SECRET='{"auths":{"quay.io":{"auth":"cXVheTpwdw=="}}}' \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target okd --to "$REG/mirror" --plain-http \
	--no-apply >"$T/out" 2>&1 || { cat "$T/out"; fail "okd push"; }
n=$(grep '^APPLIED .* Secret/pull-secret ns=openshift-config' "$KUBECTL_STANDIN_LOG" | awk '{print $2}')
[ -n "$n" ] || fail "okd: pull-secret not applied"
python3 - "$KUBECTL_STANDIN_LOG.d/$n.stdin" "$REG" <<'EOF' || fail "okd: pull-secret not merged"
import base64, json, sys, yaml
s = yaml.safe_load(open(sys.argv[1]))
assert s["type"] == "kubernetes.io/dockerconfigjson"
cfg = json.loads(base64.b64decode(s["data"][".dockerconfigjson"]))
assert cfg["auths"]["quay.io"]["auth"] == "cXVheTpwdw==", cfg   # kept
assert base64.b64decode(cfg["auths"][sys.argv[2]]["auth"]) == b"ferry:s3cret"
print("okd pull-secret: quay.io kept, %s added" % sys.argv[2])
EOF
grep -q 's3cret' "$T/out" "$KUBECTL_STANDIN_LOG" && fail "a secret leaked into a log or message"
grep -q "^APPLIED .* ImageDigestMirrorSet/" "$KUBECTL_STANDIN_LOG" || fail "okd push: no IDMS"
# a pull-secret that cannot be read (API down) is left alone: never
# replaced by one that holds only the mirror's entry
mkdir -p "$T/bin-flaky"
for p in oc kubectl; do
	cat >"$T/bin-flaky/$p" <<EOF
#!/bin/sh
case "\$*" in *"get secret pull-secret"*)
	echo "The connection to the server api.lab:6443 was refused" >&2; exit 1 ;;
esac
exec "$T/bin/$p" "\$@"
EOF
	chmod +x "$T/bin-flaky/$p"
done
export KUBECTL_STANDIN_LOG=$T/okd-flaky.log
PATH="$T/bin-flaky:$PATH" KUBECTL_STANDIN_PULL_SECRET='{"auths":{"quay.io":{"auth":"cXVheTpwdw=="}}}' \
	expect_fail 1 "reading openshift-config/pull-secret \(left as it is\).*connection to the server" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target okd --to "$REG/mirror" --plain-http --no-apply
grep -q "Secret/pull-secret" "$KUBECTL_STANDIN_LOG" && fail "okd: an unreadable pull-secret was replaced"
# kind: a Secret per namespace and the default ServiceAccount, after the
# namespaces and before the workloads
export KUBECTL_STANDIN_LOG=$T/kind.log
ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:demo --node-runner local --nodes demo-control-plane \
	--to "$REG/mirror" --plain-http --hosts-dir "$T/kind-certs" --backoff 0.05 >"$T/out" 2>&1 ||
	{ cat "$T/out"; fail "kind push"; }
cat "$KUBECTL_STANDIN_LOG"
[ -f "$T/kind-certs/docker.io/hosts.toml" ] || fail "kind push: no hosts.toml"
for ns in ferry-demo default; do
	grep -q "^APPLIED .* Secret/ferry-pull-secret ns=$ns " "$KUBECTL_STANDIN_LOG" || fail "no pull secret in $ns"
	grep -q "^CALL .* patch serviceaccount default -n $ns --type=json -p .*ferry-pull-secret" "$KUBECTL_STANDIN_LOG" ||
		fail "default ServiceAccount of $ns not patched"
done
sec=$(grep -n 'Secret/ferry-pull-secret' "$KUBECTL_STANDIN_LOG" | head -n 1 | cut -d: -f1)
nsl=$(grep -n 'APPLIED .* Namespace/ferry-demo' "$KUBECTL_STANDIN_LOG" | cut -d: -f1)
dep=$(grep -n 'APPLIED .* Deployment/app' "$KUBECTL_STANDIN_LOG" | cut -d: -f1)
[ "$nsl" -lt "$sec" ] && [ "$sec" -lt "$dep" ] || fail "pull secrets not between namespaces and workloads"
# the stand-in stores what it was given: each default ServiceAccount lists
# the secret once, and a second run patches nothing
sa_secrets() { kubectl get serviceaccount default -n "$1" -o 'jsonpath={.imagePullSecrets[*].name}' </dev/null; }
for ns in ferry-demo default; do
	[ "$(sa_secrets "$ns")" = ferry-pull-secret ] || fail "ServiceAccount default in $ns lists: $(sa_secrets "$ns")"
done
ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:demo --node-runner local --nodes demo-control-plane \
	--to "$REG/mirror" --plain-http --hosts-dir "$T/kind-certs" --backoff 0.05 >"$T/out" 2>&1 ||
	{ cat "$T/out"; fail "kind push, second run"; }
[ "$(grep -c '^CALL .* patch serviceaccount' "$KUBECTL_STANDIN_LOG")" -eq 2 ] ||
	fail "the second run patched a ServiceAccount that already lists the secret"
# a ServiceAccount that already lists another secret keeps it
export KUBECTL_STANDIN_LOG=$T/kind-corp.log
kubectl patch serviceaccount default -n default --type=json \
	-p '[{"op":"add","path":"/imagePullSecrets","value":[{"name":"corp"}]}]' </dev/null >/dev/null
ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:demo --node-runner local --nodes demo-control-plane \
	--to "$REG/mirror" --plain-http --hosts-dir "$T/kind-certs" --backoff 0.05 >"$T/out" 2>&1 ||
	{ cat "$T/out"; fail "kind push beside another pull secret"; }
[ "$(sa_secrets default)" = "corp ferry-pull-secret" ] || fail "ServiceAccount default lists: $(sa_secrets default)"
# --insecure-skip-signature: warned, and written into the report; a push
# without either is a usage error
ferry-install push "$BUNDLE" --insecure-skip-signature --to "$REG/unsigned" --plain-http \
	>"$T/unsigned.out" 2>"$T/unsigned.err" || { cat "$T/unsigned.err"; fail "push --insecure-skip-signature"; }
grep -q "WARNING: signature NOT checked" "$T/unsigned.err" || fail "no warning for --insecure-skip-signature"
grep -q "^pushed .*(signature NOT checked" "$T/unsigned.out" || fail "the push report hides the skipped signature"
ferry-install push "$BUNDLE" --to "$REG/unsigned" --plain-http >/dev/null 2>&1 && fail "push without --pubkey ran"
echo "ok: push"
