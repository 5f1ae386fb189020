# ferry-install serve over plain HTTP: skopeo inspect and copy (digest-
# identical), the pull API with curl (headers, HEAD, Range, 416, writes,
# malformed and hostile names, pagination, _catalog, ?ns=, referrers), the
# access log, and SIGTERM draining a download in flight.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci skopeo curl python3 jq

serve_fixture
serve_start s1 "$BUNDLE" --pubkey "$PUB" --access-log "$T/access.log"
U=$SERVE_URL
echo "serving at $U"

# --- /v2/ and the headers every answer carries
h=$(curl -s -D- -o /dev/null "$U/v2/")
echo "$h" | grep -q "^HTTP/1.1 200" || fail "/v2/: $h"
echo "$h" | grep -qi "^Docker-Distribution-API-Version: registry/2.0" || fail "no API version header"

# --- skopeo: inspect and copy, digest-identical
got=$(skopeo inspect --tls-verify=false "docker://$SERVE_HP/docker.io/library/x:1" | jq -r .Digest)
[ "$got" = "$DIG_X1" ] || fail "skopeo inspect digest $got, bundle has $DIG_X1"
for pair in "docker.io/library/x:1 $DIG_X1" "quay.io/library/x:1 $DIG_Q1" "gcr.io/ml-pipeline/y:2 $DIG_Y2"; do
	set -- $pair
	rm -rf "$T/oci"
	skopeo copy -q --src-tls-verify=false "docker://$SERVE_HP/$1" "oci:$T/oci:t" ||
		fail "skopeo copy $1"
	got=$(jq -r '.manifests[0].digest' "$T/oci/index.json")
	[ "$got" = "$2" ] || fail "copied $1 has digest $got, bundle has $2"
	# every blob skopeo stored matches the bundle's bytes
	for f in "$T"/oci/blobs/sha256/*; do
		h=$(basename "$f")
		cmp -s "$f" <(tar -xOf "$BUNDLE" "blobs/sha256/$h") || fail "blob $h differs from the bundle"
	done
	echo "skopeo copy $1: $got (identical)"
done
# by digest too
skopeo inspect --raw --tls-verify=false "docker://$SERVE_HP/docker.io/library/x@$DIG_X2" |
	cmp -s - <(tar -xOf "$BUNDLE" "blobs/sha256/${DIG_X2#sha256:}") || fail "manifest by digest differs"

# --- manifest headers: exact type, digest, length, ETag
M=$U/v2/docker.io/library/x/manifests/1
h=$(curl -s -D- -o "$T/m.json" "$M")
size=$(stat -c %s "$T/m.json")
echo "$h" | grep -qi "^Content-Type: application/vnd.oci.image.manifest.v1+json" || fail "manifest type: $h"
echo "$h" | grep -qi "^Docker-Content-Digest: $DIG_X1" || fail "manifest digest header: $h"
echo "$h" | grep -qi "^Content-Length: $size" || fail "manifest length: $h"
echo "$h" | grep -qi "^ETag: \"$DIG_X1\"" || fail "manifest ETag: $h"
[ "sha256:$(sha256sum <"$T/m.json" | cut -d' ' -f1)" = "$DIG_X1" ] || fail "manifest bytes"
[ "$(http_code -H "If-None-Match: \"$DIG_X1\"" "$M")" = 304 ] || fail "If-None-Match not honoured"

# --- HEAD: headers, no body
BLOB=$(big_blob)
B=$U/v2/docker.io/library/x/blobs/$BLOB
bsize=$(tar -tvf "$BUNDLE" "blobs/sha256/${BLOB#sha256:}" | awk '{print $3}')
h=$(curl -s -I "$B")
echo "$h" | grep -qi "^Content-Length: $bsize" || fail "HEAD length: $h"
echo "$h" | grep -qi "^Docker-Content-Digest: $BLOB" || fail "HEAD digest: $h"
n=$(curl -s -I -o /dev/null -w '%{size_download}' "$B")
[ "$n" = 0 ] || fail "HEAD sent $n body bytes"
h=$(curl -s -I "$M")
echo "$h" | grep -qi "^Content-Length: $size" || fail "HEAD manifest length: $h"

# --- Range
tar -xOf "$BUNDLE" "blobs/sha256/${BLOB#sha256:}" >"$T/blob"
h=$(curl -s -D- -o "$T/part" -r 1000-1999 "$B")
echo "$h" | grep -q "^HTTP/1.1 206" || fail "range: $h"
echo "$h" | grep -qi "^Content-Range: bytes 1000-1999/$bsize" || fail "Content-Range: $h"
cmp -s "$T/part" <(dd if="$T/blob" bs=1000 skip=1 count=1 2>/dev/null) || fail "range bytes differ"
curl -s -o "$T/part" -H "Range: bytes=-100" "$B"
cmp -s "$T/part" <(tail -c 100 "$T/blob") || fail "suffix range bytes differ"
curl -s -o "$T/part" -H "Range: bytes=$((bsize - 10))-" "$B"
cmp -s "$T/part" <(tail -c 10 "$T/blob") || fail "open range bytes differ"
# an end past the blob is clamped to its last byte (RFC 9110 14.1.2), not 416
h=$(curl -s -D- -o "$T/part" -H "Range: bytes=0-$((bsize * 10))" "$B")
echo "$h" | grep -q "^HTTP/1.1 206" || fail "range with its end past the blob: $h"
echo "$h" | grep -qi "^Content-Range: bytes 0-$((bsize - 1))/$bsize" || fail "clamped Content-Range: $h"
cmp -s "$T/part" "$T/blob" || fail "clamped range bytes differ"
h=$(curl -s -D- -o "$T/part" -H "Range: bytes=$((bsize - 5))-99999999999999999999999" "$B")
echo "$h" | grep -qi "^Content-Range: bytes $((bsize - 5))-$((bsize - 1))/$bsize" || fail "huge end: $h"
cmp -s "$T/part" <(tail -c 5 "$T/blob") || fail "huge-end range bytes differ"
# a first byte past the end is still 416
[ "$(http_code -H "Range: bytes=$bsize-$((bsize + 10))" "$B")" = 416 ] || fail "range starting past the end"
h=$(curl -s -D- -o /dev/null -H "Range: bytes=$bsize-" "$B")
echo "$h" | grep -q "^HTTP/1.1 416" || fail "range past the end: $h"
echo "$h" | grep -qi "^Content-Range: bytes \*/$bsize" || fail "416 Content-Range: $h"
[ "$(http_code -H 'Range: bytes=20-10' "$B")" = 416 ] || fail "reversed range"
curl -s "$B" | cmp -s - "$T/blob" || fail "full blob differs"
echo "range: 206 with the right bytes (an end past the blob clamped), 416 for bad ranges"

