# The signature policy at build time and the lab's signature check
# (docs/supply-chain.md, "Policy at build time", "Checking signatures in the
# lab"). A docker-registry holds images signed the way `cosign sign --key`
# does (cosign_sign.py, keys in cosign's encrypted file format): with an
# ECDSA P-256 key (a manifest and a multi-platform index) and an Ed25519 key;
# an unsigned image; one signed by another key; one carrying a signature
# replayed from another image's digest; one whose signed identity is
# outside the policy's pattern.
#  - build with verify.sigstore: the signed images pass (bundle.json says
#    "verified": "sigstore"); each bad one fails the build with exit 2
#    naming the image, the spec line and the reason, and no output is left;
#    a keyless policy and unknown keys are refused at the spec;
#  - skopeo (containers/image) fetches the signatures through serve (a
#    registries.conf mirror with the host prefix, use-sigstore-attachments)
#    into dir:; `ferry-install check-signature` passes the signed images and
#    refuses the others; a stock openssl check of the same bytes agrees;
#  - after `push` of the policy-checked bundle into a second docker-registry,
#    the same fetch-and-check passes there.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"
. "$(dirname "$0")/serve_lib.bash"
need openssl curl
# the signer needs python3-cryptography and python3-nacl (scripts/deps)
PY=
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import cryptography, nacl.secret' 2>/dev/null; then
		PY=$p
		break
	fi
done
[ -n "$PY" ] || skip "python3-cryptography and python3-nacl are not installed"
SIGN="$PY $(dirname "$0")/cosign_sign.py"
export COSIGN_PASSWORD=test-password

pull_setup
RH=127.0.0.1:$REG_PORT
push "$W/L:a" acme/app:1
push "$W/L:multi" acme/multi:1 --all
push "$W/L:b" acme/edapp:1
push "$W/L:base" acme/unsigned:1
push "$W/L:b" acme/forged:1
push "$W/L:base" acme/replay:1
push "$W/L:a" acme/ident:1
dg() { d=$(manifest_digest "$1") && [ -n "$d" ] || fail "no digest for $1"; echo "$d"; }
A=$(dg acme/app:1)
M=$(dg acme/multi:1)
E=$(dg acme/edapp:1)
U=$(dg acme/unsigned:1)
F=$(dg acme/forged:1)
R=$(dg acme/replay:1)
I=$(dg acme/ident:1)
[ "$A" != "$R" ] || fail "the replay target has the signed image's digest"

# keys in cosign's format: ECDSA P-256, Ed25519, and another ECDSA key
mkdir -p "$W/ec" "$W/ed" "$W/other"
$SIGN keygen "$W/ec" ecdsa
$SIGN keygen "$W/ed" ed25519
$SIGN keygen "$W/other" ecdsa
head -n 1 "$W/ec/cosign.key" | grep -qx -- '-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----' ||
	fail "the signing key is not in cosign's encrypted format"
# the encrypted key opens with the password only
COSIGN_PASSWORD=wrong $SIGN decrypt "$W/ec/cosign.key" "$W/x.pem" 2>/dev/null &&
	fail "the cosign key opened with a wrong password"
$SIGN sign "$RH" acme/app "$A" "$W/ec/cosign.key" docker.io/acme/app:1 >/dev/null
$SIGN sign "$RH" acme/multi "$M" "$W/ec/cosign.key" docker.io/acme/multi:1 >/dev/null
$SIGN sign "$RH" acme/edapp "$E" "$W/ed/cosign.key" docker.io/acme/edapp:1 >/dev/null
$SIGN sign "$RH" acme/forged "$F" "$W/other/cosign.key" docker.io/acme/forged:1 >/dev/null
$SIGN sign "$RH" acme/ident "$I" "$W/ec/cosign.key" docker.io/evil/ident:1 >/dev/null
# the replay: app's valid .sig (signed over A) under replay's tag
$SIGN copy "$RH" acme/app "sha256-${A#sha256:}.sig" acme/replay "sha256-${R#sha256:}.sig" >/dev/null

