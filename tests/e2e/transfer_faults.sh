# Every transfer path through one fault proxy (fault_proxy.py), table-driven:
#   paths:  pull  (ferry-build build, images from a docker-registry)
#           model (ferry-build build, a url: model from nginx, HF-style
#                  resolve/ path)
#           push  (ferry-install push into the docker-registry)
#   faults: 429   one 429 with Retry-After: 2 -> the next try comes >= 2 s
#                 later, and the transfer completes
#           cut   the connection drops mid-body -> a download resumes with
#                 Range from the cut offset (only the rest is sent); an
#                 upload (a monolithic PUT cannot be resumed: nothing reached
#                 the registry) is sent again whole and succeeds
#           307   a 307 to 127.0.0.2 (another host) while the proxy
#                 requires auth (Bearer for pull and push, Basic from the
#                 a netrc file for the model) -> Authorization went
#                 to 127.0.0.1 and never to 127.0.0.2, and the transfer
#                 completed there
#           slow  the body trickles at 400 kB/s -> one request, all bytes,
#                 no give-up
# Each cell checks the proxy's JSON log, then the result: the bundle
# verifies and holds the image (pull), the model's bytes (model), the image
# is pullable with skopeo at its digest (push).
#
# KNOWN lists the cells that fail today with the reason they fail (an ERE
# on the cell's failure). Such a cell is reported "known defect" and does
# not fail the test; a cell that fails otherwise, or a known cell that now
# passes (drop it from KNOWN), fails it. FERRY_STRICT_FAULTS=1 counts known
# defects as failures. TRANSFER_CELLS="pull:429 push:cut" runs only those.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pull_helpers.bash"
command -v nginx >/dev/null || skip "nginx is not installed"
python3 -c 'import socket; socket.socket().bind(("127.0.0.2", 0))' 2>/dev/null ||
	skip "cannot bind 127.0.0.2"

# CELL ERE: none since the one transfer engine (issue 15). Before it,
# model:429 ignored Retry-After, model:307 printed the URL's user:password,
# push:429 and push:307 ended the push.
KNOWN=''

W=$T/w
mkdir -p "$W"
ferry-build keygen -o "$W/k" >/dev/null
start_registry reg
SIZE=800000 AFTER=300000 RA=2 RATE=400000
# the image: one incompressible layer of about SIZE bytes
rand_file "$W/big.bin" $SIZE 21
make_image "$W/L" big "$W/big.bin"
push "$W/L:big" library/big:1
BIGM=$(manifest_digest library/big:1)
BIG=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$REG_PORT/v2/library/big/manifests/1" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
LSIZE=$(curl -sfI "http://127.0.0.1:$REG_PORT/v2/library/big/blobs/$BIG" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Ll]ength: //p')
[ -n "$BIGM" ] && [ "${LSIZE:-0}" -gt $((SIZE - 1000)) ] || fail "test image not served"
# the model: SIZE bytes under a Hugging Face-style path, served by nginx
MPATH=/org/model/resolve/main/weights.bin
mkdir -p "$W/www${MPATH%/*}" "$W/ntmp"
rand_file "$W/www$MPATH" $SIZE 22
MSHA=$(sha256sum "$W/www$MPATH" | cut -d' ' -f1)
NPORT=$(free_port)
cat >"$W/nginx.conf" <<C
daemon off;
master_process off;
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 64; }
http {
    access_log $W/nginx.log;
    client_body_temp_path $W/ntmp/body;
    proxy_temp_path $W/ntmp/proxy;
    fastcgi_temp_path $W/ntmp/fcgi;
    uwsgi_temp_path $W/ntmp/uwsgi;
    scgi_temp_path $W/ntmp/scgi;
    server { listen 127.0.0.1:$NPORT; root $W/www; }
}
C
nginx -c "$W/nginx.conf" -p "$W" 2>"$W/nginx.out" &
FERRY_PIDS="$FERRY_PIDS $!"
# the proxy: 127.0.0.1:PPORT, redirects to 127.0.0.2:RPORT
PPORT=$(free_port)
RPORT=$(free_port)
RULES=$W/rules.json PLOG=$W/proxy.log
echo '{}' >"$RULES"
: >"$PLOG"
python3 "$(dirname "$0")/fault_proxy.py" --listen "127.0.0.1:$PPORT" --redirect "127.0.0.2:$RPORT" \
	--route "/v2/=127.0.0.1:$REG_PORT" --route "/=127.0.0.1:$NPORT" --rules "$RULES" --log "$PLOG" &
