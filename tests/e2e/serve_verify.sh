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

# --- default place: a private cache folder (never beside the bundle, where
# a shared folder would let another user plant a table)
mkdir -p "$T/next"
cp "$BUNDLE" "$T/next/b.tar"
serve_start n1 "$T/next/b.tar" --pubkey "$PUB"
ls "$T/next" | grep -q ferry-index && fail "an index was written beside the bundle"
ix=$(ls "$XDG_CACHE_HOME"/ferry/serve-index/b.tar.*.ferry-index) || fail "no index in the cache folder"
[ "$(stat -c %a "$XDG_CACHE_HOME/ferry/serve-index")" = 700 ] || fail "cache folder mode"
[ "$(stat -c %a "$ix")" = 600 ] || fail "index mode"
serve_stop "$SERVE_PID" "$SERVE_NAME"
serve_start n2 "$T/next/b.tar" --pubkey "$PUB"
grep -q "index reused" "$T/n2.err" || fail "the cached index was not reused: $(cat "$T/n2.err")"
serve_stop "$SERVE_PID" "$SERVE_NAME"
# an index someone else owns, or one others could write, is not trusted
chown nobody "$ix"
serve_start n3 "$T/next/b.tar" --pubkey "$PUB"
grep -q "index built" "$T/n3.err" || fail "an index owned by another user was trusted: $(cat "$T/n3.err")"
serve_stop "$SERVE_PID" "$SERVE_NAME"
ix=$(ls "$XDG_CACHE_HOME"/ferry/serve-index/b.tar.*.ferry-index)
chmod 666 "$ix"
serve_start n4 "$T/next/b.tar" --pubkey "$PUB"
grep -q "index built" "$T/n4.err" || fail "a world-writable index was trusted: $(cat "$T/n4.err")"
serve_stop "$SERVE_PID" "$SERVE_NAME"
# a link planted as the index is not followed
ix=$(ls "$XDG_CACHE_HOME"/ferry/serve-index/b.tar.*.ferry-index)
rm -f "$ix"
echo "not an index" >"$T/target"
ln -s "$T/target" "$ix"
serve_start n5 "$T/next/b.tar" --pubkey "$PUB"
grep -q "index built" "$T/n5.err" || fail "a symlinked index: $(cat "$T/n5.err")"
serve_stop "$SERVE_PID" "$SERVE_NAME"
[ "$(cat "$T/target")" = "not an index" ] || fail "the index was written through a link"
# a folder others can write is refused for --index-dir
mkdir -p "$T/shared" && chmod 1777 "$T/shared"
serve_start n6 "$T/next/b.tar" --pubkey "$PUB" --index-dir "$T/shared"
grep -q "will not be saved.*could be forged" "$T/n6.err" || fail "a shared --index-dir: $(cat "$T/n6.err")"
ls "$T/shared" | grep -q ferry-index && fail "an index was saved in a shared folder"
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- an in-place rewrite that restores the mtime (touch -d) is noticed:
# the ctime moves, so the restarted server verifies again and refuses
mkdir -p "$T/ip"
cp "$BUNDLE" "$T/ip/b.tar"
serve_start i1 "$T/ip/b.tar" --pubkey "$PUB" --index-dir "$T/idx-ip"
serve_stop "$SERVE_PID" "$SERVE_NAME"
mt=$(stat -c %y "$T/ip/b.tar")
off=$(python3 - "$T/ip/b.tar" "${BLOB#sha256:}" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as tf:
    for m in tf.getmembers():
        if m.name == "blobs/sha256/" + sys.argv[2]:
            print(m.offset_data + 1000)
PY
)
printf 'EVILEVIL' | dd of="$T/ip/b.tar" bs=1 seek="$off" conv=notrunc status=none
touch -d "$mt" "$T/ip/b.tar"
[ "$(stat -c %y "$T/ip/b.tar")" = "$mt" ] || fail "mtime not restored"
expect_fail 2 "digest mismatch.*${BLOB#sha256:}" ferry-install serve "$T/ip/b.tar" --pubkey "$PUB" \
	--listen 127.0.0.1:0 --index-dir "$T/idx-ip"
serve_start i2 "$T/ip/b.tar" --pubkey "$PUB" --verify=lazy --index-dir "$T/idx-ip"
grep -q "index built" "$T/i2.err" || fail "lazy restart trusted the old index: $(cat "$T/i2.err")"
[ "$(http_code "$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB")" = 500 ] || fail "tampered blob served"
serve_stop "$SERVE_PID" "$SERVE_NAME"

# --- rewritten while the server runs: verified blobs are verified again
cp "$BUNDLE" "$T/ip/c.tar"
serve_start i3 "$T/ip/c.tar" --pubkey "$PUB" --index-dir "$T/idx-ip3"
[ "$(http_code "$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB")" = 200 ] || fail "good blob refused"
printf 'EVILEVIL' | dd of="$T/ip/c.tar" bs=1 seek="$off" conv=notrunc status=none
out=$(curl -s -w ' %{http_code}' "$SERVE_URL/v2/docker.io/library/x/blobs/$BLOB" | tail -c 200)
case $out in *' 500') ;; *) fail "a blob changed under the running server was served: $out" ;; esac
grep -q "changed on disk" "$T/i3.err" || fail "no log line about the change"
good=$(tar -xOf "$BUNDLE" "blobs/sha256/${DIG_Y2#sha256:}" | jq -r '.layers[0].digest')
[ "$(http_code "$SERVE_URL/v2/gcr.io/ml-pipeline/y/blobs/$good")" = 200 ] || fail "an unchanged blob is refused"
serve_stop "$SERVE_PID" "$SERVE_NAME"

echo "ok: verification and the index"
exit 0