# --- the policy at build time
mkdir -p "$W/keys"
cp "$W/ec/pub.pem" "$W/keys/vendor-cosign.pub"
cp "$W/ed/pub.pem" "$W/keys/ed.pub"
policy() { # FILE: spec header with the global policy (key relative to the spec)
	spec_header "$1"
	sed -i 's/^images:$/verify:\n  sigstore:\n    key: keys\/vendor-cosign.pub\n    identity: "docker.io\/acme\/*"\nimages:/' "$1"
}
policy "$W/good.yaml"
cat >>"$W/good.yaml" <<'Y'
  - docker.io/acme/app:1
  - docker.io/acme/multi:1
  - ref: docker.io/acme/edapp:1
    verify:
      sigstore:
        key: keys/ed.pub
Y
ferry-build build "$W/good.yaml" -o "$W/good.tar" --key "$W/k.key" --cache "$W/cache" >"$W/out" 2>"$W/err" ||
	fail "a build of signed images failed: $(cat "$W/err")"
for i in app multi edapp; do
	grep -q "^verified docker.io/acme/$i:1: signed by " "$W/err" || fail "no 'verified' line for $i: $(cat "$W/err")"
done
grep -q "^verified docker.io/acme/edapp:1: signed by Ed25519 key" "$W/err" || fail "edapp not checked with the Ed25519 key"
grep -q "^verified docker.io/acme/app:1: signed by ECDSA P-256 key" "$W/err" || fail "app not checked with the ECDSA key"
tar -xOf "$W/good.tar" bundle.json >"$W/good.json"
[ "$(jq -r '[.images[] | .ref + "=" + (.verified // "-")] | join(",")' "$W/good.json")" = \
	"docker.io/acme/app:1=sigstore,docker.io/acme/multi:1=sigstore,docker.io/acme/edapp:1=sigstore" ] ||
	fail "bundle.json does not record the checked policy: $(jq -c .images "$W/good.json")"
# inspect says so under each image (and --json carries bundle.json's field)
ferry-install inspect "$W/good.tar" --pubkey "$W/k.pub" >"$W/inspect.txt" || fail "inspect"
[ "$(grep -c "signature policy passed at build time (sigstore)" "$W/inspect.txt")" = 3 ] ||
	fail "inspect does not show the policy: $(cat "$W/inspect.txt")"
[ "$(ferry-install inspect --json "$W/good.tar" --pubkey "$W/k.pub" | jq -r '[.images[].verified] | unique | join(",")')" = sigstore ] ||
	fail "inspect --json lacks images[].verified"
# the .sig manifests are carried byte-exact as before
[ "$(jq '[.referrers[] | select(.kind == "sig")] | length' "$W/good.json")" = 3 ] || fail "the signatures were not carried"

# referrers: none under a policy: the .sig is fetched and checked, not carried
policy "$W/none.yaml"
printf '  - ref: docker.io/acme/app:1\n    referrers: none\n' >>"$W/none.yaml"
ferry-build build "$W/none.yaml" -o "$W/none.tar" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>"$W/err" ||
	fail "referrers: none under a policy failed: $(cat "$W/err")"
grep -q "^verified docker.io/acme/app:1" "$W/err" || fail "referrers: none skipped the policy"
[ "$(tar -xOf "$W/none.tar" bundle.json | jq '.referrers | length')" = 0 ] || fail "referrers: none carried the .sig"
grep -q "; 0 referrers$" "$W/err" || fail "the report counts a .sig that is not carried: $(tail -n 1 "$W/err")"

# a bundle without a policy records nothing new
spec_header "$W/plain.yaml"
echo "  - docker.io/acme/app:1" >>"$W/plain.yaml"
ferry-build build "$W/plain.yaml" -o "$W/plain.tar" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>&1 ||
	fail "a build without a policy failed"
