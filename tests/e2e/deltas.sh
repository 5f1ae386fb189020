#!/bin/bash
# Deltas (docs/bundle-format.md "Receipts" and "Deltas"), inside a network
# namespace with only loopback, from a real docker-registry. A base bundle
# of app:1 and tool:1 (sharing a base layer); upstream then gets app:2 (a
# changed layer) and extra:1 (a new tag on the same base layer). A receipt
# of the base; the delta built against it fetches (registry access log) and
# carries (members) only the new blobs, and its bundle.json lists the
# omitted ones. verify alone says what the delta needs; verify --base
# passes with the real base, and is refused (exit 2) with a bundle that is
# not its base, or with bases that lack blobs (named with their images).
# The same delta from --base OLD.tar --base-pubkey, and in volumes; a
# receipt of a containerd node after a load install of the base makes the
# same delta. A delta on a delta (a receipt of both) verifies against both
# bundles and names what the base alone lacks. diff lists the changes.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need umoci skopeo curl jq python3 docker-registry containerd ctr
. "$(dirname "$0")/pull_helpers.bash"
assert_airgap

. "$(dirname "$0")/deltas_lib.bash"
deltas_base

# --- the receipt of the base
ferry-install receipt -o "$W/lab.receipt.json" --pubkey "$PUB" --bundle "$W/base.tar" >"$W/out" ||
	fail "receipt"
R=$W/lab.receipt.json
[ "$(jq '.receiptVersion' "$R")" = 1 ] || fail "receiptVersion"
[ "$(jq '.bundles | length' "$R")" = 1 ] || fail "the receipt holds one bundle identity"
sums=$(tar -xOf "$W/base.tar" SHA256SUMS | sha256sum | cut -d' ' -f1)
[ "$(jq -r '.bundles[0].sumsSha256' "$R")" = "$sums" ] || fail "identity is not the base's SHA256SUMS"
[ "$(jq -r '.bundles[0].name' "$R")" = pull ] || fail "bundle name"
base_blobs=$(tar -tf "$W/base.tar" | sed -n 's|^blobs/sha256/||p' | sort)
[ "$(jq -r '.blobs[].digest' "$R" | sed 's/^sha256://' | sort)" = "$base_blobs" ] ||
	fail "the receipt's blobs are not the base's members"
for h in $base_blobs; do
	sz=$(tar -xOf "$W/base.tar" "blobs/sha256/$h" | wc -c)
	[ "$(jq --arg d "sha256:$h" '.blobs[] | select(.digest == $d) | .size' "$R")" = "$sz" ] ||
		fail "size of $h in the receipt"
done
app1=$(manifest_digest library/app:1)
[ "$(jq -r '.images[] | select(.ref == "docker.io/library/app:1") | .digest' "$R")" = "$app1" ] ||
	fail "app:1 and its manifest digest are not in the receipt"
# without a key: refused; with a wrong key: refused (exit 2)
ferry-install receipt -o "$W/x.json" --bundle "$W/base.tar" 2>/dev/null && exit 1
ferry-build keygen -o "$W/k2" >/dev/null
expect_fail 2 "signature|verif" ferry-install receipt -o "$W/x.json" --pubkey "$W/k2.pub" --bundle "$W/base.tar"
[ -e "$W/x.json" ] && fail "a refused receipt was written"

# --- upstream changes: app:2 (a changed layer), extra:1 (a new tag on base)
make_image "$W/L" app2 "$W/files/base.bin" "$W/files/app2.bin"
make_image "$W/L" extra "$W/files/base.bin" "$W/files/extra.bin"
push "$W/L:app2" library/app:2
push "$W/L:extra" library/extra:1
spec_header "$W/v2.yaml"
printf '  - docker.io/library/app:2\n  - docker.io/library/tool:1\n  - docker.io/library/extra:1\n' >>"$W/v2.yaml"

new_blobs=$( { image_blobs library/app:2; image_blobs library/extra:1; image_blobs library/tool:1; } |
	sort -u | while read -r h; do echo "$base_blobs" | grep -qx "$h" || echo "$h"; done)
[ "$(echo "$new_blobs" | wc -l)" = 4 ] || fail "expected 4 new blobs upstream, got: $new_blobs"

