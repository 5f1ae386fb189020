#!/bin/bash
# install, containerd load mode, inside a network namespace with only
# loopback: a real containerd (temporary root, state, socket; native
# snapshotter) gets every bundle image under its upstream name with the
# bundle's digest; a second run imports nothing; a tampered bundle is
# refused before the node is touched.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need containerd ctr umoci python3
assert_airgap
make_bundle

# --- a tampered bundle: refused, and the runtime holds zero images afterwards
start_containerd "$T/ctd"
tamper "$BUNDLE" "$T/bad.tar"
expect_fail 2 "VERIFICATION FAILED|digest mismatch" \
	ferry-install install "$T/bad.tar" --pubkey "$PUB" --target "containerd:$CTD_SOCK"
n=$($CTR images ls -q | wc -l)
[ "$n" -eq 0 ] || fail "a tampered bundle left $n images in containerd"
$CTR content ls -q | grep -q . && fail "a tampered bundle left content in containerd"
echo "tampered bundle refused; containerd holds 0 images"

# --- a signature by another key is refused too
ferry-build keygen -o "$T/other" >/dev/null
expect_fail 2 "VERIFICATION FAILED" \
	ferry-install install "$BUNDLE" --pubkey "$T/other.pub" --target "containerd:$CTD_SOCK"

# --- first run: everything is imported
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--containerd-config "$CTD_CONFIG")
echo "$out"
echo "$out" | grep -q -- "--snapshotter=native" || fail "the snapshotter was not taken from the config"
echo "$out" | grep -q -- "import --all-platforms --digests" || fail "import flags"
echo "$out" | grep -qE "images +done $N_IMAGES, skipped 0" || fail "first run did not import $N_IMAGES images"
ls_out=$($CTR images ls)
echo "$ls_out"
for ref in $IMAGES; do
	want=$(bundle_digest "$ref")
	[ -n "$want" ] || fail "no digest for $ref in bundle.json"
	echo "$ls_out" | awk -v r="$ref" '$1 == r {print $3}' | grep -qx "$want" ||
		fail "$ref is not listed with the bundle's digest $want"
done
# the multi-platform image kept both platforms (--all-platforms)
echo "$ls_out" | awk '$1 == "docker.io/library/multi:2.0"' | grep -q "linux/arm64" ||
	fail "the arm64 child of the index was not imported"
# the images unpacked into the native snapshotter
$CTR snapshots --snapshotter native ls | grep -q . || fail "nothing was unpacked"

# --- second run: nothing imported, every image skipped by digest
start=$(date +%s%N)
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--snapshotter native)
echo "$out"
echo "$out" | grep -qE "images +done 0, skipped $N_IMAGES" || fail "second run imported something"
echo "$out" | grep -q "images import" && fail "second run ran ctr images import"
echo "second run: $(( ($(date +%s%N) - start) / 1000000 )) ms"

# --- one image removed: only that one is imported again
$CTR images rm example.local/demo/app2:1.0 >/dev/null
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--snapshotter native)
echo "$out" | grep -qE "images +done 1, skipped $((N_IMAGES - 1))" || fail "partial re-import: $out"

# --- content first: every blob (--ingest-min 0) streamed into the content
# store in two streams under a gc pin, then one import without the blobs
start_containerd "$T/ctd2"
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--snapshotter native --ingest-min 0 --jobs 2)
echo "$out"
echo "$out" | grep -qE "images +done $N_IMAGES, skipped 0" || fail "content-first run: $out"
n_blobs=$(echo "$out" | sed -n 's/.*: \([0-9]*\) blobs (.*) into the content store in 2 streams, 0 held already/\1/p')
[ -n "$n_blobs" ] && [ "$n_blobs" -gt 0 ] || fail "no content-store streams announced"
[ "$(echo "$out" | grep -c -- "content ingest .* ferry-[0-9a-f]\{64\} < (blob")" -eq "$n_blobs" ] ||
	fail "not every blob went through ctr content ingest"
echo "$out" | grep -q -- "content label sha256:[0-9a-f]* containerd.io/gc.root=" || fail "no gc pin"
echo "$out" | grep -q "less the blobs the content store holds" || fail "the import carried every blob"
pin=$(echo "$out" | sed -n 's/.* content rm \(sha256:[0-9a-f]*\)$/\1/p')
[ -n "$pin" ] || fail "the gc pin was not removed"
$CTR content ls | grep -q "ferry.install/pin" && fail "a gc pin is left in containerd"
$CTR content ls -q | grep -qx "$pin" && fail "the gc pin blob is left in containerd"
ls_out=$($CTR images ls)
for ref in $IMAGES; do
	want=$(bundle_digest "$ref")
	echo "$ls_out" | awk -v r="$ref" '$1 == r {print $3}' | grep -qx "$want" ||
		fail "content first: $ref is not listed with $want"
	$CTR images check "name==$ref" | grep -q complete || fail "content first: $ref is incomplete"
done
$CTR snapshots --snapshotter native ls | grep -q . || fail "content first: nothing was unpacked"
# blobs the store holds are not sent again
$CTR images rm example.local/demo/app2:1.0 >/dev/null
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--snapshotter native --ingest-min 0)
echo "$out" | grep -qE "images +done 1, skipped $((N_IMAGES - 1))" || fail "content first, partial: $out"
echo "$out" | grep -qE "blobs .* [1-9][0-9]* held already" || fail "held blobs were sent again: $out"

# --- --unpack lazy: content and images, no snapshots (CRI unpacks on demand)
start_containerd "$T/ctd3"
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--snapshotter native --unpack lazy --ingest-min 0)
echo "$out" | grep -qE "images +done $N_IMAGES, skipped 0" || fail "lazy run: $out"
echo "$out" | grep -q -- "import --all-platforms --digests --snapshotter=native --no-unpack" ||
	fail "lazy import was not --no-unpack"
for ref in $IMAGES; do
	$CTR images check "name==$ref" | grep -q complete || fail "lazy: $ref is incomplete"
done
[ "$($CTR snapshots --snapshotter native ls | tail -n +2 | wc -l)" -eq 0 ] ||
	fail "--unpack lazy unpacked"
expect_fail 64 "unpack is eager or lazy" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" --unpack later

# --- an unreachable node: a clear error naming the step
expect_fail 1 "step 2/5 deliver images.*(local node|listing images)" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$T/nope.sock" \
	--snapshotter native
echo "ok: containerd load mode"