# --- writes: 405 UNSUPPORTED
for m in PUT POST DELETE PATCH; do
	out=$(curl -s -X "$m" -w ' %{http_code}' --data-binary @"$T/m.json" "$M")
	case $out in *'"code":"UNSUPPORTED"'*' 405') ;; *) fail "$m: $out" ;; esac
done
out=$(curl -s -X POST -w ' %{http_code}' "$U/v2/docker.io/library/x/blobs/uploads/")
case $out in *UNSUPPORTED*' 405') ;; *) fail "upload POST: $out" ;; esac
echo "writes: 405 UNSUPPORTED"

# --- hostile and malformed requests: clean 4xx, never the filesystem
FILE_TRACE=""
if command -v strace >/dev/null; then
	strace -f -qq -e trace=%file -p "$SERVE_PID" -o "$T/strace" 2>/dev/null &
	STRACE_PID=$!
	FERRY_PIDS="$FERRY_PIDS $STRACE_PID"
	sleep 1
	kill -0 $STRACE_PID 2>/dev/null && FILE_TRACE=1
fi
long=$(head -c 10240 /dev/zero | tr '\0' a)
check4xx() { # WANT-PATTERN ARGS...
	pat=$1
	shift
	out=$(curl -s -w ' %{http_code}' "$@")
	code=${out##* }
	case $code in 4??) ;; *) fail "$* answered $code: $out" ;; esac
	echo "$out" | grep -qE "$pat" || fail "$* answered '$out', wanted /$pat/"
	echo "  $code: ${*: -1}" | cut -c1-110
}
check4xx 'NAME_INVALID' --path-as-is "$U/v2/../../etc/passwd/blobs/$BLOB"
check4xx '4' --path-as-is "$U/v2/docker.io/library/x/blobs/sha256:../../x"
check4xx 'NOT_FOUND|DIGEST_INVALID' "$U/v2/docker.io/library/x/blobs/sha256:..%2f..%2fx"
check4xx 'NAME_INVALID' "$U/v2/docker.io/library/%2e%2e/%2e%2e/etc/manifests/1"
check4xx 'NAME_INVALID' "$U/v2/$long/manifests/1"
check4xx 'NAME_INVALID' "$U/v2/$(head -c 300 /dev/zero | tr '\0' a)/manifests/1"
check4xx 'DIGEST_INVALID' "$U/v2/docker.io/library/x/blobs/sha256:abc123"
check4xx 'DIGEST_INVALID' "$U/v2/docker.io/library/x/blobs/${BLOB}00"
check4xx 'DIGEST_INVALID' "$U/v2/docker.io/library/x/manifests/sha256:1234"
check4xx 'DIGEST_INVALID' "$U/v2/docker.io/library/x/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"
check4xx 'NAME_INVALID' "$U/v2/Docker.io/Library/X/manifests/1"
check4xx 'TAG_INVALID' "$U/v2/docker.io/library/x/manifests/-bad"
check4xx 'NAME_INVALID' "$U/v2/library/x/manifests/1?ns=../../etc"
check4xx 'NAME_UNKNOWN' "$U/v2/docker.io/library/nope/manifests/1"
check4xx 'MANIFEST_UNKNOWN' "$U/v2/docker.io/library/x/manifests/9"
check4xx 'BLOB_UNKNOWN' "$U/v2/docker.io/library/x/blobs/sha256:$(printf '0%.0s' $(seq 64))"
check4xx 'NOT_FOUND' "$U/etc/passwd"
# a blob of another repository is not served under this one
qblob=$(tar -xOf "$BUNDLE" "blobs/sha256/${DIG_Q1#sha256:}" | jq -r '.layers[-1].digest')
check4xx 'BLOB_UNKNOWN' "$U/v2/docker.io/library/x/blobs/$qblob"
if [ -n "$FILE_TRACE" ]; then
	sleep 0.5
	kill "$STRACE_PID" 2>/dev/null || true
	wait "$STRACE_PID" 2>/dev/null || true
	if grep -vE '^[0-9]+ +\+\+\+|exited' "$T/strace" | grep -q .; then
		cat "$T/strace"
		fail "hostile requests made file system calls"
	fi
	echo "strace: no file system call while answering them"
