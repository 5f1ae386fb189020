# Build a bundle from two OCI layouts (umoci), a docker-archive (skopeo), a
# manifest folder and a model file; verify it with ferry-install and with
# the stock tools only (tar, openssl, sha256sum, skopeo); reproducibility;
# keygen never overwrites; failed builds leave nothing behind.
. "$(dirname "$0")/lib.sh"

for t in umoci skopeo openssl python3 sha256sum cmp; do
	command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
done

W=$T/w
S=$W/src
mkdir -p "$S/img" "$S/manifests" "$S/models" "$W/out"

# --- inputs ---
cd "$S"
echo hello >hello.txt
python3 -c 'import random,sys; r=random.Random(7); sys.stdout.buffer.write(bytes(r.getrandbits(8) for _ in range(300000)))' >data.bin
make_image img/hello 1.0 hello.txt data.bin
make_image img/tool 2 data.bin hello.txt
skopeo copy -q oci:img/tool:2 docker-archive:tool.tar:x/tool:2
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: lab\n' >manifests/10-namespace.yaml
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: lab\n' >manifests/20-config.yml
echo 'not a manifest' >manifests/README.txt
python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256))*40)' >models/weights.bin
MODEL_SHA=$(sha256sum models/weights.bin | cut -d' ' -f1)

write_spec() { # FILE MODEL_SHA256
	cat >"$1" <<EOF
apiVersion: ferry/v1
kind: Bundle
metadata:
  name: foundation
  version: "1.0"
images:
  - ref: example.local/demo/hello:1.0
    from: oci-layout:./img/hello:1.0
  - ref: tool:2
    from: oci-layout:./img/tool:2
  - ref: x/tool:2
    from: docker-archive:./tool.tar
manifests:
  - path: ./manifests
models:
  - name: weights
    version: "3"
    path: ./models/weights.bin
    sha256: $2
EOF
}
write_spec "$S/spec.yaml" "$MODEL_SHA"
cd "$T" # relative paths in the spec resolve against the spec's folder, not here

# --- keys ---
ferry-build keygen -o "$W/k" >"$W/keygen.out"
grep -q '^fingerprint sha256:[0-9a-f]\{64\}$' "$W/keygen.out" || fail "keygen printed no fingerprint"
[ "$(stat -c %a "$W/k.key")" = 600 ] || fail "k.key mode is $(stat -c %a "$W/k.key")"
cp "$W/k.key" "$W/k.key.orig"
cp "$W/k.pub" "$W/k.pub.orig"

# --- build ---
B1=$W/out/b1.tar
ferry-build build "$S/spec.yaml" -o "$B1" --key "$W/k.key" --cache "$W/cache1" >"$W/build.out"
grep -q "^wrote $B1: [0-9]* images, 3 files" "$W/build.out" || fail "build summary: $(cat "$W/build.out")"
[ -f "$B1" ] || fail "no bundle"
ls "$W/out" | grep -q '\.tmp\.' && fail "temp file left after a good build"
# --json: the 'wrote' event is JSON even when the path holds a quote, a
# backslash, a newline or non-ASCII (jansson escapes it)
HOSTILE="$W/out/we\"ird\\ na
me ✓.tar"
ferry-build build "$S/spec.yaml" -o "$HOSTILE" --key "$W/k.key" --cache "$W/cache1" --json >"$W/build.json" ||
	fail "--json build to a hostile path"
python3 - "$W/build.json" "$HOSTILE" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
w = ev[-1]
assert w["event"] == "wrote", w
assert w["bundle"] == sys.argv[2], (w["bundle"], sys.argv[2])
assert w["files"] == 3 and w["images"] >= 3 and w["bytes"] > 0, w
EOF
cmp "$B1" "$HOSTILE" || fail "the bundle depends on its path"
rm -f "$HOSTILE"

# --- ferry-install verify / inspect ---
ferry-install verify "$B1" --pubkey "$W/k.pub" >"$W/verify.out"
FPR=$(sed -n 's/^fingerprint //p' "$W/keygen.out")
grep -q "^signature ok: $FPR$" "$W/verify.out" || fail "verify output: $(cat "$W/verify.out")"

