# ferry-install serve verification: a blob altered after signing is refused
# at start (full), or only that blob is refused (lazy) while the rest
# serves; a tampered manifest likewise; the index records what was hashed,
# so restarts skip the work, and a changed file is indexed again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci skopeo curl python3 jq sqlite3

serve_fixture
BLOB=$(big_blob)
BAD=$T/bad/b.tar
mkdir -p "$T/bad"
tamper_blob "$BUNDLE" "$BAD" "$BLOB"
echo "altered one byte of $BLOB"

# --- full (the default): refused at start, exit 2, nothing listens
expect_fail 2 "VERIFICATION FAILED" ferry-install serve "$BAD" --pubkey "$PUB" \
	--listen 127.0.0.1:0 --ready-file "$T/never" --index-dir "$T/idx-bad"
ferry-install serve "$BAD" --pubkey "$PUB" --listen 127.0.0.1:0 --index-dir "$T/idx-bad" \
	2>&1 | grep -q "digest mismatch.*${BLOB#sha256:}" || fail "the message does not name the blob"
[ -e "$T/never" ] && fail "a refused bundle wrote the ready file"
# another key, or none: refused too
ferry-build keygen -o "$T/other" >/dev/null
expect_fail 2 "VERIFICATION FAILED" ferry-install serve "$BUNDLE" --pubkey "$T/other.pub" \
	--listen 127.0.0.1:0 --index-dir "$T/idx-other"
expect_fail 64 "public key is required" ferry-install serve "$BUNDLE" --listen 127.0.0.1:0

