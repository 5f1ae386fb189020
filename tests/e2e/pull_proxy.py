#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of a registry (tests only).

usage: pull_proxy.py PORT REDIRECT_PORT UPSTREAM_PORT RULES_JSON LOG

Every request is forwarded to 127.0.0.1:UPSTREAM_PORT unless a rule says
otherwise. RULES_JSON is re-read on every request, so a test can change the
faults between builds. Rules (all optional):
  "basic": "user:pass"   answer 401 + Basic challenge without these creds
  "r429": N              the first N blob GETs get 429 with Retry-After: 1
  "r500": true           every blob GET gets 500
  "cut": {"digest": D, "after": N}  the first GET of blob D without Range
                         sends N bytes of the body, then drops the connection
  "corrupt": D           blob D's bytes are altered (one byte flipped)
  "slow": BYTES_PER_S    blob bodies are throttled
  "redirect": true       blob GETs answer 307 to REDIRECT_PORT, where the
                         same proxy serves the blob and logs Authorization
  "schema1": true        /v2/library/old/manifests/* is a Docker schema 1
                         manifest (which docker-registry no longer accepts)
  "ratelimit": N         manifest answers carry ratelimit-limit: 100;w=21600
                         and ratelimit-remaining: N;w=21600 (N counts down)
  "mdelay": SECONDS      manifest requests wait this long before going on
  "nodigest": true       manifest answers lose their Docker-Content-Digest
LOG gets one JSON line per request: port, method, path, range, status,
bytes (body bytes sent), auth (whether an Authorization header came), t0
and t1 (when the request came and when its answer was done)."""
import http.client, json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, rport, uport, rules_path, logf = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
lock = threading.RLock()
state = {"n429": 0, "cut_done": set()}


def rules():
    try:
        return json.load(open(rules_path))
    except Exception:
        return {}


def log(**kw):
    with lock, open(logf, "a") as f:
        f.write(json.dumps(kw) + "\n")


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, headers=(), body=b""):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.entry(status, len(body))

    def entry(self, status, n):
        log(port=self.server.server_port, method=self.command, path=self.path,
            range=self.headers.get("Range", ""), status=status, bytes=n,
            auth="Authorization" in self.headers, t0=getattr(self, "t0", 0), t1=time.time())

    def do_HEAD(self):
        self.handle_req()

    def do_GET(self):
        self.handle_req()

    def handle_req(self):
        self.t0 = time.time()
        r = rules()
        if r.get("mdelay") and "/manifests/" in self.path:
            time.sleep(float(r["mdelay"]))
        path = self.path
        is_blob = "/blobs/sha256:" in path and self.command == "GET"
        digest = path.rsplit("/", 1)[-1].split("?")[0] if is_blob else ""
        redirected = self.server.server_port == rport
        if r.get("basic") and not redirected:
            import base64
            want = "Basic " + base64.b64encode(r["basic"].encode()).decode()
            if self.headers.get("Authorization") != want:
                return self.reply(401, [("WWW-Authenticate", 'Basic realm="proxy"'),
                                        ("Content-Type", "application/json")],
                                  b'{"errors":[{"code":"UNAUTHORIZED","message":"login"}]}')
        if r.get("schema1") and path.startswith("/v2/library/old/manifests/"):
            body = json.dumps({"schemaVersion": 1, "name": "library/old", "tag": "1",
                               "architecture": "amd64", "fsLayers": [], "history": []}).encode()
            import hashlib
            return self.reply(200, [("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
                                    ("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())],
                              body)
        if is_blob and not redirected:
            with lock:
                if state["n429"] < r.get("r429", 0):
                    state["n429"] += 1
                    return self.reply(429, [("Retry-After", "1")],
                                      b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}')
            if r.get("r500"):
                return self.reply(500, [], b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}')
            if r.get("redirect"):
                return self.reply(307, [("Location", f"http://127.0.0.1:{rport}{path}?sig=x")])
        up_path = path.split("?")[0] if redirected else path
        c = http.client.HTTPConnection("127.0.0.1", uport, timeout=60)
        hdrs = {k: v for k, v in self.headers.items()
                if k.lower() in ("range", "accept", "user-agent")}
        c.request(self.command, up_path, headers=hdrs)
        resp = c.getresponse()
        self.send_response(resp.status)
        if "/manifests/" in path and "ratelimit" in r:
            with lock:
                state["rl"] = state.get("rl", r["ratelimit"] + 1) - 1
                left = state["rl"]
            self.send_header("ratelimit-limit", "100;w=21600")
            self.send_header("ratelimit-remaining", f"{left};w=21600")
        drop = {"connection", "transfer-encoding", "keep-alive"}
        if r.get("nodigest") and "/manifests/" in path:
            drop.add("docker-content-digest")
        for k, v in resp.getheaders():
            if k.lower() not in drop:
                self.send_header(k, v)
        self.end_headers()
        sent = 0
        cut = r.get("cut") or {}
        limit = None
        if is_blob and cut.get("digest") == digest and not self.headers.get("Range"):
            with lock:
                if digest not in state["cut_done"]:
                    state["cut_done"].add(digest)
                    limit = int(cut.get("after", 1000))
        corrupt = is_blob and r.get("corrupt") == digest
        slow = r.get("slow") if is_blob else None
        try:
            while self.command != "HEAD":
                chunk = resp.read(16384 if not slow else max(1, min(16384, slow // 10)))
                if not chunk:
                    break
                if corrupt and sent == 0:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                if limit is not None and sent + len(chunk) >= limit:
                    self.wfile.write(chunk[:limit - sent])
                    sent = limit
                    self.wfile.flush()
                    self.entry(resp.status, sent)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
                if slow:
                    self.wfile.flush()
                    time.sleep(len(chunk) / slow)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        c.close()
        self.entry(resp.status, sent)


for p in (port, rport):
    srv = ThreadingHTTPServer(("127.0.0.1", p), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
threading.Event().wait()