# --- the delta, from a cold cache: only the new blobs are fetched
n0=$(wc -l <"$REG_LOG")
ferry-build build "$W/v2.yaml" -o "$W/delta.tar" --key "$W/k.key" --cache "$W/c2" --base "$R" \
	>"$W/out" 2>"$W/err" || fail "delta build: $(cat "$W/err")"
grep -q "left out" "$W/out" || fail "build does not say what it left out: $(cat "$W/out")"
fetched=$(tail -n +$((n0 + 1)) "$REG_LOG" | ferry_requests /dev/stdin |
	sed -n 's|^GET /v2/[^ ]*/blobs/sha256:\([0-9a-f]*\) 200 .*|\1|p' | sort -u)
[ "$fetched" = "$(echo "$new_blobs" | sort)" ] ||
	fail "the delta build fetched [$fetched], not the new blobs [$new_blobs]"
echo "access log: the delta build fetched exactly the $(echo "$fetched" | wc -l) new blobs"
carried=$(tar -tf "$W/delta.tar" | sed -n 's|^blobs/sha256/||p' | sort)
for h in $new_blobs; do echo "$carried" | grep -qx "$h" || fail "new blob $h is not carried"; done
tool=$(manifest_digest library/tool:1)
both=$(comm -12 <(echo "$carried") <(echo "$base_blobs"))
[ "$both" = "${tool#sha256:}" ] ||
	fail "the delta carries base blobs other than tool:1's manifest: [$both]"
# bundle.json: a delta, its base, every omitted blob with its size
tar -xOf "$W/delta.tar" bundle.json >"$W/bj.json"
[ "$(jq -r '.delta.baseBundles[0].sumsSha256' "$W/bj.json")" = "$sums" ] || fail "delta base identity"
[ "$(jq '.delta.omitted | length' "$W/bj.json")" = 3 ] || fail "3 omitted blobs (base, tool layers, tool config)"
for d in $(jq -r '.delta.omitted[].digest' "$W/bj.json"); do
	[ "$(jq --arg d "$d" '.delta.omitted[] | select(.digest == $d) | .size' "$W/bj.json")" = \
		"$(jq --arg d "$d" '.blobs[] | select(.digest == $d) | .size' "$R")" ] || fail "size of omitted $d"
done
[ "$(jq '.images | length' "$W/bj.json")" = 3 ] || fail "the delta lists every image of the spec"
# SHA256SUMS covers the members present
[ "$(tar -xOf "$W/delta.tar" SHA256SUMS | wc -l)" = "$(tar -tf "$W/delta.tar" | grep -cvE '^SHA256SUMS(\.sig)?$')" ] ||
	fail "SHA256SUMS does not list exactly the members"

# --- in the lab: alone, with its base, with the wrong base
ferry-install verify "$W/delta.tar" --pubkey "$PUB" >"$W/out" || fail "verify delta alone"
grep -q "delta: 3 blobs ([0-9]* bytes) left out" "$W/out" || fail "verify does not say what it needs: $(cat "$W/out")"
ferry-install verify "$W/delta.tar" --pubkey "$PUB" --base "$W/base.tar" >"$W/out" ||
	fail "verify --base base.tar"
grep -q "bases hold every omitted blob" "$W/out" || fail "verify --base output: $(cat "$W/out")"
# a bundle that is not this delta's base: refused, even though it holds the blobs
SOURCE_DATE_EPOCH=1700000001 ferry-build build "$W/v1.yaml" -o "$W/base-b.tar" --key "$W/k.key" \
	--cache "$W/c1" >/dev/null 2>&1 || fail "second base build"
expect_fail 2 "is not a base of this delta" ferry-install verify "$W/delta.tar" --pubkey "$PUB" --base "$W/base-b.tar"

# a delta against a receipt made by other means (no bundle identity): the
# bases are checked by their blobs; missing ones are named with their images
jq '.bundles = []' "$R" >"$W/plain.json"
ferry-build build "$W/v2.yaml" -o "$W/delta-p.tar" --key "$W/k.key" --cache "$W/c2" --base "$W/plain.json" \
	>/dev/null 2>&1 || fail "delta build from a plain receipt"
