#!/bin/bash
# Mirror mode and mirror-config, inside a network namespace with only
# loopback (any fallback to the real registries would fail):
#  - install --mode mirror --target containerd:SOCK starts `ferry-install
#    serve` (TLS, generated CA), writes hosts.toml, and then
#    `ctr images pull --hosts-dir` gets every image by digest and by tag;
#  - the registries.conf drop-in written for crio lets podman (vfs, private
#    storage) pull every image by tag and by digest;
#  - mirror-config writes the same files without touching anything, and the
#    OKD objects (IDMS for every image, ITMS only for tag refs, CA ConfigMap,
#    image.config patch); the okd plan applies them through the oc stand-in.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need containerd ctr podman umoci python3
ferry-install serve --help >/dev/null 2>&1 || fail "ferry-install serve --help failed"
assert_airgap
FERRY_PINNED=1 make_bundle
start_containerd "$T/ctd"
echo "images: $IMAGES"

# --- install, mirror mode, containerd: the registry is started for us
port=$(free_port)
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" --mode mirror \
	--listen "127.0.0.1:$port" --serve-dir "$T/serve" --hosts-dir "$T/certs.d") ||
	{ echo "$out"; cat "$T/serve/serve.log" 2>/dev/null; fail "mirror mode install failed"; }
echo "$out"
FERRY_PIDS="$FERRY_PIDS $(cat "$T/serve/serve.pid")"
[ -f "$T/serve/tls/ca.crt" ] || fail "no generated CA"
REG=127.0.0.1:$port
for h in docker.io example.local quay.io models.ferry.local; do # models.ferry.local: the modelcar
	f=$T/certs.d/$h/hosts.toml
	[ -f "$f" ] || fail "no hosts.toml for $h"
	grep -qx "server = \"https://$REG/v2/$h\"" "$f" || fail "$h: the mirror is not the server (strict air gap)"
	cmp -s "$T/certs.d/$h/ferry-ca.crt" "$T/serve/tls/ca.crt" || fail "$h: CA not written"
done
pulled=0
for ref in $IMAGES; do
	repo=${ref%@*}; repo=${repo%:*}
	case $ref in *@*) dg=${ref#*@} ;; *) dg=$(bundle_digest "$ref") ;; esac
	if ! echo " $CIMAGES " | grep -q " $ref "; then
		# a model artifact: content only (there is nothing to unpack)
		$CTR content fetch --all-platforms --hosts-dir "$T/certs.d" "$repo@$dg" >"$T/pull.log" 2>&1 ||
			{ cat "$T/pull.log"; fail "ctr content fetch $repo@$dg through the mirror failed"; }
		pulled=$((pulled + 1))
		continue
	fi
	$CTR images pull --hosts-dir "$T/certs.d" "$repo@$dg" >"$T/pull.log" 2>&1 ||
		{ cat "$T/pull.log"; fail "ctr pull $repo@$dg through the mirror failed"; }
	pulled=$((pulled + 1))
	case $ref in *@*) ;; *)
		$CTR images pull --hosts-dir "$T/certs.d" "$ref" >"$T/pull.log" 2>&1 ||
			{ cat "$T/pull.log"; fail "ctr pull $ref (by tag) failed"; }
		$CTR images ls | awk -v r="$ref" '$1 == r {print $3}' | grep -qx "$dg" || fail "$ref: wrong digest" ;;
	esac
done
echo "ctr pulled $pulled images by digest (and the tagged ones by tag) over TLS"
grep -q '?ns=docker.io\|/v2/docker.io/library/multi/' "$T/serve/access.log" || fail "pulls did not reach the mirror"
# second run: registry reused, files unchanged
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" --mode mirror \
	--listen "127.0.0.1:$port" --serve-dir "$T/serve" --hosts-dir "$T/certs.d")
echo "$out" | grep -q "already running" || fail "second run did not reuse the registry: $out"
echo "$out" | grep -qE "images +done 0, skipped $N_IMAGES .*0 config files written, 8 unchanged" || fail "second run rewrote files: $out"

