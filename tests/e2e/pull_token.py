#!/usr/bin/env python3
"""A small Bearer token issuer for docker-registry's `auth: token:` (tests only).

usage: pull_token.py PORT DIR SERVICE ISSUER USER PASS LOG [REFRESH]
Writes DIR/token.crt (the registry's rootcertbundle) and DIR/token.key, then
serves GET /token?service=&scope= : with Basic USER:PASS it signs an RS256
JWT granting the scopes asked; wrong credentials get 401; no credentials get
an anonymous token with no access. POST /token is the OAuth2 refresh-token
grant docker uses for identity tokens (form grant_type=refresh_token,
refresh_token, service, scope with space-separated scopes, client_id): with
refresh_token REFRESH it answers {"access_token": ...} for the scopes,
otherwise 401. While DIR/stale holds a JSON list of
scopes, the next token for each of them is issued already expired (past
the registry's 60 s leeway), as a revoked or expired token would be. Every request is logged to LOG as one
JSON line (whether an Authorization header came, never its value). It listens
on $TOKEN_ADDR (default 127.0.0.1), so that a test can put the realm on
another host of 127.0.0.0/8 than the registry."""
import base64, datetime, json, os, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

port, d, service, issuer, user, pw, logf = sys.argv[1:8]
refresh = sys.argv[8] if len(sys.argv) > 8 else None
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ferry-test-token")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
open(os.path.join(d, "token.crt"), "wb").write(cert.public_bytes(serialization.Encoding.PEM))
x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
lock = threading.Lock()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign(access, stale=False):
    t = int(time.time()) - (600 if stale else 0)
    hdr = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
    claims = {"iss": issuer, "sub": user, "aud": service, "exp": t + 300, "nbf": t - 10,
              "iat": t, "jti": uuid.uuid4().hex, "access": access}
    msg = b64u(json.dumps(hdr).encode()) + "." + b64u(json.dumps(claims).encode())
    sig = key.sign(msg.encode(), padding.PKCS1v15(), hashes.SHA256())
    return msg + "." + b64u(sig)


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        u = urlparse(self.path)
        q = parse_qs(u.query)
        auth = self.headers.get("Authorization", "")
        ok = auth == "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
        status = 200
        access = []
        if auth and not ok:
            status = 401
        elif ok:
            for s in q.get("scope", []):
                parts = s.split(":")
                if len(parts) == 3:
                    access.append({"type": parts[0], "name": parts[1],
                                   "actions": parts[2].split(",")})
        stale = False
        sf = os.path.join(d, "stale")
        with lock:
            if ok and os.path.exists(sf):
                left = json.load(open(sf))
                for s in q.get("scope", []):
                    if s in left:
                        left.remove(s)
                        stale = True
                json.dump(left, open(sf, "w"))
            with open(logf, "a") as f:
                f.write(json.dumps({"path": u.path, "scope": q.get("scope", []),
                                    "service": q.get("service", []), "auth": bool(auth),
                                    "status": status, "stale": stale}) + "\n")
        if status != 200:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
            return
        body = json.dumps({"token": sign(access, stale), "expires_in": 300,
                           "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        if n < 0 or n > 65536:
            self.send_response(413)
            self.end_headers()
            return
        f = parse_qs(self.rfile.read(n).decode())
        grant = f.get("grant_type", [""])[0]
        scopes = [x for s in f.get("scope", []) for x in s.split(" ") if x]
        ok = refresh is not None and grant == "refresh_token" and f.get("refresh_token", [""])[0] == refresh
        access = []
        for s in scopes if ok else []:
            parts = s.split(":")
            if len(parts) == 3:
                access.append({"type": parts[0], "name": parts[1], "actions": parts[2].split(",")})
        with lock, open(logf, "a") as lf:
            lf.write(json.dumps({"path": urlparse(self.path).path, "method": "POST", "grant": grant,
                                 "scope": scopes, "service": f.get("service", []),
                                 "client_id": f.get("client_id", []),
                                 "auth": bool(self.headers.get("Authorization")),
                                 "status": 200 if ok else 401, "stale": False}) + "\n")
        if not ok:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error":"invalid_grant"}')
            return
        body = json.dumps({"access_token": sign(access), "expires_in": 300,
                           "scope": " ".join(scopes)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer((os.environ.get("TOKEN_ADDR", "127.0.0.1"), int(port)), H).serve_forever()
