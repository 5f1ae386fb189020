#!/bin/bash
# The portable ferry-install (make portable: static, musl) in an empty root:
# a chroot holding only that file, a bundle and its key, in a network
# namespace with only loopback. There it
#  - is statically linked (file, ldd), at most 8 MiB, prints its version;
#  - comes out of the bundle (built --with-installer) by the README's first
#    step: tar, openssl pkeyutl -verify, sha256sum -c;
#  - verifies (and refuses a tampered copy with exit 2);
#  - inspects;
#  - serves over TLS (--tls-self-signed, --hostname localhost, listening on
#    "localhost": the name resolves without glibc's NSS, from the root's
#    /etc/hosts); curl outside the root pulls a blob by IP and by name;
#  - pushes to a TLS registry (docker-registry, htpasswd) addressed as
#    localhost, trusting its CA through SSL_CERT_FILE, then through the
#    RHEL, Alpine and Debian bundle paths; without a CA it is refused;
#  - installs into a containerd whose socket is bind-mounted in (ferry drives
#    the node's ctr: it and the glibc files it needs are mounted in too).
# Skipped (77) when build/portable/ferry-install does not exist.
. "$(dirname "$0")/install_lib.bash"
TOP0=$(cd "$(dirname "$0")/../.." && pwd)
PORTABLE=${FERRY_PORTABLE:-$TOP0/build/portable/ferry-install}
[ -f "$PORTABLE" ] || { echo "no $PORTABLE: run make portable"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "chroot and mounts need root"; exit 77; }
if [ -z "${FERRY_IN_NETNS:-}" ]; then
	unshare -n -m true 2>/dev/null || { echo "cannot unshare -n -m"; exit 77; }
	FERRY_IN_NETNS=1 exec unshare -n -m --propagation private bash "$0" "$@"
fi
ip link set lo up
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/install_lib.bash"
MOUNTS=""
# the bind mounts go before lib.sh's cleanup removes $T
trap 'for m in $MOUNTS; do umount -l "$m"; done; cleanup' EXIT
need chroot containerd ctr umoci python3 curl openssl docker-registry htpasswd file
assert_airgap

# --- a static file
file "$PORTABLE" | grep -q "statically linked" || fail "not static: $(file "$PORTABLE")"
ldd "$PORTABLE" 2>&1 | grep -q "not a dynamic executable" || fail "ldd: $(ldd "$PORTABLE" 2>&1)"
size=$(stat -c %s "$PORTABLE")
echo "portable ferry-install: $size bytes"
[ "$size" -le $((8 * 1024 * 1024)) ] || fail "larger than 8 MiB"

# the bundle carries the portable installer; the root's copy is taken out
# of it as the README says: tar, openssl, sha256sum
export FERRY_INSTALLER=$PORTABLE
make_bundle
R=$T/root
mkdir -p "$R" "$T/first"
(
	cd "$T/first"
	tar xf "$BUNDLE" SHA256SUMS SHA256SUMS.sig tools/
	openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig
	sha256sum -c --ignore-missing SHA256SUMS
) | tee "$T/first.out"
grep -q "tools/ferry-install-linux-amd64: OK" "$T/first.out" || fail "the lab's first step"
cp "$T/first/tools/ferry-install-linux-amd64" "$R/ferry-install"
cmp -s "$R/ferry-install" "$PORTABLE" || fail "the carried installer is not the portable one"
cp "$BUNDLE" "$R/b.tar"
cp "$PUB" "$R/k.pub"
[ "$(cd "$R" && find . | sort | tr '\n' ' ')" = ". ./b.tar ./ferry-install ./k.pub " ] ||
	fail "the root holds more: $(cd "$R" && find .)"
# inroot_env: a clean environment, run inside the root
CHROOT=$(command -v chroot)
inroot_env() { env -i HOME=/ PATH=/usr/bin "$@"; }
fi_() { inroot_env "$CHROOT" "$R" /ferry-install "$@"; }

out=$(fi_ --version)
[ "$out" = "ferry-install $(cat "$TOP/VERSION")" ] || fail "--version: $out"

# --- verify, inspect
fi_ verify /b.tar --pubkey /k.pub | tee "$T/verify.out"
tamper "$BUNDLE" "$R/bad.tar"
expect_fail 2 "VERIFICATION FAILED|digest mismatch" fi_ verify /bad.tar --pubkey /k.pub
rm "$R/bad.tar"
fi_ inspect /b.tar --pubkey /k.pub | tee "$T/inspect.out"
for ref in example.local/demo/app1:1.0 example.local/demo/app2:1.0 docker.io/library/multi:2.0; do grep -qF "$ref" "$T/inspect.out" || fail "inspect does not list $ref"; done
grep -q "mnist" "$T/inspect.out" || fail "inspect does not list the model"
grep -qE "tools/ferry-install-linux-amd64 +ferry-install $(cat "$TOP/VERSION") " "$T/inspect.out" ||
	fail "inspect does not show the carried installer's version"

# --- serve over TLS, listening on "localhost". musl has no NSS: names come
# from /etc/hosts, then the DNS servers of /etc/resolv.conf; "localhost" is
# no exception (without /etc/hosts it is asked of DNS and fails), so the
# root gets the /etc/hosts every host has.
mkdir -p "$R/etc"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n' >"$R/etc/hosts"
# (not through fi_: $! must be serve itself, not a subshell)
env -i HOME=/ "$CHROOT" "$R" /ferry-install serve /b.tar --pubkey /k.pub --listen localhost:0 --tls-self-signed /tls \
	--hostname localhost --ready-file /ready >"$T/serve.out" 2>"$T/serve.err" &
