# A real containerd (temporary root, state and socket; native snapshotter)
# pulls through `ferry-install serve` with hosts.toml mirrors under
# --hosts-dir: docker.io/library/x and quay.io/library/x share the bare path
# library/x, and containerd's ?ns=<host> tells them apart; gcr.io is a third
# upstream. Then the same over TLS with the generated CA in hosts.toml.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci containerd ctr curl python3 jq

serve_fixture

# --- a private containerd
C=$T/ctd
mkdir -p "$C"
SOCK=$C/containerd.sock
cat >"$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$SOCK.debug"
[plugins."io.containerd.internal.v1.opt"]
  path = "$C/opt"
EOF
containerd --config "$C/config.toml" >"$C/log" 2>&1 &
FERRY_PIDS="$FERRY_PIDS $!"
for _ in $(seq 100); do
	ctr -a "$SOCK" version >/dev/null 2>&1 && break
	sleep 0.1
done
ctr -a "$SOCK" version >/dev/null 2>&1 ||
	{ tail -n 5 "$C/log"; skip "containerd cannot start here: $(tail -n 1 "$C/log")"; }
CTR="ctr -a $SOCK -n k8s.io"
echo "containerd $(ctr -a "$SOCK" version | awk '/Version/ {print $2; exit}') at $SOCK"

# hosts_dir DIR URL [CA]: one hosts.toml per upstream host, all pointing at
# the mirror, which is also the server (strict air gap: no fallback).
hosts_dir() {
	for h in docker.io quay.io gcr.io; do
		mkdir -p "$1/$h"
		{
			echo "server = \"$2\""
			echo "[host.\"$2\"]"
			echo '  capabilities = ["pull", "resolve"]'
			if [ -n "${3:-}" ]; then echo "  ca = \"$3\""; fi
		} >"$1/$h/hosts.toml"
	done
}

# pull REF: ctr pulls through the hosts dir; the stored digest must be the
# bundle's.
pull() {
	$CTR images pull --hosts-dir "$HOSTS" --snapshotter native "$1" >"$T/pull.log" 2>&1 ||
		{ cat "$T/pull.log"; fail "ctr pull $1"; }
	got=$($CTR images ls | awk -v r="$1" '$1 == r {print $3}')
	want=$(bundle_digest "$1")
	[ "$got" = "$want" ] || { $CTR images ls; fail "$1 stored as '$got', bundle has $want"; }
	echo "containerd pulled $1: $got"
}

# --- plain HTTP
serve_start c1 "$BUNDLE" --pubkey "$PUB" --access-log "$T/c1.access"
HOSTS=$T/hosts-http
hosts_dir "$HOSTS" "$SERVE_URL"
pull docker.io/library/x:1
pull quay.io/library/x:1
pull gcr.io/ml-pipeline/y:2
pull docker.io/library/x:2
# containerd asked for the bare paths with ?ns=
grep -q '"GET /v2/library/x/manifests/sha256:[0-9a-f]*?ns=docker.io" 200' "$T/c1.access" ||
	{ cat "$T/c1.access"; fail "no ns=docker.io request"; }
grep -q '/v2/library/x/.*?ns=quay.io" 200' "$T/c1.access" || fail "no ns=quay.io request"
grep -q '/v2/ml-pipeline/y/.*?ns=gcr.io" 200' "$T/c1.access" || fail "no ns=gcr.io request"
grep -q '"GET /v2/library/x/blobs/sha256:[0-9a-f]*?ns=docker.io" 200' "$T/c1.access" ||
	fail "no blob fetched with ns=docker.io"
# the unpacked file systems hold each image's own file
$CTR images ls
[ "$($CTR images ls -q | wc -l)" -eq 4 ] || fail "expected 4 images"
$CTR snapshots --snapshotter native ls | grep -q . || fail "nothing unpacked"
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- TLS with the generated CA named in hosts.toml
$CTR images rm --sync docker.io/library/x:1 quay.io/library/x:1 gcr.io/ml-pipeline/y:2 \
	docker.io/library/x:2 >/dev/null
[ -z "$($CTR content ls -q)" ] || fail "content left after removing every image"
serve_start c2 "$BUNDLE" --pubkey "$PUB" --tls-self-signed "$T/tls" --access-log "$T/c2.access"
HOSTS=$T/hosts-tls
hosts_dir "$HOSTS" "$SERVE_URL" "$T/tls/ca.crt"
pull docker.io/library/x:1
pull quay.io/library/x:1
grep -q '?ns=quay.io" 200' "$T/c2.access" || fail "no ns=quay.io request over TLS"
grep -q '"GET /v2/library/x/blobs/sha256:[0-9a-f]*?ns=docker.io" 200' "$T/c2.access" ||
	fail "no blob fetched over TLS"
serve_stop "$SERVE_PID" "$SERVE_NAME"
echo "ok: containerd pulls through serve (http and https, ns)"
exit 0
