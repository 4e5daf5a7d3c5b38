"""Registries that cannot be reached, on 127.0.0.1, for the fault tests.

- Stalling: accepts every connection and never answers a byte, as a
  registry behind a black-holing firewall or a hung proxy does;
- free_port(): a port where nothing listens (connections are refused).

Stalling runs in a thread of the test process and is bounded: it closes
every connection and stops by itself after LIFETIME seconds, even if the
test never stops it.

No registries.conf.d drop-in marks them insecure for Podman: its API
service reads the registries configuration once, when it starts (a
drop-in written later has no effect until it restarts), and for these two
it makes no difference: the TLS handshake Podman then tries stalls or is
refused like plain HTTP would be.  (A registry that is slow on purpose is
the local one, paused: daemons.paused("registry").)
"""

import json
import select
import socket
import threading
import time

LIFETIME = 120


def free_port():
    """A port on 127.0.0.1 where nothing listens."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Stalling(object):
    """Accepts every connection, then says nothing, until it stops."""

    def __init__(self, lifetime=LIFETIME):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.address = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self.connections = []       # kept open, never read, never answered
        self._stop = threading.Event()
        self._deadline = time.time() + lifetime
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def image(self, path="vhc-tests/busybox-httpd:1"):
        """An image reference on this registry."""
        return "%s/%s" % (self.address, path)

    def _serve(self):
        try:
            while not self._stop.is_set() and time.time() < self._deadline:
                ready, _, _ = select.select([self._listener], [], [], 0.1)
                if ready:
                    self.connections.append(self._listener.accept()[0])
        finally:
            self._listener.close()
            for conn in self.connections:
                conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Hostile(object):
    """A registry (plain HTTP, as Docker speaks to any 127.0.0.0/8 one)
    whose /v2/ check passes and whose every other answer is an error whose
    text is hostile: ANSI escapes, newlines, other control characters and a
    body of body_size bytes.  It stops by itself after lifetime seconds."""

    # What a tenant's registry could put in its error message.
    HOSTILE = (u"\x1b[2J\x1b[31mEVIL\x1b[0m\r\nline two\x07\x08\x00"
               u"\x7f\u202e\u0085tail ")

    def __init__(self, body_size=1024 * 1024, lifetime=LIFETIME):
        import http.server
        import socketserver
        message = (self.HOSTILE * (body_size // len(self.HOSTILE) + 1))[
            :body_size]
        body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN",
                                       "message": message,
                                       "detail": message}]},
                          ensure_ascii=False).encode("utf-8")
        requests = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                if self.path == "/v2/":
                    self._send(200, b"{}")
                else:
                    self._send(404, body)

            do_HEAD = do_GET

            def _send(self, code, data):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Docker-Distribution-API-Version",
                                 "registry/2.0")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.address = "127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        self._timer = threading.Timer(lifetime, self.close)
        self._timer.daemon = True
        self._timer.start()

    def image(self, path="vhc-tests/busybox-httpd:1"):
        return "%s/%s" % (self.address, path)

    def close(self):
        self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