fi

# --- tags/list pagination and _catalog
out=$(curl -s -D "$T/h" "$U/v2/docker.io/library/x/tags/list?n=2")
[ "$(echo "$out" | jq -c .tags)" = '["1","2"]' ] || fail "page 1: $out"
link=$(grep -i '^Link:' "$T/h" | sed -E 's/^Link: <([^>]*)>.*/\1/I' | tr -d '\r')
[ "$link" = "/v2/docker.io/library/x/tags/list?n=2&last=2" ] || fail "Link: $(cat "$T/h")"
out=$(curl -s -D "$T/h" "$U$link")
[ "$(echo "$out" | jq -c .tags)" = '["3","latest"]' ] || fail "page 2: $out"
grep -qi '^Link:' "$T/h" && fail "a Link after the last page"
[ "$(curl -s "$U/v2/docker.io/library/x/tags/list" | jq -c .)" = \
	'{"name":"docker.io/library/x","tags":["1","2","3","latest"]}' ] || fail "tags/list"
check4xx 'PAGINATION_NUMBER_INVALID' "$U/v2/docker.io/library/x/tags/list?n=abc"
out=$(curl -s "$U/v2/_catalog" | jq -c .repositories)
[ "$out" = '["docker.io/library/x","gcr.io/ml-pipeline/y","quay.io/library/x"]' ] || fail "catalog $out"
out=$(curl -s -D "$T/h" "$U/v2/_catalog?n=2" | jq -c .repositories)
[ "$out" = '["docker.io/library/x","gcr.io/ml-pipeline/y"]' ] || fail "catalog page 1: $out"
grep -qi '^Link: </v2/_catalog?n=2&last=gcr.io/ml-pipeline/y>; rel="next"' "$T/h" ||
	fail "catalog Link: $(cat "$T/h")"
