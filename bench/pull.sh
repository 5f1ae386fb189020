#!/bin/bash
# Pull benchmark: a corpus of PULL_IMAGES images (default 20) and about
# PULL_MB MiB referenced (default 1400, about 1 GiB stored) with ~30% of the layer bytes in layers shared
# between images, served by a local docker-registry. Compares a cold
# `ferry-build build` against `skopeo copy` of each image into one OCI
# layout followed by `tar`, then a warm rebuild; peak RSS by GNU time.
# Goals (issue 3): cold <= 0.5x skopeo, warm <= 5% of cold, RSS <= 64 MiB.
. "$(dirname "$0")/lib.sh"
for t in docker-registry skopeo python3; do
	command -v "$t" >/dev/null || { echo "bench pull: $t is not installed; skipped"; exit 0; }
done
N=${PULL_IMAGES:-20}
MB=${PULL_MB:-1400}
JOBS=${PULL_JOBS:-8}
[ "$N" -ge 2 ] || { echo "PULL_IMAGES must be >= 2"; exit 1; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# --- corpus: an OCI layout with tags img00..imgNN, made by hand ---
# each image: one layer from a pool of shared layers (30% of its bytes)
# and two layers of its own.
python3 - "$B/L" "$N" "$MB" <<'PY'
import hashlib, json, os, random, sys
L, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(os.path.join(L, "blobs", "sha256"), exist_ok=True)
open(os.path.join(L, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
per = mb * 1024 * 1024 // n
shared_sz, own_sz = int(per * 0.3), int(per * 0.35)
def blob(data):
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(L, "blobs", "sha256", h), "wb").write(data)
    return "sha256:" + h
def layer(seed, size):
    data = random.Random(seed).randbytes(size)
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": blob(data), "size": size}
pool = [layer(1000 + i, shared_sz) for i in range(max(1, n // 6))]
index = {"schemaVersion": 2, "manifests": []}
for i in range(n):
    ls = [pool[i % len(pool)], layer(2 * i, own_sz), layer(2 * i + 1, own_sz)]
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in ls]}}).encode()
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": blob(cfg), "size": len(cfg)}, "layers": ls}).encode()
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "digest": blob(m), "size": len(m),
                               "annotations": {"org.opencontainers.image.ref.name": "img%02d" % i}})
json.dump(index, open(os.path.join(L, "index.json"), "w"))
shared = sum(p["size"] for p in pool)
total = shared + 2 * n * own_sz
print("corpus: %d images, %d layers, %.0f MiB stored, %.0f%% of layer references shared, %.0f%% of referenced bytes in shared layers"
      % (n, len(pool) + 2 * n, total / 2**20, 100 * n / (3 * n), 100 * n * shared_sz / (n * (shared_sz + 2 * own_sz))))
PY

P=$(port)
mkdir -p "$B/data"
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$B/data" "$P" >"$B/reg.yml"
docker-registry serve "$B/reg.yml" >"$B/reg.log" 2>&1 &
BENCH_PIDS="$BENCH_PIDS $!"
wait_port "$P" || { echo "registry did not start"; exit 1; }
for i in $(seq 0 $((N - 1))); do
	t=$(printf 'img%02d' "$i")
	skopeo copy -q --dest-tls-verify=false "oci:$B/L:$t" "docker://127.0.0.1:$P/bench/$t:1"
