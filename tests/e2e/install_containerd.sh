#!/bin/bash
# install, containerd load mode, inside a network namespace with only
# loopback: a real containerd (temporary root, state, socket; native
# snapshotter) gets every bundle image under its upstream name with the
# bundle's digest; a second run imports nothing; a tampered bundle is
# refused before the node is touched. Blobs are placed in the local content
# store, or streamed through ctr (--ingest stream, or when the daemon does
# not see what was placed).
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

# --- content first: every blob (--ingest-min 0) into the content store in
# two jobs under a gc pin, then one import without the blobs. Here ferry
# runs on the node and can write the store: each blob is placed in
# <root>/blobs/sha256 and ctr only records it, reading an empty file.
start_containerd "$T/ctd2"
content_root=$T/ctd2/root/io.containerd.content.v1.content
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--snapshotter native --ingest-min 0 --jobs 2)
echo "$out"
echo "$out" | grep -qE "images +done $N_IMAGES, skipped 0" || fail "content-first run: $out"
n_blobs=$(echo "$out" | sed -n 's/.*: \([0-9]*\) blobs (.*) into the content store in 2 streams, 0 held already/\1/p')
[ -n "$n_blobs" ] && [ "$n_blobs" -gt 0 ] || fail "no content-store jobs announced"
echo "$out" | grep -q ": $n_blobs of them placed in $content_root and recorded by ctr, 0 streamed" ||
	fail "the blobs were not all placed in $content_root"
# one ingest per blob and one for the pin, each reading the empty file
[ "$(echo "$out" | grep -c -- "content ingest .* ferry-[0-9a-f]\{64\} < (empty file: the blob was placed in $content_root/blobs/sha256)")" -eq "$n_blobs" ] ||
	fail "not every blob was recorded from an empty file"
echo "$out" | grep -q -- "content ingest .* ferry-pin-[0-9a-f]\{16\} < (empty file" || fail "the pin was not placed"
echo "$out" | grep -q "< (blob streamed" && fail "a blob was streamed although it could be placed"
ls -d "$content_root"/ferry-place.* 2>/dev/null && fail "the placing temp folder is left"
[ -z "$($CTR content active | tail -n +2)" ] || fail "ingests left open: $($CTR content active)"
echo "$out" | grep -q -- "content label sha256:[0-9a-f]* containerd.io/gc.root=" || fail "no gc pin"
echo "$out" | grep -q "less the blobs the content store holds" || fail "the import carried every blob"
pin=$(echo "$out" | sed -n 's/.* content rm \(sha256:[0-9a-f]*\)$/\1/p')
[ -n "$pin" ] || fail "the gc pin was not removed"
for h in $(echo "$out" | sed -n 's/.*content ingest .* ferry-\([0-9a-f]\{64\}\) < (empty.*/\1/p'); do
	[ "sha256:$h" = "$pin" ] && continue
	[ -f "$content_root/blobs/sha256/$h" ] || fail "sha256:$h is not in the store"
	[ "$(stat -c %a "$content_root/blobs/sha256/$h")" = 444 ] || fail "sha256:$h is writable"
	$CTR content ls -q | grep -qx "sha256:$h" || fail "sha256:$h is not recorded in k8s.io"
done
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
# containerd reads the placed blobs back: every one of them matches its digest
for h in $($CTR content ls -q | sed 's/^sha256://'); do
	[ "$($CTR content get "sha256:$h" | sha256sum | cut -d' ' -f1)" = "$h" ] ||
		fail "containerd serves other bytes for sha256:$h"
done
# blobs the store holds are not sent again
$CTR images rm example.local/demo/app2:1.0 >/dev/null
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--snapshotter native --ingest-min 0)
echo "$out" | grep -qE "images +done 1, skipped $((N_IMAGES - 1))" || fail "content first, partial: $out"
echo "$out" | grep -qE "blobs .* [1-9][0-9]* held already" || fail "held blobs were sent again: $out"

# --- --ingest stream: every blob through ctr's stream, none placed
start_containerd "$T/ctd4"
out=$(ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--snapshotter native --ingest-min 0 --jobs 2 --ingest stream)
echo "$out" | grep -qE "images +done $N_IMAGES, skipped 0" || fail "stream run: $out"
n_blobs=$(echo "$out" | sed -n 's/.*: \([0-9]*\) blobs (.*) into the content store in 2 streams, 0 held already/\1/p')
[ -n "$n_blobs" ] && [ "$n_blobs" -gt 0 ] || fail "stream: no content-store jobs announced"
[ "$(echo "$out" | grep -c -- "content ingest .* ferry-[0-9a-f]\{64\} < (blob streamed")" -eq "$n_blobs" ] ||
	fail "--ingest stream: not every blob went through ctr content ingest"
echo "$out" | grep -q "empty file" && fail "--ingest stream placed a blob"
for ref in $IMAGES; do
	$CTR images check "name==$ref" | grep -q complete || fail "stream: $ref is incomplete"
done
expect_fail 64 "ingest is auto or stream" \
	ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" --ingest copy

# --- a store the daemon does not see (ferry in another mount namespace, its
# view of the content root a fresh tmpfs): the placed pin is not taken, so
# placing stops, what was placed is removed and every blob is streamed
if unshare -m --propagation private true 2>/dev/null; then
	start_containerd "$T/ctd5"
	root5=$T/ctd5/root/io.containerd.content.v1.content
	out=$(unshare -m --propagation private sh -c 'mount -t tmpfs ferry-other "$1" && shift && exec "$@"' \
		sh "$root5" ferry-install install "$BUNDLE" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
		--snapshotter native --ingest-min 0 --jobs 2)
	echo "$out"
	echo "$out" | grep -qE "images +done $N_IMAGES, skipped 0" || fail "other-store run: $out"
	echo "$out" | grep -q "not placed in the content store (.*); streaming it" ||
		fail "the daemon's refusal of the placed pin was not reported"
	n_blobs=$(echo "$out" | sed -n 's/.*: \([0-9]*\) blobs (.*) into the content store in 2 streams, 0 held already/\1/p')
	[ "$(echo "$out" | grep -c -- "< (blob streamed")" -eq "$n_blobs" ] ||
		fail "after the refused pin, not every blob was streamed"
	echo "$out" | grep -q "of them placed" && fail "placing went on after the refused pin"
	[ -z "$($CTR content active | tail -n +2)" ] || fail "ingests left open: $($CTR content active)"
	for ref in $IMAGES; do
		$CTR images check "name==$ref" | grep -q complete || fail "other store: $ref is incomplete"
	done
else
	echo "unshare -m is not available: the other-store case is not run"
fi

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
