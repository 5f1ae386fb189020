#!/bin/bash
# Deltas in the lab (docs/serve.md "Deltas", docs/install.md "Deltas"),
# inside a network namespace with only loopback. The setup of deltas.sh
# (deltas_lib.bash): base.tar, and delta.tar that leaves out the 3 blobs the
# base holds.
# serve: `serve delta base` is one registry: skopeo copies every image of
# the new spec (and the base's app:1) at the registry's digests, the
# left-out blobs coming from the base; so does the delta in volumes. A
# retagged image: the newer bundle wins. Refused at start (exit 2, nothing
# served): the delta alone (the missing blobs named with their images), a
# bundle that is not its base, the bundles in the wrong order. Lazy mode: a
# corrupt left-out blob in the base is not served.
# install (load mode, real containerd): the delta without its base onto a
# fresh node names the missing blobs with their images, exits 2 and
# changes nothing (images and content unchanged); with --base onto that
# node the left-out blobs come from the base; after a load install of the
# base onto another node they come from the node (none from the base).
# Either way every image of the new spec is there at its digest.
# push: the base into a fresh registry, then the delta without --base
# (every image at its digest; uploads only of the delta's 4 new blobs, each
# once; extra's shared base layer mounted); the delta alone into an empty
# registry exits 2 naming the missing blobs with their images and writes
# nothing (no POST/PUT/PATCH, empty catalog); with --base every image
# resolves; a bundle that is not its base is refused.
# A chain (a delta on the delta, from a receipt of both) is served with
# both bundles behind it (and refused with the base alone), and installed
# onto a fresh node with both as bases.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need umoci skopeo curl jq python3 docker-registry containerd ctr
. "$(dirname "$0")/pull_helpers.bash"
. "$(dirname "$0")/deltas_lib.bash"
. "$(dirname "$0")/serve_lib.bash"
assert_airgap
deltas_setup
omitted=$(tar -xOf "$W/delta.tar" bundle.json | jq -r '.delta.omitted[].digest')

# --- push: the blobs a delta leaves out come from the target or the bases
# (a docker-registry per case; the upstream one's REG_* are kept aside)
UP_PORT=$REG_PORT UP_PID=$REG_PID UP_LOG=$REG_LOG
# resolves_all PORT: every image of the new spec is in the target at the
# upstream digest
resolves_all() {
	for r in $NEW_REFS; do
		got=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$1/docker.io/$r" | sha256sum | cut -d' ' -f1)
		[ "sha256:$got" = "$(REG_PORT=$UP_PORT manifest_digest "$r")" ] ||
			fail "push: docker.io/$r is at sha256:$got on 127.0.0.1:$1"
	done
}
# uploads LOG: the digests of the blob uploads the registry committed
uploads() { grep -oE '"PUT /v2/[^ ]*/blobs/uploads/[^ ]*digest=sha256(%3A|:)[0-9a-f]+' "$1" | sed -E 's/.*digest=sha256(%3A|:)//' | sort; }
# the base into a fresh registry, then the delta without --base: the
# left-out blobs are the target's (HEAD, or a mount from another repository)
start_registry pb
ferry-install push "$W/base.tar" --pubkey "$PUB" --to "127.0.0.1:$REG_PORT" --plain-http >"$W/out" 2>&1 ||
	fail "push base: $(cat "$W/out")"
n0=$(wc -l <"$REG_LOG")
ferry-install push "$W/delta.tar" --pubkey "$PUB" --to "127.0.0.1:$REG_PORT" --plain-http >"$W/out" 2>&1 ||
	fail "push delta onto the base, no --base: $(cat "$W/out")"
grep -q "a delta: 3 blobs left out are on the target, 0 come from the bases" "$W/out" ||
	fail "push does not find the left-out blobs on the target: $(cat "$W/out")"
