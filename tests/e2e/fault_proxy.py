#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the e2e tests (loopback only).

usage: fault_proxy.py --listen HOST:PORT --redirect HOST:PORT
                      --route PREFIX=HOST:PORT [--route ...] --rules FILE --log FILE

Two listeners run the same handler. The main one (--listen) applies the
auth and the faults of RULES; the redirect one (--redirect, another
loopback host or port) only forwards and logs, and is where "redirect"
sends clients. A request goes to the upstream of the longest --route
prefix of its path (e.g. /v2/ to a docker-registry, / to nginx). The Host
header is passed on, so a registry's upload Locations point at the proxy.

RULES (JSON) is re-read on every request, so a test changes the faults
between runs; the counters ("count") start again whenever its text changes.
  "auth": {"basic": "user:pass"}    the main listener answers 401 + a Basic
                                     challenge to requests without them
  "auth": {"bearer": "user:pass"}   401 + a Bearer challenge whose realm is
                                     http://LISTEN/token; /token gives a
                                     token for those Basic credentials
  "faults": [RULE, ...]  each RULE: {"match": REGEX, "do": ACTION, "count": N,
                         ...}; REGEX is searched in "METHOD PATH?QUERY";
                         "count" (default: no limit) is how many requests
                         the rule hits. Every matching rule applies.
ACTIONS:
  "status"     answer "status" (e.g. 429, 500) with "headers" (e.g.
               {"Retry-After": "2"}) and a registry-style JSON error
  "redirect"   answer "status" (default 307) with Location: the same path
               on the redirect listener, plus "sig=x" in the query
  "cut"        a request with a body: read "after" bytes of it, then drop
               the connection (nothing is forwarded); otherwise send
               "after" bytes of the answer's body, then drop the connection
  "slow"       a request with a body is read at "rate" bytes/s; otherwise
               the answer's body is sent at "rate" bytes/s
  "corrupt"    the answer's first body byte is flipped
  "delay"      wait "seconds" before forwarding
  "ratelimit"  answers carry ratelimit-limit: 100;w=21600 and
               ratelimit-remaining: N;w=21600, N counting down from
               "remaining"
  "nodigest"   answers lose their Docker-Content-Digest
  "schema1"    answer a Docker schema 1 manifest
