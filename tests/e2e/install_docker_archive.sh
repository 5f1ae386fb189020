#!/bin/bash
# The archive streamed to the docker runtime (OCI layout + docker
# manifest.json, written straight from the bundle) loads with `podman load`
# (vfs, private storage) under the right names and tags; `--target crio
# --mode load` runs podman load itself and skips what is present. In a
# network namespace with only loopback.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need podman umoci python3
assert_airgap
make_bundle
podman_env "$T/podman"

# --- the docker stream, from stdout, into podman load
ferry-install install "$BUNDLE" --pubkey "$PUB" --target docker --archive-out - -q \
	2>"$T/log" >"$T/docker.tar"
cat "$T/log"
tar -tf "$T/docker.tar" >"$T/members"
for m in oci-layout index.json manifest.json; do
	grep -qx "$m" "$T/members" || fail "the archive has no $m"
done
python3 - "$T/docker.tar" $CIMAGES <<'EOF' || fail "manifest.json is not what docker load takes"
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
man = json.load(t.extractfile("manifest.json"))
names = set(t.getnames())
tags = sorted(tag for e in man for tag in e["RepoTags"])
assert tags == sorted(sys.argv[2:]), tags   # every container image, no model artifact
for e in man:
    assert e["Config"] in names, e["Config"]
    cfg = json.load(t.extractfile(e["Config"]))
    assert len(cfg["rootfs"]["diff_ids"]) == len(e["Layers"]), "layers != diff_ids"
    assert cfg["architecture"] == "amd64", cfg["architecture"]
    for l in e["Layers"]:
        assert l in names, l
idx = json.load(t.extractfile("index.json"))
for d in idx["manifests"]:
    a = d["annotations"]
    assert a["io.containerd.image.name"] == a["org.opencontainers.image.ref.name"]
print("manifest.json: %d images, tags %s" % (len(man), tags))
EOF
podman load -i "$T/docker.tar" >"$T/load.log" 2>&1 || { cat "$T/load.log"; fail "podman load failed"; }
grep "Loaded image" "$T/load.log"
podman images --format '{{.Repository}}:{{.Tag}} {{.ID}}' --no-trunc | sort | tee "$T/imgs"
for ref in $CIMAGES; do
	grep -q "^$ref " "$T/imgs" || fail "podman did not load $ref under its name"
done
# the image IDs are the configs of the bundle's manifests
cfg=$(python3 - "$T/docker.tar" <<'EOF'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
for e in json.load(t.extractfile("manifest.json")):
    print(e["RepoTags"][0], "sha256:" + e["Config"].rsplit("/", 1)[1])
EOF
)
echo "$cfg" | while read -r ref id; do
	grep -qx "$ref $id" "$T/imgs" || fail "$ref does not have image ID $id"
done

# --- crio target, load mode: podman load is run by ferry, second run skips
podman rmi -a -f >/dev/null 2>&1
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target crio --mode load)
echo "$out"
echo "$out" | grep -q "+ podman load" || fail "podman load was not run"
echo "$out" | grep -qE "images +done $N_CIMAGES, skipped 0" || fail "crio load did not load $N_CIMAGES images"
echo "$out" | grep -q "model artifact.* not loadable into cri-o" || [ "$N_IMAGES" = "$N_CIMAGES" ] ||
	fail "the model artifact was not reported"
for ref in $CIMAGES; do
	podman image exists "$ref" || fail "$ref is missing after the crio load"
done
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target crio --mode load)
echo "$out" | grep -qE "images +done 0, skipped $N_CIMAGES" || fail "second crio load was not skipped: $out"
echo "$out" | grep -q "+ podman load" && fail "second crio load ran podman load"

# --- a single platform by request: arm64 for the multi-platform image
ferry-install install "$BUNDLE" --pubkey "$PUB" --target docker --platform linux/arm64 \
	--archive-out "$T/arm.tar" -q >/dev/null
python3 - "$T/arm.tar" <<'EOF' || fail "--platform linux/arm64 was not honoured"
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
for e in json.load(t.extractfile("manifest.json")):
    if e["RepoTags"] == ["docker.io/library/multi:2.0"]:
        assert json.load(t.extractfile(e["Config"]))["architecture"] == "arm64"
EOF
echo "ok: docker-archive stream"
