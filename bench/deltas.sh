#!/bin/bash
# Deltas (docs/bundle-format.md "Deltas"), a realistic update: 20 images in
# a docker-registry on loopback, each a shared base layer (a pool of 4, of
# 4 MiB) plus two layers of its own (1 to 4 MiB). The base bundle is built
# and its receipt made (ferry-install receipt --bundle base.tar); then 3
# images get a new top layer upstream (same tags), and the full new bundle
# and the delta (--base receipt) are built, each from an empty cache.
# Figures:
#   - delta size / full size;
#   - the delta's metadata overhead: its size minus the bytes of the blobs
#     the base does not hold (the 3 new manifests, configs and top layers);
#     goal <= 1% of those bytes and <= 1 MiB;
#   - delta build time vs pulling the new blobs alone, two peers in the same
#     run: (1) `ferry-build build` of a spec holding only the 3 changed
#     images into an empty cache (it also pulls their unchanged layers), and
#     (2) curl fetching exactly the new blobs (manifests, configs, top
#     layers; 8 in parallel, the digests known beforehand), and (3) curl
#     fetching every tag's manifest (the 20) and then the new configs and
#     layers (what a tool must fetch when it does not know the new digests
#     beforehand); goal <= 1.2x. Also printed: the delta build into the
#     base build's cache (kept between updates, its usual state).
. "$(dirname "$0")/lib.sh"
for t in docker-registry skopeo curl python3 bc; do
	command -v $t >/dev/null || { echo "deltas: $t is not installed; skipped"; exit 0; }
done
N=20
CHANGED="0 7 14"
JOBS=${FERRY_BENCH_JOBS:-8}
echo "deltas: load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (a shared machine: figures are noisy)"
passmiss() { [ "$(echo "$1" | bc -l)" = 1 ] && echo PASS || echo MISS; }
best() { echo "if ($1 < $2) $1 else $2" | bc -l; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# --- the corpus: an OCI layout with tags imgNN (v1) and imgNN-v2 (the 3
# changed images: the same base and middle layers, a new top layer); the
# new blobs of each v2 image are listed in $B/new.blobs (TAG DIGEST)
python3 - "$B/L" "$N" "$CHANGED" >"$B/new.blobs" <<'PY'
import hashlib, json, os, random, sys
L, n, changed = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split()]
MiB = 1024 * 1024
os.makedirs(os.path.join(L, "blobs", "sha256"), exist_ok=True)
open(os.path.join(L, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
def blob(data):
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(L, "blobs", "sha256", h), "wb").write(data)
    return "sha256:" + h
def layer(seed, size):
    data = random.Random(seed).randbytes(size)
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(data), "size": size}
rng = random.Random(7)
pool = [layer(1000 + i, 4 * MiB) for i in range(4)]
index = {"schemaVersion": 2, "manifests": []}
def image(tag, ls):
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": {"tag": tag}},
                      "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in ls]}}).encode()
    c = blob(cfg)
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": c, "size": len(cfg)}, "layers": ls}).encode()
    md = blob(m)
    index["manifests"].append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "digest": md, "size": len(m),
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
    return md, c
for i in range(n):
    mid = layer(2 * i, rng.randint(1, 4) * MiB)
    top = layer(2 * i + 1, rng.randint(1, 4) * MiB)
    image("img%02d" % i, [pool[i % len(pool)], mid, top])
    if i in changed:
        new = layer(5000 + i, rng.randint(1, 4) * MiB)
        md, c = image("img%02d-v2" % i, [pool[i % len(pool)], mid, new])
        for d in (md, c, new["digest"]):
            print("img%02d %s" % (i, d))
json.dump(index, open(os.path.join(L, "index.json"), "w"))
PY

P=$(port)
mkdir -p "$B/data"
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$B/data" "$P" >"$B/reg.yml"
docker-registry serve "$B/reg.yml" >"$B/reg.log" 2>&1 &
BENCH_PIDS="$BENCH_PIDS $!"
wait_port "$P" || { echo "deltas: registry did not start"; exit 1; }
push() { skopeo copy -q --preserve-digests --dest-tls-verify=false "oci:$B/L:$1" "docker://127.0.0.1:$P/bench/$2:1"; }
for i in $(seq 0 $((N - 1))); do
	t=$(printf 'img%02d' "$i")
	push "$t" "$t"
done

