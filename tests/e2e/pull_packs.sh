# The cache keeps large blobs inside the bundle that brought them (a pack,
# docs/architecture.md "Packs"), so a cold build writes each byte to disk
# once. Asserted from the registry's access log: a build after that bundle
# was deleted fetches no blob; a pack whose mtime moved is forgotten and
# its blob fetched again; an incremental build copies its few new blobs
# out into blob files; a pack corrupted with its mtime kept is refused,
# naming the blob; a bundle written onto another filesystem than the
# cache (tmpfs here) packs nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"

pull_setup
rand_file "$W/big.bin" 3000000 9
make_image "$W/L" big "$W/big.bin"
rand_file "$W/big2.bin" 2500000 10
make_image "$W/L" big2 "$W/big2.bin"
push "$W/L:a" library/app-a:1
push "$W/L:big" library/big:1
push "$W/L:big2" library/big2:1
spec_header "$W/spec.yaml"
printf '  - app-a:1\n  - big:1\n' >>"$W/spec.yaml"
layer_of() {
	curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		"http://127.0.0.1:$REG_PORT/v2/library/$1/manifests/1" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])'
}
BIG=$(layer_of big)
BIG2=$(layer_of big2)
C=$W/cache
build() { # NAME: the bundle $W/NAME.tar, errors in $W/NAME.err
	ferry-build build "$W/spec.yaml" -o "$W/$1.tar" --key "$W/k.key" --cache "$C" 2>"$W/$1.err"
}
mark() { ferry_requests "$REG_LOG" | wc -l; }
blob_bytes() { # blob bytes GET since access-log line $1
	ferry_requests "$REG_LOG" | tail -n +$(($1 + 1)) |
		awk '$1=="GET" && $2 ~ /blobs/ {s+=$4} END {print s+0}'
}
npacks() { ls "$C/packs" | wc -l; }

# --- cold: the big layer is in the bundle only, and the pack is that file
build b1 || fail "cold build: $(cat "$W/b1.err")"
ferry-install verify "$W/b1.tar" --pubkey "$W/k.pub" >/dev/null
[ ! -e "$C/blobs/sha256/${BIG#sha256:}" ] || fail "the big layer was written to the cache too"
[ "$(npacks)" = 1 ] || fail "expected one pack: $(ls "$C/packs")"
pack=$C/packs/$(ls "$C/packs")
[ "$(stat -c %i "$pack")" = "$(stat -c %i "$W/b1.tar")" ] || fail "the pack is not the bundle's file"
[ -n "$(ls "$C/blobs/sha256")" ] || fail "small blobs should still be blob files"
[ -z "$(ls "$C/tmp")" ] || fail "resume files left: $(ls "$C/tmp")"

# --- the same output again: found up to date, nothing fetched
m=$(mark)
build b1 || fail "rebuild: $(cat "$W/b1.err")"
[ "$(blob_bytes "$m")" = 0 ] || fail "the rebuild fetched $(blob_bytes "$m") bytes"
grep -q "up to date" "$W/b1.err" || fail "the rebuild did not find b1.tar up to date: $(cat "$W/b1.err")"

# --- the bundle deleted: the next build still fetches no blob
rm "$W/b1.tar"
m=$(mark)
build b2 || fail "warm build: $(cat "$W/b2.err")"
[ "$(blob_bytes "$m")" = 0 ] || fail "the build after the bundle was deleted fetched $(blob_bytes "$m") bytes"
ferry-install verify "$W/b2.tar" --pubkey "$W/k.pub" >/dev/null

# --- the pack's mtime moved: not trusted, the big layer is fetched again
touch "$pack"
m=$(mark)
build b3 || fail "build after touch: $(cat "$W/b3.err")"
got=$(blob_bytes "$m")
[ "$got" -ge 3000000 ] || fail "the big layer was not fetched again ($got bytes)"
# (its name may come back: the new bundle can get the freed inode)
[ "$(npacks)" = 1 ] || fail "expected the new bundle as the one pack: $(ls "$C/packs")"
pack=$C/packs/$(ls "$C/packs")
[ "$(stat -c %i "$pack")" = "$(stat -c %i "$W/b3.tar")" ] || fail "the new pack is not b3.tar"

