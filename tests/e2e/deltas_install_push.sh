#!/bin/bash
# install --mode push (--to) of a delta (docs/install.md "Deltas"), inside
# a network namespace with only loopback. The setup of deltas.sh
# (deltas_lib.bash): base.tar, and delta.tar that leaves out the 3 blobs the
# base holds. The target of install is a real containerd (its hosts.toml).
#  - into an empty docker-registry without --base: exit 2, each left-out
#    blob named with the images that need it, and nothing written: no POST,
#    PUT or PATCH in the access log, an empty catalog, no hosts.toml;
#  - the same with --base base.tar: the left-out blobs come from the base,
#    every image of the new spec resolves at the upstream digest, no blob is
#    uploaded twice, /v2/ is pinged once, hosts.toml points at the registry
#    and ctr pulls app:2 through it;
#  - into a registry that holds the base (pushed before), without --base:
#    the left-out blobs are the target's; only the delta's 4 new blobs are
#    uploaded;
#  - a bundle that is not the delta's base is refused (exit 2), nothing
#    written.
. "$(dirname "$0")/install_lib.bash"
netns_reexec "$@"
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
need umoci skopeo curl jq python3 docker-registry containerd ctr
. "$(dirname "$0")/pull_helpers.bash"
. "$(dirname "$0")/deltas_lib.bash"
assert_airgap
deltas_setup
omitted=$(tar -xOf "$W/delta.tar" bundle.json | jq -r '.delta.omitted[].digest')
[ "$(echo "$omitted" | wc -l)" = 3 ] || fail "the delta should leave out 3 blobs"
UP_PORT=$REG_PORT
start_containerd "$T/ctd"