out=$(curl -s "$U/v2/_catalog?n=2&last=gcr.io/ml-pipeline/y" | jq -c .repositories)
[ "$out" = '["quay.io/library/x"]' ] || fail "catalog page 2: $out"
echo "tags/list and _catalog paginate with Link"

# --- containerd's ?ns=: the bare path resolves per upstream host
d() { curl -s -o /dev/null -D- "$1" | grep -i '^Docker-Content-Digest:' | awk '{print $2}' | tr -d '\r'; }
[ "$(d "$U/v2/library/x/manifests/1?ns=docker.io")" = "$DIG_X1" ] || fail "ns=docker.io"
[ "$(d "$U/v2/library/x/manifests/1?ns=quay.io")" = "$DIG_Q1" ] || fail "ns=quay.io"
[ "$(d "$U/v2/ml-pipeline/y/manifests/2?ns=gcr.io")" = "$DIG_Y2" ] || fail "ns=gcr.io"
[ "$(http_code "$U/v2/library/x/manifests/1")" = 404 ] || fail "a bare path without ns"
[ "$(http_code "$U/v2/library/x/manifests/1?ns=ghcr.io")" = 404 ] || fail "ns of another host"
[ "$(http_code "$U/v2/docker.io/library/x/manifests/1?ns=docker.io")" = 200 ] ||
	fail "a host-prefixed name with ns"
echo "ns: library/x is docker.io's or quay.io's as asked"

# --- referrers: an empty index
h=$(curl -s -D- "$U/v2/docker.io/library/x/referrers/$DIG_X1?artifactType=application/x")
echo "$h" | grep -qi '^Content-Type: application/vnd.oci.image.index.v1+json' || fail "referrers: $h"
echo "$h" | grep -qi '^OCI-Filters-Applied: artifactType' || fail "referrers filter header"
echo "$h" | tail -n 1 | jq -e '.manifests == [] and .schemaVersion == 2' >/dev/null || fail "referrers body"

# --- access log: one line per request
n=$(wc -l <"$T/access.log")
[ "$n" -gt 40 ] || fail "access log has $n lines"
grep -q "\"GET /v2/docker.io/library/x/manifests/1\" 200 $size" "$T/access.log" || fail "access log line"
grep -q '"GET /v2/library/x/manifests/1?ns=quay.io" 200' "$T/access.log" || fail "access log ns"

# --- SIGTERM drains a slow download, then exits 0
curl -s --limit-rate 1M -o "$T/slow" "$B" &
CURL=$!
sleep 0.5
kill -TERM "$SERVE_PID"
wait "$CURL" || fail "the download in flight was cut"
cmp -s "$T/slow" "$T/blob" || fail "the drained download is incomplete"
set +e
wait "$SERVE_PID"
rc=$?
set -e
[ $rc -eq 0 ] || { tail -n 30 "$T/s1.err"; fail "serve exited $rc after SIGTERM"; }
[ -e "$T/s1.ready" ] && fail "the ready file outlived the server"
grep -q draining "$T/s1.err" || fail "no drain message"
echo "SIGTERM: download finished, exit 0"

# --- a second start reuses the index: nothing is hashed again
serve_start s2 "$BUNDLE" --pubkey "$PUB"
grep -q "index reused" "$T/s2.err" || fail "restart did not reuse the index: $(cat "$T/s2.err")"
grep -q "0.0 MB hashed" "$T/s2.err" || fail "restart hashed again: $(cat "$T/s2.err")"
serve_stop "$SERVE_PID" "$SERVE_NAME"
echo "ok: serve over HTTP"
exit 0