FERRY_PIDS="$FERRY_PIDS $!"
wait_port "$NPORT"
wait_port "$PPORT"
for i in $(seq 100); do
	(exec 3<>/dev/tcp/127.0.0.2/"$RPORT") 2>/dev/null && break
	[ "$i" = 100 ] && fail "the proxy's redirect listener 127.0.0.2:$RPORT never opened"
	sleep 0.1
done
# credentials for the proxy (asked for in the 307 cells only)
CREDS=ferry:s3cret
mkdir -p "$W/dc"
printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}\n' "$PPORT" "$(printf %s "$CREDS" | base64 -w0)" >"$W/dc/config.json"
export DOCKER_CONFIG=$W/dc REGISTRY_AUTH_FILE=$W/dc/config.json

# the pull spec; the baseline bundle (no faults) is what push sends
SPEC_ENDPOINT=127.0.0.1:$PPORT spec_header "$W/pull.yaml"
echo '  - big:1' >>"$W/pull.yaml"
ferry-build build "$W/pull.yaml" -o "$W/base.tar" --key "$W/k.key" --cache "$W/base.cache" >"$W/base.log" 2>&1 ||
	fail "baseline build through the proxy: $(cat "$W/base.log")"
ferry-install inspect "$W/base.tar" --pubkey "$W/k.pub" | grep -qF "$BIGM" || fail "the baseline bundle lacks big:1 as $BIGM"
model_spec() { # FILE URL
	printf 'apiVersion: ferry/v1\nkind: Bundle\nmetadata: {name: m, version: "1"}\nmodels:\n- name: mnist\n  version: "1"\n  url: %s\n  sha256: %s\n' \
		"$2" "$MSHA" >"$1"
}