tail -n +$((n0 + 1)) "$REG_LOG" >"$W/dlog"
resolves_all "$REG_PORT"
uploads "$W/dlog" >"$W/up"
# app:2 and extra:1 each bring a config and a layer: 4 uploads, each once,
# each a member of the delta and none of the base
[ "$(wc -l <"$W/up")" = 4 ] || { cat "$W/dlog" >&2; fail "push delta: $(wc -l <"$W/up") blob uploads, not 4"; }
[ "$(uniq <"$W/up" | wc -l)" = 4 ] || fail "a blob was uploaded twice: $(cat "$W/up")"
[ "$(grep -c '"POST /v2/[^ ]*/blobs/uploads/ ' "$W/dlog")" = 4 ] ||
	fail "upload sessions: $(grep -c '"POST /v2/[^ ]*/blobs/uploads/ ' "$W/dlog"), not 4"
# extra:1's base layer (in app's and tool's repositories) is mounted
grep -q '"POST /v2/docker.io/library/extra/blobs/uploads/?mount=[^ ]* HTTP/1.1" 201 ' "$W/dlog" ||
	fail "the shared base layer was not mounted into extra"
for d in $(cat "$W/up"); do
	tar -tf "$W/delta.tar" "blobs/sha256/$d" >/dev/null 2>&1 || fail "uploaded $d is not in the delta"
	tar -tf "$W/base.tar" "blobs/sha256/$d" >/dev/null 2>&1 && fail "uploaded $d is the base's"
done
stop_registry
# an empty registry, no --base: exit 2 naming the missing blobs, nothing written
start_registry pe
rc=$(ferry-install push "$W/delta.tar" --pubkey "$PUB" --to "127.0.0.1:$REG_PORT" --plain-http >"$W/out" 2>&1; echo $?)
[ "$rc" = 2 ] || fail "push of a delta alone into an empty registry: exit $rc, not 2: $(cat "$W/out")"
for d in $omitted; do
	grep -q "missing: $d ([0-9]* bytes), needed by docker.io/library/" "$W/out" || fail "push: $d is not named: $(cat "$W/out")"
done
grep -q "missing: .*needed by docker.io/library/tool:1" "$W/out" || fail "push: tool:1 is not named"
grep -q "nothing was pushed" "$W/out" || fail "push does not say nothing was pushed"
[ "$(curl -sf "http://127.0.0.1:$REG_PORT/v2/_catalog" | jq -r '.repositories | length')" = 0 ] ||
	fail "push wrote to the registry: $(curl -sf "http://127.0.0.1:$REG_PORT/v2/_catalog")"
grep -qE '"(POST|PUT|PATCH) ' "$REG_LOG" && fail "push sent a write: $(grep -E '"(POST|PUT|PATCH) ' "$REG_LOG")"
# with its base: every image resolves, the left-out blobs from the base
ferry-install push "$W/delta.tar" --pubkey "$PUB" --base "$W/base.tar" --to "127.0.0.1:$REG_PORT" \
	--plain-http >"$W/out" 2>&1 || fail "push delta --base: $(cat "$W/out")"
grep -q "a delta: 0 blobs left out are on the target, 3 come from the bases" "$W/out" ||
	fail "push does not take the left-out blobs from the base: $(cat "$W/out")"
resolves_all "$REG_PORT"
uploads "$REG_LOG" | uniq -d | grep -q . && fail "push --base uploaded a blob twice"
stop_registry
REG_PORT=$UP_PORT REG_PID=$UP_PID REG_LOG=$UP_LOG

# copy_all URL REFS...: skopeo copies each image from the served registry;
# its manifest digest must be the upstream registry's, and every blob is
# fetched (skopeo checks each against its digest).
copy_all() {
	hp=$1
	shift
	for r in "$@"; do
		rm -rf "$W/copy"
		skopeo copy -q --src-tls-verify=false "docker://$hp/docker.io/$r" "oci:$W/copy:x" ||
			fail "skopeo copy $r from $hp"
		got=$(skopeo inspect --raw --tls-verify=false "docker://$hp/docker.io/$r" | sha256sum | cut -d' ' -f1)
		[ "sha256:$got" = "$(manifest_digest "$r")" ] || fail "$r: served at sha256:$got, upstream $(manifest_digest "$r")"
	done
}

# --- serve delta base: the union
serve_start u "$W/delta.tar" "$W/base.tar" --pubkey "$PUB" --access-log "$T/u.log"
grep -q "serving 2 bundles as one registry" "$T/u.err" || fail "serve does not say it serves the union: $(cat "$T/u.err")"
copy_all "$SERVE_HP" $NEW_REFS library/app:1
# every left-out blob was served (from the base), with status 200
for d in $omitted; do
	sz=$(tar -xOf "$W/base.tar" "blobs/sha256/${d#sha256:}" | wc -c)
	grep -q "\"GET /v2/[^ ]*/blobs/$d\" 200 $sz " "$T/u.log" ||
		{ cat "$T/u.log" >&2; fail "left-out blob $d was not served"; }
done
curl -sf "$SERVE_URL/v2/_catalog" | jq -r '.repositories | join(" ")' >"$W/cat"
[ "$(cat "$W/cat")" = "docker.io/library/app docker.io/library/extra docker.io/library/tool" ] ||
	fail "catalog of the union: $(cat "$W/cat")"
[ "$(curl -sf "$SERVE_URL/v2/docker.io/library/app/tags/list" | jq -r '.tags | join(" ")')" = "1 2" ] ||
	fail "app's tags are not those of both bundles"
# a left-out blob is served only for a repository whose images need it:
# other:1's blob is nowhere, and app:1's layer is not extra's
x=$(tar -xOf "$W/base.tar" "blobs/sha256/$(tar -xOf "$W/base.tar" index.json | jq -r '.manifests[] | select(.annotations["io.containerd.image.name"] == "docker.io/library/app:1") | .digest' | sed 's/sha256://')" | jq -r '.layers[-1].digest')
[ "$(http_code "$SERVE_URL/v2/docker.io/library/extra/blobs/$x")" = 404 ] ||
	fail "app:1's own layer is served under extra"
[ "$(http_code "$SERVE_URL/v2/docker.io/library/app/blobs/$x")" = 200 ] || fail "app:1's layer under app"
serve_stop "$SERVE_PID" u

# --- the delta in volumes, and lazy verification
ferry-build build "$V2" -o "$W/dv.tar" --key "$W/k.key" --cache "$W/c2" --base "$R" \
	--volume-size 1M >/dev/null 2>&1 || fail "delta with --volume-size"
serve_start v "$W/dv.tar.000" "$W/base.tar" --pubkey "$PUB" --verify=lazy
copy_all "$SERVE_HP" $NEW_REFS
serve_stop "$SERVE_PID" v

# a base whose left-out blob is corrupt: lazy start-up passes (sizes
# match), the blob is hashed when asked for and refused, never sent
bad=$(echo "$omitted" | head -n 1)
tamper_blob "$W/base.tar" "$W/bad.tar" "$bad"
serve_start l "$W/delta.tar" "$W/bad.tar" --pubkey "$PUB" --verify=lazy --index-dir "$W/idx"
repo=$(for r in $NEW_REFS; do image_blobs "$r" | grep -qx "${bad#sha256:}" && { echo "${r%%:*}"; break; }; done)
[ -n "$repo" ] || fail "no image needs $bad"
code=$(http_code "$SERVE_URL/v2/docker.io/$repo/blobs/$bad")
[ "$code" = 500 ] || fail "a corrupt left-out blob answered $code"
serve_stop "$SERVE_PID" l
# full mode refuses the corrupt base at start
expect_fail 2 "" ferry-install serve "$W/delta.tar" "$W/bad.tar" --pubkey "$PUB" --listen 127.0.0.1:0

# --- refused at start, with exit 2
expect_fail 2 "missing: sha256:[0-9a-f]{64} \([0-9]+ bytes\), left out of .*delta.tar, needed by .*docker.io/library/tool:1" \
	ferry-install serve "$W/delta.tar" --pubkey "$PUB" --listen 127.0.0.1:0
ferry-install serve "$W/delta.tar" --pubkey "$PUB" --listen 127.0.0.1:0 2>"$W/err" && exit 1
[ "$(grep -c '^ferry-install serve: missing: ' "$W/err")" = 3 ] || fail "each missing blob is named: $(cat "$W/err")"
for d in $omitted; do grep -q "missing: $d" "$W/err" || fail "$d is not named"; done
grep -q "^ready:" "$W/err" && fail "served anyway"
SOURCE_DATE_EPOCH=1700000001 ferry-build build "$W/v1.yaml" -o "$W/base-b.tar" --key "$W/k.key" \
	--cache "$W/c1" >/dev/null 2>&1 || fail "second base build"
expect_fail 2 "base-b.tar is not a base of a delta named before it" \
	ferry-install serve "$W/delta.tar" "$W/base-b.tar" --pubkey "$PUB" --listen 127.0.0.1:0
# push refuses it too, before it talks to the target (nothing listens on port 1)
expect_fail 2 "is not a base of this delta" ferry-install push "$W/delta.tar" --pubkey "$PUB" \
	--base "$W/base-b.tar" --to 127.0.0.1:1 --plain-http
expect_fail 2 "delta.tar is not a base of a delta named before it" \
	ferry-install serve "$W/base.tar" "$W/delta.tar" --pubkey "$PUB" --listen 127.0.0.1:0
ferry-build keygen -o "$W/k2" >/dev/null
expect_fail 2 "" ferry-install serve "$W/delta.tar" "$W/base.tar" --pubkey "$W/k2.pub" --listen 127.0.0.1:0

# --- a retagged image: app:1 upstream is now app:2's image; the newer
# bundle's app:1 wins
old_app1=$(manifest_digest library/app:1)
push "$W/L:app2" library/app:1
new_app1=$(manifest_digest library/app:1)
[ "$old_app1" != "$new_app1" ] || fail "retag did not change app:1"
spec_header "$W/v3.yaml"
printf '  - docker.io/library/app:1\n' >>"$W/v3.yaml"
ferry-build build "$W/v3.yaml" -o "$W/retag.tar" --key "$W/k.key" --cache "$W/c3" --base "$R" \
	>/dev/null 2>"$W/err" || fail "retag delta: $(cat "$W/err")"
serve_start t "$W/retag.tar" "$W/base.tar" --pubkey "$PUB"
copy_all "$SERVE_HP" library/app:1 library/tool:1
serve_stop "$SERVE_PID" t

# --- install, load mode, into real containerd daemons
# node_images: "REF DIGEST" of every image in the node
node_images() { $CTR images ls | awk 'NR > 1 {print $1, $3}' | sort; }
check_new() {
	for r in $NEW_REFS; do
		got=$($CTR images ls | awk -v r="docker.io/$r" '$1 == r {print $3}')
		[ "$got" = "$(manifest_digest "$r")" ] || fail "$1: docker.io/$r is at '$got', not $(manifest_digest "$r")"
	done
	for d in $omitted; do
		$CTR content ls -q | grep -qx "$d" || fail "$1: left-out blob $d is not in the content store"
	done
	$CTR content ls | grep -q "ferry.install/pin" && fail "$1: a gc pin is left"
	return 0
}
start_containerd "$T/fresh"
FRESH_SOCK=$CTD_SOCK FRESH_CONFIG=$CTD_CONFIG
node_images >"$W/before.img"
$CTR content ls -q | sort >"$W/before.content"
ferry-install install "$W/delta.tar" --pubkey "$PUB" --target "containerd:$FRESH_SOCK" \
	--containerd-config "$FRESH_CONFIG" >"$W/out" 2>&1 && fail "a delta without its base installed"
rc=$(ferry-install install "$W/delta.tar" --pubkey "$PUB" --target "containerd:$FRESH_SOCK" \
	--containerd-config "$FRESH_CONFIG" >"$W/out" 2>&1; echo $?)
[ "$rc" = 2 ] || fail "a delta without its base: exit $rc, not 2: $(cat "$W/out")"
for d in $omitted; do
	grep -q "missing: $d ([0-9]* bytes), needed by docker.io/library/" "$W/out" ||
		fail "$d is not named: $(cat "$W/out")"
done
grep -q "missing: .*needed by docker.io/library/tool:1" "$W/out" || fail "tool:1 is not named as needing a blob"
grep -q "nothing was changed" "$W/out" || fail "install does not say nothing was changed"
node_images | cmp -s - "$W/before.img" || fail "images changed: $(node_images)"
$CTR content ls -q | sort | cmp -s - "$W/before.content" || fail "content changed"
# a bundle that is not its base: refused before any change
expect_fail 2 "is not a base of this delta" ferry-install install "$W/delta.tar" --pubkey "$PUB" \
	--base "$W/base-b.tar" --target "containerd:$FRESH_SOCK" --containerd-config "$FRESH_CONFIG"
node_images | cmp -s - "$W/before.img" || fail "images changed after a wrong base"
# with its base: the left-out blobs come from the base
ferry-install install "$W/delta.tar" --pubkey "$PUB" --base "$W/base.tar" --target "containerd:$FRESH_SOCK" \
	--containerd-config "$FRESH_CONFIG" >"$W/out" 2>&1 || fail "install delta --base: $(cat "$W/out")"
grep -q "3 blobs the delta leaves out: 0 held by the node, 3 from the bases" "$W/out" ||
	fail "install does not take the left-out blobs from the base: $(cat "$W/out")"
check_new "fresh node"
[ -z "$($CTR images ls -q | grep -x docker.io/library/app:1)" ] || fail "app:1 (only in the base) was loaded"

# a node that got the base: the left-out blobs are the node's own
start_containerd "$T/ctd"
ferry-install install "$W/base.tar" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--containerd-config "$CTD_CONFIG" >/dev/null 2>"$W/err" || fail "install base: $(cat "$W/err")"
ferry-install install "$W/delta.tar" --pubkey "$PUB" --base "$W/base.tar" --target "containerd:$CTD_SOCK" \
	--containerd-config "$CTD_CONFIG" >"$W/out" 2>&1 || fail "install delta onto the base: $(cat "$W/out")"
# tool:1 is present (skipped); app:2 and extra:1 need only the shared base layer
grep -q "tool:1 present .*skipped" "$W/out" || fail "tool:1 was not skipped as present"
grep -q "1 blob the delta leaves out: 1 held by the node, 0 from the bases" "$W/out" ||
	fail "the node's own blobs were not used: $(cat "$W/out")"
check_new "node with the base"
# and without --base too: the node holds everything the delta leaves out
$CTR images rm docker.io/library/app:2 docker.io/library/extra:1 >/dev/null
ferry-install install "$W/delta.tar" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
	--containerd-config "$CTD_CONFIG" >"$W/out" 2>&1 || fail "install delta onto the base, no --base: $(cat "$W/out")"
check_new "node with the base, no --base"
# a delta in another mode: refused (usage) before any change
expect_fail 64 "load mode only" ferry-install install "$W/delta.tar" --pubkey "$PUB" --base "$W/base.tar" \
	--target "containerd:$CTD_SOCK" --archive-out "$W/a.tar"

# --- a chain: a delta on the delta (from a receipt of both bundles) is
# served with both bundles behind it, and installed with both as bases
ferry-install receipt -o "$W/both.json" --pubkey "$PUB" --bundle "$W/base.tar" "$W/delta.tar" >/dev/null ||
	fail "receipt of the base and the delta"
spec_header "$W/v3.yaml"
printf '  - docker.io/library/app:2\n  - docker.io/library/extra:1\n  - docker.io/library/other:1\n' >>"$W/v3.yaml"
ferry-build build "$W/v3.yaml" -o "$W/delta3.tar" --key "$W/k.key" --cache "$W/c4" --base "$W/both.json" \
	>/dev/null 2>"$W/err" || fail "delta on a delta: $(cat "$W/err")"
serve_start c "$W/delta3.tar" "$W/delta.tar" "$W/base.tar" --pubkey "$PUB"
copy_all "$SERVE_HP" library/app:2 library/extra:1 library/other:1 library/tool:1
serve_stop "$SERVE_PID" c
expect_fail 2 "missing: sha256:" ferry-install serve "$W/delta3.tar" "$W/base.tar" --pubkey "$PUB" --listen 127.0.0.1:0
start_containerd "$T/chain"
ferry-install install "$W/delta3.tar" --pubkey "$PUB" --base "$W/delta.tar" --base "$W/base.tar" \
	--target "containerd:$CTD_SOCK" --containerd-config "$CTD_CONFIG" >"$W/out" 2>&1 ||
	fail "install the chain: $(cat "$W/out")"
for r in library/app:2 library/extra:1 library/other:1; do
	got=$($CTR images ls | awk -v r="docker.io/$r" '$1 == r {print $3}')
	[ "$got" = "$(manifest_digest "$r")" ] || fail "chain: docker.io/$r is at '$got'"
done
echo "deltas lab ok"