SPID=$!
FERRY_PIDS="$FERRY_PIDS $SPID"
for _ in $(seq 100); do [ -s "$R/ready" ] && break; sleep 0.1; done
[ -s "$R/ready" ] || { cat "$T/serve.err"; fail "serve did not become ready"; }
URL=$(cat "$R/ready")
PORT=${URL##*:}
echo "serving: $URL"
grep -q "https through OpenSSL" "$T/serve.err" || fail "not served through OpenSSL: $(cat "$T/serve.err")"
REF=${IMAGES%% *}
NAME=${REF%:*}
curl -sSf --cacert "$R/tls/ca.crt" -H "Accept: application/vnd.oci.image.manifest.v1+json" \
	"https://localhost:$PORT/v2/$NAME/manifests/${REF##*:}" >"$T/manifest" || fail "GET manifest of $REF"
BLOB=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(max(m["layers"], key=lambda l: l["size"])["digest"])' "$T/manifest")
tar -xOf "$BUNDLE" "blobs/sha256/${BLOB#sha256:}" >"$T/blob"
for u in "https://localhost:$PORT"; do
	curl -sSf --cacert "$R/tls/ca.crt" -o "$T/got" "$u/v2/$NAME/blobs/$BLOB" || fail "GET blob from $u"
	cmp -s "$T/got" "$T/blob" || fail "the blob from $u differs"
	echo "pulled $BLOB ($(stat -c %s "$T/got") bytes) over TLS from $u"
done
kill -TERM "$SPID"
wait "$SPID" || { cat "$T/serve.err"; fail "serve did not exit 0 on SIGTERM"; }

# --- push over TLS to a registry called localhost, with credentials
port=$(free_port)
mkdir -p "$T/reg"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost" -keyout "$T/reg/key.pem" -out "$T/reg/cert.pem" 2>/dev/null
htpasswd -Bbn ferry s3cret >"$T/reg/htpasswd"
cat >"$T/reg/config.yml" <<EOF
version: 0.1
log: {level: info}
storage: {filesystem: {rootdirectory: $T/reg/data}}
http:
  addr: 127.0.0.1:$port
  secret: ferry-e2e
  tls: {certificate: $T/reg/cert.pem, key: $T/reg/key.pem}
auth: {htpasswd: {realm: ferry, path: $T/reg/htpasswd}}
EOF
docker-registry serve "$T/reg/config.yml" >"$T/reg/log" 2>&1 &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$port"
printf '{"auths":{"localhost:%s":{"auth":"%s"}}}\n' "$port" "$(printf ferry:s3cret | base64)" >"$R/auth.json"
cp "$T/reg/cert.pem" "$R/reg-ca.pem"
push() { inroot_env REGISTRY_AUTH_FILE=/auth.json "$@" "$CHROOT" "$R" /ferry-install push /b.tar --pubkey /k.pub \
	--to "localhost:$port/mirror"; }
# no CA anywhere in the root: refused
expect_fail 1 "certificate|SSL|TLS" push
push SSL_CERT_FILE=/reg-ca.pem | tee "$T/push1"
grep -qE "pushed $N_IMAGES images" "$T/push1" || fail "push with SSL_CERT_FILE"
for p in /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem /etc/ssl/certs/ca-certificates.crt; do
	mkdir -p "$R$(dirname "$p")"
	cp "$T/reg/cert.pem" "$R$p"
	push | tee "$T/push2"
	grep -qE "pushed $N_IMAGES images" "$T/push2" || fail "push trusting $p"
	echo "push trusts $p"
	rm -rf "$R/etc/pki" "$R/etc/ssl"
done
curl -sf --cacert "$T/reg/cert.pem" -u ferry:s3cret "https://localhost:$port/v2/_catalog" |
	grep -q "mirror/" || fail "nothing in the registry's catalog"

# --- install into containerd through a bind-mounted socket
start_containerd "$T/ctd"
mkdir -p "$R/run/containerd"
touch "$R/run/containerd/containerd.sock"
mount --bind "$CTD_SOCK" "$R/run/containerd/containerd.sock"
MOUNTS="$R/run/containerd/containerd.sock"
# the node's ctr, which ferry runs, with the files it links, and the
# /dev/null it gets as stdin
for f in /usr/bin/ctr $(ldd /usr/bin/ctr | grep -oE '/[^ ]+') /dev/null; do
	mkdir -p "$R$(dirname "$f")"
	touch "$R$f"
	mount --bind "$f" "$R$f"
	MOUNTS="$R$f $MOUNTS"
done
fi_ install /b.tar --pubkey /k.pub --target containerd:/run/containerd/containerd.sock | tee "$T/inst"
grep -qE "images +done $N_IMAGES, skipped 0" "$T/inst" || fail "install into containerd"
ls_out=$($CTR images ls)
for ref in $IMAGES; do
	want=$(bundle_digest "$ref")
	echo "$ls_out" | awk -v r="$ref" '$1 == r {print $3}' | grep -qx "$want" ||
		fail "$ref is not in containerd with digest $want"
done
echo "ok: the portable ferry-install in an empty root"