# --- crio: the registries.conf drop-in, then podman pull through it
podman_env "$T/podman"
ferry-install install "$BUNDLE" --pubkey "$PUB" --target crio --registry "$REG" \
	--ca "$T/serve/tls/ca.crt" --registries-dir "$T/containers/registries.conf.d" >"$T/out" ||
	{ cat "$T/out"; fail "crio mirror install"; }
conf=$T/containers/registries.conf.d/ferry.conf
cat "$conf"
[ -f "$T/containers/certs.d/$REG/ca.crt" ] || fail "no certs.d/$REG/ca.crt"
for ref in $IMAGES; do
	repo=${ref%@*}; repo=${repo%:*}
	grep -qx "prefix = \"$repo\"" "$conf" || fail "no [[registry]] for $repo"
	grep -qx "location = \"$REG/$repo\"" "$conf" || fail "no [[registry.mirror]] for $repo"
	case $ref in *@*) dg=${ref#*@} ;; *) dg=$(bundle_digest "$ref") ;; esac
	for want in "$repo@$dg" $(case $ref in *@*) ;; *) echo "$ref" ;; esac); do
		if echo " $CIMAGES " | grep -q " $ref "; then
			CONTAINERS_REGISTRIES_CONF=$conf podman pull --cert-dir "$T/containers/certs.d/$REG" "$want" \
				>"$T/pull.log" 2>&1 || { cat "$T/pull.log"; fail "podman pull $want through the mirror failed"; }
		else # a model artifact: podman cannot store it; skopeo reads it through the same config
			got=$(skopeo --registries-conf "$conf" inspect --raw --cert-dir "$T/containers/certs.d/$REG" \
				"docker://$want" | sha256sum | cut -d' ' -f1)
			[ "sha256:$got" = "$dg" ] || fail "skopeo through the drop-in: $want is sha256:$got"
		fi
	done
done
echo "podman pulled every image by tag and by digest through the drop-in"

# --- mirror-config writes the same files, touching nothing
ferry-install mirror-config "$BUNDLE" --pubkey "$PUB" --registry "$REG" --ca "$T/serve/tls/ca.crt" \
	--format containerd -o "$T/mc/containerd"
diff -r "$T/certs.d" "$T/mc/containerd" || fail "mirror-config containerd differs from install's files"
# unsigned input is refused: this output goes onto nodes
ferry-install mirror-config "$BUNDLE" --registry "$REG" --ca "$T/serve/tls/ca.crt" \
	--format registries.conf -o "$T/mc/unsigned" 2>"$T/unsigned.err" && fail "mirror-config ran without --pubkey"
grep -q "public key is required" "$T/unsigned.err" || fail "no reason given: $(cat "$T/unsigned.err")"
[ -e "$T/mc/unsigned" ] && fail "mirror-config without a key wrote files"
# ... unless asked for, and then the output says so
ferry-install mirror-config "$BUNDLE" --insecure-skip-signature --registry "$REG" --ca "$T/serve/tls/ca.crt" \
	--format registries.conf -o "$T/mc/containers" >"$T/insecure.out" 2>"$T/insecure.err"
grep -q "signature NOT checked" "$T/insecure.out" || fail "the report does not say the signature was skipped"
grep -q "WARNING" "$T/insecure.err" || fail "no warning for --insecure-skip-signature"
cmp "$conf" "$T/mc/containers/registries.conf.d/ferry.conf" || fail "registries.conf differs"
ferry-install mirror-config "$BUNDLE" --pubkey "$PUB" --registry "$REG" --ca "$T/serve/tls/ca.crt" \
	--format okd -o "$T/mc/okd" | tee "$T/out"