done
rm -rf "$B/L"
# issue 17: the corpus carries signatures, as a vendor's images do: every
# image gets a cosign-style `sha256-<hex>.sig` (tests/e2e/cosign_sign.py),
# so the cold build also pays for referrer discovery (one tag listing per
# repository) and copies the signatures; skopeo copies the images only.
SIGNED=0
if [ "${PULL_SIGN:-1}" = 1 ] && python3 -c 'import cryptography' 2>/dev/null; then
	python3 "$TOP/tests/e2e/cosign_sign.py" keygen "$B" >/dev/null
	for i in $(seq 0 $((N - 1))); do
		t=$(printf 'img%02d' "$i")
		d=$(curl -fsS -o /dev/null -D - -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
			"http://127.0.0.1:$P/v2/bench/$t/manifests/1" | tr -d '\r' |
			awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
		python3 "$TOP/tests/e2e/cosign_sign.py" sign "127.0.0.1:$P" "bench/$t" "$d" "$B/key.pem" \
			"docker.io/bench/$t:1" >/dev/null
		SIGNED=$((SIGNED + 1))
	done
fi
# every timed run starts with nothing left to write back (dirty pages, the
# discards of deleted files), so that no run pays for the one before it
sync

# --- skopeo: each image into one OCI layout, then tar ---
skopeo_all() {
	for i in $(seq 0 $((N - 1))); do
		t=$(printf 'img%02d' "$i")
		skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$P/bench/$t:1" "oci:$B/sk:bench/$t:1" || return 1
	done
	tar cf "$B/sk.tar" -C "$B/sk" .
}
t_sk=$(secs_of skopeo_all)
[ -s "$B/sk.tar" ] || { echo "skopeo baseline failed"; exit 1; }
rm -rf "$B/sk" "$B/sk.tar"
sync

# --- ferry ---
ferry-build keygen -o "$B/k" >/dev/null
{
	printf 'apiVersion: ferry/v1\nkind: Bundle\nmetadata:\n  name: bench\n  version: "1"\n'
	printf 'registries:\n  docker.io:\n    endpoint: 127.0.0.1:%s\n    insecure: true\nimages:\n' "$P"
	for i in $(seq 0 $((N - 1))); do printf '  - docker.io/bench/img%02d:1\n' "$i"; done
} >"$B/spec.yaml"
fb() { ferry-build build "$B/spec.yaml" -o "$B/$1.tar" --key "$B/k.key" --cache "$B/cache" --jobs "$JOBS" --json >"$B/$1.json"; }
pull_secs() { python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "summary": print("%.3f" % e["pull_seconds"])' "$B/$1.json"; }
rss() { /usr/bin/time -f %M ferry-build build "$B/spec.yaml" -o "$B/$1.tar" --key "$B/k.key" --cache "$B/cache" --jobs "$JOBS" --quiet 2>&1 >/dev/null | tail -n 1; }
t_cold=$(secs_of fb cold)
[ -s "$B/cold.tar" ] || { echo "ferry cold build failed"; exit 1; }
size=$(stat -c %s "$B/cold.tar")
cp "$B/cold.json" "$B/cold0.json"
# the usual rebuild: same spec, same output file
t_warm=$(secs_of fb cold)
cp "$B/cold.json" "$B/warm.json"
cp "$B/cold0.json" "$B/cold.json"
# warm cache, but a new output file: the bundle must be written again
t_warm_new=$(secs_of fb warmnew)
rm -f "$B/warmnew.tar"
rss_warm=$(rss warm2)
rm -rf "$B/cache" "$B/cold.tar" "$B/warm2.tar"
rss_cold=$(rss cold2)

echo "bundle: $((size / 1048576)) MiB, $N images, $SIGNED of them signed (cosign .sig carried), --jobs $JOBS"
echo "skopeo copy x$N + tar: $(fmt "$t_sk") s"
echo "ferry cold build:      $(fmt "$t_cold") s   ratio to skopeo $(ratio "$t_cold" "$t_sk") (goal <= 0.5)"
echo "ferry warm rebuild:    $(fmt "$t_warm") s   ratio to cold $(ratio "$t_warm" "$t_cold") (goal <= 0.05; same output, found up to date)"
echo "ferry warm, new file:  $(fmt "$t_warm_new") s   ratio to cold $(ratio "$t_warm_new" "$t_cold") (warm cache, the 1 GiB bundle written again)"
refs=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "summary": print(e.get("referrers", 0))' "$B/cold.json")
[ "$refs" = "$SIGNED" ] || { echo "the cold build carried $refs referrers, not the $SIGNED signatures"; exit 1; }
echo "  referrers carried:   $refs signatures (found by one tag listing per repository)"
pc=$(pull_secs cold) pw=$(pull_secs warm)
echo "  of which pulling:    cold $pc s, warm $pw s   (resolve + download; the bundle is written as the blobs arrive)"
python3 -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "summary":
        print("  warm rebuild did:    %d HEAD, %d manifest GET, %d blobs fetched (%d bytes), %d retries" % (e["manifest_heads"], e["manifest_gets"], e["blobs_fetched"], e["bytes_fetched"], e["retries"]))' "$B/warm.json"
echo "ferry peak RSS:        cold $((rss_cold / 1024)) MiB, warm $((rss_warm / 1024)) MiB (goal <= 64 MiB)"
