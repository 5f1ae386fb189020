# Pull from a real docker-registry (plain HTTP on loopback) through a
# `registries:` mapping: the bundle keeps docker.io names, verifies, gives
# skopeo the source's manifest digests, stores shared layers once, applies
# the platform filter (OCI index and Docker schema 2 list), and keeps an
# index pinned by digest whole.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"

pull_setup
push "$W/L:a" library/app-a:1
push "$W/L:b" library/app-b:1
push "$W/L:multi" library/multi:1 --all
push "$W/L:multi" library/multi-v2:1 --all --format v2s2
A=$(manifest_digest library/app-a:1)
B=$(manifest_digest library/app-b:1)
M=$(manifest_digest library/multi:1)
M2=$(manifest_digest library/multi-v2:1)
[ -n "$A" ] && [ -n "$M" ] && [ -n "$M2" ] || fail "registry gave no digests"
[ "$M" != "$M2" ] || fail "the v2s2 list should differ from the OCI index"
curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
	"http://127.0.0.1:$REG_PORT/v2/library/multi-v2/manifests/1" | grep -q 'manifest.list.v2' ||
	fail "multi-v2 is not a Docker schema 2 list"

spec_header "$W/spec.yaml"
cat >>"$W/spec.yaml" <<EOF2
  - docker.io/library/app-a:1
  - app-b:1
  - docker.io/library/multi:1
  - ref: docker.io/library/multi-v2:1
    platforms: [all]
  - docker.io/library/multi@$M
  - ref: docker.io/library/multi-v2@$M2
    platforms: [linux/arm64]
EOF2
ferry-build build "$W/spec.yaml" -o "$W/b.tar" --key "$W/k.key" --cache "$W/cache" >"$W/out" 2>"$W/err" ||
	fail "build failed: $(cat "$W/err")"
cat "$W/err"
grep -q "wrote $W/b.tar: 6 images" "$W/out" || fail "summary: $(cat "$W/out")"
ferry-install verify "$W/b.tar" --pubkey "$W/k.pub" >/dev/null || fail "bundle does not verify"
ferry-install inspect --json --pubkey "$W/k.pub" "$W/b.tar" >"$W/inspect.json"

# the amd64 child of the index, and the arm64 layer
AMD=$(curl -sf -H 'Accept: application/vnd.oci.image.index.v1+json' "http://127.0.0.1:$REG_PORT/v2/library/multi/manifests/1" |
	python3 -c 'import json,sys; print([m["digest"] for m in json.load(sys.stdin)["manifests"] if m["platform"]["architecture"]=="amd64"][0])')
python3 - "$W/inspect.json" "$A" "$B" "$AMD" "$M2" "$M" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
a, bb, amd, m2, m = sys.argv[2:7]
imgs = {i["ref"]: i for i in b["images"]}
# a pinned index narrowed by the image's own platforms says so
pin = imgs.pop("docker.io/library/multi-v2@" + m2)
assert pin["digest"] != m2 and "narrowed" in pin.get("note", "") and m2 in pin["note"], pin
want = {"docker.io/library/app-a:1": a, "docker.io/library/app-b:1": bb,
        "docker.io/library/multi:1": amd, "docker.io/library/multi-v2:1": m2,
        "docker.io/library/multi@" + m: m}
assert sorted(imgs) == sorted(want), sorted(imgs)
for ref, d in want.items():
    assert imgs[ref]["digest"] == d, (ref, imgs[ref]["digest"], d)
assert imgs["docker.io/library/multi-v2:1"]["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
assert sorted(imgs["docker.io/library/multi-v2:1"]["platforms"]) == ["linux/amd64", "linux/arm64"], imgs["docker.io/library/multi-v2:1"]
PY

X=$W/x
mkdir -p "$X"
tar xf "$W/b.tar" -C "$X"
# skopeo reads each image back out of the bundle with the source's digest
for pair in "app-a:1=$A" "app-b:1=$B" "multi@$M=$M"; do
	ref=docker.io/library/${pair%%=*} want=${pair#*=}
	rm -rf "$W/o"
	skopeo copy -q --all --preserve-digests "oci:$X:$ref" "oci:$W/o:t"
	got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$W/o/index.json")
	[ "$got" = "$want" ] || fail "$ref: skopeo read $got from the bundle, the registry serves $want"
done

# skopeo's oci: transport skips Docker list descriptors, so check the
# schema 2 list by hand: exact bytes and every child present
python3 - "$X" "$M2" <<'PY'
import hashlib, json, os, sys
X, m2 = sys.argv[1], sys.argv[2]
raw = open(os.path.join(X, "blobs/sha256", m2[7:]), "rb").read()
assert "sha256:" + hashlib.sha256(raw).hexdigest() == m2
lst = json.loads(raw)
assert lst["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
for c in lst["manifests"]:
    man = json.load(open(os.path.join(X, "blobs/sha256", c["digest"][7:])))
    for d in [man["config"]] + man["layers"]:
        assert os.path.exists(os.path.join(X, "blobs/sha256", d["digest"][7:])), d
PY

# shared layers: the base layer is fetched once and stored once
BASE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' \
	"$X/blobs/sha256/${A#sha256:}")
n=$(ferry_requests "$REG_LOG" | grep -c "^GET /v2/library/[^ ]*/blobs/$BASE 200" || true)
[ "$n" = 1 ] || fail "the shared layer was fetched $n times"
[ "$(grep -c "${BASE#sha256:}" "$X/SHA256SUMS")" = 1 ] || fail "shared layer listed more than once"
# each blob fetched at most once over the whole build
dups=$(ferry_requests "$REG_LOG" | awk '$1=="GET" && $2 ~ /blobs/ {split($2,p,"/blobs/"); print p[2]}' | sort | uniq -d)
[ -z "$dups" ] || fail "blobs fetched twice: $dups"
# the platform filter: multi:1 is its amd64 child only; multi-v2 (all) has arm64 too
[ -e "$X/blobs/sha256/${AMD#sha256:}" ] || fail "amd64 child missing"
# a tag the registry does not have: a clear error naming spec line and image
spec_header "$W/missing.yaml"
printf '  - app-a:1\n  - app-a:nope\n' >>"$W/missing.yaml"
expect_fail 1 "missing.yaml:[0-9]+: pulling docker.io/library/app-a:nope: HEAD http://127.0.0.1:$REG_PORT/v2/library/app-a/manifests/nope: HTTP 404 \(manifest not found\)" \
	ferry-build build "$W/missing.yaml" -o "$W/missing.tar" --key "$W/k.key" --cache "$W/cache"
[ ! -e "$W/missing.tar" ] || fail "a bundle was written"
echo "pull_basic: ok ($(ferry_requests "$REG_LOG" | wc -l) requests)"
