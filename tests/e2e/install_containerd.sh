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

# --- an unreachable node: a clear error naming the step
expect_fail 1 "step 2/5 deliver images.*(local node|listing images)" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$T/nope.sock" \
	--snapshotter native
echo "ok: containerd load mode"
