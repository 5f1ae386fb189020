# The modelcar image imports into a real containerd (its own root, state
# and socket; native snapshotter) and its rootfs holds /models/<file> with
# the right sha256 and a /bin/sh that runs KServe's sidecar command. The
# ModelPack artifact copies out with skopeo and keeps its layer titles.
# Digests are reproducible. The modelcar is named
# models.ferry.local/<name>-modelcar:<version> unless models[].image names
# it, the artifact models.ferry.local/<name>:<version> (a model whose
# artifact would be another's modelcar is refused); a storageUri naming it is pinned, and `images: auto` does not pull it.
. "$(dirname "$0")/lib.sh"
cd "$T"
ferry-build keygen -o k >/dev/null
mkdir -p model/tokenizer
python3 -c 'import os; open("model/model.onnx","wb").write(os.urandom(1 << 20))'
echo '{"vocab": 1}' >model/tokenizer/vocab.json
echo '# mnist' >model/README.md
SHA=$(sha256sum model/model.onnx | cut -d' ' -f1)
mkdir m
# KServe reads the modelcar by storageUri; `images: auto` must not try to
# pull the model image (the build makes it) and pins the reference
cat >m/isvc.yaml <<'Y'
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {name: mnist}
spec:
  predictor:
    model:
      modelFormat: {name: onnx}
      storageUri: oci://models.ferry.local/mnist-modelcar:1.0
Y
cat >spec.yaml <<'Y'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: mc}
images: auto
manifests:
- path: m
models:
- name: mnist
  version: "1.0"
  path: model
Y
ferry-build build spec.yaml -o b.tar --key k.key
ferry-install verify b.tar --pubkey k.pub >/dev/null

# the default name is on a host no public registry owns
refs() { tar xOf "$1" index.json | python3 -c 'import json,sys; print(" ".join(sorted(m["annotations"]["io.containerd.image.name"] for m in json.load(sys.stdin)["manifests"])))'; }
[ "$(refs b.tar)" = "models.ferry.local/mnist-modelcar:1.0 models.ferry.local/mnist:1.0" ] ||
	fail "image names in index.json: $(refs b.tar)"
tar xOf b.tar bundle.json | python3 -c '
import json, sys
b = json.load(sys.stdin)
mc = b["modelArtifacts"][0]["modelcar"]
assert mc["ref"] == "models.ferry.local/mnist-modelcar:1.0", mc
art = b["modelArtifacts"][0]["artifact"]
assert art["ref"] == "models.ferry.local/mnist:1.0", art
man = [m for m in b["manifests"] if m["path"].endswith("isvc.yaml")][0]
assert man["pinned"] == 1 and man["unbundledImages"] == [], man
print("modelcar", mc["ref"], mc["digest"])
' || fail "bundle.json"
MC_DIGEST=$(tar xOf b.tar bundle.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["modelArtifacts"][0]["modelcar"]["digest"])')
tar xOf b.tar manifests/01-isvc.yaml | grep -qx "      storageUri: oci://models.ferry.local/mnist-modelcar@$MC_DIGEST" ||
	fail "storageUri not pinned: $(tar xOf b.tar manifests/01-isvc.yaml)"
echo "storageUri pinned to the modelcar digest"

# models[].image names it (tag given, or the version when not)
sed -e 's|  path: model|  path: model\n  image: registry.lab:5000/ml/mnist-car:7|' -e '/^images: auto/d' -e '/^manifests:/,/^- path: m/d' spec.yaml >spec-image.yaml
ferry-build build spec-image.yaml -o bi.tar --key k.key --quiet
[ "$(refs bi.tar)" = "models.ferry.local/mnist:1.0 registry.lab:5000/ml/mnist-car:7" ] ||
	fail "models[].image: index.json names $(refs bi.tar)"
sed -e 's|  path: model|  path: model\n  image: ml/mnist-car|' -e '/^images: auto/d' -e '/^manifests:/,/^- path: m/d' spec.yaml >spec-image2.yaml
ferry-build build spec-image2.yaml -o bi2.tar --key k.key --quiet
[ "$(refs bi2.tar)" = "docker.io/ml/mnist-car:1.0 models.ferry.local/mnist:1.0" ] ||
	fail "models[].image without a tag: index.json names $(refs bi2.tar)"
echo "models[].image: $(refs bi.tar); $(refs bi2.tar)"
# the artifact of model x-modelcar would be model x's modelcar: refused
cat >spec-clash.yaml <<'Y'
apiVersion: ferry/v1
kind: Bundle
metadata: {name: mc}
models:
- {name: mnist, version: "1.0", path: model}
- {name: mnist-modelcar, version: "1.0", path: model}
Y
expect_fail 1 'spec-clash.yaml:6: model mnist-modelcar version 1.0: its artifact models.ferry.local/mnist-modelcar:1.0 is also the image of model mnist' \
	ferry-build build spec-clash.yaml -o clash.tar --key k.key
[ ! -e clash.tar ] || fail "a bundle was written"
# a storageUri on the model host that no model builds is refused by name
mkdir m-bad
sed 's|mnist-modelcar:1.0|bert-modelcar:1|' m/isvc.yaml >m-bad/isvc.yaml
sed 's|^- path: m$|- path: m-bad|' spec.yaml >spec-bad.yaml
expect_fail 1 'isvc.yaml:8:19: spec.predictor.model.storageUri .*models.ferry.local/bert-modelcar:1, a model image, but no models: entry' \
	ferry-build build spec-bad.yaml -o bad.tar --key k.key