# --- the table: per path, the request the fault hits (an ERE on
# "METHOD PATH?QUERY"), the body size and how a cell runs and is checked
target() { # PATH CELL
	case $1 in
	pull) echo "^GET /v2/library/big/blobs/$BIG" ;;
	model) echo "^GET $MPATH" ;;
	push) echo "^PUT /v2/$2/docker.io/library/big/blobs/uploads/.*digest=$BIG" ;;
	esac
}
body_size() { case $1 in model) echo $SIZE ;; *) echo "$LSIZE" ;; esac; }
# rule FAULT TARGET [SCHEME]: the proxy's rules for a fault (SCHEME: the
# auth the 307 cells ask for, bearer or basic)
rule() {
	case $1 in
	429) printf '{"faults": [{"match": "%s", "do": "status", "status": 429, "headers": {"Retry-After": "%s"}, "count": 1}]}' "$2" $RA ;;
	cut) printf '{"faults": [{"match": "%s", "do": "cut", "after": %s, "count": 1}]}' "$2" $AFTER ;;
	307) printf '{"auth": {"%s": "%s"}, "faults": [{"match": "%s", "do": "redirect", "status": 307}]}' "$3" "$CREDS" "$2" ;;
	slow) printf '{"faults": [{"match": "%s", "do": "slow", "rate": %s}]}' "$2" $RATE ;;
	esac
}
# run PATH FAULT DIR: the transfer, its output in DIR/out.log
run() {
	d=$3
	case $1 in
	pull)
		ferry-build build "$W/pull.yaml" -o "$d/out.tar" --key "$W/k.key" --cache "$d/cache" ;;
	model)
		url=http://127.0.0.1:$PPORT$MPATH
		model_spec "$d/m.yaml" "$url"
		# credentials by host from a netrc file (a user:password in the url is
		# refused: the spec is kept in the bundle)
		printf 'machine 127.0.0.1 login %s password %s\n' "${CREDS%%:*}" "${CREDS#*:}" >"$d/netrc"
		NETRC=$d/netrc ferry-build build "$d/m.yaml" -o "$d/out.tar" --key "$W/k.key" --cache "$d/cache" ;;
	push)
		ferry-install push "$W/base.tar" --pubkey "$W/k.pub" --to "127.0.0.1:$PPORT/$(basename "$d")" --plain-http ;;
	esac >"$d/out.log" 2>&1
}
# result PATH DIR: the outcome is right
result() {
	d=$2
	case $1 in
	pull)
		ferry-install verify "$d/out.tar" --pubkey "$W/k.pub" >/dev/null 2>&1 || fail "the bundle does not verify"
		ferry-install inspect "$d/out.tar" --pubkey "$W/k.pub" | grep -qF "$BIGM" || fail "the bundle lacks big:1 as $BIGM"
		;;
	model)
		ferry-install verify "$d/out.tar" --pubkey "$W/k.pub" >/dev/null 2>&1 || fail "the bundle does not verify"
		got=$(tar xOf "$d/out.tar" models/mnist/1/weights.bin | sha256sum | cut -d' ' -f1)
		[ "$got" = "$MSHA" ] || fail "the model's bytes hash to $got, not $MSHA"
		;;
	push)
		repo=127.0.0.1:$REG_PORT/$(basename "$d")/docker.io/library/big
		skopeo copy -q --src-tls-verify=false "docker://$repo@$BIGM" "oci:$d/back:x" >"$d/skopeo.log" 2>&1 ||
			fail "skopeo cannot pull $repo@$BIGM: $(cat "$d/skopeo.log")"
		[ -f "$d/back/blobs/sha256/${BIG#sha256:}" ] || fail "the pulled image lacks its layer $BIG"
		;;
	esac
}
# proxy_check FAULT PATH TARGET SIZE MARK: the proxy's log (lines after
# MARK) shows the fault and the client's reaction
proxy_check() {
	tail -n +"$(($5 + 1))" "$PLOG" >"$d/proxy.log"
	python3 - "$d/proxy.log" "$@" $RA $AFTER $RATE <<'PY'
import json, re, sys
log, fault, path, target, size, _, ra, after, rate = sys.argv[1:]
size, ra, after, rate = int(size), float(ra), int(after), int(rate)
es = sorted((e for e in map(json.loads, open(log)) if re.search(target, e["method"] + " " + e["path"])),
            key=lambda e: e["t0"])
upload = path == "push"
ok = (201,) if upload else (200,)
def show(e):
    return "%s %s:%d %s %s range=%s -> %s sent=%d read=%d auth=%s fault=%s %.2f-%.2f" % (
        e["listener"], e["host"], e["port"], e["method"], e["path"][:60], e["range"] or "-",
        e["status"], e["bytes"], e["rbytes"], e["auth"], e["fault"] or "-", e["t0"] % 100, e["t1"] % 100)
def bad(msg):
    sys.exit("%s\n  requests for the target:\n    %s" % (msg, "\n    ".join(map(show, es)) or "none"))
def whole(e):  # a successful request that moved the entire body
    return e["status"] in ok and (e["rbytes"] if upload else e["bytes"]) == size
if not es:
    bad("no request matched " + target)
action = {"429": "status", "307": "redirect"}.get(fault, fault)
hit = [e for e in es if action in e["fault"].split(",")]
if len(hit) != 1:
    bad("the fault was applied %d times, not once" % len(hit))
f = hit[0]
after_f = [e for e in es if e["t0"] > f["t0"]]
if fault == "429":
    if f["status"] != 429 or not after_f:
        bad("no try after the 429")
    wait = after_f[0]["t0"] - f["t1"]
    if wait < ra - 0.1:  # 0.1 s: the proxy logs t1 just after its answer went out
        bad("the next try came %.2f s after the 429, Retry-After said %g s" % (wait, ra))
    if not whole(after_f[-1]):
        bad("the transfer did not complete after the 429")
elif fault == "cut":
    if upload:
        if f["status"] != 0 or f["rbytes"] != after:
            bad("the upload was not cut after %d bytes" % after)
        if not after_f or not whole(after_f[-1]):
            bad("the upload was not sent again whole after the cut")
    else:
        if f["status"] != 200 or f["bytes"] != after:
            bad("the download was not cut after %d bytes" % after)
        if not after_f:
            bad("no request after the cut")
        n = after_f[0]
        if n["range"] != "bytes=%d-" % after or n["status"] != 206 or n["bytes"] != size - after:
            bad("the request after the cut did not resume with Range: bytes=%d- (206, %d bytes)"
                % (after, size - after))
        if len(after_f) != 1:
            bad("more requests after the resume")
elif fault == "307":
    if f["status"] != 307 or f["listener"] != "main" or not f["auth"]:
        bad("no 307 answered to an authorised request on 127.0.0.1")
    red = [e for e in after_f if e["listener"] == "redirect"]
    if not red:
        bad("the redirect to 127.0.0.2 was not followed")
    if any(e["auth"] for e in red):
        bad("Authorization was sent to 127.0.0.2, the redirect's other host")
    if not whole(red[-1]) or after_f[-1] is not red[-1]:
        bad("the transfer did not complete on 127.0.0.2")
elif fault == "slow":
    if len(es) != 1:
        bad("%d requests for a slow body, not one" % len(es))
    if not whole(f):
        bad("the slow transfer did not complete")
    took = f["t1"] - f["t0"]
    if took < 0.9 * size / rate:
        bad("the slow body took %.2f s, the proxy's rate allows no less than %.2f s" % (took, size / rate))
print("proxy log: " + "; ".join(map(show, es)))
PY
}
# cell PATH FAULT: one cell (run in a subshell); fails with the reason
cell() {
	p=$1 f=$2
	d=$W/c-$p-$f
	mkdir -p "$d"
	tgt=$(target "$p" "$(basename "$d")")
	scheme=bearer
	[ "$p" = model ] && scheme=basic
	rule "$f" "$tgt" $scheme >"$RULES"
	mark=$(wc -l <"$PLOG")
	t0=$(date +%s.%N)
	rc=0
	run "$p" "$f" "$d" || rc=$?
	# the proxy logs a request when it is done: wait for the stragglers
	for _ in $(seq 50); do
		[ "$(curl -sf "http://127.0.0.1:$PPORT/_proxy/inflight")" = 0 ] && break
		sleep 0.1
	done
	echo '{}' >"$RULES"
	echo "  $(tail -n 1 "$d/out.log") [rc $rc, $(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)") s]"
	[ $rc = 0 ] || fail "the $p failed (exit $rc): $(tail -n 1 "$d/out.log")"
	msg=$(proxy_check "$f" "$p" "$tgt" "$(body_size "$p")" "$mark" 2>&1) || { echo "$msg"; fail "$(echo "$msg" | head -n 1)"; }
	echo "$msg"
	result "$p" "$d"
	# no credential was written into what the transfer left
	if [ "$f" = 307 ]; then
		pw=${CREDS#*:} leak=
		if l=$(grep -F "$pw" "$d/out.log"); then leak="in the output: $l"; fi
		if [ "$p" != push ] && l=$(tar xOf "$d/out.tar" | grep -aoE ".{0,40}$pw.{0,10}"); then
			leak="${leak:+$leak; }in the bundle: $l"
		fi
		[ -z "$leak" ] || fail "the password is $leak"
	fi
}

