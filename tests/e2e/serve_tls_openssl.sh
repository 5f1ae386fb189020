# serve over TLS through OpenSSL in front of a plain libmicrohttpd
# (registry/reg_tlsterm.c): the portable build's only TLS path, which
# FERRY_SERVE_TLS=openssl selects in any build. The log names the path; a
# slow reader and many parallel clients get every byte; keep-alive works; a
# stalled handshake does not hold up a stop; the log holds no TCP-option
# noise; then serve_tls.sh runs whole on that path, and the epoll pool
# (--threads) serves over it too.
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
# libmicrohttpd's complaints about TCP options on the socketpairs are not logged
grep -E "TCP_|Failed to push" "$T/o1.err" && fail "TCP option noise in the log"
# the epoll pool takes the socketpairs as well
serve_start o2 "$BUNDLE" --pubkey "$PUB" --tls-self-signed "$TLS" --threads 4
grep -q "https through OpenSSL, 4 epoll threads" "$T/o2.err" || fail "pool: $(cat "$T/o2.err")"
pids=""
for i in $(seq 8); do
	curl -s --cacert "$TLS/ca.crt" -o "$T/pool.$i" "$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB" &
	pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "a client of the pool failed"; done
for i in $(seq 8); do cmp -s "$T/pool.$i" "$T/blob" || fail "pool.$i differs"; done
serve_stop "$SERVE_PID" "$SERVE_NAME"
grep -E "TCP_|Failed to push" "$T/o2.err" && fail "TCP option noise in the pool's log"
echo "ok: the OpenSSL path; now serve_tls.sh on it"
bash "$(dirname "$0")/serve_tls.sh"