[ ! -e bad.tar ] || fail "a bundle was written"
# a model file whose name is no safe file name is refused by name; one with
# + @ = , is taken as it is
mkdir -p named/sub && echo x >'named/sub/w+1@a=b,c.bin' && echo y >'named/a b.bin'
sed -e 's|  path: model|  path: named|' -e '/^images: auto/d' -e '/^manifests:/,/^- path: m/d' spec.yaml >spec-named.yaml
expect_fail 1 'named/a b.bin: model file names may hold only letters, digits and' \
	ferry-build build spec-named.yaml -o named.tar --key k.key
rm 'named/a b.bin'
ferry-build build spec-named.yaml -o named.tar --key k.key --quiet
tar tf named.tar | grep -qx 'models/mnist/1.0/sub/w+1@a=b,c.bin' || fail "a file named w+1@a=b,c.bin was not carried"

# reproducible: another cache, another day, the same digests
XDG_CACHE_HOME=$T/cache2 SOURCE_DATE_EPOCH=1800000000 ferry-build build spec.yaml -o b2.tar --key k.key --quiet
digests() { tar xOf "$1" index.json | python3 -c 'import json,sys; print(" ".join(m["digest"] for m in json.load(sys.stdin)["manifests"]))'; }
[ "$(digests b.tar)" = "$(digests b2.tar)" ] || fail "model digests changed between builds"
echo "reproducible: $(digests b.tar)"

# the ModelPack artifact, copied out of the bundle's OCI layout by skopeo
mkdir layout && tar xf b.tar -C layout
if command -v skopeo >/dev/null; then
	skopeo copy --quiet oci:layout:models.ferry.local/mnist:1.0 oci:out:mnist 2>skopeo.err ||
		fail "skopeo copy failed: $(cat skopeo.err)"
	python3 - out <<'PY'
import json, os, sys
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
man = json.load(open(os.path.join(d, "blobs/sha256", idx["manifests"][0]["digest"].split(":")[1])))
assert man["artifactType"] == "application/vnd.cncf.model.manifest.v1+json", man
assert man["config"]["mediaType"] == "application/vnd.cncf.model.config.v1+json", man
got = [(l["annotations"]["org.opencontainers.image.title"], l["mediaType"]) for l in man["layers"]]
want = [("README.md", "application/vnd.cncf.model.doc.v1.raw"),
        ("model.onnx", "application/vnd.cncf.model.weight.v1.raw"),
        ("tokenizer/vocab.json", "application/vnd.cncf.model.weight.config.v1.raw")]
assert got == want, got
for l in man["layers"]:
    assert l["annotations"]["org.cncf.model.filepath"] == l["annotations"]["org.opencontainers.image.title"]
    assert os.path.getsize(os.path.join(d, "blobs/sha256", l["digest"].split(":")[1])) == l["size"]
print("skopeo copied the ModelPack artifact; layer titles:", [g[0] for g in got])
PY
else
	echo "skopeo is not installed: artifact copy not tested (Debian: apt-get install skopeo)"
fi

# containerd
command -v containerd >/dev/null && command -v ctr >/dev/null ||
	skip "containerd is not installed (Debian: apt-get install containerd)"
[ "$(id -u)" = 0 ] || skip "containerd needs root here (uid $(id -u)); modelcar import not tested"
C=$T/ctrd
mkdir -p "$C"
cat >"$C/config.toml" <<Y
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$C/c.sock"
[ttrpc]
  address = "$C/c.sock.ttrpc"
[debug]
  address = "$C/d.sock"
Y
containerd --config "$C/config.toml" >"$C/log" 2>&1 &
FERRY_PIDS="$FERRY_PIDS $!"
for _ in $(seq 100); do [ -S "$C/c.sock" ] && ctr -a "$C/c.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr -a "$C/c.sock" version >/dev/null 2>&1 || skip "containerd did not start here: $(tail -n 3 "$C/log" | tr '\n' ' ')"
ctr() { command ctr -a "$C/c.sock" -n ferrytest "$@"; }
# the bundle is an OCI layout tar: ctr takes it as it is
ctr images import --no-unpack --snapshotter native b.tar >import.log 2>&1 || fail "ctr import: $(cat import.log)"
ctr images ls | grep -q '^models.ferry.local/mnist-modelcar:1.0 ' || fail "modelcar not imported: $(ctr images ls)"
mkdir "$C/mnt"
ctr images mount --rw --snapshotter native models.ferry.local/mnist-modelcar:1.0 "$C/mnt" >mount.log 2>&1 ||
	fail "ctr images mount: $(cat mount.log)"
umount_it() { ctr images unmount --rm "$C/mnt" >/dev/null 2>&1 || umount "$C/mnt" 2>/dev/null || true; }
trap 'umount_it; cleanup' EXIT
sha256sum "$C/mnt/models/model.onnx" | grep -q "^$SHA " || fail "/models/model.onnx has the wrong sha256"
[ -f "$C/mnt/models/tokenizer/vocab.json" ] || fail "/models/tokenizer/vocab.json missing"
[ "$(readlink "$C/mnt/bin/sh")" = busybox ] || fail "/bin/sh is not busybox"
# KServe's modelcar sidecar command, run from the unpacked rootfs
mkdir -p "$C/mnt/mnt"
out=$(chroot "$C/mnt" /bin/sh -c 'ln -sf /models /mnt/models && ls /mnt/models/ && sleep 0 && echo sidecar-ok') ||
	fail "/bin/sh did not run in the rootfs"
echo "$out" | grep -q sidecar-ok || fail "sidecar command output: $out"
echo "$out" | grep -q model.onnx || fail "ls /mnt/models: $out"
# the init container's check
chroot "$C/mnt" /bin/sh -c '[ -d /models ] && [ "$(ls -A /models)" ]' || fail "modelcar init check failed"
echo "containerd: modelcar unpacked; /models/model.onnx sha256 ok; /bin/sh ran the sidecar command"
exit 0