spec_header "$W/o.yaml"
printf '  - docker.io/library/other:1\n' >>"$W/o.yaml"
ferry-build build "$W/o.yaml" -o "$W/other.tar" --key "$W/k.key" --cache "$W/c2" >/dev/null 2>&1 ||
	fail "other build"
expect_fail 2 "missing: sha256:.*needed by .*docker.io/library/tool:1" \
	ferry-install verify "$W/delta-p.tar" --pubkey "$PUB" --base "$W/other.tar"
ferry-install verify "$W/delta-p.tar" --pubkey "$PUB" --base "$W/other.tar" --base "$W/base-b.tar" \
	>/dev/null || fail "two bases that together hold the blobs"
# a corrupt base is refused (exit 2), not trusted
cp "$W/base.tar" "$W/bad.tar"
off=$(python3 - "$W/bad.tar" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    m = max((m for m in t.getmembers() if m.name.startswith("blobs/")), key=lambda m: m.size)
    print(m.offset_data + 100)
PY
)
printf 'X' | dd of="$W/bad.tar" bs=1 seek="$off" conv=notrunc 2>/dev/null
expect_fail 2 "" ferry-install verify "$W/delta.tar" --pubkey "$PUB" --base "$W/bad.tar"

# --- the base as a bundle: only with its public key
expect_fail 1 "base-pubkey" ferry-build build "$W/v2.yaml" -o "$W/d2.tar" --key "$W/k.key" --cache "$W/c2" \
	--base "$W/base.tar"
expect_fail 2 "" ferry-build build "$W/v2.yaml" -o "$W/d2.tar" --key "$W/k.key" --cache "$W/c2" \
	--base "$W/base.tar" --base-pubkey "$W/k2.pub"
ferry-build build "$W/v2.yaml" -o "$W/d2.tar" --key "$W/k.key" --cache "$W/c2" \
	--base "$W/base.tar" --base-pubkey "$PUB" >/dev/null 2>&1 || fail "delta from --base OLD.tar"
tar -xOf "$W/d2.tar" bundle.json | jq -S .delta >"$W/d2.delta"
jq -S .delta "$W/bj.json" >"$W/d1.delta"
cmp -s "$W/d1.delta" "$W/d2.delta" || fail "--base OLD.tar and its receipt make different deltas"

# --- deltas in volumes: the same bytes as the single file
ferry-build build "$W/v2.yaml" -o "$W/dv.tar" --key "$W/k.key" --cache "$W/c2" --base "$R" \
	--volume-size 1M >/dev/null 2>&1 || fail "delta with --volume-size"
cat "$W"/dv.tar.0* | cmp -s - "$W/delta.tar" || fail "the delta's parts joined differ from the single file"
ferry-install verify "$W/dv.tar.000" --pubkey "$PUB" --base "$W/base.tar" >/dev/null ||
	fail "verify the delta's parts against the base"

# --- diff: what is in this update?
ferry-install diff "$W/base.tar" "$W/delta.tar" --pubkey "$PUB" --json >"$W/diff.json" || fail "diff --json"
[ "$(jq -r '[.images.added[].ref] | sort | join(" ")' "$W/diff.json")" = \
	"docker.io/library/app:2 docker.io/library/extra:1" ] || fail "diff: added images: $(cat "$W/diff.json")"
[ "$(jq -r '[.images.removed[].ref] | join(" ")' "$W/diff.json")" = "docker.io/library/app:1" ] ||
	fail "diff: removed images"