LOG gets one JSON line per request: listener ("main" or "redirect"), host,
port, method, path, range, clen (the request's Content-Length), status (0
when the request was cut), bytes (answer body bytes sent), rbytes (request
body bytes read), auth (whether an Authorization header came), fault (the
actions applied, comma-separated, "" for none), t0 and t1 (when the request
came and when it was done). GET /_proxy/inflight answers how many requests
are in progress (not logged yet)."""
import argparse, base64, hashlib, http.client, json, re, socket, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--listen", required=True)
ap.add_argument("--redirect", required=True)
ap.add_argument("--route", action="append", required=True)
ap.add_argument("--rules", required=True)
ap.add_argument("--log", required=True)
A = ap.parse_args()


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


MAIN, REDIR = hostport(A.listen), hostport(A.redirect)
for h in (MAIN[0], REDIR[0]):
    if not h.startswith("127."):
        raise SystemExit("fault_proxy: loopback only, not " + h)
ROUTES = sorted(((p.split("=", 1)[0], hostport(p.split("=", 1)[1])) for p in A.route),
                key=lambda r: -len(r[0]))
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-connection", "expect", "authorization"}
TOKEN = "fault-proxy-token-" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:16]
lock = threading.RLock()
state = {"text": None, "used": {}, "rl": None, "inflight": 0}


def rules():
    """The rules, and resets the counters when their text changed."""
    try:
        text = open(A.rules).read()
        r = json.loads(text) if text.strip() else {}
    except Exception:
        text, r = "", {}
    with lock:
        if text != state["text"]:
            state.update(text=text, used={}, rl=None)
    return r


def log(**kw):
    with lock, open(A.log, "a") as f:
        f.write(json.dumps(kw) + "\n")


class Cut(Exception):
    pass


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    # -- bookkeeping
    def entry(self, status):
        log(listener="redirect" if self.redirected else "main",
            host=self.server.server_address[0], port=self.server.server_port,
            method=self.command, path=self.path, range=self.headers.get("Range", ""),
            clen=int(self.headers.get("Content-Length") or 0), status=status,
            bytes=self.sent, rbytes=self.rbytes, auth="Authorization" in self.headers,
            fault=",".join(self.applied), t0=self.t0, t1=time.time())

    def reply(self, status, headers=(), body=b""):
        self.drain()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            self.sent = len(body)
        self.entry(status)

    def drop(self, status):
        """Drop the connection: a cut."""
        try:
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True
        self.entry(status)
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- the request body
    def body_chunks(self, rate=None, cut=None):
        """Yields the request body (Content-Length or chunked); raises Cut
        after cut bytes; reads at rate bytes/s."""
        step = 65536 if not rate else max(1, min(65536, rate // 8))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            left = None
        else:
            left = int(self.headers.get("Content-Length") or 0)
        pending = b""
        while True:
            if left is None:  # chunked: decoded into pending
                if not pending:
                    size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass
                        return
                    pending = self.rfile.read(size)
                    self.rfile.readline(1024)
                n = min(step, len(pending))
                data, pending = pending[:n], pending[n:]
            else:
                if left == 0:
                    return
                data = self.rfile.read(min(step, left))
                if not data:
                    raise Cut()
                left -= len(data)
            if cut is not None and self.rbytes + len(data) >= cut:
                self.rbytes = cut
                raise Cut()
            self.rbytes += len(data)
            yield data
            if rate:
                time.sleep(len(data) / rate)

    def drain(self):
        if not self.body_read:
            self.body_read = True
            for _ in self.body_chunks():
                pass

    # -- methods
    def do_HEAD(self):
        self.handle_req()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD

    def handle_req(self):
        self.t0, self.sent, self.rbytes, self.applied, self.body_read = time.time(), 0, 0, [], False
        self.redirected = self.server.server_address == REDIR
        if self.path == "/_proxy/inflight":  # for tests: requests not logged yet
            with lock:
                n = state["inflight"]
            body = b"%d\n" % n
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        with lock:
            state["inflight"] += 1
        try:
            self.handle_inner()
        except (BrokenPipeError, ConnectionResetError, Cut):  # the client went away
            self.close_connection = True
            self.entry(0)
        finally:
            with lock:
                state["inflight"] -= 1

    def handle_inner(self):
        r = rules()
        path = self.path
        if not self.redirected:
            auth = r.get("auth") or {}
            if "bearer" in auth and path.split("?")[0] == "/token":
                return self.token(auth["bearer"])
            if auth and not self.authorized(auth):
                self.applied.append("401")
                if "basic" in auth:
                    ch = 'Basic realm="fault-proxy"'
                else:
                    ch = 'Bearer realm="http://%s:%d/token",service="fault-proxy"' % MAIN
                return self.reply(401, [("WWW-Authenticate", ch), ("Content-Type", "application/json")],
                                  b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}')
        hits = []
        if not self.redirected:
            line = "%s %s" % (self.command, path)
            with lock:
                for i, f in enumerate(r.get("faults") or []):
                    if not re.search(f.get("match", ""), line):
                        continue
                    used = state["used"].get(i, 0)
                    if "count" in f and used >= int(f["count"]):
                        continue
                    state["used"][i] = used + 1
                    hits.append(f)
        do = {f["do"]: f for f in hits}
        self.applied = [f["do"] for f in hits]
        if "status" in do:
            f = do["status"]
            st = int(f.get("status", 500))
            hdrs = list((f.get("headers") or {}).items()) + [("Content-Type", "application/json")]
            code = {429: "TOOMANYREQUESTS"}.get(st, "UNKNOWN")
            return self.reply(st, hdrs, b'{"errors":[{"code":"%s","message":"fault proxy"}]}' % code.encode())
        if "redirect" in do:
            sep = "&" if "?" in path else "?"
            loc = "http://%s:%d%s%ssig=x" % (REDIR[0], REDIR[1], path, sep)
            return self.reply(int(do["redirect"].get("status", 307)), [("Location", loc)])
        if "schema1" in do:
            name = path.split("/manifests/")[0][len("/v2/"):]
            body = json.dumps({"schemaVersion": 1, "name": name, "tag": path.rsplit("/", 1)[-1],
                               "architecture": "amd64", "fsLayers": [], "history": []}).encode()
            return self.reply(200, [("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
                                    ("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())], body)
        if "delay" in do:
            time.sleep(float(do["delay"].get("seconds", 1)))
        self.forward(path, do)

    def authorized(self, auth):
        got = self.headers.get("Authorization", "")
        if "basic" in auth:
            return got == "Basic " + base64.b64encode(auth["basic"].encode()).decode()
        return got == "Bearer " + TOKEN

    def token(self, creds):
        self.applied.append("token")
        want = "Basic " + base64.b64encode(creds.encode()).decode()
        if self.headers.get("Authorization", "") != want:
            return self.reply(401, [("WWW-Authenticate", 'Basic realm="fault-proxy-token"')], b"{}")
        body = json.dumps({"token": TOKEN, "access_token": TOKEN, "expires_in": 600}).encode()
        return self.reply(200, [("Content-Type", "application/json")], body)

    def forward(self, path, do):
        has_body = self.command in ("POST", "PUT", "PATCH") and (
            int(self.headers.get("Content-Length") or 0) > 0
            or self.headers.get("Transfer-Encoding", "").lower() == "chunked")
        cut = do.get("cut")
        slow = do.get("slow")
        if has_body and cut:  # the upload is cut: nothing reaches the upstream
            self.body_read = True
            try:
                for _ in self.body_chunks(cut=int(cut.get("after", 1000))):
                    pass
            except Cut:
                pass
            return self.drop(0)
        up_path = path
        if self.redirected:
            up_path = re.sub(r"[?&]sig=x$", "", path)
        host, port = next(u for p, u in ROUTES if path.startswith(p))
        c = http.client.HTTPConnection(host, port, timeout=120)
        c.putrequest(self.command, up_path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            if k.lower() not in HOP and k.lower() != "content-length":
                c.putheader(k, v)
        body = b""
        if has_body:
            self.body_read = True
            if slow or self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                # slow: read at the rate first (the client sees the back
                # pressure), then send on
                body = b"".join(self.body_chunks(rate=int(slow["rate"]) if slow else None))
                c.putheader("Content-Length", str(len(body)))
                c.endheaders()
                c.send(body)
            else:
                c.putheader("Content-Length", self.headers.get("Content-Length"))
                c.endheaders()
                for chunk in self.body_chunks():
                    c.send(chunk)
        else:
            self.drain()
            if self.command in ("POST", "PUT", "PATCH"):
                c.putheader("Content-Length", "0")
            c.endheaders()
        resp = c.getresponse()
        hdrs = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
        if "nodigest" in do:
            hdrs = [(k, v) for k, v in hdrs if k.lower() != "docker-content-digest"]
        if "ratelimit" in do:
            with lock:
                if state["rl"] is None:
                    state["rl"] = int(do["ratelimit"].get("remaining", 100)) + 1
                state["rl"] -= 1
                left = state["rl"]
            hdrs += [("ratelimit-limit", "100;w=21600"), ("ratelimit-remaining", "%d;w=21600" % left)]
        no_body = self.command == "HEAD" or resp.status in (204, 304)
        if not no_body and not any(k.lower() == "content-length" for k, _ in hdrs):
            data = resp.read()  # chunked upstream: passed on with a length
            hdrs.append(("Content-Length", str(len(data))))
            stream = iter([data])
        else:
            stream = None
        self.send_response(resp.status)
        for k, v in hdrs:
            self.send_header(k, v)
        self.end_headers()
        limit = int(cut.get("after", 1000)) if cut else None
        rate = int(slow["rate"]) if slow else None
        step = 65536 if not rate else max(1, min(65536, rate // 8))
        corrupt = "corrupt" in do
        while not no_body:
            chunk = next(stream, b"") if stream else resp.read(step)
            if not chunk:
                break
            if corrupt and self.sent == 0:
                chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
            if limit is not None and self.sent + len(chunk) >= limit:
                self.wfile.write(chunk[:limit - self.sent])
                self.sent = limit
                c.close()
                return self.drop(resp.status)
            self.wfile.write(chunk)
            self.sent += len(chunk)
            if rate:
                self.wfile.flush()
                time.sleep(len(chunk) / rate)
        c.close()
        self.entry(resp.status)


def serve(addr):
    srv = ThreadingHTTPServer(addr, H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()


serve(MAIN)
serve(REDIR)
threading.Event().wait()