grep -q "WARNING: imagetagmirrorset.yaml" "$T/out" || fail "no ITMS warning"
python3 - "$T/mc/okd" "$REG" $IMAGES <<'EOF' || fail "OKD objects"
import os, sys, yaml
d, reg, refs = sys.argv[1], sys.argv[2], sys.argv[3:]
idms = yaml.safe_load(open(os.path.join(d, "imagedigestmirrorset.yaml")))
itms = yaml.safe_load(open(os.path.join(d, "imagetagmirrorset.yaml")))
cm = yaml.safe_load(open(os.path.join(d, "registry-ca-configmap.yaml")))
patch = yaml.safe_load(open(os.path.join(d, "image-config-patch.yaml")))
assert idms["kind"] == "ImageDigestMirrorSet" and idms["apiVersion"] == "config.openshift.io/v1"
def repo(r):
    r = r.split("@")[0]
    return r.rsplit(":", 1)[0] if ":" in r.split("/")[-1] else r
dm = {m["source"]: m for m in idms["spec"]["imageDigestMirrors"]}
for r in refs:
    m = dm[repo(r)]
    assert m["mirrors"] == [reg + "/" + repo(r)], m
    assert m["mirrorSourcePolicy"] == "NeverContactSource"
tm = {m["source"] for m in itms["spec"]["imageTagMirrors"]}
assert tm == {repo(r) for r in refs if "@" not in r}, tm   # tag refs only
host, port = reg.split(":")
assert cm["metadata"]["namespace"] == "openshift-config"
assert "BEGIN CERTIFICATE" in cm["data"][host + ".." + port]
assert patch["spec"]["additionalTrustedCA"]["name"] == cm["metadata"]["name"]
print("okd: IDMS covers %d repositories, ITMS %d (tag refs only), CA key %s" % (len(dm), len(tm), host + ".." + port))
EOF

# --- the okd plan through the oc stand-in
mkdir -p "$T/bin"
cp "$TOP/tests/fixtures/kubectl-standin" "$T/bin/oc"
export PATH="$T/bin:$PATH" KUBECTL_STANDIN_LOG=$T/oc.log
ferry-install install "$BUNDLE" --pubkey "$PUB" --target okd --registry "$REG" --ca "$T/serve/tls/ca.crt" \
	--backoff 0.05 >"$T/out" 2>&1 || { cat "$T/out"; fail "okd plan failed"; }
cat "$T/out"
cat "$KUBECTL_STANDIN_LOG"
grep -q "warning: applying an ImageTagMirrorSet drains and reboots" "$T/out" || fail "okd: no ITMS warning"
for o in ConfigMap/ferry-registry-ca ImageDigestMirrorSet/ferry-e2e ImageTagMirrorSet/ferry-e2e \
	Namespace/ferry-demo Widget/w1; do
	grep -q "^APPLIED .* $o " "$KUBECTL_STANDIN_LOG" || fail "okd: $o not applied"
done
grep -q '^CALL .* patch image.config.openshift.io/cluster --type=merge -p {"spec":{"additionalTrustedCA":{"name":"ferry-registry-ca"}}}' \
	"$KUBECTL_STANDIN_LOG" || fail "okd: image.config not patched"
idms_call=$(grep -l 'kind: ImageDigestMirrorSet' "$KUBECTL_STANDIN_LOG.d"/*.stdin | head -n 1)
for ref in $IMAGES; do
	repo=${ref%@*}; repo=${repo%:*}
	grep -q "source: $repo\$" "$idms_call" || fail "okd: the applied IDMS misses $repo"
done
# an existing trusted-CA ConfigMap gets our key instead (no patch)
export KUBECTL_STANDIN_LOG=$T/oc2.log
KUBECTL_STANDIN_TRUSTED_CA=corp-cas ferry-install install "$BUNDLE" --pubkey "$PUB" --target okd \
	--registry "$REG" --ca "$T/serve/tls/ca.crt" --no-apply >"$T/out" 2>&1 || { cat "$T/out"; fail "okd plan 2"; }
grep -q '^APPLIED .* ConfigMap/corp-cas ' "$KUBECTL_STANDIN_LOG" || fail "okd: CA not merged into corp-cas"
grep -q '^CALL .* patch image.config' "$KUBECTL_STANDIN_LOG" && fail "okd: image.config patched though it already trusts corp-cas"
echo "ok: mirror"
