# serve over TLS through OpenSSL in front of a plain libmicrohttpd
# (registry/reg_tlsterm.c): the portable build's only TLS path, which
# FERRY_SERVE_TLS=openssl selects in any build. The log names the path; a
# slow reader and many parallel clients get every byte; then serve_tls.sh
# runs whole on that path.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci skopeo curl python3 jq openssl
export FERRY_SERVE_TLS=openssl

serve_fixture
TLS=$T/tls
serve_start o1 "$BUNDLE" --pubkey "$PUB" --tls-self-signed "$TLS"
grep -q "https through OpenSSL" "$T/o1.err" || fail "not the OpenSSL path: $(cat "$T/o1.err")"
BLOB=$(big_blob)
tar -xOf "$BUNDLE" "blobs/sha256/${BLOB#sha256:}" >"$T/blob"
# 16 clients at once, one of them reading at 200 KB/s
pids=""
for i in $(seq 16); do
	curl -s --cacert "$TLS/ca.crt" -o "$T/got.$i" "$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB" &
	pids="$pids $!"
done
curl -s --limit-rate 200k --cacert "$TLS/ca.crt" -o "$T/got.slow" \
	"$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB"
for p in $pids; do wait "$p" || fail "a parallel client failed"; done
for f in "$T"/got.*; do cmp -s "$f" "$T/blob" || fail "$(basename "$f") differs"; done
# keep-alive: two requests on one connection
out=$(curl -s -w '%{num_connects}\n' --cacert "$TLS/ca.crt" -o /dev/null -o /dev/null \
	"$SERVE_URL/v2/" "$SERVE_URL/v2/")
[ "$(echo "$out" | tr -d '\n')" = 10 ] || fail "keep-alive: connects $out"
# a client that never finishes its handshake does not hold serve up
exec 5<>/dev/tcp/127.0.0.1/"${SERVE_HP##*:}"
serve_stop "$SERVE_PID" "$SERVE_NAME"
exec 5<&-
echo "ok: the OpenSSL path; now serve_tls.sh on it"
bash "$(dirname "$0")/serve_tls.sh"