ferry-install inspect --json --pubkey "$W/k.pub" "$B1" >"$W/inspect.json"
layout_digest() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$1/index.json"; }
HELLO_DIGEST=$(layout_digest "$S/img/hello")
TOOL_OCI_DIGEST=$(layout_digest "$S/img/tool")
python3 - "$W/inspect.json" "$HELLO_DIGEST" "$TOOL_OCI_DIGEST" "$FPR" "$MODEL_SHA" <<'EOF'
import json, sys
b = json.load(open(sys.argv[1]))
hello, tool, fpr, model_sha = sys.argv[2:6]
imgs = {i["ref"]: i for i in b["images"]}
# the spec's three images (models may add images of their own)
for r in ["docker.io/library/tool:2", "docker.io/x/tool:2", "example.local/demo/hello:1.0"]:
    assert r in imgs, (r, imgs)
    assert imgs[r]["size"] > 300000, imgs[r]
assert imgs["example.local/demo/hello:1.0"]["digest"] == hello, imgs
assert imgs["docker.io/library/tool:2"]["digest"] == tool, imgs
for i in b["images"]:
    assert i["digest"].startswith("sha256:") and len(i["digest"]) == 71, i
assert b["signer"] == fpr, b["signer"]
assert b["signatureVerified"] is True
assert b["created"] == "2023-11-14T22:13:20Z", b["created"]
paths = [m["path"] for m in b["manifests"]]
assert len(paths) == 2 and paths[0] == "manifests/01-10-namespace.yaml" and paths[1].startswith("manifests/02-20-config.y"), paths
assert [(m["path"], m["sha256"]) for m in b["models"]] == [("models/weights/3/weights.bin", model_sha)], b["models"]
assert "spec" not in b
EOF
TOOL_DIGEST=$(python3 -c 'import json,sys; print([i["digest"] for i in json.load(open(sys.argv[1]))["images"] if i["ref"]=="docker.io/x/tool:2"][0])' "$W/inspect.json")

# --- the stock recipe: tar, openssl, sha256sum ---
X=$W/extracted
mkdir "$X"
tar xf "$B1" -C "$X"
(
	cd "$X"
	openssl pkeyutl -verify -pubin -inkey "$W/k.pub" -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig &&
		sha256sum -c --strict SHA256SUMS
) >"$W/stock.out" 2>&1 || fail "stock verification failed: $(cat "$W/stock.out")"
grep -q 'Signature Verified Successfully' "$W/stock.out" || fail "openssl did not verify"
# 3 metadata files + the blobs + 2 manifests + 1 model
NSUMS=$(wc -l <"$X/SHA256SUMS")
NBLOBS=$(ls "$X/blobs/sha256" | wc -l)
[ "$NSUMS" = $((NBLOBS + 6)) ] || fail "SHA256SUMS lists $NSUMS members: $(cat "$X/SHA256SUMS")"
# every blob is reachable from index.json, and every reachable blob is there
python3 - "$X" <<'EOF'
import json, os, sys
x = sys.argv[1]
have = set(os.listdir(os.path.join(x, "blobs/sha256")))
seen = set()
MANIFESTS = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.cncf.model.manifest.v1+json",
}
def walk(d):
    h = d["digest"][7:]
    assert h in have, ("missing blob", d)
    assert os.path.getsize(os.path.join(x, "blobs/sha256", h)) == d["size"], d
    if h in seen:
        return
    seen.add(h)
    if d.get("mediaType") in MANIFESTS:
        m = json.load(open(os.path.join(x, "blobs/sha256", h)))
        for c in m.get("manifests", []) + m.get("layers", []) + ([m["config"]] if "config" in m else []):
            walk(c)
for d in json.load(open(os.path.join(x, "index.json")))["manifests"]:
    walk(d)
