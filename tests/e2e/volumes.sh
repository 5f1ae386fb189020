#!/bin/bash
# Volumes (docs/bundle-format.md "Volumes"), inside a network namespace
# with only loopback: the same spec, pulled from a real docker-registry, is
# built as one file and with --volume-size 3M (a 7 MiB layer spans three
# parts). The parts joined are the single file byte for byte; part 000
# starts with SHA256SUMS, SHA256SUMS.sig and bundle.json; the sidecar
# checks with sha256sum -c. verify, inspect, serve (skopeo and containerd
# copy the image whose layer spans parts; a Range across a part boundary), push and
# install into a real containerd, and mirror-config all take the set by its
# prefix or first part. A deleted, truncated or swapped part is named (exit 2); verify
# --parts-only passes, and fails on a changed part.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need umoci skopeo curl jq python3 docker-registry containerd ctr
. "$(dirname "$0")/pull_helpers.bash"
assert_airgap

W=$T/w
mkdir -p "$W/files"
ferry-build keygen -o "$W/k" >/dev/null
PUB=$W/k.pub
start_registry reg
REG=127.0.0.1:$REG_PORT

# digest_of REF BUNDLE: the manifest digest index.json gives REF
digest_of() {
	tar -xOf "$2" index.json | jq -r --arg r "$1" \
		'.manifests[] | select(.annotations["io.containerd.image.name"] == $r) | .digest'
}

# --- the images: a 7 MiB random layer (spans parts of 3 MiB) and a small one
rand_file "$W/files/big.bin" 7340032 11
rand_file "$W/files/small.bin" 5000 12
rand_file "$W/files/other.bin" 7340032 13
make_image "$W/L" big "$W/files/big.bin" "$W/files/small.bin"
make_image "$W/L" small "$W/files/small.bin"
make_image "$W/L" other "$W/files/other.bin"
push "$W/L:big" library/big:1
push "$W/L:small" library/small:1
push "$W/L:other" library/other:1
spec_header "$W/spec.yaml"
cat >>"$W/spec.yaml" <<EOF
  - docker.io/library/big:1
  - docker.io/library/small:1
EOF
spec_header "$W/other.yaml"
cat >>"$W/other.yaml" <<EOF
  - docker.io/library/other:1
  - docker.io/library/small:1
EOF

# --- build: one file, and parts (each from a cold cache: the single file
# fills holes while downloading, the parts are written after the downloads)
ferry-build build "$W/spec.yaml" -o "$W/one.tar" --key "$W/k.key" --cache "$W/c1" >/dev/null 2>"$W/err1" ||
	fail "build: $(cat "$W/err1")"
# an older, longer set under the same name: its extra parts must go
ferry-build build "$W/spec.yaml" -o "$W/v.tar" --key "$W/k.key" --cache "$W/c2" --volume-size 1M \
	>/dev/null 2>"$W/err2" || fail "build 1M: $(cat "$W/err2")"
[ -f "$W/v.tar.007" ] || fail "a 1M set should have 8 parts"
out=$(ferry-build build "$W/spec.yaml" -o "$W/v.tar" --key "$W/k.key" --cache "$W/c3" \
	--volume-size 3M 2>"$W/err3") || fail "build 3M: $(cat "$W/err3")"
echo "$out"
echo "$out" | grep -q "3 parts" || fail "summary: $out"
[ -e "$W/v.tar" ] && fail "a volume build wrote the single file"
[ -e "$W/v.tar.003" ] && fail "a part of the older, longer set was left behind"
one_size=$(stat -c %s "$W/one.tar")
[ "$one_size" -gt $((6 * 1048576)) ] || fail "the bundle is too small to span 3 parts"
for p in 000 001; do
	[ "$(stat -c %s "$W/v.tar.$p")" = 3145728 ] || fail "v.tar.$p is not 3 MiB"