ferry-build keygen -o "$B/k" >/dev/null
export SOURCE_DATE_EPOCH=1700000000 # the same bundle from every build of a spec
spec() { # FILE INDEXES...
	local f=$1 i
	shift
	{
		printf 'apiVersion: ferry/v1\nkind: Bundle\nmetadata:\n  name: bench-deltas\n  version: "1"\n'
		printf 'registries:\n  docker.io:\n    endpoint: 127.0.0.1:%s\n    insecure: true\nimages:\n' "$P"
		for i in "$@"; do printf '  - docker.io/bench/img%02d:1\n' "$i"; done
	} >"$f"
}
spec "$B/all.yaml" $(seq 0 $((N - 1)))
# shellcheck disable=SC2086
spec "$B/changed.yaml" $CHANGED
fb() { # SPEC OUT [ARGS]: a build into an empty cache
	local s=$1 o=$2
	shift 2
	rm -rf "$B/cache"
	ferry-build build "$s" -o "$o" --key "$B/k.key" --cache "$B/cache" --jobs "$JOBS" --quiet "$@" >/dev/null
}
fb "$B/all.yaml" "$B/base.tar" || { echo "deltas: base build failed"; exit 1; }
# the connected side's usual state a month later: the base build's cache
cp -a "$B/cache" "$B/basecache"
# fbw SPEC OUT [ARGS]: a build into a copy of that cache (copied untimed)
fbw_prep() { rm -rf "$B/wcache" && cp -a "$B/basecache" "$B/wcache"; }
fbw() {
	local s=$1 o=$2
	shift 2
	ferry-build build "$s" -o "$o" --key "$B/k.key" --cache "$B/wcache" --jobs "$JOBS" --quiet "$@" >/dev/null
}
ferry-install receipt -o "$B/lab.receipt.json" --pubkey "$B/k.pub" --bundle "$B/base.tar" >/dev/null ||
	{ echo "deltas: receipt failed"; exit 1; }

# --- upstream changes: 3 images get a new top layer under the same tag
for i in $CHANGED; do
	t=$(printf 'img%02d' "$i")
	push "$t-v2" "$t"
done
rm -rf "$B/L"
sync

# --- builds, each from an empty cache, alternating; best of 5
# the new blobs alone, by curl: 8 at a time, one connection each
awk -v u="http://127.0.0.1:$P" '{
	kind = (NR % 3 == 1) ? "manifests" : "blobs"
	print "url = \"" u "/v2/bench/" $1 "/" kind "/" $2 "\"\noutput = \"/dev/null\""
}' "$B/new.blobs" >"$B/curl.cfg"
curl_new() {
	curl -sf --parallel --parallel-max "$JOBS" -H "Accept: application/vnd.oci.image.manifest.v1+json" \
		-K "$B/curl.cfg" -w '%{http_code} %{size_download}\n' >"$B/curl.out"
}
# the third peer: what any delta tool must fetch at least when it does not
# know the new digests beforehand: every tag's manifest (GET by tag, the
# 20 of the spec; the 3 new manifests among them) and then the new configs
# and layers; 8 at a time, in two rounds (the manifests name the blobs)
for i in $(seq 0 $((N - 1))); do
	printf 'url = "http://127.0.0.1:%s/v2/bench/img%02d/manifests/1"\noutput = "/dev/null"\n' "$P" "$i"
done >"$B/curl-tags.cfg"
awk -v u="http://127.0.0.1:$P" 'NR % 3 != 1 {
	print "url = \"" u "/v2/bench/" $1 "/blobs/" $2 "\"\noutput = \"/dev/null\""
}' "$B/new.blobs" >"$B/curl-newblobs.cfg"
curl_tags_new() {
	curl -sf --parallel --parallel-max "$JOBS" -H "Accept: application/vnd.oci.image.manifest.v1+json" \
		-K "$B/curl-tags.cfg" -w '%{http_code}\n' >"$B/curl-tags.out" &&
		curl -sf --parallel --parallel-max "$JOBS" -K "$B/curl-newblobs.cfg" -w '%{http_code}\n' >>"$B/curl-tags.out"
}
t_full=999 t_delta=999 t_three=999 t_curl=999 t_curl2=999 t_warm=999
for _ in 1 2 3 4 5; do
	fbw_prep
	t_warm=$(best "$(secs_of fbw "$B/all.yaml" "$B/delta-warm.tar" --base "$B/lab.receipt.json")" "$t_warm")
	t_full=$(best "$(secs_of fb "$B/all.yaml" "$B/full.tar")" "$t_full")
	t_delta=$(best "$(secs_of fb "$B/all.yaml" "$B/delta.tar" --base "$B/lab.receipt.json")" "$t_delta")
	t_three=$(best "$(secs_of fb "$B/changed.yaml" "$B/three.tar")" "$t_three")
	t_curl=$(best "$(secs_of curl_new)" "$t_curl")
	t_curl2=$(best "$(secs_of curl_tags_new)" "$t_curl2")
done
[ "$(grep -c '^200' "$B/curl-tags.out")" = $((N + 6)) ] || { cat "$B/curl-tags.out"; echo "deltas: curl of the tags and new blobs failed"; exit 1; }
rm -rf "$B/cache" "$B/wcache" "$B/basecache"
cmp -s "$B/delta.tar" "$B/delta-warm.tar" || { echo "deltas: the delta built into the base's cache differs from the one built into an empty cache"; exit 1; }
for f in full delta three; do [ -s "$B/$f.tar" ] || { echo "deltas: the $f build failed"; exit 1; }; done
[ "$(grep -c '^200 ' "$B/curl.out")" = "$(wc -l <"$B/new.blobs")" ] || { cat "$B/curl.out"; echo "deltas: curl of the new blobs failed"; exit 1; }
ferry-install verify "$B/delta.tar" --pubkey "$B/k.pub" --base "$B/base.tar" >"$B/verify.out" ||
	{ cat "$B/verify.out"; echo "deltas: verify --base failed"; exit 1; }

