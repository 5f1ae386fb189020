#!/bin/bash
# Serve from parts when the media goes bad under it (docs/serve.md "Bundles
# in parts"): a blob that spans parts is sent from mappings of its pieces,
# and a mapping read past the end of a file that shrank (a truncated part,
# a stick pulled out) faults. The server must survive that: the client's
# transfer fails, the next request is answered, and serve exits 0 on
# SIGTERM. Both over plain HTTP (the kernel reads the mapping) and over TLS
# (the TLS library reads it in the process).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"
. "$(dirname "$0")/serve_lib.bash"
need curl jq python3 docker-registry skopeo umoci
W=$T/w
mkdir -p "$W/files"
ferry-build keygen -o "$W/k" >/dev/null
PUB=$W/k.pub
start_registry reg
rand_file "$W/files/big.bin" 7340032 21
make_image "$W/L" big "$W/files/big.bin"
push "$W/L:big" library/big:1
spec_header "$W/spec.yaml"
echo "  - docker.io/library/big:1" >>"$W/spec.yaml"
ferry-build build "$W/spec.yaml" -o "$W/v.tar" --key "$W/k.key" --cache "$W/c" --volume-size 3M \
	>/dev/null 2>"$W/err" || fail "build: $(cat "$W/err")"
cat "$W"/v.tar.0* >"$W/one.tar"
LAYER=$(big_blob "$W/one.tar")
MAN=$(tar -xOf "$W/one.tar" index.json | jq -r '.manifests[0].digest')
# one.tar: the same bundle as one file (the parts joined)

alive() { # NAME PATH: the server still answers PATH with 200
	kill -0 "$SERVE_PID" 2>/dev/null || fail "$1: serve died when the bundle shrank under it"
	local got
	got=$(curl -sS -k --max-time 10 -o /dev/null -w '%{http_code}' \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' "$SERVE_URL$2") || true
	[ "$got" = 200 ] || fail "$1: $2 after the truncation gave $got: $(tail -n 4 "$T/$1.err")"
}
# the manifest lies after the layer, in part 002
M=/v2/docker.io/library/big/manifests/$MAN

run_case() { # NAME BUNDLE-FILES ARGS...: serve, fetch, truncate, fetch again
	local name=$1 files=$2
	shift 2
	rm -rf "$W/$name" && mkdir -p "$W/$name"
	cp $files "$W/$name/"
	local b=$W/$name/v.tar
	[ -f "$W/$name/one.tar" ] && b=$W/$name/one.tar
	serve_start "$name" "$b" --pubkey "$PUB" "$@"
	local C=(curl -sS --max-time 10 -k)
	"${C[@]}" -o "$W/$name.blob" "$SERVE_URL/v2/docker.io/library/big/blobs/$LAYER" ||
		fail "$name: the spanning layer before the truncation"
	[ "sha256:$(sha256sum <"$W/$name.blob" | cut -c1-64)" = "$LAYER" ] || fail "$name: layer bytes"
	# the layer's file loses bytes while the server holds it open: the next
	# GET is refused at once (the member is verified again and found
	# short), not left hanging while a worker retries
	if [ "$b" = "$W/$name/v.tar" ]; then truncate -s 1572864 "$W/$name/v.tar.001"; else
		truncate -s 4194304 "$b"; fi # one file: the manifest after the layer goes too
	code=$("${C[@]}" -o "$W/$name.blob2" -w '%{http_code}' \
		"$SERVE_URL/v2/docker.io/library/big/blobs/$LAYER" 2>"$W/$name.curl") ||
		fail "$name: no answer after the truncation: $(cat "$W/$name.curl")"
	[ "$code" -ge 400 ] || fail "$name: a shrunk layer was served ($code)"
	grep -q "does not match its digest" "$T/$name.err" || fail "$name: serve did not say: $(cat "$T/$name.err")"
	# one file cut inside the layer: the manifest after it went too
	if [ "$b" = "$W/$name/v.tar" ]; then alive "$name" "$M"; else alive "$name" /v2/; fi
	serve_stop "$SERVE_PID" "$name"
	echo "$name: the layer was refused ($code) after the truncation, the server lived on"
}

# the bytes go while a slow client is being sent the mapped layer: its
# transfer breaks, the server lives on
mid_transfer() { # NAME ARGS...
	local name=$1
	shift
	rm -rf "$W/$name" && mkdir -p "$W/$name"
	cp "$W"/v.tar.0* "$W/$name/"
	# a small send buffer: the server is still sending when the bytes go
	serve_start "$name" "$W/$name/v.tar" --pubkey "$PUB" --send-buffer 65536 "$@"
	# a slow reader with a small receive window (curl's --limit-rate lets
	# the kernel buffer megabytes): the layer is still being sent when
	# part 001 loses its tail
	python3 - "$SERVE_URL" "/v2/docker.io/library/big/blobs/$LAYER" "$W/$name.got" <<'PY' &
import socket, ssl, sys, time
url, path, out = sys.argv[1:4]
scheme, hp = url.split("://")
host, port = hp.rsplit(":", 1)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.connect((host, int(port)))
if scheme == "https":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s)
s.settimeout(20)
s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, hp)).encode())
n = 0
try:
    while True:
        b = s.recv(16384)
        if not b:
            break
        n += len(b)
        time.sleep(0.01)
except OSError:
    pass
open(out, "w").write(str(n))
PY
	local cp=$!
	sleep 1
	truncate -s 1048576 "$W/$name/v.tar.001"
	wait "$cp" || true
	got=$(cat "$W/$name.got" 2>/dev/null || echo 0)
	[ "$got" -lt 7340032 ] || fail "$name: the whole layer came through a truncated part ($got bytes)"
	echo "$name: the client got $got bytes of the 7 MiB layer"
	alive "$name" "$M"
	serve_stop "$SERVE_PID" "$name"
	echo "$name: a transfer cut by the truncation, the server lived on"
}

run_case plain "$W/v.tar.0*"
run_case tls "$W/v.tar.0*" --tls-self-signed "$W/ca"
run_case one "$W/one.tar"
mid_transfer mid-plain
mid_transfer mid-tls --tls-self-signed "$W/ca"
echo "serve_parts_truncated: ok"
