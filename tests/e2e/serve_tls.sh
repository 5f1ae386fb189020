# ferry-install serve over TLS: --tls-self-signed DIR makes a CA (kept
# across restarts) and a server certificate with IP and DNS SANs; skopeo
# trusts DIR as a --cert-dir and copies digest-identical images; the same
# certificate through --tls-cert/--tls-key; bad TLS options are refused.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci skopeo curl python3 jq openssl

serve_fixture
TLS=$T/tls
serve_start t1 "$BUNDLE" --pubkey "$PUB" --tls-self-signed "$TLS" --hostname reg.lab
case $SERVE_URL in https://*) ;; *) fail "not an https URL: $SERVE_URL" ;; esac
PORT=${SERVE_HP##*:}

# --- the files: ca.crt for nodes, private keys 0600
ls "$TLS"
[ -s "$TLS/ca.crt" ] || fail "no ca.crt"
for k in ca-key.pem server-key.pem; do
	[ "$(stat -c %a "$TLS/$k")" = 600 ] || fail "$k mode $(stat -c %a "$TLS/$k")"
done
[ "$(ls "$TLS"/*.crt)" = "$TLS/ca.crt" ] || fail "DIR must hold one .crt (a containers cert-dir)"
san=$(openssl x509 -in "$TLS/server-cert.pem" -noout -ext subjectAltName)
echo "$san"
echo "$san" | grep -q "IP Address:127.0.0.1" || fail "no IP SAN"
echo "$san" | grep -q "DNS:reg.lab" || fail "no DNS SAN"
openssl verify -CAfile "$TLS/ca.crt" "$TLS/server-cert.pem" || fail "server cert not signed by ca.crt"
openssl x509 -in "$TLS/ca.crt" -noout -ext basicConstraints | grep -q "CA:TRUE" || fail "ca.crt is no CA"

# --- skopeo trusts the folder; without it, it refuses
got=$(skopeo inspect --cert-dir "$TLS" "docker://$SERVE_HP/docker.io/library/x:1" | jq -r .Digest)
[ "$got" = "$DIG_X1" ] || fail "inspect over TLS: $got"
for ref in docker.io/library/x:1 gcr.io/ml-pipeline/y:2; do
	rm -rf "$T/oci"
	skopeo copy -q --src-cert-dir "$TLS" "docker://$SERVE_HP/$ref" "oci:$T/oci:t" || fail "copy $ref"
	got=$(jq -r '.manifests[0].digest' "$T/oci/index.json")
	[ "$got" = "$(bundle_digest "$ref")" ] || fail "copied $ref has digest $got"
	echo "skopeo copy over TLS $ref: $got"
done
if skopeo inspect "docker://$SERVE_HP/docker.io/library/x:1" >"$T/notrust" 2>&1; then
	fail "skopeo trusted the server without the CA"
fi
grep -qiE "certificate|x509" "$T/notrust" || fail "unexpected error: $(cat "$T/notrust")"

# --- curl: by IP, by the DNS name, range bytes over TLS, plain HTTP refused
[ "$(http_code --cacert "$TLS/ca.crt" "$SERVE_URL/v2/")" = 200 ] || fail "curl by IP"
[ "$(http_code --cacert "$TLS/ca.crt" --resolve "reg.lab:$PORT:127.0.0.1" "https://reg.lab:$PORT/v2/")" = 200 ] ||
	fail "curl by DNS name"
BLOB=$(big_blob)
tar -xOf "$BUNDLE" "blobs/sha256/${BLOB#sha256:}" >"$T/blob"
curl -s --cacert "$TLS/ca.crt" "$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB" | cmp -s - "$T/blob" ||
	fail "blob over TLS differs"
curl -s --cacert "$TLS/ca.crt" -r 100-199 -o "$T/part" "$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB"
cmp -s "$T/part" <(dd if="$T/blob" bs=100 skip=1 count=1 2>/dev/null) || fail "range over TLS differs"
[ "$(http_code "http://$SERVE_HP/v2/")" != 200 ] || fail "plain HTTP answered on the TLS port"
CA_FPR=$(openssl x509 -in "$TLS/ca.crt" -noout -fingerprint -sha256)
SRV_FPR=$(openssl x509 -in "$TLS/server-cert.pem" -noout -fingerprint -sha256)
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- a restart keeps the CA (nodes keep trusting it) and issues a new cert
serve_start t2 "$BUNDLE" --pubkey "$PUB" --tls-self-signed "$TLS"
[ "$(openssl x509 -in "$TLS/ca.crt" -noout -fingerprint -sha256)" = "$CA_FPR" ] || fail "the CA changed"
[ "$(openssl x509 -in "$TLS/server-cert.pem" -noout -fingerprint -sha256)" != "$SRV_FPR" ] ||
	fail "the server certificate was not renewed"
skopeo inspect --cert-dir "$TLS" "docker://$SERVE_HP/quay.io/library/x:1" >/dev/null || fail "after restart"
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- --tls-cert/--tls-key with a certificate made elsewhere
cp "$TLS/server-cert.pem" "$T/c.pem"
cp "$TLS/server-key.pem" "$T/k.pem"
serve_start t3 "$BUNDLE" --pubkey "$PUB" --tls-cert "$T/c.pem" --tls-key "$T/k.pem"
got=$(skopeo inspect --cert-dir "$TLS" "docker://$SERVE_HP/docker.io/library/x:2" | jq -r .Digest)
[ "$got" = "$DIG_X2" ] || fail "--tls-cert: $got"
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- refused: half a pair, both kinds, a key of another certificate
expect_fail 64 "tls-key" ferry-install serve "$BUNDLE" --pubkey "$PUB" --tls-cert "$T/c.pem"
expect_fail 64 "tls-self-signed" ferry-install serve "$BUNDLE" --pubkey "$PUB" \
	--tls-cert "$T/c.pem" --tls-key "$T/k.pem" --tls-self-signed "$TLS"
openssl ecparam -name prime256v1 -genkey -noout -out "$T/other.pem" 2>/dev/null
expect_fail 1 "does not belong" ferry-install serve "$BUNDLE" --pubkey "$PUB" --listen 127.0.0.1:0 \
	--tls-cert "$T/c.pem" --tls-key "$T/other.pem"
echo "ok: serve over TLS"
exit 0