done
last=$(stat -c %s "$W/v.tar.002")
[ "$last" -gt 0 ] && [ "$last" -le 3145728 ] || fail "last part of $last bytes"
[ $((2 * 3145728 + last)) = "$one_size" ] || fail "the parts do not add up to the single file"
cat "$W"/v.tar.0* | cmp - "$W/one.tar" || fail "the parts joined differ from the single file"
echo "cat v.tar.0* == one.tar ($one_size bytes)"
# reproducible: the same set again, part for part
ferry-build build "$W/spec.yaml" -o "$W/again.tar" --key "$W/k.key" --cache "$W/c3" \
	--volume-size 3M >/dev/null 2>&1 || fail "second parts build"
for p in 000 001 002; do cmp "$W/v.tar.$p" "$W/again.tar.$p" || fail "part $p is not reproducible"; done
# part 000 starts with the signed list, its signature and bundle.json
first=$({ tar -tf "$W/v.tar.000" 2>/dev/null || true; } | head -n 3 | tr '\n' ' ')
[ "$first" = "SHA256SUMS SHA256SUMS.sig bundle.json " ] || fail "part 000 starts with: $first"
# the sidecar, checked by the stock tool
(cd "$W" && sha256sum -c v.tar.parts) || fail "sha256sum -c v.tar.parts"
grep -q "^# v.tar.001: 3145728 bytes$" "$W/v.tar.parts" || fail "sidecar lacks sizes"
# the big layer spans parts
BIG=$(digest_of docker.io/library/big:1 "$W/one.tar")
DIG_SMALL=$(digest_of docker.io/library/small:1 "$W/one.tar")
layer=$(python3 - "$W/one.tar" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    m = max(t.getmembers(), key=lambda m: m.size)
print(m.name, m.offset_data, m.size)
EOF
)
set -- $layer
LAYER=${1#blobs/sha256/} LOFF=$2 LSIZE=$3
[ "$LOFF" -lt 3145728 ] && [ $((LOFF + LSIZE)) -gt 6291456 ] || fail "the layer does not span parts"
echo "layer $LAYER: bytes $LOFF..$((LOFF + LSIZE)) span all three parts"

# --- verify and inspect take the prefix or the first part
ferry-install verify "$W/v.tar" --pubkey "$PUB" || fail "verify by prefix"
ferry-install verify "$W/v.tar.000" --pubkey "$PUB" >/dev/null || fail "verify by first part"
expect_fail 64 "name its first part" ferry-install verify "$W/v.tar.001" --pubkey "$PUB"
ferry-install inspect "$W/v.tar.000" --pubkey "$PUB" | grep -q "docker.io/library/big:1" ||
	fail "inspect from parts"
[ "$(ferry-install inspect --json "$W/v.tar" --pubkey "$PUB" | jq .bundleSize)" = "$one_size" ] ||
	fail "inspect --json bundleSize"
ferry-install verify --parts-only "$W/v.tar" || fail "verify --parts-only"
# inspect --head: the first part alone suffices (SHA256SUMS, its signature
# and bundle.json are in it); a wrong key or a changed bundle.json is refused
mkdir -p "$T/first"
cp "$W/v.tar.000" "$T/first/"
ferry-install inspect --head "$T/first/v.tar" --pubkey "$PUB" >"$T/head.out" ||
	fail "inspect --head from the first part alone"
grep -q "docker.io/library/big:1" "$T/head.out" && grep -q "signature verified" "$T/head.out" ||
	fail "inspect --head: $(cat "$T/head.out")"
[ "$(ferry-install inspect --head --json "$T/first/v.tar.000" --pubkey "$PUB" | jq -r .name)" = pull ] ||
	fail "inspect --head --json"
expect_fail 2 "truncated" ferry-install inspect "$T/first/v.tar.000" --pubkey "$PUB"
ferry-build keygen -o "$T/other" >/dev/null
expect_fail 2 "signature" ferry-install inspect --head "$T/first/v.tar" --pubkey "$T/other.pub"
python3 - "$T/first/v.tar.000" <<'EOF'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
i = data.index(b'"formatVersion"')
data[i + 1] ^= 0x20  # "FormatVersion": bundle.json no longer matches SHA256SUMS
open(sys.argv[1], "wb").write(data)
EOF
expect_fail 2 "digest mismatch in member 'bundle.json'" \
	ferry-install inspect --head "$T/first/v.tar" --pubkey "$PUB"

# --- serve from the parts: skopeo copies the image whose layer spans parts
serve_dir=$T/serve
mkdir -p "$serve_dir"
rm -f "$T/ready"
ferry-install serve "$W/v.tar.000" --pubkey "$PUB" --listen 127.0.0.1:0 --ready-file "$T/ready" \
	>"$T/serve.out" 2>"$T/serve.err" &
SPID=$!
FERRY_PIDS="$FERRY_PIDS $SPID"
for _ in $(seq 100); do [ -s "$T/ready" ] && break; sleep 0.1; done
[ -s "$T/ready" ] || fail "serve from parts: $(cat "$T/serve.err")"
U=$(cat "$T/ready")
HP=${U#http://}
skopeo copy -q --src-tls-verify=false "docker://$HP/docker.io/library/big:1" "oci:$T/oci:t" ||
	fail "skopeo copy from parts"
got=$(jq -r '.manifests[0].digest' "$T/oci/index.json")
[ "$got" = "$BIG" ] || fail "skopeo copied $got, the bundle has $BIG"
cmp "$T/oci/blobs/sha256/$LAYER" <(tar -xOf "$W/one.tar" "blobs/sha256/$LAYER") ||
	fail "the layer skopeo got differs"
echo "skopeo copy from parts: $got, layer $LAYER identical"
# a Range across the boundary between parts 000 and 001
a=$((3145728 - LOFF - 100)) b=$((3145728 - LOFF + 99))
curl -sf -r "$a-$b" "$U/v2/docker.io/library/big/blobs/sha256:$LAYER" >"$T/range" || fail "range"
cmp "$T/range" <(tail -c +$((3145728 - 100 + 1)) "$W/one.tar" | head -c 200) ||
	fail "a range across parts differs"
# a blob in one part (the small image's manifest) as well
curl -sf "$U/v2/docker.io/library/small/manifests/1" -H 'Accept: application/vnd.oci.image.manifest.v1+json' |
	cmp - <(tar -xOf "$W/one.tar" "blobs/sha256/${DIG_SMALL#sha256:}") || fail "manifest from parts"
kill -TERM "$SPID"
wait "$SPID" || fail "serve exited $?"
# a second start reuses the saved index (keyed by every part)
rm -f "$T/ready"
ferry-install serve "$W/v.tar" --pubkey "$PUB" --listen 127.0.0.1:0 --ready-file "$T/ready" \
	>"$T/serve2.out" 2>"$T/serve2.err" &
SPID=$!
FERRY_PIDS="$FERRY_PIDS $SPID"
for _ in $(seq 100); do [ -s "$T/ready" ] && break; sleep 0.1; done
grep -q "index reused" "$T/serve2.err" || fail "the index was not reused: $(cat "$T/serve2.err")"
kill -TERM "$SPID"
wait "$SPID" || fail "serve exited $?"

# --- mirror-config from the parts
ferry-install mirror-config "$W/v.tar.000" --registry "$REG" --format containerd -o "$T/mc" \
	--pubkey "$PUB" >/dev/null || fail "mirror-config from parts"
grep -q "$REG" "$T/mc/docker.io/hosts.toml" || fail "mirror-config wrote no hosts.toml"

# --- push from the parts into the registry
ferry-install push "$W/v.tar" --pubkey "$PUB" --to "$REG/mirror" --plain-http >"$T/push.out" 2>&1 ||
	fail "push from parts: $(cat "$T/push.out")"
got=$(manifest_digest mirror/docker.io/library/big:1)
[ "$got" = "$BIG" ] || fail "pushed big:1 is $got, not $BIG"
echo "push from parts: mirror/docker.io/library/big:1 = $got"

# --- install into a real containerd from the parts
start_containerd "$T/ctd"
ferry-install install "$W/v.tar.000" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--containerd-config "$CTD_CONFIG" >"$T/install.out" 2>&1 || fail "install: $(cat "$T/install.out")"
ls_out=$($CTR images ls)
echo "$ls_out" | awk '$1 == "docker.io/library/big:1" {print $3}' | grep -qx "$BIG" ||
	fail "containerd lacks big:1 at $BIG: $ls_out"
echo "$ls_out" | awk '$1 == "docker.io/library/small:1" {print $3}' | grep -qx "$DIG_SMALL" ||
	fail "containerd lacks small:1"
echo "install from parts: containerd holds big:1 at $BIG"
# containerd pulls the spanning layer from serve of the parts too (an
# iovec response from the parts mapped; docs/serve.md "Bundles in parts"),
# and a HEAD of it gives its length without a body
rm -f "$T/ready"
ferry-install serve "$W/v.tar" --pubkey "$PUB" --listen 127.0.0.1:0 --ready-file "$T/ready" \
	>"$T/serve3.out" 2>"$T/serve3.err" &
SPID=$!
FERRY_PIDS="$FERRY_PIDS $SPID"
for _ in $(seq 100); do [ -s "$T/ready" ] && break; sleep 0.1; done
[ -s "$T/ready" ] || fail "serve from parts: $(cat "$T/serve3.err")"
U=$(cat "$T/ready")
HP=${U#http://}
$CTR images pull --plain-http "$HP/docker.io/library/big:1" >"$T/ctr-pull.out" 2>&1 ||
	fail "containerd pull from parts: $(cat "$T/ctr-pull.out")"
$CTR images ls | awk -v r="$HP/docker.io/library/big:1" '$1 == r {print $3}' | grep -qx "$BIG" ||
	fail "containerd pulled big:1 from parts at another digest: $($CTR images ls)"
$CTR content get "sha256:$LAYER" | cmp - <(tar -xOf "$W/one.tar" "blobs/sha256/$LAYER") ||
	fail "the layer containerd pulled from parts differs"
len=$(curl -sfI "$U/v2/docker.io/library/big/blobs/sha256:$LAYER" | tr -d '\r' |
	awk 'tolower($1) == "content-length:" {print $2}')
[ "$len" = "$LSIZE" ] || fail "HEAD of the spanning layer: Content-Length $len, not $LSIZE"
kill -TERM "$SPID"
wait "$SPID" || fail "serve exited $?"
echo "containerd pull from parts: big:1 at $BIG, spanning layer identical"

# --- a deleted, a truncated and a swapped part are named (exit 2)
ferry-build build "$W/other.yaml" -o "$W/o.tar" --key "$W/k.key" --cache "$W/c3" \
	--volume-size 3M >/dev/null 2>&1 || fail "other build"
X=$T/x
reset_set() { rm -rf "$X"; mkdir -p "$X"; cp "$W"/v.tar.* "$X/"; }
reset_set
rm "$X/v.tar.001"
expect_fail 2 "v.tar.001: missing" ferry-install verify "$X/v.tar" --pubkey "$PUB"
reset_set
rm "$X/v.tar.002" # the last part: the sidecar names it
expect_fail 2 "v.tar.002: missing" ferry-install verify "$X/v.tar" --pubkey "$PUB"
rm "$X/v.tar.parts" # without the sidecar: still refused, the set ends early
expect_fail 2 "truncated" ferry-install verify "$X/v.tar" --pubkey "$PUB"
reset_set
truncate -s -1048576 "$X/v.tar.001"
expect_fail 2 "v.tar.001: 1048576 bytes short" ferry-install verify "$X/v.tar" --pubkey "$PUB"
reset_set
truncate -s -1000 "$X/v.tar.002"
expect_fail 2 "v.tar.002: 1000 bytes short" ferry-install verify "$X/v.tar" --pubkey "$PUB"
reset_set
cp "$W/o.tar.001" "$X/v.tar.001"
expect_fail 2 "v.tar.001: its sha256 is not the one the sidecar lists" \
	ferry-install verify "$X/v.tar" --pubkey "$PUB"
expect_fail 2 "v.tar.001" ferry-install serve "$X/v.tar" --pubkey "$PUB" --listen 127.0.0.1:0
rm "$X/v.tar.parts" # without the sidecar: the member's parts are named
expect_fail 2 "digest mismatch in member 'blobs/sha256/$LAYER' \(its bytes are in [^)]*v.tar.001" \
	ferry-install verify "$X/v.tar" --pubkey "$PUB"
expect_fail 2 "VERIFICATION FAILED|v.tar.001" \
	ferry-install install "$X/v.tar" --pubkey "$PUB" --target "containerd:$CTD_SOCK"
# a part from a set of another size
reset_set
ferry-build build "$W/spec.yaml" -o "$W/w2.tar" --key "$W/k.key" --cache "$W/c3" \
	--volume-size 2M >/dev/null 2>&1 || fail "2M build"
cp "$W/w2.tar.001" "$X/v.tar.001"
expect_fail 2 "v.tar.001: 1048576 bytes short" ferry-install verify "$X/v.tar" --pubkey "$PUB"

# --- serve --verify=lazy from parts, one changed in place afterwards: the
# layer is hashed again, refused, and the log names its parts
reset_set
rm -f "$T/ready"
ferry-install serve "$X/v.tar" --pubkey "$PUB" --verify=lazy --listen 127.0.0.1:0 \
	--ready-file "$T/ready" >"$T/lazy.out" 2>"$T/lazy.err" &
SPID=$!
FERRY_PIDS="$FERRY_PIDS $SPID"
for _ in $(seq 100); do [ -s "$T/ready" ] && break; sleep 0.1; done
[ -s "$T/ready" ] || fail "lazy serve from parts: $(cat "$T/lazy.err")"
U=$(cat "$T/ready")
python3 - "$X/v.tar.001" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(5000)
    b = f.read(1)
    f.seek(5000)
    f.write(bytes([b[0] ^ 1]))
EOF
code=$(curl -s -o "$T/body" -w '%{http_code}' "$U/v2/docker.io/library/big/blobs/sha256:$LAYER")
[ "$code" = 500 ] || fail "a layer in a changed part was served ($code)"
grep -q DIGEST_INVALID "$T/body" || fail "no DIGEST_INVALID: $(cat "$T/body")"
kill -TERM "$SPID"
wait "$SPID" || true
grep -q "blobs/sha256/$LAYER (its bytes are in .*v.tar.001" "$T/lazy.err" ||
	fail "serve did not name the parts: $(cat "$T/lazy.err")"
echo "lazy serve: a layer in a changed part refused, its parts named"

# --- verify --parts-only: the sidecar alone
reset_set
ferry-install verify --parts-only "$X/v.tar.000" >/dev/null || fail "parts-only on a good copy"
python3 - "$X/v.tar.002" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(1000)
    b = f.read(1)
    f.seek(1000)
    f.write(bytes([b[0] ^ 1]))
EOF
expect_fail 2 "v.tar.002: its sha256 is not the one the sidecar lists" \
	ferry-install verify --parts-only "$X/v.tar"
rm "$X/v.tar.001"
expect_fail 2 "v.tar.001: missing" ferry-install verify --parts-only "$X/v.tar"
expect_fail 1 "one.tar.parts" ferry-install verify --parts-only "$W/one.tar"

# --- the size parser at the command line
expect_fail 64 "K, M, G or T" ferry-build build "$W/spec.yaml" -o "$W/z.tar" --key "$W/k.key" --volume-size 3X
expect_fail 64 "minimum" ferry-build build "$W/spec.yaml" -o "$W/z.tar" --key "$W/k.key" --volume-size 512K
echo "volumes: ok"