assert seen == have, ("unreferenced blobs", have - seen)
EOF
[ "$(grep -c ': OK$' "$W/stock.out")" = "$NSUMS" ] || fail "sha256sum checked $(grep -c ': OK$' "$W/stock.out") files"
grep -q "verified $B1: $NSUMS members" "$W/verify.out" || fail "verify member count: $(cat "$W/verify.out")"
[ "$(find "$X" -type f | wc -l)" = $((NSUMS + 2)) ] || fail "the bundle holds unlisted files"
[ "$(head -c 8 "$X/SHA256SUMS")" = "SHA256 (" ] || fail "SHA256SUMS is not in --tag format"
# every member carries SOURCE_DATE_EPOCH
[ "$(stat -c %Y "$X/index.json")" = 1700000000 ] || fail "mtime is not SOURCE_DATE_EPOCH"
cmp "$X/manifests/01-10-namespace.yaml" "$S/manifests/10-namespace.yaml"
cmp "$X/models/weights/3/weights.bin" "$S/models/weights.bin"
[ "$(ls "$X/manifests" | wc -l)" = 2 ] || fail "a non-YAML file was bundled: $(ls "$X/manifests")"

# --- the images come back out with skopeo, bytes unchanged ---
roundtrip() { # SOURCE_LAYOUT REF OUT
	skopeo copy -q --preserve-digests oci:"$X":"$2" oci:"$3":t
	got=$(layout_digest "$3") want=$(layout_digest "$1")
	[ "$got" = "$want" ] || fail "skopeo read $got for $2, the source layout holds $want"
	n=0
	for f in "$1"/blobs/sha256/*; do
		h=$(basename "$f")
		# only the blobs of the tagged image (umoci may keep others)
		[ -e "$3/blobs/sha256/$h" ] || continue
		cmp "$f" "$3/blobs/sha256/$h" || fail "blob $h of $2 differs after the round trip"
		cmp "$f" "$X/blobs/sha256/$h" || fail "blob $h of $2 differs in the bundle"
		n=$((n + 1))
	done
	[ "$n" -eq "$(ls "$3/blobs/sha256" | wc -l)" ] || fail "skopeo wrote blobs $1 does not have"
	[ "$n" -eq 4 ] || fail "$n blobs compared for $2"
}
roundtrip "$S/img/hello" example.local/demo/hello:1.0 "$W/o1"
roundtrip "$S/img/tool" docker.io/library/tool:2 "$W/o3"

# the docker-archive image: same config and layer bytes as the archive
skopeo copy -q --preserve-digests oci:"$X":docker.io/x/tool:2 oci:"$W/o2":t
GOT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$W/o2/index.json")
[ "$GOT" = "$TOOL_DIGEST" ] || fail "skopeo read $GOT for the docker-archive image, bundle says $TOOL_DIGEST"
mkdir "$W/da"
tar xf "$S/tool.tar" -C "$W/da"
python3 - "$W/da" "$W/o2" "$TOOL_DIGEST" <<'EOF'
import hashlib, json, os, sys
da, o2, root = sys.argv[1], sys.argv[2], sys.argv[3]
ent = json.load(open(os.path.join(da, "manifest.json")))[0]
man = json.load(open(os.path.join(o2, "blobs/sha256", root[7:])))
def same(member, desc):
    data = open(os.path.join(da, member), "rb").read()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"], (member, desc)
    assert open(os.path.join(o2, "blobs/sha256", desc["digest"][7:]), "rb").read() == data, member
same(ent["Config"], man["config"])
assert len(ent["Layers"]) == len(man["layers"]) == 2, man
for m, d in zip(ent["Layers"], man["layers"]):
    same(m, d)
EOF

# shared blobs are stored once: the two tool images share their config
[ "$(ls "$W/o1/blobs/sha256" "$W/o2/blobs/sha256" "$W/o3/blobs/sha256" | grep -E '^[0-9a-f]{64}$' | sort -u | wc -l)" -lt 12 ] ||
	fail "no blob is shared between the images"

# --- reproducible: a fresh cache and the same SOURCE_DATE_EPOCH ---
B2=$W/out/b2.tar
ferry-build build "$S/spec.yaml" -o "$B2" --key "$W/k.key" --cache "$W/cache2" >/dev/null
cmp "$B1" "$B2" || fail "two builds differ"
B3=$W/out/b3.tar # a warm cache gives the same bytes too
ferry-build build "$S/spec.yaml" -o "$B3" --key "$W/k.key" --cache "$W/cache1" >/dev/null
cmp "$B1" "$B3" || fail "a build from a warm cache differs"
# ... and another time is another bundle
SOURCE_DATE_EPOCH=1700000001 ferry-build build "$S/spec.yaml" -o "$W/out/b4.tar" --key "$W/k.key" \
	--cache "$W/cache1" >/dev/null
cmp -s "$B1" "$W/out/b4.tar" && fail "SOURCE_DATE_EPOCH is ignored"
rm -f "$B2" "$B3" "$W/out/b4.tar"

# --- keygen never overwrites ---
if ferry-build keygen -o "$W/k" >"$W/keygen2.out" 2>&1; then
	fail "keygen overwrote an existing key"
fi
grep -q "$W/k" "$W/keygen2.out" || fail "keygen refusal does not name the file: $(cat "$W/keygen2.out")"
cmp "$W/k.key" "$W/k.key.orig" || fail "k.key changed"
cmp "$W/k.pub" "$W/k.pub.orig" || fail "k.pub changed"
[ "$(stat -c %a "$W/k.key")" = 600 ] || fail "k.key mode changed"

# --- an output folder that does not exist ---
if ferry-build build "$S/spec.yaml" -o "$W/missing/b.tar" --key "$W/k.key" --cache "$W/cache1" \
	>"$W/missing.out" 2>&1; then
	fail "build into a missing folder succeeded"
fi
grep -q "$W/missing/b.tar" "$W/missing.out" || fail "error does not name the output: $(cat "$W/missing.out")"
[ ! -e "$W/missing" ] || fail "the missing folder was created"

# --- failed builds leave no bundle and no temp file ---
no_leftovers() { # OUT
	[ ! -e "$1" ] || fail "a failed build left $1"
	if ls "$(dirname "$1")" | grep -q '\.tmp\.'; then
		fail "a failed build left a temp file: $(ls "$(dirname "$1")")"
	fi
	if [ -d "$W/cache1/tmp" ] && [ -n "$(ls "$W/cache1/tmp")" ]; then
		fail "a failed build left $(ls "$W/cache1/tmp") in the cache"
	fi
}
# a model whose sha256 is wrong (after the images were copied)
write_spec "$S/bad-model.yaml" "$(printf '%064d' 0)"
expect_fail 2 'weights.*hashes to' \
	ferry-build build "$S/bad-model.yaml" -o "$W/out/bad1.tar" --key "$W/k.key" --cache "$W/cache1"
no_leftovers "$W/out/bad1.tar"
# a layer of the source that does not match its digest
cp -r "$S/img/hello" "$S/img/hello-bad"
LAYER=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][-1]["digest"][7:])' \
	"$S/img/hello/blobs/sha256/${HELLO_DIGEST#sha256:}")
chmod u+w "$S/img/hello-bad/blobs/sha256/$LAYER"
printf 'X' | dd of="$S/img/hello-bad/blobs/sha256/$LAYER" bs=1 seek=100 conv=notrunc 2>/dev/null
sed 's#oci-layout:./img/hello:1.0#oci-layout:./img/hello-bad:1.0#' "$S/spec.yaml" >"$S/bad-layer.yaml"
expect_fail 2 "$LAYER" \
	ferry-build build "$S/bad-layer.yaml" -o "$W/out/bad2.tar" --key "$W/k.key" --cache "$W/cache3"
no_leftovers "$W/out/bad2.tar"
[ -z "$(ls "$W/cache3/tmp")" ] || fail "the refused layer was left in the cache's tmp/"
[ ! -e "$W/cache3/blobs/sha256/$LAYER" ] || fail "the refused layer was stored"
# a cache blob corrupted after it was stored: caught while the bundle is written
chmod u+w "$W/cache1/blobs/sha256/$LAYER"
printf 'X' | dd of="$W/cache1/blobs/sha256/$LAYER" bs=1 seek=100 conv=notrunc 2>/dev/null
expect_fail 2 "$LAYER" \
	ferry-build build "$S/spec.yaml" -o "$W/out/bad3.tar" --key "$W/k.key" --cache "$W/cache1"
no_leftovers "$W/out/bad3.tar"

# the good bundle is still there and still verifies
ferry-install verify "$B1" --pubkey "$W/k.pub" >/dev/null
echo "foundation_build: ok"
