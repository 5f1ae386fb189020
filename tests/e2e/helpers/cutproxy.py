"""A loopback HTTP proxy for tests: forwards to 127.0.0.1:UPSTREAM and, the
first time a path is asked for, cuts the connection halfway through the
body. Every request line and Range header is appended to LOG.
Usage: cutproxy.py PORT UPSTREAM_PORT LOG"""
import socket
import socketserver
import sys

PORT, UPSTREAM, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
seen = set()


def read_head(f):
    lines = []
    while True:
        line = f.readline(65536)
        if not line or line in (b"\r\n", b"\n"):
            return lines
        lines.append(line)


class H(socketserver.StreamRequestHandler):
    def handle(self):
        head = read_head(self.rfile)
        if not head:
            return
        path = head[0].split()[1].decode()
        rng = [h.decode().strip() for h in head if h.lower().startswith(b"range:")]
        with open(LOG, "a") as lf:
            lf.write("%s %s\n" % (path, rng[0] if rng else "-"))
        up = socket.create_connection(("127.0.0.1", UPSTREAM), timeout=10)
        up.sendall(head[0] + b"".join(h for h in head[1:] if not h.lower().startswith(b"connection:"))
                   + b"Connection: close\r\n\r\n")
        data = b""
        while True:
            chunk = up.recv(65536)
            if not chunk:
                break
            data += chunk
        up.close()
        hdr, _, body = data.partition(b"\r\n\r\n")
        if path not in seen and len(body) > 1:
            seen.add(path)
            self.wfile.write(hdr + b"\r\n\r\n" + body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)


class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


S(("127.0.0.1", PORT), H).serve_forever()
