# podman (vfs storage, private storage and registries config) pulls through
# `ferry-install serve` over TLS, using registries.conf mirrors with the
# host-prefix scheme (location = 127.0.0.1:PORT/docker.io/library/x), the
# way CRI-O on OKD is pointed at a mirror; the generated CA is trusted
# through a certs.d-style folder.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci podman curl python3 jq

serve_fixture
serve_start p1 "$BUNDLE" --pubkey "$PUB" --tls-self-signed "$T/tls" --access-log "$T/p1.access"
M=$SERVE_HP

PM=$T/pm
mkdir -p "$PM/xdg" "$PM/tmp"
cat >"$PM/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$PM/run"
graphroot = "$PM/root"
EOF
cat >"$PM/containers.conf" <<EOF
[engine]
events_logger = "file"
events_logfile_path = "$PM/events.log"
cgroup_manager = "cgroupfs"
EOF
# the mirror for each image is the server plus the upstream host as a prefix
cat >"$PM/registries.conf" <<EOF
unqualified-search-registries = []
[[registry]]
prefix = "docker.io/library/x"
location = "docker.io/library/x"
[[registry.mirror]]
location = "$M/docker.io/library/x"
[[registry]]
prefix = "quay.io/library/x"
location = "quay.io/library/x"
[[registry.mirror]]
location = "$M/quay.io/library/x"
[[registry]]
prefix = "gcr.io/ml-pipeline/y"
location = "gcr.io/ml-pipeline/y"
[[registry.mirror]]
location = "$M/gcr.io/ml-pipeline/y"
EOF
# certs.d layout: <dir>/<host:port>/ca.crt
mkdir -p "$PM/certs.d/$M"
cp "$T/tls/ca.crt" "$PM/certs.d/$M/ca.crt"
export CONTAINERS_STORAGE_CONF=$PM/storage.conf
export CONTAINERS_CONF=$PM/containers.conf
export CONTAINERS_REGISTRIES_CONF=$PM/registries.conf
export XDG_RUNTIME_DIR=$PM/xdg
export TMPDIR=$PM/tmp
P="podman --root $PM/root --runroot $PM/run --storage-driver vfs"
$P info >"$PM/info" 2>&1 || { tail -n 5 "$PM/info"; skip "podman cannot run here: $(tail -n 1 "$PM/info")"; }

# pull REF: through the mirror; podman's stored digest is the bundle's
pull() {
	$P pull --cert-dir "$PM/certs.d/$M" "$1" >"$T/pull.log" 2>&1 ||
		{ cat "$T/pull.log"; fail "podman pull $1"; }
	got=$($P image inspect --format '{{.Digest}}' "$1")
	want=$(bundle_digest "$1")
	[ "$got" = "$want" ] || fail "$1 stored with digest $got, bundle has $want"
	echo "podman pulled $1: $got"
}
pull docker.io/library/x:1
pull quay.io/library/x:1
pull gcr.io/ml-pipeline/y:2
# the mirror was asked under the host-prefixed names, not the bare ones
grep -q '"GET /v2/docker.io/library/x/manifests/1" 200' "$T/p1.access" || fail "no host-prefixed request"
grep -q '"GET /v2/quay.io/library/x/manifests/1" 200' "$T/p1.access" || fail "no quay.io request"
grep -q '"GET /v2/docker.io/library/x/blobs/sha256:' "$T/p1.access" || fail "no blob from the mirror"
grep -q '"GET /v2/library/' "$T/p1.access" && fail "a bare path was requested"

# by digest, with pull-from-mirror = "digest-only" (what OKD's
# ImageDigestMirrorSet produces)
$P rmi -a -f >/dev/null
python3 - "$PM/registries.conf" <<'EOF'
import sys
p = sys.argv[1]
s = open(p).read().replace('[[registry.mirror]]\n', '[[registry.mirror]]\npull-from-mirror = "digest-only"\n')
open(p, "w").write(s)
EOF
$P pull --cert-dir "$PM/certs.d/$M" "docker.io/library/x@$DIG_X1" >"$T/pull.log" 2>&1 ||
	{ cat "$T/pull.log"; fail "podman pull by digest"; }
grep -q "\"GET /v2/docker.io/library/x/manifests/$DIG_X1\" 200" "$T/p1.access" ||
	fail "the digest pull did not go to the mirror"
echo "podman pulled docker.io/library/x@$DIG_X1 (digest-only mirror)"
$P rmi -a -f >/dev/null 2>&1 || true
serve_stop "$SERVE_PID" "$SERVE_NAME"
echo "ok: podman pulls through serve over TLS (host-prefix mirrors)"
exit 0