# --- controls: curl as the client shows that the log checks catch what
# ferry does not do today (a leak, a refetch from 0), and that the push 307
# cell can be passed (follow the 307, send the body again, no credentials)
control() { # NAME PATH FAULT SCHEME WANT(ok|ERE) CMD...
	name=$1 p=$2 f=$3 scheme=$4 want=$5
	shift 5
	d=$W/ctl-$name
	mkdir -p "$d"
	tgt=$(target "$p" "ctl-$name")
	rule "$f" "$tgt" "$scheme" >"$RULES"
	mark=$(wc -l <"$PLOG")
	"$@" >"$d/out.log" 2>&1 || true
	echo '{}' >"$RULES"
	rc=0
	msg=$(proxy_check "$f" "$p" "$tgt" "$(body_size "$p")" "$mark" 2>&1) || rc=$?
	if [ "$want" = ok ]; then
		[ $rc = 0 ] || fail "control $name: $msg"
	else
		[ $rc != 0 ] && echo "$msg" | head -n 1 | grep -qE "$want" || fail "control $name: the check did not catch it: $msg"
	fi
	echo "control $name: $(echo "$msg" | head -n 1)"
}
echo "{\"auth\": {\"bearer\": \"$CREDS\"}}" >"$RULES"
TOK=$(curl -sf -u "$CREDS" "http://127.0.0.1:$PPORT/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])') ||
	fail "no token from the proxy"
curl -sf -o "$W/layer" "http://127.0.0.1:$REG_PORT/v2/library/big/blobs/$BIG" || fail "cannot read the layer"
BLOB=http://127.0.0.1:$PPORT/v2/library/big/blobs/$BIG
LOC=$(curl -sf -X POST -H "Authorization: Bearer $TOK" -D - -o /dev/null "http://127.0.0.1:$PPORT/v2/ctl-push307/docker.io/library/big/blobs/uploads/" |
	tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
[ -n "$LOC" ] || fail "no upload location for the control"
control leak pull 307 bearer "Authorization was sent to 127.0.0.2" \
	curl -sf --location-trusted -H "Authorization: Bearer $TOK" -o /dev/null "$BLOB"
control refetch pull cut bearer "did not resume with Range" \
	sh -c 'curl -sf -o /dev/null "$1"; curl -sf -o /dev/null "$1"' - "$BLOB"
control push307 push 307 bearer ok \
	curl -sf -L -X PUT -H "Authorization: Bearer $TOK" -H 'Content-Type: application/octet-stream' \
	--data-binary "@$W/layer" -o /dev/null "$LOC&digest=$BIG"

CELLS=${TRANSFER_CELLS:-}
if [ -z "$CELLS" ]; then
	for p in pull model push; do for f in 429 cut 307 slow; do CELLS="$CELLS $p:$f"; done; done
fi
failed=0 results=
for c in $CELLS; do
	echo "--- $c"
	rc=0
	(cell "${c%%:*}" "${c#*:}") >"$W/cell.out" 2>&1 || rc=$?
	sed 's/^/  /' "$W/cell.out"
	why=$(grep '^FAIL: ' "$W/cell.out" | head -n 1 | sed 's/^FAIL: //')
	known=$(echo "$KNOWN" | awk -v c="$c" '$1 == c {sub(/^[^ ]+ +/, ""); print; exit}')
	if [ $rc = 0 ] && [ -z "$known" ]; then
		status="ok"
	elif [ $rc = 0 ]; then
		status="FAILED: passes now, drop it from KNOWN"
		failed=1
	elif [ -n "$known" ] && grep -qE -- "$known" "$W/cell.out"; then
		status="known defect: $why"
		[ -n "${FERRY_STRICT_FAULTS:-}" ] && failed=1
	else
		status="FAILED: $why"
		failed=1
	fi
	results="$results$(printf '%-11s %s' "$c" "$status")"$'\n'
done
echo "--- cells"
printf '%s' "$results"
[ $failed = 0 ] || fail "transfer_faults: a cell failed"
echo "transfer_faults: ok"