[ "$(jq '.images.changed | length' "$W/diff.json")" = 0 ] || fail "diff: tool:1 did not change"
new_bytes=0
for h in $new_blobs; do new_bytes=$((new_bytes + $(tar -xOf "$W/delta.tar" "blobs/sha256/$h" | wc -c))); done
# new blobs: the 4 new configs and layers and the 2 new manifests
[ "$(jq '.blobs.added' "$W/diff.json")" = 6 ] || fail "diff: 6 new blobs: $(jq .blobs "$W/diff.json")"
app2=$(manifest_digest library/app:2) extra=$(manifest_digest library/extra:1)
man_bytes=$(( $(tar -xOf "$W/delta.tar" "blobs/sha256/${app2#sha256:}" | wc -c) + $(tar -xOf "$W/delta.tar" "blobs/sha256/${extra#sha256:}" | wc -c) ))
[ "$(jq '.blobs.addedBytes' "$W/diff.json")" = $((new_bytes + man_bytes)) ] || fail "diff: new bytes"
[ "$(jq '.blobs.removed' "$W/diff.json")" = 3 ] || fail "diff: app:1's manifest, config and layer are gone"
[ "$(jq '.images.added[] | select(.ref == "docker.io/library/extra:1") | .size' "$W/diff.json")" = \
	"$(jq '.images[] | select(.ref == "docker.io/library/extra:1") | .size' "$W/bj.json")" ] || fail "diff: image size"
ferry-install diff "$W/base.tar" "$W/delta.tar" --pubkey "$PUB" >"$W/diff.txt" || fail "diff"
grep -q "^images: 2 added, 1 removed, 0 changed" "$W/diff.txt" || fail "diff text: $(cat "$W/diff.txt")"
grep -q "^  + docker.io/library/extra:1 sha256:" "$W/diff.txt" || fail "diff text lists extra:1"
grep -q "^blobs: 6 new ($((new_bytes + man_bytes)) bytes), 3 gone" "$W/diff.txt" || fail "diff text blobs"
# a receipt against a bundle: the same images and blobs
ferry-install diff "$R" "$W/delta.tar" --pubkey "$PUB" --json >"$W/diff2.json" || fail "diff receipt bundle"
[ "$(jq -r '[.images.added[].ref] | sort | join(" ")' "$W/diff2.json")" = \
	"docker.io/library/app:2 docker.io/library/extra:1" ] || fail "diff receipt: added images"
[ "$(jq '.blobs.added' "$W/diff2.json")" = 6 ] || fail "diff receipt: new blobs"
[ "$(jq '.blobs.removed' "$W/diff2.json")" = 3 ] || fail "diff receipt: gone blobs"
# no key: usage; wrong key: refused
expect_fail 2 "signature" ferry-install diff "$W/base.tar" "$W/delta.tar" --pubkey "$W/k2.pub"

# --- a receipt of a containerd node after a load install of the base
start_containerd "$T/ctd"
ferry-install install "$W/base.tar" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--containerd-config "$CTD_CONFIG" >/dev/null 2>"$W/err" || fail "install base: $(cat "$W/err")"
ferry-install receipt -o "$W/ctd.json" --containerd "$CTD_SOCK" >/dev/null 2>"$W/err" ||
	fail "receipt --containerd: $(cat "$W/err")"
[ "$(jq -r '.images[] | select(.ref == "docker.io/library/app:1") | .digest' "$W/ctd.json")" = "$app1" ] ||
	fail "containerd receipt: app:1 at its digest: $(cat "$W/ctd.json")"
[ "$(jq '.bundles | length' "$W/ctd.json")" = 0 ] || fail "a node has no bundle identity"
for h in $base_blobs; do
	[ "$(jq --arg d "sha256:$h" '.blobs[] | select(.digest == $d) | .size' "$W/ctd.json")" = \
		"$(jq --arg d "sha256:$h" '.blobs[] | select(.digest == $d) | .size' "$R")" ] ||
		fail "containerd receipt: blob $h (size)"
done
ferry-build build "$W/v2.yaml" -o "$W/dc.tar" --key "$W/k.key" --cache "$W/c2" --base "$W/ctd.json" \
	>/dev/null 2>&1 || fail "delta from the containerd receipt"
[ "$(tar -xOf "$W/dc.tar" bundle.json | jq -S '.delta.omitted')" = "$(jq -S '.delta.omitted' "$W/bj.json")" ] ||
	fail "the containerd receipt's delta omits other blobs"
ferry-install verify "$W/dc.tar" --pubkey "$PUB" --base "$W/base.tar" >/dev/null ||
	fail "verify the containerd receipt's delta against the base"

