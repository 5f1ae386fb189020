# Helpers for the install_*.sh tests (not a test itself: tests/run runs *.sh).
# Source after lib.sh:  . "$(dirname "$0")/install_lib.bash"

# netns_reexec "$@": run the calling script again inside a new network
# namespace that holds only loopback (the air-gap proof). Call it before
# lib.sh so that the temp folder and trap belong to the inner run.
netns_reexec() {
	if [ -z "${FERRY_IN_NETNS:-}" ]; then
		command -v unshare >/dev/null || { echo "unshare is not installed"; exit 77; }
		if ! unshare -n true 2>/dev/null; then
			echo "cannot create a network namespace (unshare -n: $(unshare -n true 2>&1 | tail -n 1))"
			exit 77
		fi
		FERRY_IN_NETNS=1 exec unshare -n bash "$0" "$@"
	fi
	ip link set lo up 2>/dev/null || true
}

# assert_airgap: only loopback, and no route out.
assert_airgap() {
	links=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
	[ "$links" = "lo " ] || fail "network namespace holds more than loopback: $links"
	if (exec 3<>/dev/tcp/1.1.1.1/443) 2>/dev/null; then fail "the internet is reachable"; fi
	echo "air gap: interfaces [$links], 1.1.1.1:443 unreachable"
}

need() {
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "$c is not installed"
	done
}

# make_bundle: images (two sharing a layer, one multi-platform index, one
# docker.io library name), manifests and a model, built and signed.
# Sets SPEC, BUNDLE, KEY, PUB, IMAGES (the refs), L (the layout).
make_bundle() {
	d=$T/src
	mkdir -p "$d/files" "$d/man" "$d/models"
	L=$d/layout
	echo "base layer $RANDOM" >"$d/files/base.txt"
	echo "app one" >"$d/files/one.txt"
	echo "app two" >"$d/files/two.txt"
	echo "arm variant" >"$d/files/arm.txt"
	# app1 = base + one; app2 = base + two (the base layer is shared)
	make_image "$L" base "$d/files/base.txt"
	umoci tag --image "$L:base" app1
	umoci insert --rootless --image "$L:app1" "$d/files/one.txt" /data/one.txt >/dev/null
	umoci tag --image "$L:base" app2
	umoci insert --rootless --image "$L:app2" "$d/files/two.txt" /data/two.txt >/dev/null
	# a two-platform index: amd64 and arm64
	umoci tag --image "$L:app1" amd
	umoci tag --image "$L:base" arm
	umoci config --image "$L:arm" --architecture arm64 >/dev/null
	umoci insert --rootless --image "$L:arm" "$d/files/arm.txt" /data/arm.txt >/dev/null
	python3 - "$L" <<'EOF'
import hashlib, json, os, sys
L = sys.argv[1]
idx = json.load(open(os.path.join(L, "index.json")))
by = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
kids = []
for tag, arch in (("amd", "amd64"), ("arm", "arm64")):
    m = dict(by[tag]); m.pop("annotations", None)
    m["platform"] = {"os": "linux", "architecture": arch}
    kids.append(m)
blob = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": kids}, separators=(",", ":")).encode()
h = hashlib.sha256(blob).hexdigest()
open(os.path.join(L, "blobs", "sha256", h), "wb").write(blob)
idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                         "digest": "sha256:" + h, "size": len(blob),
                         "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(idx, open(os.path.join(L, "index.json"), "w"))
EOF
	cat >"$d/man/00-ns.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: ferry-demo
EOF
	cat >"$d/man/10-app.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: ferry-demo
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
        - name: app
          image: example.local/demo/app1:1.0
---
apiVersion: demo.ferry.dev/v1
kind: Widget
metadata:
  name: w1
spec:
  size: 3
EOF
	cat >"$d/man/05-crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.demo.ferry.dev
spec:
  group: demo.ferry.dev
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
EOF
	head -c 300000 /dev/urandom >"$d/models/model.onnx"
	echo '{"labels": 10}' >"$d/models/config.json"
	SPEC=$d/spec.yaml
	cat >"$SPEC" <<EOF
apiVersion: ferry/v1
kind: Bundle
metadata: {name: e2e, version: "1.0"}
platforms: [linux/amd64]
manifests:
  - path: ./man
models:
  - {name: mnist, version: "1", path: ./models}
images:
  - ref: example.local/demo/app1:1.0
    from: oci-layout:./layout:app1
  - ref: example.local/demo/app2:1.0
    from: oci-layout:./layout:app2
  - ref: docker.io/library/multi:2.0
    from: oci-layout:./layout:multi
    platforms: [linux/amd64, linux/arm64]
EOF
	if [ -n "${FERRY_PINNED:-}" ]; then
		# one image referenced by digest only
		pd=$(python3 -c 'import json,sys; print([m["digest"] for m in json.load(open(sys.argv[1]))["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "app2"][0])' "$L/index.json")
		printf '  - ref: quay.io/demo/pinned@%s\n    from: oci-layout:./layout:app2\n' "$pd" >>"$SPEC"
	fi
	KEY=$T/k.key PUB=$T/k.pub BUNDLE=$T/b.tar
	ferry-build keygen -o "$T/k" >/dev/null
	ferry-build build "$SPEC" -o "$BUNDLE" --key "$KEY" --cache "$T/cache" >/dev/null
	[ -f "$BUNDLE" ] || fail "no bundle built"
	bundle_images >"$T/images.txt"
	# IMAGES: every image (normalised names); CIMAGES: container images only
	# (not model artifacts); N_IMAGES, N_CIMAGES their counts
	IMAGES=$(awk '{print $1}' "$T/images.txt" | tr '\n' ' ')
	CIMAGES=$(awk '$3 == "image" {print $1}' "$T/images.txt" | tr '\n' ' ')
	N_IMAGES=$(wc -l <"$T/images.txt")
	N_CIMAGES=$(awk '$3 == "image"' "$T/images.txt" | wc -l)
	echo "bundle: $N_IMAGES images ($N_CIMAGES container images): $IMAGES"
}

