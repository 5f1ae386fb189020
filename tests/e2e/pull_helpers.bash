# Helpers for the pull_*.sh tests (sourced after lib.sh): a Debian
# docker-registry on a random loopback port, test images made with umoci
# and pushed with skopeo, and a spec that maps docker.io to the registry.

for t in docker-registry skopeo umoci python3; do
	command -v "$t" >/dev/null 2>&1 || skip "$t is not installed"
done

# start_registry NAME [EXTRA_YAML_FILE]: sets REG_PORT, REG_LOG, REG_DATA.
# The registry's access log (one line per request) goes to REG_LOG.
start_registry() {
	name=$1 extra=${2:-}
	REG_PORT=$(free_port)
	REG_DATA=${REG_DATA_DIR:-$T/$name-data}
	REG_LOG=$T/$name.log
	mkdir -p "$REG_DATA"
	{
		echo "version: 0.1"
		echo "log:"
		echo "  level: warn"
		echo "  accesslog:"
		echo "    disabled: false"
		echo "storage:"
		echo "  filesystem:"
		echo "    rootdirectory: $REG_DATA"
		echo "  delete:"
		echo "    enabled: true"
		echo "http:"
		echo "  addr: 127.0.0.1:$REG_PORT"
		[ -n "$extra" ] && cat "$extra"
	} >"$T/$name.yml"
	docker-registry serve "$T/$name.yml" >"$REG_LOG" 2>&1 &
	REG_PID=$!
	FERRY_PIDS="$FERRY_PIDS $REG_PID"
	wait_port "$REG_PORT"
}

# pull_setup: the work folder W with a signing key ($W/k.key, $W/k.pub), a
# registry (start_registry reg) and the shared test images in $W/L.
pull_setup() {
	W=$T/w
	mkdir -p "$W"
	ferry-build keygen -o "$W/k" >/dev/null
	start_registry reg
	make_shared_images "$W/L"
}

stop_registry() {
	kill "$REG_PID" 2>/dev/null || true
	wait "$REG_PID" 2>/dev/null || true
}

# push LAYOUT:TAG REPO:TAG [skopeo options]: into the registry on REG_PORT.
push() {
	src=$1 dst=$2
	shift 2
	skopeo copy -q --dest-tls-verify=false "$@" "oci:$src" "docker://127.0.0.1:$REG_PORT/$dst"
}

# rand_file FILE BYTES SEED: reproducible incompressible bytes.
rand_file() {
	python3 -c 'import random,sys; r=random.Random(int(sys.argv[2])); sys.stdout.buffer.write(r.randbytes(int(sys.argv[1])))' "$2" "$3" >"$1"
}

# make_shared_images LAYOUT: tags base, a, b (a and b share base's layer),
# arm (an arm64 image) and multi (an OCI index of a and arm).
make_shared_images() {
	L=$1
	d=$T/files
	mkdir -p "$d"
	rand_file "$d/base.bin" 300000 1
	rand_file "$d/a.bin" 200000 2
	rand_file "$d/b.bin" 150000 3
	rand_file "$d/arm.bin" 120000 4
	make_image "$L" base "$d/base.bin"
	umoci tag --image "$L:base" a
	umoci insert --rootless --image "$L:a" "$d/a.bin" /data/a.bin >/dev/null
	umoci tag --image "$L:base" b
	umoci insert --rootless --image "$L:b" "$d/b.bin" /data/b.bin >/dev/null
	umoci new --image "$L:arm"
	umoci config --image "$L:arm" --architecture arm64 --os linux
	umoci insert --rootless --image "$L:arm" "$d/arm.bin" /data/arm.bin >/dev/null
	python3 - "$L" <<'PY'
import hashlib, json, os, sys
L = sys.argv[1]
idx = json.load(open(os.path.join(L, "index.json")))
def desc(tag):
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m
    raise SystemExit("no tag " + tag)
def plat(d, arch):
    return {"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
            "platform": {"architecture": arch, "os": "linux"}}
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [plat(desc("a"), "amd64"), plat(desc("arm"), "arm64")]},
                  separators=(",", ":")).encode()
h = hashlib.sha256(body).hexdigest()
open(os.path.join(L, "blobs", "sha256", h), "wb").write(body)
idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                         "digest": "sha256:" + h, "size": len(body),
                         "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(idx, open(os.path.join(L, "index.json"), "w"))
PY
}

# spec_header FILE [ENDPOINT_OPTIONS...]: a spec mapping docker.io to the
# registry; images are appended by the caller.
spec_header() {
	f=$1
	shift
	{
		echo "apiVersion: ferry/v1"
		echo "kind: Bundle"
		echo "metadata:"
		echo "  name: pull"
		echo '  version: "1"'
		echo "registries:"
		echo "  docker.io:"
		echo "    endpoint: ${SPEC_ENDPOINT:-127.0.0.1:$REG_PORT}"
		[ -n "${SPEC_INSECURE-1}" ] && echo "    insecure: true"
		for o in "$@"; do echo "    $o"; done
		echo "images:"
	} >"$f"
}

# manifest_digest REPO:TAG: the digest the registry serves for a tag.
manifest_digest() {
	curl -sfI -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json' \
		"http://127.0.0.1:$REG_PORT/v2/${1%%:*}/manifests/${1##*:}" |
		tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p'
}

# ferry_requests LOG: the requests ferry sent, "METHOD PATH STATUS BYTES".
ferry_requests() {
	grep '"ferry/' "$1" | sed -E 's/.*"(GET|HEAD) ([^ ]*) HTTP[^"]*" ([0-9]+) ([0-9-]+).*/\1 \2 \3 \4/'
}
