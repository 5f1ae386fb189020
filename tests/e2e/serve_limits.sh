# ferry-install serve caps the connections one client address may hold
# (MHD_OPTION_PER_IP_CONNECTION_LIMIT, 64 by default; docs/serve.md): one
# client opens 80 idle connections from 127.0.0.1; the server keeps 64 and
# closes the rest on accept; a further request from 127.0.0.1 is refused
# while the hog holds them, one from 127.0.0.2 is answered meanwhile, and
# once the hog lets go 127.0.0.1 is answered again. Every step is bounded
# by socket timeouts (the whole test by `timeout`).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.bash"
need umoci skopeo curl python3 timeout

serve_fixture
serve_start lim "$BUNDLE" --pubkey "$PUB"
HP=$SERVE_HP
echo "serving at $SERVE_URL"

timeout 120 python3 - "${HP%:*}" "${HP##*:}" <<'PY' || fail "per-IP connection limit (see above)"
import socket, sys, time

host, port = sys.argv[1], int(sys.argv[2])
LIMIT, HOG = 64, 80

def connect(src):
    s = socket.socket()
    s.settimeout(5)
    s.bind((src, 0))
    s.connect((host, port))
    return s

def get_v2(src):
    """The status line of GET /v2/ from src, or '' when the server closes."""
    try:
        s = connect(src)
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        s.close()
        return data.split(b"\r\n", 1)[0].decode("latin-1")
    except OSError as e:
        return "error: %s" % e

assert get_v2("127.0.0.1").startswith("HTTP/1.1 200"), "a first request is not answered"

hog = [connect("127.0.0.1") for _ in range(HOG)]
time.sleep(1.0)  # let the server accept (and refuse) them all
closed = 0
for s in hog:
    s.settimeout(0.2)
    try:
        if s.recv(1) == b"":
            closed += 1
    except socket.timeout:
        pass  # still open: the server holds it
    except OSError:
        closed += 1
held = HOG - closed
print("hog: %d connections opened, %d held by the server, %d closed on accept" % (HOG, held, closed))
assert held == LIMIT, "the server holds %d connections from one address, want %d" % (held, LIMIT)

line = get_v2("127.0.0.1")
print("127.0.0.1 over its limit: %r" % line)
assert not line.startswith("HTTP/"), "a request over the per-IP limit was answered: %r" % line
t0 = time.time()
line = get_v2("127.0.0.2")
print("127.0.0.2 meanwhile: %r (%.2fs)" % (line, time.time() - t0))
assert line.startswith("HTTP/1.1 200"), "another client is not answered while one holds its limit"

for s in hog:
    s.close()
ok = ""
for _ in range(50):  # the server notices the closed connections
    ok = get_v2("127.0.0.1")
    if ok.startswith("HTTP/1.1 200"):
        break
    time.sleep(0.1)
print("127.0.0.1 after the hog let go: %r" % ok)
assert ok.startswith("HTTP/1.1 200"), "127.0.0.1 is not answered again after closing its connections"
PY
kill -0 "$SERVE_PID" || fail "serve died"
grep -qi 'limit' "$T/lim.err" && echo "serve logged: $(grep -i -m1 limit "$T/lim.err")"
serve_stop "$SERVE_PID" lim
echo "per-IP connection limit: ok"