# --- a delta whose bundle.json lies, signed with the real key (an insider,
# or a buggy builder): verify checks the record against the manifests
# resign BUNDLE OUT JQ_FILTER: bundle.json changed by the filter, SHA256SUMS
# and its signature made anew, the members re-packed in the same order
resign() {
	x=$W/rs
	rm -rf "$x" && mkdir -p "$x"
	tar -xf "$1" -C "$x"
	tar -tf "$1" >"$W/rs.list"
	old=$(sha256sum <"$x/bundle.json" | cut -d' ' -f1)
	jq -c "$3" "$x/bundle.json" >"$x/bundle.json.new" && mv "$x/bundle.json.new" "$x/bundle.json"
	new=$(sha256sum <"$x/bundle.json" | cut -d' ' -f1)
	sed -i "s/$old/$new/" "$x/SHA256SUMS"
	openssl pkeyutl -sign -rawin -inkey "$W/k.key" -in "$x/SHA256SUMS" -out "$x/SHA256SUMS.sig"
	tar --format=ustar --owner=0 --group=0 --numeric-owner -cf "$2" -C "$x" --no-recursion -T "$W/rs.list"
}
# a control: re-signed unchanged, it verifies (so the refusals below are the lies)
resign "$W/delta.tar" "$W/same.tar" '.'
ferry-install verify "$W/same.tar" --pubkey "$PUB" --base "$W/base.tar" >/dev/null ||
	fail "a re-signed, unchanged delta does not verify: the lie tests below would prove nothing"
resign "$W/delta.tar" "$W/lie-size.tar" '.delta.omitted[0].size += 1'
expect_fail 2 "listed as omitted with [0-9]+ bytes, its manifest says" \
	ferry-install verify "$W/lie-size.tar" --pubkey "$PUB"
resign "$W/delta.tar" "$W/lie-gone.tar" '.delta.omitted |= .[1:]'
expect_fail 2 "neither in the bundle nor listed as omitted" ferry-install verify "$W/lie-gone.tar" --pubkey "$PUB"
resign "$W/delta.tar" "$W/lie-base.tar" '.delta.baseBundles[0].sumsSha256 = "'"$(printf '0%.0s' $(seq 64))"'"'
expect_fail 2 "is not a base of this delta" ferry-install verify "$W/lie-base.tar" --pubkey "$PUB" --base "$W/base.tar"

# --- a chain: a delta on a delta, from a receipt of both bundles
ferry-install receipt -o "$W/both.json" --pubkey "$PUB" --bundle "$W/base.tar" "$W/delta.tar" >/dev/null ||
	fail "receipt of the base and the delta"
[ "$(jq '.bundles | length' "$W/both.json")" = 2 ] || fail "two identities in the chain's receipt"
spec_header "$W/v3.yaml"
printf '  - docker.io/library/app:2\n  - docker.io/library/extra:1\n  - docker.io/library/other:1\n' >>"$W/v3.yaml"
ferry-build build "$W/v3.yaml" -o "$W/delta3.tar" --key "$W/k.key" --cache "$W/c2" --base "$W/both.json" \
	>/dev/null 2>&1 || fail "delta on a delta"
# every config and layer of app:2 and extra:1 (in the base or the first
# delta) is omitted; other:1's are carried
for h in $(image_blobs library/app:2; image_blobs library/extra:1); do
	tar -xOf "$W/delta3.tar" bundle.json | jq -e --arg d "sha256:$h" '.delta.omitted[] | select(.digest == $d)' >/dev/null ||
		fail "the chain's delta does not omit $h"
	tar -tf "$W/delta3.tar" | grep -qx "blobs/sha256/$h" && fail "the chain's delta carries $h"
done
for h in $(image_blobs library/other:1); do
	tar -tf "$W/delta3.tar" | grep -qx "blobs/sha256/$h" || fail "the chain's delta lacks other:1's $h"
done
ferry-install verify "$W/delta3.tar" --pubkey "$PUB" --base "$W/base.tar" --base "$W/delta.tar" >/dev/null ||
	fail "verify the chain against both bundles"
expect_fail 2 "missing: sha256:.*needed by" ferry-install verify "$W/delta3.tar" --pubkey "$PUB" --base "$W/base.tar"
echo "deltas ok"