# --- lazy: that blob gets an error, never its bytes; the others serve
serve_start lazybad "$BAD" --pubkey "$PUB" --verify=lazy --index-dir "$T/idx-bad"
U=$SERVE_URL
out=$(curl -s -w ' %{http_code}' "$U/v2/docker.io/library/x/blobs/$BLOB")
case $out in *'"code":"DIGEST_INVALID"'*' 500') ;; *) fail "tampered blob: $(echo "$out" | head -c 300)" ;; esac
[ ${#out} -lt 1000 ] || fail "the tampered blob's bytes were sent"
[ "$(http_code "$U/v2/docker.io/library/x/blobs/$BLOB")" = 500 ] || fail "second request"
[ "$(http_code -I "$U/v2/docker.io/library/x/blobs/$BLOB")" = 500 ] || fail "HEAD of a known-bad blob"
grep -q "does not match its digest" "$T/lazybad.err" || fail "no log line about the bad blob"
# everything else still serves, byte for byte
for ref in docker.io/library/x:2 quay.io/library/x:1 gcr.io/ml-pipeline/y:2; do
	rm -rf "$T/oci"
	skopeo copy -q --src-tls-verify=false "docker://$SERVE_HP/$ref" "oci:$T/oci:t" || fail "copy $ref"
	[ "$(jq -r '.manifests[0].digest' "$T/oci/index.json")" = "$(bundle_digest "$ref")" ] || fail "$ref"
done
rm -rf "$T/oci"
if skopeo copy -q --src-tls-verify=false "docker://$SERVE_HP/docker.io/library/x:1" "oci:$T/oci:t" \
	2>"$T/copy.err"; then
	fail "an image with the tampered layer was copied"
fi
cat "$T/copy.err"
serve_stop "$SERVE_PID" "$SERVE_NAME"
echo "lazy: the tampered blob is refused, the other images copy"

# --- the same in an epoll pool (connections are suspended while hashing):
# parallel requests for the bad blob all fail, for a good one all succeed
serve_start lazypool "$BAD" --pubkey "$PUB" --verify=lazy --index-dir "$T/idx-pool" --threads 2
good=$(tar -xOf "$BUNDLE" "blobs/sha256/${DIG_Y2#sha256:}" | jq -r '.layers[0].digest')
tar -xOf "$BUNDLE" "blobs/sha256/${good#sha256:}" >"$T/good"
pids=""
for i in 1 2 3 4; do
	curl -s -o /dev/null -w '%{http_code}\n' "$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB" >"$T/bad.$i" &
	pids="$pids $!"
	curl -s -o "$T/good.$i" "$SERVE_URL/v2/gcr.io/ml-pipeline/y/blobs/$good" &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
for i in 1 2 3 4; do
	[ "$(cat "$T/bad.$i")" = 500 ] || fail "pool: bad blob answered $(cat "$T/bad.$i")"
	cmp -s "$T/good.$i" "$T/good" || fail "pool: good blob differs"
done
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- lazy: a tampered manifest is refused the same way
BADM=$T/badm/b.tar
mkdir -p "$T/badm"
tamper_blob "$BUNDLE" "$BADM" "$DIG_Q1"
serve_start lazybadm "$BADM" --pubkey "$PUB" --verify=lazy --index-dir "$T/idx-badm"
[ "$(http_code "$SERVE_URL/v2/quay.io/library/x/manifests/1")" = 500 ] || fail "tampered manifest served"
[ "$(http_code "$SERVE_URL/v2/docker.io/library/x/manifests/1")" = 200 ] || fail "good manifest refused"
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- the index: lazy records each blob it hashes; full finishes the job once
IDX=$T/idx
verified() { sqlite3 "$IDX"/*.ferry-index "SELECT count(*) FROM members WHERE verified = 1 AND path LIKE 'blobs/%'"; }
nblobs=$(tar -tf "$BUNDLE" | grep -c '^blobs/sha256/')
serve_start l1 "$BUNDLE" --pubkey "$PUB" --verify=lazy --index-dir "$IDX"
grep -q "index built" "$T/l1.err" || fail "first lazy start: $(cat "$T/l1.err")"
v1=$(verified)
[ "$v1" -lt "$nblobs" ] || fail "lazy start hashed every blob ($v1 of $nblobs)"
# many clients ask for the unverified big blob at once: all get the right bytes
tar -xOf "$BUNDLE" "blobs/sha256/${BLOB#sha256:}" >"$T/blob"
pids=""
for i in $(seq 8); do
	curl -s -o "$T/got.$i" "$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB" &
	pids="$pids $!"
done
for p in $pids; do wait "$p" || fail "a client failed"; done
for i in $(seq 8); do cmp -s "$T/got.$i" "$T/blob" || fail "client $i got other bytes"; done
v2=$(verified)
[ "$v2" -eq $((v1 + 1)) ] || fail "the hashed blob was not recorded ($v1 -> $v2)"
serve_stop "$SERVE_PID" "$SERVE_NAME"
serve_start l2 "$BUNDLE" --pubkey "$PUB" --verify=lazy --index-dir "$IDX"
grep -q "index reused" "$T/l2.err" || fail "lazy restart: $(cat "$T/l2.err")"
grep -q "0.0 MB hashed" "$T/l2.err" || fail "lazy restart hashed blobs: $(cat "$T/l2.err")"
serve_stop "$SERVE_PID" "$SERVE_NAME"
# full after lazy: only what lazy left is hashed (not the big blob again)
serve_start f1 "$BUNDLE" --pubkey "$PUB" --index-dir "$IDX"
grep -q "index reused" "$T/f1.err" || fail "full after lazy: $(cat "$T/f1.err")"
grep -q "0.0 MB hashed" "$T/f1.err" || fail "full re-hashed the big blob: $(cat "$T/f1.err")"
[ "$(verified)" = "$nblobs" ] || fail "full left blobs unverified"
serve_stop "$SERVE_PID" "$SERVE_NAME"
# a second full start: nothing to hash
serve_start f2 "$BUNDLE" --pubkey "$PUB" --index-dir "$IDX"
grep -qE "\($nblobs verified\).*index reused.*0.0 MB hashed" "$T/f2.err" || fail "f2: $(cat "$T/f2.err")"
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- a changed file (new mtime) is indexed and hashed again
touch "$BUNDLE"
serve_start f3 "$BUNDLE" --pubkey "$PUB" --index-dir "$IDX"
grep -q "index built" "$T/f3.err" || fail "a touched bundle reused the index: $(cat "$T/f3.err")"
grep -q "3.0 MB hashed" "$T/f3.err" || fail "f3: $(cat "$T/f3.err")"
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- default place: next to the bundle (a copy, so the folder is writable)
mkdir -p "$T/next"
cp "$BUNDLE" "$T/next/b.tar"
serve_start n1 "$T/next/b.tar" --pubkey "$PUB"
[ -f "$T/next/b.tar.ferry-index" ] || fail "no index next to the bundle"
[ "$(stat -c %a "$T/next/b.tar.ferry-index")" = 600 ] || fail "index mode"
serve_stop "$SERVE_PID" "$SERVE_NAME"
echo "ok: verification and the index"
exit 0