# resolves_all PORT: every image of the new spec is in the target at the
# upstream digest
resolves_all() {
	for r in $NEW_REFS; do
		got=$(skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$1/docker.io/$r" | sha256sum | cut -d' ' -f1)
		[ "sha256:$got" = "$(REG_PORT=$UP_PORT manifest_digest "$r")" ] ||
			fail "docker.io/$r is at sha256:$got on 127.0.0.1:$1"
	done
}
# uploads LOG: the digests of the blob uploads the registry committed
uploads() { grep -oE '"PUT /v2/[^ ]*/blobs/uploads/[^ ]*digest=sha256(%3A|:)[0-9a-f]+' "$1" | sed -E 's/.*digest=sha256(%3A|:)//' | sort; }
# install_push PORT HOSTS_DIR [--base B...]: install --mode push of the delta
install_push() {
	p=$1 hd=$2
	shift 2
	ferry-install install "$W/delta.tar" --pubkey "$PUB" --target "containerd:$CTD_SOCK" \
		--containerd-config "$CTD_CONFIG" --mode push --to "127.0.0.1:$p" --plain-http \
		--hosts-dir "$hd" "$@" >"$W/out" 2>&1
}

# --- an empty registry, no --base: refused before any write
start_registry e
rc=0
install_push "$REG_PORT" "$W/hd0" || rc=$?
[ "$rc" = 2 ] || fail "install --mode push of a delta alone: exit $rc, not 2: $(cat "$W/out")"
for d in $omitted; do
	grep -q "missing: $d ([0-9]* bytes), needed by docker.io/library/" "$W/out" ||
		fail "$d is not named: $(cat "$W/out")"
done
grep -q "missing: .*needed by docker.io/library/tool:1" "$W/out" || fail "tool:1 is not named: $(cat "$W/out")"
grep -q "nothing was pushed" "$W/out" || fail "install does not say nothing was pushed: $(cat "$W/out")"
grep -qE '"(POST|PUT|PATCH) ' "$REG_LOG" && fail "install sent a write: $(grep -E '"(POST|PUT|PATCH) ' "$REG_LOG")"
[ "$(curl -sf "http://127.0.0.1:$REG_PORT/v2/_catalog" | jq -r '.repositories | length')" = 0 ] ||
	fail "install wrote to the registry"
[ -e "$W/hd0" ] && fail "install wrote the mirror configuration after a refused push"

# --- the same with --base: the left-out blobs from the base
mark=$(wc -l <"$REG_LOG")
install_push "$REG_PORT" "$W/hd1" --base "$W/base.tar" || fail "install --mode push --base: $(cat "$W/out")"
grep -q "a delta: 0 blobs left out are on the target, 3 come from the bases" "$W/out" ||
	fail "the left-out blobs did not come from the base: $(cat "$W/out")"
tail -n +"$((mark + 1))" "$REG_LOG" >"$W/log1"
resolves_all "$REG_PORT"
uploads "$W/log1" | uniq -d | grep -q . && fail "a blob was uploaded twice: $(uploads "$W/log1")"
for d in $omitted; do
	uploads "$W/log1" | grep -qx "${d#sha256:}" || fail "left-out $d was not uploaded from the base"
done
[ "$(grep -c '"GET /v2/ HTTP' "$W/log1")" = 1 ] || fail "install --mode push pinged /v2/ $(grep -c '"GET /v2/ HTTP' "$W/log1") times"
grep -qx "server = \"http://127.0.0.1:$REG_PORT/v2/docker.io\"" "$W/hd1/docker.io/hosts.toml" ||
	fail "hosts.toml does not point at the registry: $(cat "$W/hd1/docker.io/hosts.toml" 2>&1)"
$CTR images pull --plain-http --hosts-dir "$W/hd1" docker.io/library/app:2 >"$W/pull.log" 2>&1 ||
	fail "ctr pull app:2 through the pushed registry: $(cat "$W/pull.log")"
[ "$($CTR images ls | awk '$1 == "docker.io/library/app:2" {print $3}')" = "$(REG_PORT=$UP_PORT manifest_digest library/app:2)" ] ||
	fail "app:2 pulled at another digest"
stop_registry

# --- a registry holding the base, no --base: the left-out blobs are there
start_registry b
ferry-install push "$W/base.tar" --pubkey "$PUB" --to "127.0.0.1:$REG_PORT" --plain-http >"$W/out" 2>&1 ||
	fail "push base: $(cat "$W/out")"
mark=$(wc -l <"$REG_LOG")
install_push "$REG_PORT" "$W/hd2" || fail "install --mode push onto the base: $(cat "$W/out")"
grep -q "a delta: 3 blobs left out are on the target, 0 come from the bases" "$W/out" ||
	fail "the left-out blobs were not found on the target: $(cat "$W/out")"
tail -n +"$((mark + 1))" "$REG_LOG" >"$W/log2"
resolves_all "$REG_PORT"
uploads "$W/log2" >"$W/up"
[ "$(wc -l <"$W/up")" = 4 ] || fail "$(wc -l <"$W/up") blob uploads, not the delta's 4 new blobs"
[ "$(uniq <"$W/up" | wc -l)" = 4 ] || fail "a blob was uploaded twice: $(cat "$W/up")"
for d in $(cat "$W/up"); do
	tar -tf "$W/delta.tar" "blobs/sha256/$d" >/dev/null 2>&1 || fail "uploaded $d is not in the delta"
done
# a bundle that is not the delta's base: refused, nothing written
mark=$(wc -l <"$REG_LOG")
rc=0
install_push "$REG_PORT" "$W/hd3" --base "$W/delta.tar" || rc=$?
[ "$rc" = 2 ] || fail "a wrong base: exit $rc, not 2: $(cat "$W/out")"
grep -q "is not a base of this delta" "$W/out" || fail "the wrong base is not named: $(cat "$W/out")"
tail -n +"$((mark + 1))" "$REG_LOG" | grep -qE '"(POST|PUT|PATCH) ' && fail "a refused install wrote to the registry"
echo "deltas_install_push: ok"