# --- one more image: its new blob fills less than half of the bundle, so
# it is copied out into a blob file and no pack is added
printf '  - big2:1\n' >>"$W/spec.yaml"
m=$(mark)
build b4 || fail "incremental build: $(cat "$W/b4.err")"
got=$(blob_bytes "$m")
[ "$got" -ge 2500000 ] && [ "$got" -lt 3000000 ] || fail "the incremental build fetched $got bytes"
[ -e "$C/blobs/sha256/${BIG2#sha256:}" ] || fail "big2's layer was not copied out"
[ "$(npacks)" = 1 ] || fail "a pack was added for little: $(ls "$C/packs")"
ferry-install verify "$W/b4.tar" --pubkey "$W/k.pub" >/dev/null

# --- a pack corrupted with its mtime kept: refused, naming the blob (the
# pack is the same file as b3.tar, which no longer verifies either)
off=$(python3 -c 'import sys, tarfile
print(tarfile.open(sys.argv[1]).getmember(sys.argv[2]).offset_data)' "$pack" "blobs/sha256/${BIG#sha256:}")
touch -r "$pack" "$W/stamp"
printf 'X' | dd of="$pack" bs=1 seek=$((off + 100)) conv=notrunc 2>/dev/null
touch -r "$W/stamp" "$pack"
expect_fail 2 "" build b5
grep -q "${BIG#sha256:}.*changed on disk" "$W/b5.err" || fail "the corrupt blob is not named: $(cat "$W/b5.err")"
cat "$W/b5.err"
[ ! -e "$W/b5.tar" ] || fail "a bundle was written from a corrupt pack"
ferry-install verify "$W/b3.tar" --pubkey "$W/k.pub" >/dev/null 2>&1 && fail "b3.tar still verifies"
# removing the pack (or the bundle and the pack) makes the cache fetch it again
rm "$pack"
build b5 || fail "build after the pack was removed: $(cat "$W/b5.err")"
ferry-install verify "$W/b5.tar" --pubkey "$W/k.pub" >/dev/null
# --- two cold builds into one cache at once: one packs each big layer,
# the other (which finds it locked) writes a blob file; both bundles are
# the same, and a third build fetches nothing
C3=$W/cache3
ferry-build build "$W/spec.yaml" -o "$W/p1.tar" --key "$W/k.key" --cache "$C3" 2>"$W/p1.err" &
q1=$!
ferry-build build "$W/spec.yaml" -o "$W/p2.tar" --key "$W/k.key" --cache "$C3" 2>"$W/p2.err" &
q2=$!
wait "$q1" || fail "concurrent build 1: $(cat "$W/p1.err")"
wait "$q2" || fail "concurrent build 2: $(cat "$W/p2.err")"
cmp "$W/p1.tar" "$W/p2.tar" || fail "the concurrent bundles differ"
ferry-install verify "$W/p1.tar" --pubkey "$W/k.pub" >/dev/null
[ -z "$(ls "$C3/tmp")" ] || fail "resume files left: $(ls "$C3/tmp")"
m=$(mark)
C=$C3 build p3 || fail "build after the concurrent ones: $(cat "$W/p3.err")"
[ "$(blob_bytes "$m")" = 0 ] || fail "the build after the concurrent ones fetched $(blob_bytes "$m") bytes"

# --- a bundle on another filesystem: no pack; the cache gets blob files
# (written beside the bundle while downloading, reg_store_can_pack)
SHM=$(mktemp -d /dev/shm/ferry-e2e.XXXXXX)
trap 'rm -rf "$SHM"; cleanup' EXIT
[ "$(stat -c %d "$SHM")" != "$(stat -c %d "$W")" ] || skip "/dev/shm is on the cache's filesystem"
C2=$W/cache2
ferry-build build "$W/spec.yaml" -o "$SHM/b.tar" --key "$W/k.key" --cache "$C2" 2>"$W/shm.err" ||
	fail "build onto tmpfs: $(cat "$W/shm.err")"
ferry-install verify "$SHM/b.tar" --pubkey "$W/k.pub" >/dev/null
[ -z "$(ls "$C2/packs")" ] || fail "a bundle on another filesystem became a pack"
[ -e "$C2/blobs/sha256/${BIG#sha256:}" ] && [ -e "$C2/blobs/sha256/${BIG2#sha256:}" ] ||
	fail "the big layers are not blob files in the cache"
[ -z "$(ls "$C2/tmp")" ] || fail "resume files left: $(ls "$C2/tmp")"
echo "pull_packs: ok"
