#!/bin/bash
# install, docker target, load mode, against a real Docker engine (Debian's
# docker.io, private data root, socket and managed containerd; vfs, no
# bridge, no iptables) inside a network namespace with only loopback:
# every container image is loaded under its name with the bundle's config
# as image ID, the model artifact is reported as not loadable, a second run
# loads nothing, and a tampered bundle leaves the engine empty.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need dockerd docker umoci python3
assert_airgap
make_bundle

D=$T/dk
mkdir -p "$D"
dockerd --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/pid" \
	-H "unix://$D/docker.sock" --iptables=false --ip6tables=false --bridge=none \
	--storage-driver=vfs --containerd-namespace ferry-e2e \
	--containerd-plugins-namespace ferry-e2e-plugins >"$D/log" 2>&1 &
FERRY_PIDS="$FERRY_PIDS $!"
export DOCKER_HOST=unix://$D/docker.sock
for _ in $(seq 100); do
	docker version >/dev/null 2>&1 && break
	sleep 0.1
done
docker version >/dev/null 2>&1 || { tail -n 5 "$D/log"; skip "dockerd cannot start here: $(tail -n 1 "$D/log")"; }
n_images() { docker images -q | wc -l; }

# --- a tampered bundle: refused, the engine holds nothing afterwards
tamper "$BUNDLE" "$T/bad.tar"
expect_fail 2 "VERIFICATION FAILED|digest mismatch" \
	ferry-install install "$T/bad.tar" --pubkey "$PUB" --target docker
[ "$(n_images)" -eq 0 ] || fail "a tampered bundle left images in docker"

# --- first run: docker load of every container image
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target docker)
echo "$out"
echo "$out" | grep -q "+ docker load" || fail "docker load was not run"
echo "$out" | grep -qE "images +done $N_CIMAGES, skipped 0" || fail "docker did not load $N_CIMAGES images"
[ "$N_IMAGES" = "$N_CIMAGES" ] || echo "$out" | grep -q "model artifact.* not loadable into docker" ||
	fail "the model artifact was not reported"
docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}' | sort | tee "$T/imgs"
# the image IDs are the configs the bundle's manifests name (for the
# multi-platform image, the host's platform)
ferry-install install "$BUNDLE" --pubkey "$PUB" --target docker --archive-out "$T/docker.tar" -q >/dev/null
python3 - "$T/docker.tar" >"$T/want" <<'EOF'
import json, sys, tarfile
t = tarfile.open(sys.argv[1])
for e in json.load(t.extractfile("manifest.json")):
    for tag in e["RepoTags"]:
        print(tag, "sha256:" + e["Config"].rsplit("/", 1)[1])
EOF
[ "$(wc -l <"$T/want")" -eq "$N_CIMAGES" ] || fail "the archive names $(wc -l <"$T/want") images"
# docker lists Docker Hub names in their short form (multi:2.0 for
# docker.io/library/multi:2.0)
familiar() { local r=${1#docker.io/}; echo "${r#library/}"; }
while read -r ref id; do
	grep -qx "$(familiar "$ref") $id" "$T/imgs" || fail "docker does not hold $ref as $id"
done <"$T/want"
# the engine can use what it loaded: a layer's file is in the image
ref=$(head -n 1 "$T/want" | cut -d' ' -f1)
docker image inspect "$ref" --format '{{len .RootFS.Layers}}' | grep -qx '[1-9][0-9]*' ||
	fail "$ref has no layers in docker"

# --- second run: everything present by ID, nothing loaded
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target docker)
echo "$out" | grep -qE "images +done 0, skipped $N_CIMAGES" || fail "second run loaded something: $out"
echo "$out" | grep -q "+ docker load" && fail "second run ran docker load"

# --- one image removed: only that one is loaded again
docker rmi "$ref" >/dev/null
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target docker)
echo "$out" | grep -qE "images +done 1, skipped $((N_CIMAGES - 1))" || fail "partial reload: $out"
docker image inspect "$ref" >/dev/null || fail "$ref was not loaded again"

kill "$(cat "$D/pid")" 2>/dev/null || true
echo "ok: docker load mode"