# --- sizes: what the delta carries that the base lacks, and the rest
read -r full_size delta_size new_bytes new_n members new_curl old_blobs meta omitted < <(python3 - "$B" <<'PY'
import json, os, sys, tarfile
B = sys.argv[1]
have = {b["digest"] for b in json.load(open(B + "/lab.receipt.json"))["blobs"]}
new = n = members = old = other = 0
for m in tarfile.open(B + "/delta.tar"):
    members += 1
    if m.name.startswith("blobs/sha256/") and m.isfile():
        if "sha256:" + m.name[13:] not in have:
            new += m.size
            n += 1
        else:
            old += m.size  # manifests the base holds: always carried
    elif m.isfile():
        other += m.size  # SHA256SUMS, its signature, bundle.json, index.json, ...
curl = sum(int(l.split()[1]) for l in open(B + "/curl.out"))
t = tarfile.open(B + "/delta.tar")
omitted = len(json.load(t.extractfile("bundle.json"))["delta"]["omitted"])
print(os.path.getsize(B + "/full.tar"), os.path.getsize(B + "/delta.tar"), new, n, members, curl, old, other, omitted)
PY
)
[ "$new_bytes" = "$new_curl" ] || echo "deltas: note: the delta's new blobs ($new_bytes bytes) are not the bytes curl fetched ($new_curl)"
over=$((delta_size - new_bytes))
base_size=$(stat -c %s "$B/base.tar")
echo "deltas: $N images; base bundle $((base_size / 1048576)) MiB; 3 images changed upstream (new top layer)"
printf 'deltas: full new bundle %d bytes (%.1f MiB), delta %d bytes (%.1f MiB): delta/full = %s\n' \
	"$full_size" "$(echo "$full_size / 1048576" | bc -l)" "$delta_size" "$(echo "$delta_size / 1048576" | bc -l)" \
	"$(echo "scale=4; $delta_size / $full_size" | bc -l)"
printf 'deltas: new blobs (not in the base): %d, %d bytes; the delta has %d members and lists %d blobs as omitted\n' \
	"$new_n" "$new_bytes" "$members" "$omitted"
printf 'deltas: metadata overhead (delta size - new blobs): %d bytes = %.3f%% of the new blobs; %s (goal <= 1%% and <= 1 MiB)\n' \
	"$over" "$(echo "100 * $over / $new_bytes" | bc -l)" "$(passmiss "$over <= $new_bytes / 100 && $over <= 1048576")"
printf 'deltas: of which: manifests the base holds (carried always) %d bytes, metadata files %d bytes, tar headers, padding and end blocks %d bytes\n' \
	"$old_blobs" "$meta" $((over - old_blobs - meta))
printf 'deltas: build, best of 5, empty cache, --jobs %d: full %.3fs, delta %.3fs; peers: ferry-build of only the 3 changed images %.3fs; curl of the 9 new blobs by digest %.3fs; curl of the %d tags'"'"' manifests then the 6 new configs and layers %.3fs\n' \
	"$JOBS" "$t_full" "$t_delta" "$t_three" "$t_curl" "$N" "$t_curl2"
echo "deltas: delta build / ferry-build of the 3 changed images = $(ratio "$t_delta" "$t_three")x; $(passmiss "$t_delta <= 1.2 * $t_three") (goal <= 1.2x; that peer also pulls the 3 images' unchanged layers)"
echo "deltas: delta build / curl of the new blobs alone = $(ratio "$t_delta" "$t_curl")x; $(passmiss "$t_delta <= 1.2 * $t_curl") (goal <= 1.2x; that peer knows the 9 digests beforehand; the delta also resolves all $N tags, signs and writes a bundle)"
echo "deltas: delta build / curl of the $N tags' manifests and the new blobs = $(ratio "$t_delta" "$t_curl2")x; $(passmiss "$t_delta <= 1.2 * $t_curl2") (goal <= 1.2x; the network work any delta tool must do; ferry also starts a process, opens its cache catalog, lists tags for referrers, writes the cache and a signed bundle with fsync)"
echo "deltas: delta build / full build = $(ratio "$t_delta" "$t_full")x"
printf 'deltas: delta build into the base build'"'"'s cache (kept, as the connected side keeps it between updates), best of 5: %.3fs; / curl of the %d tags'"'"' manifests and the new blobs = %sx; / curl of the new blobs alone = %sx\n' \
	"$t_warm" "$N" "$(ratio "$t_warm" "$t_curl2")" "$(ratio "$t_warm" "$t_curl")"
