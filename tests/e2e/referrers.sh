# Signatures and other referrers (docs/supply-chain.md): a docker-registry
# holds two images; one is signed the way `cosign sign --key` does
# (cosign_sign.py: ECDSA P-256, simple-signing payload, sha256-<hex>.sig)
# and has an OCI 1.1 SBOM with a `subject`, pushed with its fallback index
# (docker-registry 2.8 has no referrers API). The build carries both
# byte-exact; inspect lists them; serve answers the referrers API (with the
# percent-encoded artifactType filter) and skopeo, through a registries.conf
# mirror with the host prefix and use-sigstore-attachments, fetches the
# signature; stock openssl verifies it over the carried payload.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"
. "$(dirname "$0")/serve_lib.bash"
need openssl curl
python3 -c 'import cryptography' 2>/dev/null || skip "python3-cryptography is not installed"
SIGN="python3 $(dirname "$0")/cosign_sign.py"

pull_setup
push "$W/L:a" acme/app:1
push "$W/L:b" acme/other:1
A=$(manifest_digest acme/app:1)
O=$(manifest_digest acme/other:1)
[ -n "$A" ] && [ -n "$O" ] || fail "registry gave no digests"
AH=${A#sha256:}
RH=127.0.0.1:$REG_PORT

$SIGN keygen "$W"
SIGD=$($SIGN sign "$RH" acme/app "$A" "$W/key.pem" docker.io/acme/app:1)
SBOMD=$($SIGN sbom "$RH" acme/app "$A")
[ "$(manifest_digest "acme/app:sha256-$AH.sig")" = "$SIGD" ] || fail "the .sig tag is not $SIGD"
# no referrers API upstream: the fallback tag is how clients find the SBOM
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$RH/v2/acme/app/referrers/$A")
[ "$code" = 404 ] || fail "docker-registry answered the referrers API with $code"

spec_header "$W/spec.yaml"
printf '  - docker.io/acme/app:1\n  - docker.io/acme/other:1\n' >>"$W/spec.yaml"
ferry-build build "$W/spec.yaml" -o "$W/b.tar" --key "$W/k.key" --cache "$W/cache" >"$W/out" 2>"$W/err" ||
	fail "build failed: $(cat "$W/err")"
grep -q "; 2 referrers$" "$W/err" || fail "no referrer count in the report: $(tail -n 2 "$W/err")"
grep -q "wrote $W/b.tar: 2 images" "$W/out" || fail "summary: $(cat "$W/out")"

# bundle.json: the .sig manifest (upstream digest) and the fallback index
# naming the SBOM; nothing for the unsigned image
tar -xOf "$W/b.tar" bundle.json >"$W/bundle.json"
python3 - "$W/bundle.json" "$A" "$SIGD" "$SBOMD" <<'PY' || fail "bundle.json referrers are wrong"
import json, sys
b = json.load(open(sys.argv[1]))
a, sigd, sbomd = sys.argv[2:5]
r = {x["kind"]: x for x in b["referrers"]}
assert sorted(r) == ["index", "sig"], r
assert all(x["subject"] == a for x in b["referrers"])
assert r["sig"]["digest"] == sigd, r["sig"]
assert r["sig"]["ref"] == "docker.io/acme/app:sha256-%s.sig" % a[7:], r["sig"]["ref"]
assert [x["digest"] for x in r["index"]["artifacts"]] == [sbomd], r["index"]
assert r["index"]["artifacts"][0]["artifactType"] == "application/spdx+json"
assert [i["ref"] for i in b["images"]] == ["docker.io/acme/app:1", "docker.io/acme/other:1"]
PY

# byte-exact: the carried .sig manifest hashes to the upstream digest
tar -xOf "$W/b.tar" "blobs/sha256/${SIGD#sha256:}" >"$W/sig.json"
[ "sha256:$(sha256sum <"$W/sig.json" | cut -c1-64)" = "$SIGD" ] || fail "the carried .sig manifest is not byte-exact"

# stock openssl verifies the signature over the carried payload, and the
# payload names the image's digest and identity
python3 - "$W/sig.json" "$W" <<'PY'
import base64, json, sys
m = json.load(open(sys.argv[1]))
l = m["layers"][0]
assert l["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
open(sys.argv[2] + "/sig.bin", "wb").write(base64.b64decode(l["annotations"]["dev.cosignproject.cosign/signature"]))
open(sys.argv[2] + "/payload.digest", "w").write(l["digest"][7:])
PY
tar -xOf "$W/b.tar" "blobs/sha256/$(cat "$W/payload.digest")" >"$W/payload"
openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/sig.bin" "$W/payload" || fail "openssl does not verify the signature"
python3 - "$W/payload" "$A" <<'PY' || fail "the payload does not name the image"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["critical"]["image"]["docker-manifest-digest"] == sys.argv[2]
assert p["critical"]["identity"]["docker-reference"] == "docker.io/acme/app:1"
assert p["critical"]["type"] == "cosign container image signature"
PY
# the check can fail: another payload does not verify
sed 's/acme/evil/' "$W/payload" >"$W/payload.bad"
openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/sig.bin" "$W/payload.bad" >/dev/null 2>&1 &&
	fail "openssl verified a changed payload"

# inspect: each image's referrers (text and --json)
ferry-install inspect --pubkey "$W/k.pub" "$W/b.tar" >"$W/inspect.txt"
grep -q "referrer signature  $SIGD" "$W/inspect.txt" || fail "inspect: no signature: $(cat "$W/inspect.txt")"
grep -q "referrer application/spdx+json  $SBOMD" "$W/inspect.txt" || fail "inspect: no SBOM"
[ "$(grep -c '    referrer ' "$W/inspect.txt")" = 2 ] || fail "inspect: expected 2 referrer lines"
ferry-install inspect --json --pubkey "$W/k.pub" "$W/b.tar" >"$W/inspect.json"
python3 - "$W/inspect.json" "$SIGD" "$SBOMD" <<'PY' || fail "inspect --json referrers are wrong"
import json, sys
b = json.load(open(sys.argv[1]))
img = {i["ref"]: i for i in b["images"]}
r = img["docker.io/acme/app:1"]["referrers"]
assert [(x["type"], x["digest"]) for x in r] == [("signature", sys.argv[2]), ("application/spdx+json", sys.argv[3])], r
assert all(x["size"] > 0 for x in r)
assert img["docker.io/acme/other:1"]["referrers"] == []
PY

# referrers: signatures carries the .sig only; none carries nothing
sed 's/^images:/referrers: signatures\nimages:/' "$W/spec.yaml" >"$W/sigs.yaml"
ferry-build build "$W/sigs.yaml" -o "$W/sigs.tar" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>"$W/err" ||
	fail "build (signatures) failed: $(cat "$W/err")"
[ "$(tar -xOf "$W/sigs.tar" bundle.json | jq -r '[.referrers[].kind] | join(",")')" = sig ] || fail "referrers: signatures"
spec_header "$W/none.yaml"
printf '  - ref: docker.io/acme/app:1\n    referrers: none\n' >>"$W/none.yaml"
ferry-build build "$W/none.yaml" -o "$W/none.tar" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>"$W/err" ||
	fail "build (none) failed: $(cat "$W/err")"
[ "$(tar -xOf "$W/none.tar" bundle.json | jq '.referrers | length')" = 0 ] || fail "referrers: none"
# one digest named twice (tag and digest): its referrers are carried once
printf '  - docker.io/acme/app@%s\n' "$A" >>"$W/sigs.yaml"
ferry-build build "$W/sigs.yaml" -o "$W/twice.tar" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>"$W/err" ||
	fail "build (twice) failed: $(cat "$W/err")"
[ "$(tar -xOf "$W/twice.tar" bundle.json | jq -r '[.referrers[].kind] | join(",")')" = sig ] ||
	fail "a digest named twice carries its referrers twice"
sed 's/^images:/referrers: some\nimages:/' "$W/spec.yaml" >"$W/bad.yaml"
expect_fail 1 "referrers' must be all, signatures or none" \
	ferry-build build "$W/bad.yaml" -o "$W/bad.tar" --key "$W/k.key" --cache "$W/cache"

# serve: the referrers API, filtered as Go clients send it
stop_registry
serve_start srv "$W/b.tar" --pubkey "$W/k.pub"
curl -sfD "$W/h1" "$SERVE_URL/v2/docker.io/acme/app/referrers/$A?artifactType=application%2Fspdx%2Bjson" >"$W/r1" ||
	fail "referrers API failed"
tr -d '\r' <"$W/h1" | grep -qi '^OCI-Filters-Applied: artifactType$' || fail "no OCI-Filters-Applied: $(cat "$W/h1")"
tr -d '\r' <"$W/h1" | grep -qi '^Content-Type: application/vnd.oci.image.index.v1+json$' || fail "not an index"
[ "$(jq -r '[.manifests[] | .digest + " " + .artifactType] | join(",")' "$W/r1")" = "$SBOMD application/spdx+json" ] ||
	fail "filtered referrers: $(cat "$W/r1")"
curl -sfD "$W/h2" "$SERVE_URL/v2/docker.io/acme/app/referrers/$A" >"$W/r2"
grep -qi 'OCI-Filters-Applied' "$W/h2" && fail "OCI-Filters-Applied without a filter"
[ "$(jq -r '[.manifests[].digest] | sort | join(",")' "$W/r2")" = "$(printf '%s\n' "$SIGD" "$SBOMD" | sort | paste -sd,)" ] ||
	fail "unfiltered referrers: $(cat "$W/r2")"
[ "$(curl -sf "$SERVE_URL/v2/docker.io/acme/other/referrers/$O" | jq '.manifests | length')" = 0 ] ||
	fail "the unsigned image has referrers"
# the tags of every scheme are served as tags, byte-exact
curl -sf "$SERVE_URL/v2/docker.io/acme/app/tags/list" | jq -e --arg s "sha256-$AH.sig" --arg f "sha256-$AH" \
	'.tags | index($s) and index($f)' >/dev/null || fail "the .sig and fallback tags are not listed"
[ "$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$SERVE_URL/v2/docker.io/acme/app/manifests/sha256-$AH.sig" | sha256sum | cut -c1-64)" = "${SIGD#sha256:}" ] ||
	fail "served .sig manifest is not byte-exact"

# skopeo through a registries.conf mirror (host prefix) with sigstore
# attachments: the signature comes along for the signed image only
cat >"$W/registries.conf" <<EOF
[[registry]]
prefix = "docker.io/acme"
location = "docker.io/acme"
[[registry.mirror]]
location = "$SERVE_HP/docker.io/acme"
insecure = true
EOF
mkdir -p "$W/registries.d"
# containers/image 5.23 looks this up by the mirror's name
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$SERVE_HP" >"$W/registries.d/acme.yaml"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
for img in app other; do
	d=$A
	[ "$img" = other ] && d=$O
	skopeo --registries-conf "$W/registries.conf" --registries.d "$W/registries.d" --policy "$W/policy.json" \
		copy -q "docker://docker.io/acme/$img@$d" "dir:$W/dir-$img" 2>"$W/skopeo.err" ||
		fail "skopeo copy $img: $(cat "$W/skopeo.err")"
done
[ -s "$W/dir-app/signature-1" ] || fail "skopeo fetched no signature for the signed image: $(ls "$W/dir-app")"
[ -e "$W/dir-app/signature-2" ] && fail "skopeo fetched more than one signature"
[ -e "$W/dir-other/signature-1" ] && fail "skopeo fetched a signature for the unsigned image"
# what skopeo fetched ("\0sigstore-json\n" + JSON) is the payload the key
# signed and its signature: stock openssl verifies it
python3 - "$W/dir-app/signature-1" "$W" "$W/payload" <<'PY' || fail "signature-1 is not the carried signature"
import base64, json, sys
raw = open(sys.argv[1], "rb").read()
head = b"\0sigstore-json\n"
assert raw.startswith(head), raw[:20]
j = json.loads(raw[len(head):])
assert j["mimeType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
payload = base64.b64decode(j["payload"])
assert payload == open(sys.argv[3], "rb").read()
open(sys.argv[2] + "/fetched.payload", "wb").write(payload)
open(sys.argv[2] + "/fetched.sig", "wb").write(
    base64.b64decode(j["annotations"]["dev.cosignproject.cosign/signature"]))
PY
openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/fetched.sig" "$W/fetched.payload" ||
	fail "openssl does not verify the signature skopeo fetched"
serve_stop "$SERVE_PID" srv

# --- load mode: a signature is no runnable image; containerd keeps it as
# content (not unpacked), and the images install as usual
. "$(dirname "$0")/install_lib.bash"
if command -v containerd >/dev/null && command -v ctr >/dev/null; then
	start_containerd "$W/ctd"
	ferry-install install "$W/b.tar" --pubkey "$W/k.pub" --target "containerd:$CTD_SOCK" \
		--containerd-config "$CTD_CONFIG" >"$W/install.out" 2>&1 ||
		fail "a load install of a bundle with signatures failed: $(tail -n 5 "$W/install.out")"
	imgs=$($CTR images ls -q)
	echo "$imgs" | grep -qx "docker.io/acme/app:1" || fail "containerd lacks app:1: $imgs"
	echo "$imgs" | grep -qx "docker.io/acme/other:1" || fail "containerd lacks other:1: $imgs"
	$CTR content ls -q | grep -qx "$SIGD" || fail "containerd lacks the signature manifest $SIGD"
	# each referrer is tied to its subject as containerd 2's pull does it
	# (containerd.io/gc.ref.content.referrer.sha256.<12 hex>=<digest>), so
	# the collector keeps it with the image; the other image gets none
	FIDX=$(jq -r '.referrers[] | select(.kind == "index") | .digest' "$W/bundle.json")
	[ -n "$FIDX" ] || fail "no fallback index in bundle.json"
	labels=$($CTR content ls | awk -v d="$A" '$1 == d {print $NF}')
	for r in "$SIGD" "$FIDX"; do
		h=${r#sha256:}
		echo "$labels" | tr ',' '\n' | grep -qx "containerd.io/gc.ref.content.referrer.sha256.${h:0:12}=$r" ||
			fail "the subject $A has no referrer label for $r: $labels"
	done
	$CTR content ls | awk -v d="$O" '$1 == d' | grep -q "gc.ref.content.referrer" &&
		fail "the unsigned image got a referrer label"
	grep -q "content label $A containerd.io/gc.ref.content.referrer.sha256" "$W/install.out" ||
		fail "the labelling is not said: $(grep -c . "$W/install.out") lines"
fi
echo "referrers: ok"
