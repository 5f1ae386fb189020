#!/bin/bash
# install, docker target, load mode, against a real Docker engine (Debian's
# docker.io, private data root, socket and managed containerd; vfs, no
# bridge, no iptables) inside a network namespace with only loopback:
# every container image is loaded under its name with the bundle's config
# as image ID, the model artifact is reported as not loadable, a second run
# loads nothing, and a tampered bundle leaves the engine empty. Then two
# kind-labelled node containers running a real containerd get every image
# through `docker exec -i NODE ctr ...`, and in mirror mode two more pull
# every image through the registry ferry starts.
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
# node containers go before the engine does, whatever happens
docker_cleanup() {
	docker rm -f ferry-e2e-n1 ferry-e2e-n2 ferry-e2e-m1 ferry-e2e-m2 >/dev/null 2>&1 || true
	local p
	p=$(cat "$D/pid" 2>/dev/null || true)
	if [ -n "$p" ]; then
		kill "$p" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	fi
	# dockerd leaves mounts under its exec root (the host network's netns)
	awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done
	cleanup
}
trap docker_cleanup EXIT
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

# --- kind: two node containers with a real containerd inside, found by the
# kind label, loaded through `docker exec -i NODE ctr ...` (the only thing
# not real is that no kubelet runs beside that containerd). The node image
# is made here from the host's containerd, ctr and busybox.
R=$T/noderoot
mkdir -p "$R/etc/containerd" "$R/var/lib/containerd" "$R/run/containerd" "$R/tmp" "$R/bin"
for f in "$(command -v containerd)" "$(command -v ctr)" /bin/busybox; do
	cp --parents -L "$f" "$R"
	ldd "$f" 2>/dev/null | awk '/=> \// {print $3} /^\t\/.*ld-linux/ {print $1}' |
		while read -r lib; do cp --parents -L "$lib" "$R"; done
done
for a in sh mkdir tee cat; do ln -sf /bin/busybox "$R/bin/$a"; done
printf 'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  snapshotter = "native"\n' \
	>"$R/etc/containerd/config.toml"
tar -C "$R" -c . | docker import - ferry-e2e/node:1 >/dev/null
for nd in ferry-e2e-n1 ferry-e2e-n2; do
	# the unpack mounts: CAP_SYS_ADMIN (--privileged asks for capabilities
	# this machine's bounding set lacks)
	docker run -d --name "$nd" --network none --cap-add SYS_ADMIN \
		--security-opt apparmor=unconfined --security-opt seccomp=unconfined \
		--label io.x-k8s.kind.cluster=e2e ferry-e2e/node:1 \
		"$(command -v containerd)" --config /etc/containerd/config.toml >/dev/null
done
for nd in ferry-e2e-n1 ferry-e2e-n2; do
	for _ in $(seq 100); do
		docker exec "$nd" ctr version >/dev/null 2>&1 && break
		sleep 0.1
	done
	docker exec "$nd" ctr version >/dev/null 2>&1 || fail "containerd did not start in $nd: $(docker logs "$nd" 2>&1 | tail -n 3)"
done
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:e2e --no-apply --ingest-min 0)
echo "$out"
for nd in ferry-e2e-n1 ferry-e2e-n2; do
	echo "$out" | grep -q -- "+ docker exec -i $nd ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=native -" ||
		fail "no import into $nd (snapshotter from the node's config dump)"
	echo "$out" | grep -q -- "+ docker exec -i $nd ctr --namespace=k8s.io content ingest .* < (blob streamed" ||
		fail "no content streamed into $nd"
	ls_out=$(docker exec "$nd" ctr -n k8s.io images ls)
	for ref in $IMAGES; do
		want=$(bundle_digest "$ref")
		echo "$ls_out" | awk -v r="$ref" '$1 == r {print $3}' | grep -qx "$want" ||
			fail "$nd does not list $ref with $want"
		docker exec "$nd" ctr -n k8s.io images check "name==$ref" | grep -q complete ||
			fail "$ref is incomplete on $nd"
	done
	docker exec "$nd" ctr -n k8s.io snapshots --snapshotter native ls | tail -n +2 | grep -q . ||
		fail "nothing was unpacked on $nd"
done
echo "$out" | grep -qE "images +done $((2 * N_IMAGES)), skipped 0 as present on 2 nodes" ||
	fail "kind: not every image on both nodes"
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:e2e --no-apply)
echo "$out" | grep -qE "images +done 0, skipped $((2 * N_IMAGES)) as present on 2 nodes" ||
	fail "kind, second run: $out"
echo "$out" | grep -q "images import" && fail "kind, second run imported"

docker rm -f ferry-e2e-n1 ferry-e2e-n2 >/dev/null

# --- kind, mirror mode: two more nodes on the host network (this
# loopback-only namespace), so that they reach the registry ferry starts;
# hosts.toml and the CA go into each node through docker exec, and the
# node's own ctr pulls every image over TLS through the mirror only
for nd in ferry-e2e-m1 ferry-e2e-m2; do
	docker run -d --name "$nd" --network host --cap-add SYS_ADMIN \
		--security-opt apparmor=unconfined --security-opt seccomp=unconfined \
		--label io.x-k8s.kind.cluster=e2em ferry-e2e/node:1 \
		"$(command -v containerd)" --config /etc/containerd/config.toml \
		--address "/run/containerd/$nd.sock" >/dev/null
done
port=$(free_port)
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target kind:e2em --mode mirror --no-apply \
	--listen "127.0.0.1:$port" --advertise 127.0.0.1 --serve-dir "$T/serve") ||
	{ echo "$out"; cat "$T/serve/serve.log" 2>/dev/null; fail "kind mirror mode failed"; }
echo "$out"
FERRY_PIDS="$FERRY_PIDS $(cat "$T/serve/serve.pid")"
for nd in ferry-e2e-m1 ferry-e2e-m2; do
	echo "$out" | grep -q -- "+ docker exec -i $nd tee /etc/containerd/certs.d/docker.io/hosts.toml" ||
		fail "hosts.toml was not written into $nd"
	docker exec "$nd" cat /etc/containerd/certs.d/docker.io/hosts.toml |
		grep -qx "server = \"https://127.0.0.1:$port/v2/docker.io\"" || fail "$nd: the mirror is not the server"
	for ref in $CIMAGES; do
		repo=${ref%:*}
		dg=$(bundle_digest "$ref")
		docker exec "$nd" ctr -a "/run/containerd/$nd.sock" -n k8s.io images pull \
			--hosts-dir /etc/containerd/certs.d "$repo@$dg" >"$T/pull.log" 2>&1 ||
			{ cat "$T/pull.log"; fail "$nd: ctr pull $repo@$dg through the mirror failed"; }
	done
done
grep -q "/v2/docker.io/library/multi/" "$T/serve/access.log" || fail "the pulls did not reach the mirror"
echo "ok: docker load mode, kind nodes (load and mirror)"