tar -xOf "$W/plain.tar" bundle.json | jq -e '[.images[] | has("verified")] | any | not' >/dev/null ||
	fail "a bundle without a policy says verified"

# each bad image fails the build: exit 2, naming the image, its spec line and why
refuse() { # NAME REASON
	policy "$W/$1.yaml"
	echo "  - docker.io/acme/$1:1" >>"$W/$1.yaml"
	line=$(grep -n "acme/$1:1" "$W/$1.yaml" | cut -d: -f1)
	expect_fail 2 "$W/$1.yaml:$line: image docker.io/acme/$1:1 is refused by the signature policy .*$2" \
		ferry-build build "$W/$1.yaml" -o "$W/$1.tar" --key "$W/k.key" --cache "$W/cache"
	[ ! -e "$W/$1.tar" ] || fail "a refused build left $W/$1.tar"
	ls "$W" | grep -q "^$1.tar" && fail "a refused build left a partial output: $(ls "$W" | grep "^$1.tar")"
	return 0
}
refuse unsigned "it is not signed"
refuse forged "does not verify with the ECDSA P-256 key"
refuse replay "the signature is for $A, not $R \(a signature replayed"
refuse ident "the signed identity docker.io/evil/ident:1 is not docker.io/acme/\*"
# an Ed25519-signed image under the ECDSA key is refused too
refuse edapp "does not verify"

# the spec: keyless, unknown keys, a missing key file
policy "$W/kl.yaml"
sed -i 's/^    identity: .*/    certificate-oidc-issuer: https:\/\/accounts.example/' "$W/kl.yaml"
echo "  - docker.io/acme/app:1" >>"$W/kl.yaml"
expect_fail 1 "kl.yaml:[0-9]+:[0-9]+: 'certificate-oidc-issuer': keyless verification .* not supported" \
	ferry-build build "$W/kl.yaml" -o "$W/kl.tar" --key "$W/k.key" --cache "$W/cache"
sed 's/^  sigstore:/  notary:/' "$W/good.yaml" >"$W/unk.yaml"
expect_fail 1 "unk.yaml:[0-9]+:[0-9]+: unknown key 'notary' in verify" \
	ferry-build build "$W/unk.yaml" -o "$W/unk.tar" --key "$W/k.key" --cache "$W/cache"
sed 's/^    key: keys\/vendor-cosign.pub/    identity2: x/' "$W/good.yaml" >"$W/nokey.yaml"
expect_fail 1 "unknown key 'identity2' in verify.sigstore" \
	ferry-build build "$W/nokey.yaml" -o "$W/nokey.tar" --key "$W/k.key" --cache "$W/cache"
sed 's/vendor-cosign.pub/missing.pub/' "$W/good.yaml" >"$W/missing.yaml"
expect_fail 1 "missing.yaml:[0-9]+: verify.sigstore.key.*missing.pub" \
	ferry-build build "$W/missing.yaml" -o "$W/missing.tar" --key "$W/k.key" --cache "$W/cache"
cp "$W/ec/cosign.key" "$W/keys/priv.pub"
sed 's/vendor-cosign.pub/priv.pub/' "$W/good.yaml" >"$W/priv.yaml"
expect_fail 1 "is a private key" \
	ferry-build build "$W/priv.yaml" -o "$W/priv.tar" --key "$W/k.key" --cache "$W/cache"

# --- in the lab: skopeo fetches the signatures through serve; ferry's check
# and a stock openssl check agree
spec_header "$W/all.yaml"
for i in app edapp unsigned forged replay ident; do echo "  - docker.io/acme/$i:1" >>"$W/all.yaml"; done
ferry-build build "$W/all.yaml" -o "$W/all.tar" --key "$W/k.key" --cache "$W/cache" >/dev/null 2>"$W/err" ||
	fail "build (no policy) failed: $(cat "$W/err")"