# bundle_images: "REF DIGEST image|artifact" per image of the bundle, with
# the reference normalised as docker does (docker.io/library/...).
bundle_images() {
	python3 - "$BUNDLE" <<'EOF'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
def blob(d):
    return json.load(t.extractfile("blobs/sha256/" + d.split(":")[1]))
def norm(r):
    name = r.split("@")[0]
    first = name.split("/")[0]
    if "/" not in name or not ("." in first or ":" in first or first == "localhost"):
        r = "docker.io/" + r
        if "/" not in name:
            r = "docker.io/library/" + name + r[len("docker.io/") + len(name):]
    last = r.split("@")[0].split("/")[-1]
    if "@" not in r and ":" not in last:
        r += ":latest"
    return r
for m in json.load(t.extractfile("index.json"))["manifests"]:
    ref = norm(m["annotations"]["io.containerd.image.name"])
    man = blob(m["digest"])
    if "manifests" in man:
        man = blob(man["manifests"][0]["digest"])
    cfg = man.get("config", {}).get("mediaType", "")
    kind = "image" if cfg in ("application/vnd.oci.image.config.v1+json",
                              "application/vnd.docker.container.image.v1+json") else "artifact"
    print(ref, m["digest"], kind)
EOF
}

# bundle_digest REF: the digest the bundle holds for REF (normalised).
bundle_digest() {
	awk -v r="$1" '$1 == r {print $2}' "$T/images.txt"
}

. "$(dirname "${BASH_SOURCE[0]}")/containerd_conf.bash"

# start_containerd DIR: a private containerd (root, state, socket, config;
# native snapshotter). Sets CTD_SOCK, CTD_CONFIG, CTR.
start_containerd() {
	cd_dir=$1
	mkdir -p "$cd_dir"
	CTD_SOCK=$cd_dir/containerd.sock
	CTD_CONFIG=$cd_dir/config.toml
	containerd_config "$cd_dir" "$CTD_SOCK" native >"$CTD_CONFIG"
	containerd --config "$CTD_CONFIG" >"$cd_dir/log" 2>&1 &
	FERRY_PIDS="$FERRY_PIDS $!"
	for _ in $(seq 100); do
		ctr -a "$CTD_SOCK" version >/dev/null 2>&1 && break
		sleep 0.1
	done
	ctr -a "$CTD_SOCK" version >/dev/null 2>&1 ||
		{ tail -n 5 "$cd_dir/log"; skip "containerd cannot start here: $(tail -n 1 "$cd_dir/log")"; }
	CTR="ctr -a $CTD_SOCK -n k8s.io"
}

# podman with a private vfs store.
podman_env() {
	pm=$1
	mkdir -p "$pm"
	cat >"$pm/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$pm/run"
graphroot = "$pm/root"
EOF
	export CONTAINERS_STORAGE_CONF=$pm/storage.conf
	export XDG_RUNTIME_DIR=$pm/xdg
	mkdir -p "$XDG_RUNTIME_DIR"
}

# tamper IN OUT: flip one byte inside the last blob of a bundle.
tamper() {
	python3 - "$1" "$2" <<'EOF'
import sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
with tarfile.open(src) as t:
    blobs = [m for m in t.getmembers() if m.name.startswith("blobs/") and m.size > 0]
pos = blobs[-1].offset_data + blobs[-1].size // 2
data = bytearray(open(src, "rb").read())
data[pos] ^= 0x01
open(dst, "wb").write(data)
EOF
}