stop_registry
serve_start srv "$W/all.tar" --pubkey "$W/k.pub"
cat >"$W/registries.conf" <<EOF2
[[registry]]
prefix = "docker.io/acme"
location = "docker.io/acme"
[[registry.mirror]]
location = "$SERVE_HP/docker.io/acme"
insecure = true
EOF2
mkdir -p "$W/registries.d"
printf 'docker:\n  %s:\n    use-sigstore-attachments: true\n' "$SERVE_HP" >"$W/registries.d/acme.yaml"
echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$W/policy.json"
fetch() { # NAME DIGEST
	skopeo --registries-conf "$W/registries.conf" --registries.d "$W/registries.d" --policy "$W/policy.json" \
		copy -q "docker://docker.io/acme/$1@$2" "dir:$W/dir-$1" 2>"$W/skopeo.err" ||
		fail "skopeo copy $1: $(cat "$W/skopeo.err")"
}
fetch app "$A"
fetch edapp "$E"
fetch unsigned "$U"
fetch forged "$F"
fetch replay "$R"
fetch ident "$I"
for i in app edapp forged replay ident; do
	[ -s "$W/dir-$i/signature-1" ] || fail "skopeo fetched no signature for $i: $(ls "$W/dir-$i")"
done
[ -e "$W/dir-unsigned/signature-1" ] && fail "skopeo fetched a signature for the unsigned image"

CS="ferry-install check-signature"
$CS --key "$W/ec/pub.pem" --identity 'docker.io/acme/*' "$W/dir-app" >"$W/cs.out" ||
	fail "check-signature refused app: $(cat "$W/cs.out")"
grep -q "^signature-1: passed (identity docker.io/acme/app:1)" "$W/cs.out" || fail "check-signature: $(cat "$W/cs.out")"
$CS --key "$W/ed/pub.pem" "$W/dir-edapp" >"$W/cs.out" || fail "check-signature refused edapp (Ed25519): $(cat "$W/cs.out")"
expect_fail 2 "signature-1: refused: .*does not verify" $CS --key "$W/ec/pub.pem" "$W/dir-edapp"
expect_fail 2 "signature-1: refused: .*does not verify with the ECDSA P-256 key" $CS --key "$W/ec/pub.pem" "$W/dir-forged"
expect_fail 2 "signature-1: refused: the signature is for $A, not $R" $CS --key "$W/ec/pub.pem" "$W/dir-replay"
expect_fail 2 "signature-1: refused: the signed identity docker.io/evil/ident:1 is not" \
	$CS --key "$W/ec/pub.pem" --identity 'docker.io/acme/*' "$W/dir-ident"
expect_fail 2 "no signature-N files" $CS --key "$W/ec/pub.pem" "$W/dir-unsigned"
expect_fail 64 "usage" $CS "$W/dir-app"
# a tampered signature file is refused, not crashed on
cp -r "$W/dir-app" "$W/dir-bad"
printf 'garbage' >"$W/dir-bad/signature-1"
expect_fail 2 "signature-1: refused: not a sigstore signature" $CS --key "$W/ec/pub.pem" "$W/dir-bad"
# a FIFO or a link planted as signature-N is refused, not waited on
rm "$W/dir-bad/signature-1"
mkfifo "$W/dir-bad/signature-1"
expect_fail 2 "signature-1: refused: .*not a regular file" timeout 20 $CS --key "$W/ec/pub.pem" "$W/dir-bad"
rm "$W/dir-bad/signature-1"
ln -s "$W/dir-app/signature-1" "$W/dir-bad/signature-1"
expect_fail 2 "signature-1: refused: .*not a regular file" $CS --key "$W/ec/pub.pem" "$W/dir-bad"

# the same bytes through a stock openssl: the payload and signature from
# each signature-1 (containers/image's "\0sigstore-json\n" + JSON)
split_sig() { # DIR: DIR/p.payload DIR/p.sig, and the payload's signed digest on stdout
	"$PY" - "$1" <<'PY'
import base64, json, sys
raw = open(sys.argv[1] + "/signature-1", "rb").read()
head = b"\0sigstore-json\n"
assert raw.startswith(head)
j = json.loads(raw[len(head):])
p = base64.b64decode(j["payload"])
open(sys.argv[1] + "/p.payload", "wb").write(p)
open(sys.argv[1] + "/p.sig", "wb").write(base64.b64decode(j["annotations"]["dev.cosignproject.cosign/signature"]))
print(json.loads(p)["critical"]["image"]["docker-manifest-digest"])
PY
}
mdig() { echo "sha256:$(sha256sum <"$1/manifest.json" | cut -c1-64)"; }
for i in app forged replay; do split_sig "$W/dir-$i" >"$W/dir-$i/p.digest"; done
split_sig "$W/dir-edapp" >"$W/dir-edapp/p.digest"
openssl dgst -sha256 -verify "$W/ec/pub.pem" -signature "$W/dir-app/p.sig" "$W/dir-app/p.payload" >/dev/null ||
	fail "openssl does not verify app's signature"
[ "$(cat "$W/dir-app/p.digest")" = "$(mdig "$W/dir-app")" ] || fail "app's payload does not name its manifest"
openssl pkeyutl -verify -pubin -inkey "$W/ed/pub.pem" -rawin -in "$W/dir-edapp/p.payload" \
	-sigfile "$W/dir-edapp/p.sig" >/dev/null || fail "openssl does not verify edapp's Ed25519 signature"
openssl dgst -sha256 -verify "$W/ec/pub.pem" -signature "$W/dir-forged/p.sig" "$W/dir-forged/p.payload" >/dev/null 2>&1 &&
	fail "openssl verified the signature by another key"
# the replay: a good signature (openssl agrees) over another digest
openssl dgst -sha256 -verify "$W/ec/pub.pem" -signature "$W/dir-replay/p.sig" "$W/dir-replay/p.payload" >/dev/null ||
	fail "openssl does not verify the replayed signature's bytes"
[ "$(cat "$W/dir-replay/p.digest")" = "$A" ] && [ "$(mdig "$W/dir-replay")" = "$R" ] ||
	fail "the replayed payload does not name the other image"
serve_stop "$SERVE_PID" srv

# push the policy-checked bundle into a second docker-registry: the same
# fetch-and-check passes there (the .sig went along by the tag scheme)
start_registry lab
ferry-install push "$W/good.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$REG_PORT/lab" --plain-http >"$W/push.out" 2>&1 ||
	fail "push failed: $(tail -n 5 "$W/push.out")"
printf 'docker:\n  127.0.0.1:%s:\n    use-sigstore-attachments: true\n' "$REG_PORT" >"$W/registries.d/lab.yaml"
for i in app edapp; do
	d=$A key=$W/ec/pub.pem
	[ "$i" = edapp ] && d=$E key=$W/ed/pub.pem
	skopeo --registries.d "$W/registries.d" --policy "$W/policy.json" copy -q --src-tls-verify=false \
		"docker://127.0.0.1:$REG_PORT/lab/docker.io/acme/$i@$d" "dir:$W/lab-$i" 2>"$W/skopeo.err" ||
		fail "skopeo copy from the pushed registry ($i): $(cat "$W/skopeo.err")"
	$CS --key "$key" --identity 'docker.io/acme/*' "$W/lab-$i" >"$W/cs.out" ||
		fail "check-signature after push ($i): $(cat "$W/cs.out")"
done
expect_fail 2 "does not verify" $CS --key "$W/other/pub.pem" "$W/lab-app"
# --digest: the digest the image was signed as, instead of manifest.json's
$CS --key "$W/ec/pub.pem" --digest "$A" "$W/lab-app" >/dev/null || fail "check-signature --digest (right digest) refused"
expect_fail 2 "the signature is for $A, not $R" $CS --key "$W/ec/pub.pem" --digest "$R" "$W/lab-app"
echo "sigstore_policy: ok"
